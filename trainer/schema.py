"""Names shared by the trainer (writer) and `analysis` (reader) of MLflow runs.

One place for them so a rename cannot silently split the two sides.
Params are the resolved job config flattened with "." (e.g. ``model.name``, ``optim.lr``).
Metrics are logged against ``step`` = optimizer step (1-based); every logged step carries
TOKENS, FLOPS and WALL_CLOCK so any metric can be re-plotted against any of the three axes.
"""

# --- tags -------------------------------------------------------------------------------
TAG_PREFIX = "lmsweep."
TAG_ROLE = "lmsweep.role"  # "sweep" (parent run) or "job"
ROLE_SWEEP = "sweep"
ROLE_JOB = "job"
TAG_SWEEP_ID = "lmsweep.sweep_id"
TAG_OVERRIDES = "lmsweep.overrides"  # "model=mixer optim=sm3" (the run name too)
TAG_FINGERPRINT = "lmsweep.fingerprint"  # hash of the resolved config less location fields
TAG_GIT_COMMIT = "lmsweep.git_commit"
TAG_PARAMS_TOTAL = "lmsweep.params_total"
TAG_PARAMS_NON_EMBEDDING = "lmsweep.params_non_embedding"
TAG_FLOPS_PER_TOKEN = "lmsweep.flops_per_token"
TAG_OUTCOME = "lmsweep.outcome"  # "finished" | "diverged" | "failed" | "running"
TAG_DIVERGED_STEP = "lmsweep.diverged_step"
TAG_RESUMES = "lmsweep.resumes"  # times the run continued from a checkpoint
TAG_EARLIER_SWEEPS = "lmsweep.earlier_sweeps"  # sweeps the run was in before a later one took it in
TAG_SLURM_JOB_ID = "lmsweep.slurm_job_id"  # job run: "<array job>_<task>" (as sacct), or "<job>"
TAG_SLURM_JOB_IDS = "lmsweep.slurm_job_ids"  # sweep (parent) run: its Slurm array job ids, "12,13"
TAG_COMMAND = "lmsweep.command"  # sweep (parent) run: the command line
TAG_JOBS = "lmsweep.jobs"  # sweep (parent) run: jobs launched
TAG_HOST = "lmsweep.host"  # job run: the host and pid training it now, and
TAG_PID = "lmsweep.pid"  # the last time (unix s) its process showed life:
TAG_HEARTBEAT = "lmsweep.heartbeat"  # a RUNNING run whose process died is recognised
TAG_ENDED_BY = "lmsweep.ended_by"  # who closed a run its own process could not close
TAG_CREATION = "lmsweep.creation"  # a token set at creation: twins of a retried create
PARENT_RUN_TAG = "mlflow.parentRunId"  # set by MLflow for nested runs
NOTE_TAG = "mlflow.note.content"  # the run's description in the MLflow UI

OUTCOME_FINISHED = "finished"
OUTCOME_DIVERGED = "diverged"
OUTCOME_FAILED = "failed"
OUTCOME_RUNNING = "running"
OUTCOME_PREEMPTED = "preempted"  # checkpointed, waiting to be requeued or re-run
OUTCOME_CANCELLED = "cancelled"  # SIGTERM/SIGINT: checkpointed; a re-run resumes

# --- metric histories (against step) ----------------------------------------------------
TRAIN_LOSS = "train_loss"
VAL_LOSS = "val_loss"
LR = "lr"
TOKENS = "tokens"  # tokens seen so far (training)
FLOPS = "flops"  # training FLOPs so far (flops_per_token * tokens)
WALL_CLOCK = "wall_clock_s"  # training wall-clock so far, evaluation time excluded
TOKENS_PER_S = "tokens_per_s"
BATCH_TOKENS = "batch_tokens"  # tokens per optimizer step (follows the ramp)
GRAD_NORM = "grad_norm"
SKIPPED_STEPS = "skipped_steps"  # non-finite steps so far (skipped, not applied)
MFU = "mfu"  # model FLOPs utilisation: of the devices' peak (trainer/perf.py)

# --- one-off summary metrics ------------------------------------------------------------
FINAL_VAL_LOSS = "final_val_loss"
BEST_VAL_LOSS = "best_val_loss"
UNIGRAM_ENTROPY = "unigram_entropy"  # nats/token of the training split: the no-context baseline
OPTIMIZER_STATE_BYTES_PER_PARAM = "optimizer_state_bytes_per_param"
LOGGING_SECONDS = "logging_s"  # time spent handing metrics to MLflow (not in wall_clock_s)
EVAL_SECONDS = "eval_s"  # time spent in validation passes (not in wall_clock_s)

# --- artifacts ----------------------------------------------------------------------------
CONFIG_ARTIFACT = "config.yaml"
JOBS_ARTIFACT = "jobs.json"  # sweep (parent) run: its jobs' run names, in launch order
