"""How the demo's time budget is shared out.

The stages that train nothing (token cache, reconstruction, generation, speed, report) do a
fixed amount of work, so the time they need depends on the machine and on how busy it is. It
is estimated from the first training steps: each such stage's cost is kept as a multiple of
one tokenizer training step (``STEP_UNITS``, measured on a 2-core CPU and rounded up), and
once the tokenizer's first steps have been timed, what is left of the budget after those
costs goes to training, ``TOKENIZER_SHARE`` of it to the tokenizer. When the transformer's
turn comes, the token cache and the reconstructions have run, and the last stages are
estimated from their measured times instead.
"""

from __future__ import annotations

# Wall time of each stage that trains nothing, in tokenizer training steps (batches of 2 one-second
# crops, reconstruction losses only): twice what a quiet 2-core CPU measured (120 with eight views
# per clip, 20, 30, 28 and 3 steps of 0.12 s); generation scaled from 24 clips per class in batches
# of 8 to 128 in batches of 32 (3.65 times the time).
STEP_UNITS = {"tokens": 240.0, "reconstruction": 40.0, "generation": 220.0, "speed": 56.0, "report": 6.0}
TOKENIZER_SHARE = 0.7  # of the training time: the tokenizer's share; the transformer gets the rest
MIN_STEPS = 5  # steps trained after calibration however short the budget


def reserved_seconds(stages: list[str], step_s: float) -> float:
    """Expected wall time of the untrained ``stages`` on a machine where a tokenizer training
    step takes ``step_s`` seconds."""
    return sum(STEP_UNITS.get(name, 0.0) for name in stages) * step_s


def reserved_from_measured(stages: list[str], measured: dict[str, float]) -> float:
    """Expected wall time of the untrained ``stages`` scaled from the wall times ``measured`` of
    untrained stages that already ran on this machine."""
    units = sum(STEP_UNITS.get(name, 0.0) for name in measured)
    if units <= 0:
        raise ValueError("no measured untrained stage to scale from")
    return sum(STEP_UNITS.get(name, 0.0) for name in stages) * sum(measured.values()) / units
