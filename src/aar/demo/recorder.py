"""A training task that records what each step did: the demo's training curves and the step
times its time budget is planned from, with no TensorBoard needed."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from aar.train.distributed import DistContext
from aar.train.engine import Schedule, TrainTask
from aar.train.monitor import Monitor

HISTORY = "history.jsonl"


class RecordingTask(TrainTask):
    """Runs ``inner`` unchanged and appends one JSON line per optimisation step to
    ``run_dir/history.jsonl``: ``{"step": s, "seconds": wall time since the previous step, ...stats}``
    (``step`` counts finished steps, as the engine's checkpoints do).

    When a run resumes at step ``s``, lines of steps after ``s`` (from the interrupted run) are
    dropped, so the history always describes the weights on disk.
    """

    def __init__(self, inner: TrainTask, run_dir: str | Path):
        self.inner = inner
        self.path = Path(run_dir) / HISTORY
        self._last: float | None = None
        self._started = False
        self.step_seconds: list[float] = []  # this process's step times, in order

    # the engine's interface, delegated -----------------------------------------------------
    def build(self, ctx: DistContext, schedule: Schedule) -> None:
        self.inner.build(ctx, schedule)

    def validate(self, step: int, monitor: Monitor) -> dict[str, float]:
        metrics = self.inner.validate(step, monitor)
        self._last = None  # the next step's time would include the validation
        return metrics

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)

    def export(self, directory: Path) -> Path:
        return self.inner.export(directory)

    def train_step(self, batches: list[Any], step: int) -> dict[str, float]:
        if not self._started:
            self._truncate(step)
            self._started = True
        stats = self.inner.train_step(batches, step)
        now = time.perf_counter()
        seconds = None if self._last is None else now - self._last
        self._last = now
        if seconds is not None:
            self.step_seconds.append(seconds)
        row = {"step": step + 1, "seconds": None if seconds is None else round(seconds, 4)}
        row.update({k: float(v) for k, v in stats.items()})
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        return stats

    # ---------------------------------------------------------------------------------------
    def _truncate(self, start: int) -> None:
        rows = [r for r in read_history(self.path.parent) if r["step"] <= start]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def read_history(run_dir: str | Path) -> list[dict]:
    """The rows of ``run_dir/history.jsonl`` (an empty list when there is none)."""
    path = Path(run_dir) / HISTORY
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by an interruption ends the history
    return rows


def typical_step_seconds(rows: list[dict], skip: int = 2) -> float | None:
    """Median step time in history ``rows``, leaving out the first ``skip`` timed (warm-up) steps
    when enough others remain; None when no step was timed."""
    times = [r["seconds"] for r in rows if r.get("seconds") is not None]
    if len(times) > skip + 2:
        times = times[skip:]
    return statistics.median(times) if times else None
