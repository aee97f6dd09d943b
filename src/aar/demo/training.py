"""Training within a time budget: the demo's tokenizer and transformer runs.

A run is planned from the machine's measured speed. It first trains ``calibration_steps``
steps (inside the learning-rate warm-up, whose rate does not depend on the run's length),
times them, then sets the number of steps that fills the rest of the budget and resumes to it,
so the warm-up + cosine schedule ends where the budget does. Machines drift (a run's steps came
out 15 % slower or faster than its first ten), so once ``REPLAN_AT`` of the budget has passed
the run stops cleanly (validation, checkpoint), the number of steps is planned again from the
pace of the steps taken so far, validations and checkpoints included, and the run resumes to
the new total; the learning rate follows the cosine of the new length from there. The plan is
kept in ``run_dir/plan.json``: an interrupted run resumes from its newest checkpoint to the
plan on disk.
Both runs use the project's training engine (checkpoints, exact resume, ``summary.json``,
``model/``) and the tasks of :mod:`aar.train.tokenizer` and :mod:`aar.transformer.training`,
wrapped by :class:`~aar.demo.recorder.RecordingTask` for the training curves.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import yaml

from aar.checkpoint import atomic_write_text
from aar.demo.recorder import RecordingTask, read_history, typical_step_seconds
from aar.train.distributed import init_distributed
from aar.train.engine import Trainer

log = logging.getLogger("aar.demo")

PLAN = "plan.json"
VALIDATIONS = 8  # validations (and checkpoints) after calibration
OVERHEAD_FACTOR = 1.5  # the resumed run's fixed costs against those measured while calibrating
BUDGET_USE = 0.85  # steps are planned for this share of the budget: machines slow down, validations cost
REPLAN_AT = 0.3  # share of the budget after which the steps are planned again from the pace so far
REPLANNED_USE = 0.94  # share of the budget the second plan fills (its pace already counts validations)

# run(total_steps, val_every, time_limit_s) -> (engine summary, the recording task); with a time
# limit the run stops cleanly (validated, checkpointed) at the first step after it
RunFn = Callable[[int, int, "float | None"], tuple[dict, RecordingTask]]


@dataclass
class TrainPlan:
    """How a run was sized: ``total_steps`` from ``step_seconds`` measured over the first
    ``calibration_steps`` (None when the step count was given)."""

    total_steps: int
    val_every: int
    budget_s: float | None
    calibration_steps: int | None = None
    step_seconds: float | None = None
    calibration_wall_s: float | None = None
    first_total_steps: int | None = None  # the total planned after calibration, when planned again
    replanned_at: int | None = None  # the step at which it was planned again
    replanned_step_seconds: float | None = None  # the pace (wall time per step) measured up to there

    def save(self, run_dir: Path) -> None:
        atomic_write_text(json.dumps(asdict(self), indent=2) + "\n", run_dir / PLAN)

    @classmethod
    def load(cls, run_dir: Path) -> "TrainPlan | None":
        path = run_dir / PLAN
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (TypeError, json.JSONDecodeError):
            return None  # an unreadable plan is made again


def steps_for_budget(budget_s: float, spent_s: float, step_s: float, overhead_s: float, done: int, min_steps: int) -> int:
    """Total steps so that ``done`` steps already taken plus the steps that fit in what is left of
    ``budget_s`` (after ``spent_s`` and the expected fixed ``overhead_s``) are trained; at least
    ``done + min_steps``."""
    left = budget_s - spent_s - overhead_s
    extra = math.floor(left / step_s) if step_s > 0 and left > 0 else 0
    return done + max(min_steps, extra)


def train_within(
    run: RunFn,
    run_dir: Path,
    budget_s: float | Callable[[float], float] | None,
    calibration_steps: int,
    min_steps: int,
    fixed_steps: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[dict, TrainPlan]:
    """Train with ``run`` into ``run_dir`` for about ``budget_s`` seconds (or exactly
    ``fixed_steps`` steps). ``budget_s`` may be a function of the measured seconds per step
    (called once, after calibration). Returns the engine's summary and the plan."""
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = TrainPlan.load(run_dir)
    if plan is None and fixed_steps is not None:
        plan = TrainPlan(fixed_steps, max(1, fixed_steps // VALIDATIONS), None)
        plan.save(run_dir)
    if plan is not None:  # given, or planned by an earlier call that was interrupted
        summary, _ = run(plan.total_steps, plan.val_every, None)
        return summary, plan

    began = clock()
    log.info("calibrating: %d steps to measure the speed of this machine", calibration_steps)
    _, task = run(calibration_steps, calibration_steps, None)
    spent = clock() - began
    step_s = typical_step_seconds(read_history(run_dir)) or spent / calibration_steps
    restart = max(0.0, spent - sum(task.step_seconds))  # fixed cost of one (re)start of a run
    overhead = restart * OVERHEAD_FACTOR
    if callable(budget_s):
        budget_s = max(0.0, float(budget_s(step_s)))
    total = steps_for_budget(budget_s * BUDGET_USE, spent, step_s, overhead, calibration_steps, min_steps)
    plan = TrainPlan(total, max(1, (total - calibration_steps) // VALIDATIONS), budget_s,
                     calibration_steps, round(step_s, 4), round(spent, 2))
    plan.save(run_dir)
    log.info("%.2f s per step: planned %d steps in all for a budget of %.0f s", step_s, total, budget_s)

    first_leg = REPLAN_AT * budget_s - (clock() - began)
    if first_leg <= 0 or total - calibration_steps < 4 * min_steps:
        summary, _ = run(plan.total_steps, plan.val_every, None)
        return summary, plan
    leg_began = clock()
    first, _ = run(plan.total_steps, plan.val_every, first_leg)
    done = first.get("end_step", plan.total_steps)
    if not first.get("stopped_early") or done >= plan.total_steps:
        return first, plan
    spent = clock() - began
    measured = (clock() - leg_began - restart) / max(1, done - calibration_steps)
    pace = measured if measured > 0 else step_s
    total = steps_for_budget(budget_s * REPLANNED_USE, spent, pace, overhead, done, min_steps)
    plan = TrainPlan(total, max(1, (total - calibration_steps) // VALIDATIONS), budget_s, calibration_steps,
                     plan.step_seconds, plan.calibration_wall_s, first_total_steps=plan.total_steps,
                     replanned_at=done, replanned_step_seconds=round(pace, 4))
    plan.save(run_dir)
    log.info("%.2f s per step so far (validations included): planned again, %d steps in all (was %d)",
             pace, total, plan.first_total_steps)
    summary, _ = run(plan.total_steps, plan.val_every, None)
    summary = dict(summary)
    summary["elapsed_s"] = round(summary.get("elapsed_s", 0.0) + first.get("elapsed_s", 0.0), 3)
    return summary, plan


def _engine_settings(train_cfg, total: int, val_every: int, time_limit_s: float | None) -> None:
    train_cfg.max_steps, train_cfg.epochs = total, None
    if time_limit_s is not None:
        train_cfg.time_limit_minutes = max(time_limit_s, 1e-3) / 60.0
    train_cfg.val_every = val_every
    train_cfg.checkpoint_every = val_every
    train_cfg.__post_init__()


# ---------------------------------------------------------------------- the tokenizer
def tokenizer_runner(config, train_dir: Path, val_dir: Path, run_dir: Path) -> RunFn:
    """Train a SAT (``config``: :class:`~aar.train.TokenizerTrainConfig`; the ``tiny`` preset starts
    from unit-gain convolutions, see :func:`aar.train.tokenizer.unit_gain_init`) on the clips of
    ``train_dir``, validating on those of ``val_dir``; ``run_dir/model`` is the tokenizer."""
    from aar.data import prepare_training_data
    from aar.train.tokenizer import RUN_CONFIG, SATTask

    def run(total: int, val_every: int, time_limit_s: float | None = None) -> tuple[dict, RecordingTask]:
        cfg = copy.deepcopy(config)
        _engine_settings(cfg.train, total, val_every, time_limit_s)
        ctx = init_distributed(cfg.train.device, cfg.train.precision)
        try:
            data = prepare_training_data(
                train_dir, cfg.data, cfg.model.window_samples, cfg.model.sample_rate, seed=cfg.train.seed,
                val_data=val_dir, pin_memory=ctx.device.type == "cuda",
            )
            run_config = {**cfg.to_dict(), "data_location": {"data": str(train_dir.resolve()), "audioset_csv": None}}
            atomic_write_text(yaml.safe_dump(run_config, sort_keys=False), run_dir / RUN_CONFIG)
            task = RecordingTask(SATTask(cfg, data.validation), run_dir)
            trainer = Trainer(task, data.loader, cfg.train, ctx, run_dir, epoch_size=data.epoch_size,
                              batch_size=cfg.data.batch_size, run_config=cfg.to_dict(), failures=data.failures)
            return trainer.run(resume=True), task
        finally:
            ctx.close()

    return run


# ---------------------------------------------------------------------- the transformer
def aar_runner(config, cache_dir: Path, run_dir: Path) -> RunFn:
    """Train an AAR (``config``: :class:`~aar.transformer.training.AARTrainConfig`) on the token
    cache ``cache_dir``; ``run_dir/model`` is the model with its tokenizer."""
    from aar.transformer.token_cache import TokenCache, TokenCacheLoader, split_cache
    from aar.transformer.training import RUN_CONFIG, AARTask

    def run(total: int, val_every: int, time_limit_s: float | None = None) -> tuple[dict, RecordingTask]:
        cfg = copy.deepcopy(config)
        _engine_settings(cfg.train, total, val_every, time_limit_s)
        cache = TokenCache(cache_dir)
        ctx = init_distributed(cfg.train.device, cfg.train.precision)
        try:
            train_idx, val_idx = split_cache(cache, cfg.data.val_fraction, cfg.data.val_windows, cfg.train.seed)
            loader = TokenCacheLoader(cache, train_idx, cfg.data.batch_size, cfg.train.seed)
            run_config = {**cfg.to_dict(), "cache": str(cache_dir.resolve())}
            atomic_write_text(yaml.safe_dump(run_config, sort_keys=False), run_dir / RUN_CONFIG)
            task = RecordingTask(AARTask(cfg, cache, val_idx), run_dir)
            trainer = Trainer(task, loader, cfg.train, ctx, run_dir, epoch_size=len(train_idx),
                              batch_size=cfg.data.batch_size, run_config=cfg.to_dict())
            return trainer.run(resume=True), task
        finally:
            ctx.close()

    return run
