"""The training engine shared by every model of the project.

The engine owns the loop: step counting, gradient-accumulation micro-batches, the data position,
checkpoints (atomic, every N steps and at the end, last K kept), exact resume, the progress bar,
TensorBoard, periodic validation and the closing summary. A model plugs in as a
:class:`TrainTask`, which builds its modules and optimisers and performs one optimisation step.

Resume restores the task (weights, buffers, optimiser states), the step (hence the learning-rate
schedule), every process's RNG states and data-loader position, so a resumed run continues as
the uninterrupted run would have.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import random
import signal
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator, Protocol

import numpy as np
import torch

from aar.checkpoint import CheckpointError, atomic_write_text
from aar.train.checkpoints import CheckpointManager, capture_rng, restore_rng
from aar.train.distributed import DistContext
from aar.train.monitor import Monitor
from aar.train.optim import steps_from_epochs

log = logging.getLogger("aar.train")

LOCK_NAME = ".lock"


class TrainingError(RuntimeError):
    """A run stopped on a fault it cannot train through (non-finite steps in a row, a checkpoint
    that cannot be written, a run folder in use). One line naming the folder or file and the cause."""


@dataclass
class TrainConfig:
    """Length and bookkeeping of a run. Give ``max_steps`` or ``epochs`` (the latter needs a known
    epoch size). ``0`` disables periodic validation / checkpoints (the final ones still happen).
    ``time_limit_minutes``: stop cleanly (validate, checkpoint, export) once this much wall time
    has passed, e.g. before a cluster job's limit (None or 0: no limit); ``--resume`` continues
    the same schedule. ``keep_best``: a validation metric, lower is better (e.g. ``loss``); when
    set, ``run_dir/model`` holds the weights of the validation where it was lowest (exported
    each time it improves) and the last weights go to ``run_dir/model_last``, an early stop
    for runs that may overfit. ``max_nonfinite_steps``: a step whose loss or gradients are NaN or
    infinite is skipped (no update) and counted; this many in a row stop the run with an error,
    leaving the last checkpoint as it was."""

    max_steps: int | None = None
    epochs: float | None = None
    grad_accum: int = 1
    precision: str = "auto"
    device: str = "auto"
    seed: int = 0
    log_every: int = 10
    val_every: int = 500
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    time_limit_minutes: float | None = None
    keep_best: str | None = None
    max_nonfinite_steps: int = 5

    def __post_init__(self):
        if (self.max_steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of train.max_steps and train.epochs")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"train.max_steps must be >= 1, got {self.max_steps}")
        if self.grad_accum < 1:
            raise ValueError(f"train.grad_accum must be >= 1, got {self.grad_accum}")
        if self.max_nonfinite_steps < 1:
            raise ValueError(f"train.max_nonfinite_steps must be >= 1, got {self.max_nonfinite_steps}")
        for name in ("log_every", "val_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class Schedule:
    """Step counts of a run, resolved once the data and process count are known."""

    total_steps: int
    steps_per_epoch: int | None
    global_batch: int

    def steps(self, steps: int | None, epochs: float | None, what: str) -> int:
        """``steps`` if given, else ``epochs`` converted to steps, else 0."""
        if steps is not None:
            return int(steps)
        if epochs is None:
            return 0
        if self.steps_per_epoch is None:
            steps_from_epochs(epochs, None, self.global_batch, what)  # raises the explanatory error
        return max(1, int(round(epochs * self.steps_per_epoch)))


class ResumableLoader(Protocol):
    """What the engine needs from a data loader: endless batches and a resumable position."""

    def __iter__(self): ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict, exact: bool = True): ...


class TrainTask(ABC):
    """The model-specific half of a run."""

    @abstractmethod
    def build(self, ctx: DistContext, schedule: Schedule) -> None:
        """Create modules (wrapped with ``ctx.wrap``) and optimisers."""

    @abstractmethod
    def train_step(self, batches: list[Any], step: int) -> dict[str, float]:
        """One optimisation step over ``grad_accum`` micro-batches; returns scalars, ``"loss"`` first."""

    @abstractmethod
    def validate(self, step: int, monitor: Monitor) -> dict[str, float]:
        """Validation metrics (main process only); may log media through ``monitor``."""

    @abstractmethod
    def state_dict(self) -> dict:
        """Everything needed to resume (weights, buffers, optimiser states)."""

    @abstractmethod
    def load_state_dict(self, state: dict) -> None: ...

    @abstractmethod
    def export(self, directory: Path) -> Path:
        """Write the final model for users (main process only)."""


_held_locks: dict[Path, int] = {}


@contextmanager
def run_lock(run_dir: str | Path, enabled: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` (``run_dir/.lock``, ``flock``) for the block.

    A second run on the same folder is refused at once with a :class:`TrainingError` naming the
    process that holds it. The kernel drops the lock when its process dies, ``kill -9``
    included, so a crashed run never leaves a stale lock. Re-entrant within a process; a
    no-op when not ``enabled`` (the non-main processes of a distributed run)."""
    run_dir = Path(run_dir)
    if not enabled:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    key = run_dir.resolve()
    if key in _held_locks:
        _held_locks[key] += 1
        try:
            yield
        finally:
            _held_locks[key] -= 1
        return
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise TrainingError(
                f"{run_dir}: in use by another training run (process {holder}); wait for it to end or choose another --out"
            ) from None
        raise TrainingError(f"{run_dir}: cannot lock the run folder ({exc.strerror})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held_locks[key] = 1
    try:
        yield
    finally:
        del _held_locks[key]
        os.close(fd)  # closing releases the lock; the file stays (removing it would race a waiting run)


class StopSignals:
    """SIGTERM (a scheduler's notice before it kills) and SIGINT (Ctrl-C) turn into a request to
    stop after the current step, which the loop honours by checkpointing and ending cleanly. A
    second SIGINT while stopping interrupts at once. Installs nothing outside the main thread."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        log.warning("%s received: stopping after this step (checkpoint, then exit)", self.received)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


def _non_finite_tensors(obj: Any, prefix: str = "") -> list[str]:
    """Names of the floating-point tensors in a nested state (dicts, lists) holding NaN or Inf."""
    if isinstance(obj, torch.Tensor):
        return [prefix] if obj.is_floating_point() and not bool(torch.isfinite(obj).all()) else []
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return []
    return [name for k, v in items for name in _non_finite_tensors(v, f"{prefix}.{k}" if prefix else str(k))]


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _batch_size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, dict):
        return _batch_size(next(iter(batch.values())))
    return _batch_size(batch[0])


def _first_last(losses: list[float], window: int = 10) -> dict | None:
    """Mean training loss over the first and the last ``window`` steps of this session."""
    if not losses:
        return None
    n = max(1, min(window, len(losses) // 2))
    return {"first": float(np.mean(losses[:n])), "last": float(np.mean(losses[-n:])), "window": n}


class Trainer:
    """Runs a :class:`TrainTask` on a :class:`ResumableLoader` into ``run_dir``.

    Layout: ``run_dir/checkpoints/step_N.pt``, ``run_dir/tensorboard/``, ``run_dir/summary.json``
    and what the task exports (``run_dir/model``).
    """

    def __init__(
        self,
        task: TrainTask,
        loader: ResumableLoader,
        cfg: TrainConfig,
        ctx: DistContext,
        run_dir: str | Path,
        epoch_size: int | None = None,
        batch_size: int = 1,
        run_config: dict | None = None,
        failures=None,
    ):
        self.task, self.loader, self.cfg, self.ctx = task, loader, cfg, ctx
        self.run_dir = Path(run_dir)
        self.failures = failures
        self.run_config = run_config or {}
        global_batch = batch_size * ctx.world_size * cfg.grad_accum
        steps_per_epoch = None if epoch_size is None else max(1, epoch_size // global_batch)
        if cfg.max_steps is not None:
            total = cfg.max_steps
        else:
            total = steps_from_epochs(cfg.epochs, epoch_size, global_batch, "train.epochs")
        self.schedule = Schedule(total, steps_per_epoch, global_batch)
        self.checkpoints = CheckpointManager(self.run_dir / "checkpoints", cfg.keep_checkpoints)
        self.val_history: list[dict] = []
        self.skipped: list[int] = []  # steps skipped for a non-finite loss or gradients (this session)

    # ------------------------------------------------------------------ pieces
    def _restore(self, state: dict) -> int:
        self.task.load_state_dict(state["task"])
        ranks = state["ranks"]
        self.val_history = list(state.get("val_history", []))
        if len(ranks) == self.ctx.world_size:
            restore_rng(ranks[self.ctx.rank]["rng"])
            self.loader.load_state_dict(ranks[self.ctx.rank]["data"])
        else:
            log.warning(
                "checkpoint written by %d processes, resuming with %d: RNG and data order restart (not exact)",
                len(ranks),
                self.ctx.world_size,
            )
            seed_everything(self.cfg.seed + self.ctx.rank + state["step"])
            self.loader.load_state_dict(ranks[0]["data"], exact=False)
        return int(state["step"])

    def _save(self, step: int):
        mine = {"rng": capture_rng(), "data": self.loader.state_dict()}
        ranks = self.ctx.all_gather_object(mine)
        failure = None
        if self.ctx.is_main:
            state = {
                "step": step,
                "world_size": self.ctx.world_size,
                "task": self.task.state_dict(),
                "ranks": ranks,
                "val_history": self.val_history,
                "config": self.run_config,
            }
            failure = self._write_checkpoint(state, step)
        failure = self.ctx.broadcast_object(failure)
        if failure:
            raise TrainingError(failure)
        self.ctx.barrier()

    def _write_checkpoint(self, state: dict, step: int) -> str | None:
        """Write ``state`` as the checkpoint of ``step``; the reason it was not written, or None.

        Weights or optimiser state holding NaN/Inf are never written (they would poison every
        resume), and a failed write (a full disk) leaves the previous checkpoints as they were."""
        target = self.checkpoints.path(step)
        previous = self.checkpoints.latest()
        kept = f"{previous} is intact" if previous is not None else "no earlier checkpoint"
        poisoned = _non_finite_tensors(state["task"])
        if poisoned:
            return (f"{target}: not written, {len(poisoned)} tensor(s) of the model or optimiser hold NaN or "
                    f"infinite values (first: {poisoned[0]}); {kept}")
        try:
            path = self.checkpoints.save(state, step)
        except OSError as exc:
            return f"{target}: cannot write the checkpoint ({exc.strerror or exc}); {kept}; --resume continues from it"
        log.info("checkpoint: %s", path)
        return None

    def _validate(self, step: int, monitor: Monitor):
        if self.ctx.is_main:
            metrics = self.task.validate(step, monitor)
            if metrics:
                monitor.scalars(step, {f"val/{k}": v for k, v in metrics.items()})
                monitor.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
                self.val_history.append({"step": step, **metrics})
                if self._improved():
                    self.task.export(self.run_dir / "model")
                    log.info("best %s so far (%.4f): exported to %s", self.cfg.keep_best, metrics[self.cfg.keep_best],
                             self.run_dir / "model")
        self.ctx.barrier()

    def _improved(self) -> bool:
        """Whether the newest validation is the best so far by ``keep_best`` (ties keep the earlier)."""
        best = self.best_validation()
        return best is not None and best is self.val_history[-1]

    def best_validation(self) -> dict | None:
        """The validation with the lowest ``keep_best`` metric (None without one)."""
        key = self.cfg.keep_best
        scored = [v for v in self.val_history if key and key in v]
        return min(scored, key=lambda v: v[key]) if scored else None

    def _failures(self) -> list[str]:
        if self.failures is None:
            return []
        merged: dict[str, str] = {}
        for reasons in self.ctx.all_gather_object(dict(self.failures.reasons)):
            for name, reason in reasons.items():
                merged.setdefault(name, reason)
        return list(merged.values())

    # ------------------------------------------------------------------ the loop
    def run(self, resume: bool = False) -> dict:
        """Train to ``total_steps`` (continuing from the newest checkpoint with ``resume``); returns
        the summary also written to ``run_dir/summary.json``.

        Holds the run folder's lock (:func:`run_lock`) throughout; SIGTERM or SIGINT end the run
        after the current step with a checkpoint (``stopped_early`` names the signal)."""
        with run_lock(self.run_dir, self.ctx.is_main), StopSignals() as signals:
            try:
                return self._run(resume, signals)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise TrainingError(f"{exc.filename or self.run_dir}: {exc.strerror} (the disk is full)") from None

    def _run(self, resume: bool, signals: StopSignals) -> dict:
        cfg, ctx = self.cfg, self.ctx
        deadline = time.perf_counter() + 60.0 * cfg.time_limit_minutes if cfg.time_limit_minutes else None
        if ctx.is_main:
            self.checkpoints.remove_partial()
        latest = self.checkpoints.latest()
        if latest is not None and not resume:
            raise CheckpointError(
                f"{self.run_dir} already holds checkpoints (newest {latest.name}); "
                "pass --resume to continue that run or choose another output folder"
            )
        seed_everything(cfg.seed)  # identical initial weights on every process
        self.task.build(ctx, self.schedule)
        seed_everything(cfg.seed + ctx.rank)
        start = 0
        if resume and latest is not None:
            start = self._restore(CheckpointManager.load(latest))
            log.info("resumed from %s (step %d)", latest, start)
        elif resume:
            log.info("no checkpoint in %s: starting from step 0", self.checkpoints.directory)
        total = self.schedule.total_steps
        if start >= total:
            log.info("the run already reached step %d of %d", start, total)

        monitor = Monitor(self.run_dir, total, start, enabled=ctx.is_main)
        try:  # the progress bar ends its line before any error is printed
            if start == 0 and cfg.val_every:
                self._validate(0, monitor)
            batches = iter(self.loader)
            samples, began = 0, time.perf_counter()
            loss, losses = float("nan"), []
            stopped = None
            self.skipped, in_a_row = [], 0
            for step in range(start, total):
                micro = [_to_device(next(batches), ctx.device) for _ in range(cfg.grad_accum)]
                stats = self.task.train_step(micro, step)
                done = step + 1
                samples += sum(_batch_size(b) for b in micro) * ctx.world_size
                loss = stats.get("loss", loss)
                if stats.get("skipped"):
                    self.skipped.append(done)
                    in_a_row += 1
                    log.warning("step %d: loss %s or gradients not finite; step skipped (%d in a row)", done, loss, in_a_row)
                    if in_a_row >= cfg.max_nonfinite_steps:
                        latest = self.checkpoints.latest()
                        raise TrainingError(
                            f"{self.run_dir}: {in_a_row} steps in a row (to step {done}) had a non-finite loss or gradients; "
                            f"stopped without saving ({latest or 'no checkpoint'} holds the last good weights): "
                            "lower optim.lr or check the data"
                        )
                else:
                    in_a_row = 0
                    losses.append(loss)
                to_log = {f"train/{k}": v for k, v in stats.items()} if cfg.log_every and done % cfg.log_every == 0 else None
                monitor.step(done, samples, loss, to_log)
                validated = bool(cfg.val_every) and (done % cfg.val_every == 0 or done == total)
                if validated:
                    self._validate(done, monitor)
                saved = (cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == total
                if saved:
                    self._save(done)
                if done < total and (ctx.any(signals.received is not None) if ctx.distributed else signals.received):
                    stopped = f"{signals.received or 'a stop signal'} received; stopped at step {done} of {total}"
                    if not saved:
                        self._save(done)
                    break
                if deadline is not None and done < total and ctx.any(time.perf_counter() > deadline):
                    stopped = f"time limit of {cfg.time_limit_minutes:g} min reached at step {done} of {total}"
                    if cfg.val_every and not validated:
                        self._validate(done, monitor)
                    if not saved:
                        self._save(done)
                    break
        except BaseException:
            monitor.close()
            raise
        elapsed = time.perf_counter() - began
        monitor.close()
        if stopped:
            log.info("%s; --resume continues the run", stopped)
        return self._finish(start, samples, elapsed, losses, stopped)

    def _finish(self, start: int, samples: int, elapsed: float, losses: list[float], stopped: str | None) -> dict:
        failures = self._failures()
        summary: dict[str, Any] = {
            "steps": self.schedule.total_steps,
            "start_step": start,
            "end_step": start + len(losses) + len(self.skipped),
            "skipped_nonfinite_steps": self.skipped,
            "stopped_early": stopped,
            "world_size": self.ctx.world_size,
            "samples": samples,
            "elapsed_s": round(elapsed, 3),
            "samples_per_s": samples / elapsed if elapsed > 0 else None,
            "train_loss": _first_last(losses),
            "validation": self.val_history,
            "undecodable": failures,
            "train_config": asdict(self.cfg),
        }
        if self.ctx.is_main:
            best = self.best_validation()
            if best is None:
                if self.cfg.keep_best:
                    log.warning("keep_best: no validation reported %r; the last weights are the model", self.cfg.keep_best)
                summary["export"] = str(self.task.export(self.run_dir / "model"))
            else:  # run_dir/model already holds the best validated weights
                summary["export"] = str(self.run_dir / "model")
                summary["best_validation"] = best
                summary["export_last"] = str(self.task.export(self.run_dir / "model_last"))
            atomic_write_text(json.dumps(summary, indent=2) + "\n", self.run_dir / "summary.json")
            lines = [f"trained {len(losses)} steps (to step {summary['end_step']}) in {elapsed:.1f} s"]
            if summary["samples_per_s"]:
                lines[0] += f" ({summary['samples_per_s']:.2f} samples/s)"
            if losses:
                tl = summary["train_loss"]
                lines.append(f"training loss {tl['first']:.4f} (first {tl['window']} steps) -> {tl['last']:.4f} (last {tl['window']})")
            if self.val_history:
                first, last = self.val_history[0], self.val_history[-1]
                keys = [k for k in first if k != "step"]
                lines.append(
                    "validation "
                    + ", ".join(f"{k}: {first[k]:.4f} (step {first['step']}) -> {last[k]:.4f} (step {last['step']})" for k in keys)
                )
            if self.skipped:
                lines.append(f"{len(self.skipped)} step(s) skipped for a non-finite loss or gradients: "
                             f"{', '.join(map(str, self.skipped[:20]))}{' ...' if len(self.skipped) > 20 else ''}")
            lines.append(f"{len(failures)} undecodable file(s) skipped" + ("" if not failures else ":"))
            lines += [f"  {reason}" for reason in failures[:20]]
            if "best_validation" in summary:
                best = summary["best_validation"]
                lines.append(f"model exported to {summary['export']} (best {self.cfg.keep_best} "
                             f"{best[self.cfg.keep_best]:.4f}, step {best['step']}); last weights in {summary['export_last']}")
            else:
                lines.append(f"model exported to {summary['export']}")
            for line in lines:
                log.info(line)
        self.ctx.barrier()
        return summary

