"""Training survives its faults: kill -9 anywhere then --resume gives the uninterrupted run's
weights bitwise; SIGTERM/SIGINT checkpoint and exit cleanly; a locked run folder is refused; a
full disk during a checkpoint write keeps the previous one; non-finite steps are skipped,
counted, and stop the run after N in a row."""

from __future__ import annotations

import errno
import fcntl
import json
import math

import pytest
import torch

from aar.checkpoint import CheckpointError
from aar.cli.main import main
from tests.faults.conftest import (
    aar_config_file,
    assert_bitwise_equal,
    final_state,
    run_worker,
    tokenizer_config_file,
)

STEPS = 4


def one_line_error(err: str, *needles: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.startswith("aar ")]
    assert "Traceback" not in err and lines, err
    for needle in needles:
        assert needle in lines[-1], lines[-1]


def no_partial_files(run) -> None:
    assert not [p.name for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------- kill -9, then --resume
@pytest.fixture(scope="module")
def tokenizer_reference(tmp_path_factory, sine_data):
    folder = tmp_path_factory.mktemp("tok_ref")
    config = tokenizer_config_file(folder)
    done = run_worker("none", 0, ["train-tokenizer", "--config", config, "--data", sine_data, "--out", folder / "run"])
    assert done.returncode == 0, done.stderr
    return config, folder / "run"


@pytest.mark.parametrize("point,step", [("step", 3), ("write", 2), ("rename", 3), ("renamed", 2)])
def test_tokenizer_kill9_then_resume_is_bitwise_exact(tmp_path, sine_data, tokenizer_reference, point, step):
    config, reference = tokenizer_reference
    run = tmp_path / "run"
    killed = run_worker(point, step, ["train-tokenizer", "--config", config, "--data", sine_data, "--out", run])
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (run / "model").exists()
    resumed = run_worker("none", 0, ["train-tokenizer", "--out", run, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((run / "summary.json").read_text())["start_step"] == (step - 1 if point in ("step", "write", "rename") else step)
    assert_bitwise_equal(final_state(run, STEPS), final_state(reference, STEPS), "task")
    assert (run / "model" / "model.safetensors").read_bytes() == (reference / "model" / "model.safetensors").read_bytes()
    no_partial_files(run)


@pytest.fixture(scope="module")
def aar_reference(tmp_path_factory, label_cache):
    folder = tmp_path_factory.mktemp("aar_ref")
    config = aar_config_file(folder)
    done = run_worker("none", 0, ["train-aar", "--config", config, "--cache", label_cache, "--out", folder / "run"])
    assert done.returncode == 0, done.stderr
    return config, folder / "run"


@pytest.mark.parametrize("point,step", [("step", 2), ("write", 3), ("rename", 2), ("sigterm", 2)])
def test_aar_kill_then_resume_is_bitwise_exact(tmp_path, label_cache, aar_reference, point, step):
    config, reference = aar_reference
    run = tmp_path / "run"
    killed = run_worker(point, step, ["train-aar", "--config", config, "--cache", label_cache, "--out", run])
    if point == "sigterm":
        assert killed.returncode == 0, killed.stderr[-2000:]
        assert "SIGTERM received" in killed.stderr and "Traceback" not in killed.stderr
    else:
        assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = run_worker("none", 0, ["train-aar", "--out", run, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_bitwise_equal(final_state(run, STEPS), final_state(reference, STEPS), "task")
    no_partial_files(run)


# ----------------------------------------------------------------- SIGTERM / SIGINT
@pytest.mark.parametrize("signame", ["sigterm", "sigint"])
def test_signal_checkpoints_and_exits_cleanly(tmp_path, sine_data, tokenizer_reference, signame):
    _, reference = tokenizer_reference
    config = tokenizer_config_file(tmp_path, checkpoint_every=0)  # only the signal makes a checkpoint
    run = tmp_path / "run"
    stopped = run_worker(signame, 2, ["train-tokenizer", "--config", config, "--data", sine_data, "--out", run])
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stderr and f"{signame.upper()} received" in stopped.stderr
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000002.pt"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_early"].startswith(f"{signame.upper()} received; stopped at step 2 of {STEPS}")
    resumed = run_worker("none", 0, ["train-tokenizer", "--out", run, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_bitwise_equal(final_state(run, STEPS), final_state(reference, STEPS), "task")


# ----------------------------------------------------------------- run-folder lock
def test_a_locked_run_folder_is_refused_before_anything_is_written(tmp_path, sine_data, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with open(run / ".lock", "w") as held:  # another run holds the folder
        held.write("4242\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        config = tokenizer_config_file(tmp_path)
        code = main(["train-tokenizer", "--config", str(config), "--data", str(sine_data), "--out", str(run)])
    assert code == 1
    one_line_error(capsys.readouterr().err, f"{run}: in use by another training run (process 4242)")
    assert sorted(p.name for p in run.iterdir()) == [".lock"]


def test_the_lock_is_released_when_a_run_ends(tmp_path, sine_data):
    from aar.train import train_tokenizer
    from tests.faults.conftest import small_config

    cfg = small_config(max_steps=1, checkpoint_every=0)
    train_tokenizer(cfg, sine_data, tmp_path / "run")
    with open(tmp_path / "run" / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # would raise BlockingIOError if still held


# ----------------------------------------------------------------- full disk
def test_full_disk_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, sine_data, capsys, monkeypatch):
    run = tmp_path / "run"
    config = tokenizer_config_file(tmp_path, max_steps=STEPS, keep_checkpoints=5)
    real_save = torch.save

    def disk_fills_up(obj, f, *args, **kwargs):
        if ".step_00000003.pt." in str(f):
            with open(f, "wb") as fh:
                fh.write(b"PK\x03\x04 partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_fills_up)
    code = main(["train-tokenizer", "--config", str(config), "--data", str(sine_data), "--out", str(run)])
    assert code == 1
    one_line_error(capsys.readouterr().err, "step_00000003.pt: cannot write the checkpoint (No space left on device)",
                   "step_00000002.pt is intact")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000001.pt", "step_00000002.pt"]
    assert final_state(run, 2)["sat"]  # the previous checkpoint loads
    assert not (run / "model").exists()
    monkeypatch.setattr(torch, "save", real_save)  # space freed: the run continues
    assert main(["train-tokenizer", "--out", str(run), "--resume"]) == 0
    assert json.loads((run / "summary.json").read_text())["start_step"] == 2


# ----------------------------------------------------------------- non-finite steps
def corrupt_batches(monkeypatch, steps) -> None:
    """NaN audio reaches the tokenizer on the given (1-based) steps (files with NaN are refused by
    the reader; this is what a bad batch from elsewhere would do)."""
    from aar.train.tokenizer import SATTask

    real = SATTask.train_step

    def train_step(self, batches, step):
        return real(self, [b * math.nan for b in batches] if step + 1 in steps else batches, step)

    monkeypatch.setattr(SATTask, "train_step", train_step)


def without_lr(state):
    """A task state without the optimisers' ``param_groups`` (their learning rate is set per step)."""
    if isinstance(state, dict):
        return {k: without_lr(v) for k, v in state.items() if k != "param_groups"}
    return state


def test_non_finite_steps_are_skipped_and_counted(tmp_path, sine_data, monkeypatch, caplog):
    from aar.train import train_tokenizer
    from tests.faults.conftest import small_config

    caplog.set_level("INFO", logger="aar.train")
    corrupt_batches(monkeypatch, {2, 3})
    cfg = small_config(max_steps=4, checkpoint_every=1, keep_checkpoints=5)
    result = train_tokenizer(cfg, sine_data, tmp_path / "run")
    assert result.summary["skipped_nonfinite_steps"] == [2, 3] and result.summary["end_step"] == 4
    assert "2 step(s) skipped for a non-finite loss or gradients: 2, 3" in caplog.text
    # a skipped step changes nothing: not the weights, the codebooks, nor the optimiser's moments
    run = tmp_path / "run"
    assert_bitwise_equal(without_lr(final_state(run, 3)), without_lr(final_state(run, 1)), "task")
    for value in final_state(tmp_path / "run", 4)["sat"].values():
        assert torch.isfinite(value).all()


def test_n_non_finite_steps_in_a_row_stop_the_run_without_saving(tmp_path, sine_data, monkeypatch, capsys):
    corrupt_batches(monkeypatch, set(range(2, 100)))
    run = tmp_path / "run"
    config = tokenizer_config_file(tmp_path, max_steps=8, max_nonfinite_steps=3)
    code = main(["train-tokenizer", "--config", str(config), "--data", str(sine_data), "--out", str(run)])
    assert code == 1
    one_line_error(capsys.readouterr().err, "3 steps in a row (to step 4) had a non-finite loss or gradients",
                   "step_00000003.pt holds the last good weights")
    # nothing after the third bad step is saved; what was saved during the streak is step 1's weights
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000002.pt", "step_00000003.pt"]
    assert_bitwise_equal(final_state(run, 3)["sat"], final_state(run, 2)["sat"], "sat")
    assert not (run / "model").exists() and not (run / "summary.json").exists()


def test_aar_skips_a_non_finite_step(tmp_path, label_cache, monkeypatch):
    import aar.transformer.training as training
    from tests.transformer.test_training import tiny_config

    real, calls = training.next_scale_loss, []

    def loss(*args):
        calls.append(1)
        return real(*args) * (math.inf if len(calls) == 2 else 1.0)

    monkeypatch.setattr(training, "next_scale_loss", loss)
    result = training.train_aar(tiny_config(max_steps=3, checkpoint_every=1, keep_checkpoints=5), label_cache, tmp_path / "run")
    assert result.summary["skipped_nonfinite_steps"] == [2]
    assert_bitwise_equal(without_lr(final_state(tmp_path / "run", 2)), without_lr(final_state(tmp_path / "run", 1)), "task")


def test_a_poisoned_state_is_never_written(tmp_path, sine_data, monkeypatch, capsys):
    from aar.train.tokenizer import SATTask

    real = SATTask.state_dict

    def poisoned(self):
        state = real(self)
        next(iter(state["sat"].values())).view(-1)[0] = math.nan
        return state

    monkeypatch.setattr(SATTask, "state_dict", poisoned)
    run = tmp_path / "run"
    code = main(["train-tokenizer", "--config", str(tokenizer_config_file(tmp_path)), "--data", str(sine_data), "--out", str(run)])
    assert code == 1
    one_line_error(capsys.readouterr().err, "step_00000001.pt: not written", "hold NaN or infinite values")
    assert not list((run / "checkpoints").glob("*.pt"))


def test_resume_refuses_a_checkpoint_that_is_not_one(tmp_path):
    from aar.train.checkpoints import CheckpointManager

    path = tmp_path / "step_00000001.pt"
    torch.save({"no": "step"}, path)
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        CheckpointManager.load(path)
