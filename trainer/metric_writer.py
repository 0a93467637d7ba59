"""Metric histories written off the training loop, surviving tracking-store outages.

The loop hands points over in O(1) (`add`); one background thread writes them with
`log_batch` every few seconds (one call per value would cost ~2 ms on SQLite and 5-48 ms over
HTTP: as much as a small model's step). If the store does not answer, training goes on: the
points stay in memory and, past a bound or at a checkpoint, are appended to a spill file beside
the run's checkpoints; they are written when the store answers again, or by the resumed job.

MLflow's own asynchronous logging (`synchronous=False`) was not used: it has no bound on what
it holds during an outage, no spill to disk, and no way to tell the loop how long the store
has been gone. Re-sending a point is harmless: MLflow drops a metric whose key, value,
timestamp and step it already has (SqlAlchemyStore._log_metrics_once), so a batch that may
have half-succeeded is simply sent again.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Optional

from trainer import schema
from trainer.contract import MAX_METRICS_PER_BATCH, scrub
from trainer.tracking import is_permanent

SPILL_FILE = "metrics_spill.jsonl"
FLUSH_EVERY_S = 5.0  # the writer thread's pace
HEARTBEAT_S = 30.0  # a write (at least the heartbeat tag) this often: trainer/liveness.py
MAX_MEMORY_POINTS = 100_000  # held during an outage before they are spilled to disk


class MetricWriter:
    def __init__(self, client: Any, run_id: str, spill_dir: Path):
        self.client, self.run_id = client, run_id
        self.spill_path = spill_dir / SPILL_FILE
        self._pending: list = []  # mlflow Metric objects, oldest first
        self._lock = threading.Lock()  # guards _pending
        self._io = threading.Lock()  # one writer (thread, flush or spill) at a time
        self._wake = threading.Event()
        self._closed = False
        self._last_write = time.monotonic()
        self.outage_since: Optional[float] = None
        self.last_error = ""
        self.fatal: Optional[Exception] = None  # a permanent refusal, re-raised to the loop
        self.logged: dict[str, int] = {}  # per metric, the last step already in the store
        self.seconds = 0.0  # time the loop spent handing points over
        self._thread = threading.Thread(target=self._run, name="lmsweep-metrics", daemon=True)
        self._thread.start()

    # --- the loop's side ---------------------------------------------------------------------
    def resume(self) -> None:
        """For a run continued from a checkpoint: write what a dead predecessor spilled, then
        learn what the store holds. Steps replayed after the checkpoint are then not logged
        again, so the history has neither gaps nor duplicates."""
        self.flush()
        keys = self.client.get_run(self.run_id).data.metrics
        self.logged = {
            k: max((m.step for m in self.client.get_metric_history(self.run_id, k)), default=-1)
            for k in keys
        }

    def add(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        t0 = time.monotonic()
        ts = int(time.time() * 1000)
        points = [
            Metric(k, float(v), ts, step)
            for k, v in values.items()
            if step > self.logged.get(k, -1)
        ]
        with self._lock:
            self._pending.extend(points)
        self.seconds += time.monotonic() - t0

    @property
    def outage_s(self) -> float:
        """Seconds since the store stopped answering (0 while it answers)."""
        return 0.0 if self.outage_since is None else time.monotonic() - self.outage_since

    def flush(self) -> bool:
        """Write everything now; True when it is all in the store. During an outage nothing is
        attempted (the thread keeps trying) and False is returned at once."""
        if self.outage_since is not None:
            return False
        return self._write()

    def make_durable(self) -> None:
        """Everything logged so far is in the store or in the spill file (before a checkpoint:
        a job killed after it resumes with a gap-free history)."""
        if not self.flush():
            self.spill()

    def close(self, limit_s: float = 0.0) -> bool:
        """Stop the thread and write what is left, retrying while the store has been gone for
        less than `limit_s`; what could not be written is spilled. True when everything
        reached the store."""
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=60)
        pause = 1.0
        while not self._write() and self.fatal is None and self.outage_s + pause < limit_s:
            time.sleep(pause)
            pause = min(2 * pause, 15.0)
        ok = not self._pending and not self.spill_path.exists()
        if not ok:
            self.spill()
        return ok

    # --- writing -----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_EVERY_S)
            self._wake.clear()
            if self._closed:
                return
            due = time.monotonic() - self._last_write >= HEARTBEAT_S
            if self._pending or self.spill_path.exists() or due:
                self._write()
                if self.outage_since is not None and len(self._pending) > MAX_MEMORY_POINTS:
                    self.spill()

    def _write(self) -> bool:
        from mlflow.entities import RunTag

        with self._io:
            with self._lock:
                batch = list(self._pending)
            heartbeat = [RunTag(schema.TAG_HEARTBEAT, str(int(time.time())))]
            try:
                for chunk in [*self._spilled(), *_chunks(batch)]:
                    self.client.log_batch(self.run_id, metrics=chunk, tags=heartbeat)
                if not batch:
                    self.client.log_batch(self.run_id, tags=heartbeat)
            except Exception as e:
                if is_permanent(e):
                    self.fatal = e
                self.outage_since = self.outage_since or time.monotonic()
                self.last_error = f"{type(e).__name__}: {scrub(str(e))[:200]}"
                return False
            self.spill_path.unlink(missing_ok=True)
            with self._lock:
                del self._pending[: len(batch)]  # the loop only appends: these are the oldest
            self.outage_since, self._last_write = None, time.monotonic()
            return True

    def spill(self) -> None:
        """Append what is in memory to the spill file (oldest first) and forget it."""
        with self._io:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            self.spill_path.parent.mkdir(parents=True, exist_ok=True)
            with self.spill_path.open("a") as f:
                for m in batch:
                    f.write(json.dumps([m.key, m.value, m.timestamp, m.step]) + "\n")
                f.flush()

    def _spilled(self) -> list[list]:
        from mlflow.entities import Metric

        if not self.spill_path.exists():
            return []
        points = []
        for line in self.spill_path.read_text().splitlines():
            try:
                points.append(Metric(*json.loads(line)))
            except (ValueError, TypeError):  # a line cut short by a kill: its point is lost
                continue
        return _chunks(points)


def _chunks(items: list) -> list[list]:
    n = MAX_METRICS_PER_BATCH
    return [items[i : i + n] for i in range(0, len(items), n)]
