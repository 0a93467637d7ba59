"""One job, end to end: claim it, open (or resume) its MLflow run, train to the end of the budget
with metrics written off the loop, checkpoint on time and on signals, close the run with its
outcome, and never lose what was logged.

Faults and what survives them (docs/faults.md has the tested list):
- SIGUSR2/SIGTERM/Ctrl-C: checkpoint at the next step boundary, then requeue or end KILLED;
- kill -9, node crash: the latest periodic checkpoint (every `train.checkpoint_every_s` of
  wall-clock by default) was taken after the metrics logged so far were made durable, so the
  resumed run's history has no gap and, as replayed steps are not logged again, no duplicate;
- the tracking store goes away: training goes on, points are kept (trainer/metric_writer.py);
  past `tracking.outage_limit_s` the job checkpoints and stops with a message naming the URI;
  as the job starts, its calls wait for the store as long (tracking.Patient);
- a damaged checkpoint: the previous one (trainer/checkpoint.py); a deleted run: a new one.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

from trainer import checkpoint, contract, liveness, schema, startup_gc, tracking
from trainer.config import JobConfig, fingerprint, flatten
from trainer.contract import Summary, redact
from trainer.dist import checkpoint as dist_checkpoint
from trainer.dist import ranks
from trainer.dist.silent import SilentRun, SilentWriter
from trainer.loop import Trainer, Window, evaluate
from trainer.metric_writer import MetricWriter
from trainer.optim import state_bytes_per_param
from trainer.perf import mfu
from trainer.progress import report
from trainer.tracking import TrackingOutage

log = logging.getLogger("lmsweep")

OUTCOME_ELSEWHERE = "running elsewhere"  # summary only: another process holds the claim
OUTCOME_DONE = "finished elsewhere"  # summary only: a concurrent sweep finished it


def train(
    job: JobConfig, run_name: str, overrides: str, context: Optional[contract.SweepContext] = None
) -> Summary:
    key = fingerprint(job)
    ckpt_dir = contract.checkpoint_dir(job.train.checkpoint_dir, key)
    main = ranks.is_main()  # rank 0 connects, claims, tracks and cleans up for all ranks
    uri = contract.resolve_uri(context.tracking_uri if context else job.tracking.uri)
    # In a sweep, a store that restarts as this job begins is waited for; alone, a bad URI
    # fails in seconds (before the claim: a refused job leaves no file behind).
    client = (
        tracking.connect(
            uri,
            wait_s=job.tracking.outage_limit_s if context else 0.0,
            cache_dir=job.data.cache_path(),
        )
        if main
        else None
    )  # other ranks: rank 0's answers
    claim = checkpoint.Claim(ckpt_dir)
    if not ranks.broadcast(claim.acquire() if main else None):
        log.warning(
            f"[{run_name}] another process is training this job (fingerprint {key}, "
            f"claim {ckpt_dir / checkpoint.CLAIM_FILE}): not run again here"
        )
        return Summary.skipped(run_name, OUTCOME_ELSEWHERE)
    try:
        summary = _train_claimed(job, run_name, overrides, context, key, ckpt_dir, client, uri)
    finally:
        if main:
            claim.release()
    if main:
        checkpoint.clear(ckpt_dir)
    return summary


def _train_claimed(
    job: JobConfig,
    run_name: str,
    overrides: str,
    context: Optional[contract.SweepContext],
    key: str,
    ckpt_dir: Path,
    client,
    uri: str,
) -> Summary:
    # Rank 0's store calls until training starts ride out an outage (tracking.Patient).
    client = client and tracking.Patient(client, job.tracking.outage_limit_s, uri, "the job")
    if ranks.broadcast(
        bool(
            client
            and context
            and not context.rerun
            and tracking.finished_runs(client, job.tracking.experiment, key)
        )
    ):
        # The sweep planned this job, but another sweep finished it since: not trained twice.
        log.warning(f"[{run_name}] a FINISHED run has this job's fingerprint {key}: skipped")
        return Summary.skipped(run_name, OUTCOME_DONE)
    trainer = Trainer(job)
    store = dist_checkpoint.for_trainer(trainer, ckpt_dir)
    saved = store.latest()
    stale = saved and ranks.broadcast(client and _stale(client, saved, job, trainer, context))
    if stale:
        store.set_aside(f"the MLflow run {saved['run_id']} of checkpoint {ckpt_dir} {stale}")
        saved = None
    # Installed before the run exists, so no signal can leave an orphan RUNNING run.
    stop = checkpoint.StopSignals()
    if client:
        client.stop_waiting_when(lambda: stop.requested)
    try:
        run, writer = _open_run(
            client, job, trainer, key, run_name, overrides, saved, context, ckpt_dir
        )
        if client:
            client.settle()
        startup_gc.settle()  # a single run's start-up ends here (a sweep's, before its jobs)
        try:
            outcome = _loop(trainer, run, writer, run_name, stop, ckpt_dir, uri)
            if outcome is None:  # a stop signal: the state is saved
                _stop(trainer, run, writer, stop)
            _finish(trainer, run, writer, outcome, ckpt_dir, uri)
        except BaseException as e:
            if (
                not stop.handed_over
                and run.status == "RUNNING"
                and not isinstance(e, (TrackingOutage, ranks.Follows))
            ):
                _fail(run, writer, e)
            raise
    finally:
        stop.restore()
    s = trainer.state
    return Summary(
        run.run_id,
        run_name,
        outcome,
        trainer.params_total,
        trainer.params_non_emb,
        s.progress.steps,
        s.progress.tokens,
        s.progress.seconds,
        s.val_loss,
        trainer.data.stats["unigram_entropy"],
        run.experiment_id,
    )


def _fail(run, writer: MetricWriter, error: BaseException) -> None:
    """Close the run of a job that crashed, keeping what was logged; the crash itself is what
    the caller re-raises, even if the store is gone too."""
    try:
        writer.close()
        run.set_tags({schema.TAG_OUTCOME: schema.OUTCOME_FAILED})
        run.end("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
    except Exception as e:
        log.warning(
            f"could not mark run {run.run_id} failed: {type(e).__name__}: {contract.scrub(str(e))}"
        )


def _stale(
    client, saved: dict, job: JobConfig, trainer: Trainer, context: Optional[contract.SweepContext]
) -> Optional[str]:
    """Why the checkpoint's run must not be continued ("was deleted", ...: the checkpoint is set
    aside, the job starts a new run), or None: the run is gone, lives in another experiment
    than the one this job records into, or trained on other data (a data file changed)."""
    from mlflow.exceptions import MlflowException

    run_id = saved["run_id"]
    try:
        run = client.get_run(run_id)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return "was deleted"
        raise
    if run.info.lifecycle_stage != "active":
        return "was deleted"
    target = (
        context.experiment_id
        if context
        else getattr(client.get_experiment_by_name(job.tracking.experiment), "experiment_id", None)
    )
    if run.info.experiment_id != target:
        return (
            f"is in experiment '{client.get_experiment(run.info.experiment_id).name}', not in "
            f"tracking.experiment='{job.tracking.experiment}'"
        )
    if saved.get("data", trainer.data.digest) != trainer.data.digest:
        return (
            f"trained on other data (a data file changed since; now {trainer.data.directory.name})"
            ": continued, it would train and evaluate on other documents"
        )
    return None


def _open_run(
    client,
    job: JobConfig,
    trainer: Trainer,
    key: str,
    run_name: str,
    overrides: str,
    saved: dict | None,
    context: Optional[contract.SweepContext],
    ckpt_dir: Path,
):
    """Continue the checkpoint's run, or start one (params, config, baseline logged once).
    Every rank loads the checkpoint; ranks other than 0 get a run and writer that do nothing."""
    if saved is not None:
        dist_checkpoint.for_trainer(trainer, ckpt_dir).load(saved)
    if not ranks.is_main():
        return SilentRun(), SilentWriter()
    if saved is not None:
        previous = client.get_run(saved["run_id"])
        run = tracking.RunLogger(client, saved["run_id"], previous.info.experiment_id)
        client.update_run(run.run_id, status="RUNNING")
        resumes = int(previous.data.tags.get(schema.TAG_RESUMES, 0)) + 1
        run.set_tags(
            {
                **tracking.process_tags(),
                **trainer.par.tags(),
                # a requeued Slurm job stays in its own sweep; another sweep takes it in
                **(
                    tracking.joined_sweep(previous.data.tags, context.id, context.parent_run_id)
                    if context
                    else {}
                ),
                schema.TAG_RESUMES: resumes,
                schema.TAG_OUTCOME: schema.OUTCOME_RUNNING,
            }
        )
        writer = MetricWriter(client, run.run_id, ckpt_dir)
        writer.resume()
        log.info(
            f"[{run_name}] resumed run {run.run_id} from step {trainer.state.progress.steps} "
            f"(resume {resumes})"
        )
        return run, writer
    if context is None:  # a sweep's sweeper did this for the experiment
        experiment_id = tracking.ensure_experiment(client, job.tracking.experiment)
        for note in liveness.close_dead_runs(client, experiment_id, key):
            log.warning(note)
    else:
        experiment_id = context.experiment_id
    run = tracking.RunLogger.start(
        client,
        experiment_id,
        run_name,
        parent_run_id=context.parent_run_id if context else "",
        tags={
            schema.TAG_ROLE: schema.ROLE_JOB,
            schema.TAG_SWEEP_ID: context.id if context else "",
            schema.TAG_OVERRIDES: overrides,
            schema.TAG_FINGERPRINT: key,
            schema.TAG_PARAMS_TOTAL: trainer.params_total,
            schema.TAG_PARAMS_NON_EMBEDDING: trainer.params_non_emb,
            schema.TAG_FLOPS_PER_TOKEN: trainer.flops_per_token,
            schema.TAG_OUTCOME: schema.OUTCOME_RUNNING,
            **tracking.context_tags(f"{Path(sys.argv[0]).name} {overrides}"),
            **tracking.run_color(context.run_names if context else {}, run_name),
            **tracking.process_tags(),
            **trainer.par.tags(),
        },
    )
    run.log_params(flatten(asdict(job)))
    run.log_params({f"data.stats.{k}": v for k, v in trainer.data.params().items()})
    run.log_text(OmegaConf.to_yaml(OmegaConf.structured(job)), schema.CONFIG_ARTIFACT)
    writer = MetricWriter(client, run.run_id, ckpt_dir)
    writer.add({schema.UNIGRAM_ENTROPY: trainer.data.stats["unigram_entropy"]}, step=0)
    return run, writer


def _save(trainer: Trainer, run, writer: MetricWriter, ckpt_dir: Path) -> None:
    """Metrics first, then the state: whatever kills the process after this, the resumed run
    continues a history that reaches this step."""
    writer.make_durable()
    dist_checkpoint.for_trainer(trainer, ckpt_dir).save(run.run_id)


def _finish(
    trainer: Trainer, run, writer: MetricWriter, outcome: str, ckpt_dir: Path, uri: str
) -> None:
    s = trainer.state
    # One-off values at step 0, as unigram_entropy: the MLflow UI draws a metric whose latest
    # step is 0 as a bar chart (one bar per run), any other as an (here empty) line chart.
    writer.add(trainer.par.memory_metrics(), step=0)  # every rank's
    writer.add(
        {
            schema.FINAL_VAL_LOSS: s.val_loss,
            schema.BEST_VAL_LOSS: s.best_val,
            schema.LOGGING_SECONDS: writer.seconds,
            schema.EVAL_SECONDS: s.eval_seconds,
        },
        step=0,
    )
    limit = trainer.job.tracking.outage_limit_s
    # Rank 0's writer alone can fail to close; saving is collective, so all ranks save.
    if ranks.anyone(not writer.close(limit)):
        _save(trainer, run, writer, ckpt_dir)
        raise _outage(uri, writer, s.progress.steps)
    tags = {schema.TAG_OUTCOME: outcome}
    if outcome == schema.OUTCOME_DIVERGED:
        tags[schema.TAG_DIVERGED_STEP] = s.progress.steps
    tracking.retrying(lambda: run.set_tags(tags), limit, "closing the run", uri)
    # Divergence is a result, not a crash: the run is FINISHED and tagged `diverged`.
    tracking.retrying(lambda: run.end("FINISHED"), limit, "closing the run", uri)


def _outage(uri: str, writer: MetricWriter, step: int) -> Exception:
    if not ranks.is_main():
        return ranks.Follows()
    return TrackingOutage(
        f"tracking.uri={redact(uri)!r} has not answered for {writer.outage_s:.0f} s "
        f"({writer.last_error}); checkpoint saved at step {step} with every metric logged so "
        "far. Run the same command again once the store is back: it finishes this run."
    )


def _stop(trainer: Trainer, run, writer: MetricWriter, stop: checkpoint.StopSignals) -> None:
    """After a checkpoint on a signal: requeue (preemption) or end the run as KILLED."""
    step = trainer.state.progress.steps
    if stop.signum == stop.REQUEUE:
        writer.close()
        run.set_tags({schema.TAG_OUTCOME: schema.OUTCOME_PREEMPTED})
        ranks.barrier()  # every rank has saved, the run is tagged
        if not ranks.is_main():
            raise SystemExit(0)  # rank 0 requeues the job (one requeue per job)
        stop.hand_over()  # submitit requeues and exits (rank 0)
        raise SystemExit(f"preempted at step {step}; checkpoint saved")  # any other rank
    writer.close()
    run.set_tags({schema.TAG_OUTCOME: schema.OUTCOME_CANCELLED})
    run.end("KILLED")
    ranks.barrier()  # no rank ends the job before rank 0 closed the run
    if stop.signum == signal.SIGINT:
        raise KeyboardInterrupt(f"interrupted at step {step}; checkpoint saved")
    if ranks.is_main():  # the exit status alone does not say that nothing was lost
        # Under Slurm a SIGTERM may be `scontrol requeue` as well as scancel: a requeued job
        # resumes by itself, and nothing here tells the two apart.
        again = "run the same command again to resume" + (
            " (a job Slurm requeues resumes by itself)" if "SLURM_JOB_ID" in os.environ else ""
        )
        print(
            f"{signal.Signals(stop.signum).name} at step {step}: checkpoint saved; {again}",
            file=sys.stderr,
            flush=True,
        )
    raise SystemExit(128 + stop.signum)


def _loop(
    trainer: Trainer,
    run,
    writer: MetricWriter,
    name: str,
    stop: checkpoint.StopSignals,
    ckpt_dir: Path,
    uri: str,
) -> str | None:
    """Train to the end of the budget. Returns the outcome, or None after a stop signal."""
    tc, s = trainer.job.train, trainer.state
    p = s.progress
    outage_limit = trainer.job.tracking.outage_limit_s
    last_save = time.monotonic()
    while trainer.fraction(p) < 1.0:
        if writer.fatal is not None:
            raise RuntimeError(f"the tracking store refused the run's metrics: {writer.fatal}")
        t0 = time.perf_counter()
        lr, batch, loss, grad_norm, finite = trainer.step()
        dt = ranks.slowest(time.perf_counter() - t0)  # every rank counts the same time
        if p.steps == 0 and finite:  # the state exists once the first update is applied
            writer.add(
                {
                    schema.OPTIMIZER_STATE_BYTES_PER_PARAM: state_bytes_per_param(
                        trainer.par.local_view(trainer.opt)
                    )
                },
                step=0,
            )
        p.steps += 1
        p.tokens += batch * trainer.seq_len
        p.seconds += dt
        s.bad_steps = 0 if finite else s.bad_steps + 1
        s.skipped_steps += 0 if finite else 1
        if finite:
            s.window.add(loss, batch * trainer.seq_len, dt)
        if s.bad_steps >= tc.max_bad_steps:
            writer.add(
                {schema.SKIPPED_STEPS: s.skipped_steps, schema.TRAIN_LOSS: loss}, step=p.steps
            )
            return schema.OUTCOME_DIVERGED

        done = trainer.fraction(p) >= 1.0
        evaluate_now = p.steps % tc.eval_every == 0 or done
        if (p.steps % tc.log_every == 0 or evaluate_now) and s.window.steps:
            w = s.window
            metrics = {
                schema.TRAIN_LOSS: w.loss / w.steps,
                schema.LR: lr,
                schema.TOKENS: p.tokens,
                schema.FLOPS: p.tokens * trainer.flops_per_token,
                schema.WALL_CLOCK: p.seconds,
                schema.TOKENS_PER_S: w.tokens / w.seconds,
                schema.MFU: mfu(trainer.flops_per_token, w.tokens / w.seconds, trainer.peak_flops),
                schema.BATCH_TOKENS: batch * trainer.seq_len,
                schema.GRAD_NORM: grad_norm,
                schema.SKIPPED_STEPS: s.skipped_steps,
            }
            if evaluate_now:
                started = time.perf_counter()
                s.val_loss = evaluate(
                    trainer.model,
                    trainer.objective,
                    trainer.val_windows,
                    tc.micro_batch,
                    trainer.amp,
                )
                s.eval_seconds += time.perf_counter() - started
                s.best_val = min(s.best_val, s.val_loss)
                metrics[schema.VAL_LOSS] = s.val_loss
            writer.add(metrics, step=p.steps)
            report(
                name,
                p.steps,
                trainer.fraction(p),
                metrics[schema.TRAIN_LOSS],
                metrics[schema.TOKENS_PER_S],
                p.seconds,
                s.val_loss if evaluate_now else None,
            )
            s.window = Window()
        if done:
            break
        outage = writer.outage_s > outage_limit
        periodic = (tc.checkpoint_every and p.steps % tc.checkpoint_every == 0) or (
            tc.checkpoint_every_s and time.monotonic() - last_save >= tc.checkpoint_every_s
        )
        # A signal to any rank, rank 0's outage, any rank's clock: all ranks save this step.
        requested, outage, periodic = ranks.agree(stop, outage, bool(periodic))
        if requested or outage or periodic:
            _save(trainer, run, writer, ckpt_dir)
            last_save = time.monotonic()
            if outage:
                writer.close()
                raise _outage(uri, writer, p.steps)
            if requested:
                return None
    return schema.OUTCOME_FINISHED
