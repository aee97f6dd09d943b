"""``aar train-tokenizer`` end to end: a data folder with a corrupt and a zero-length file trains,
reports both and exports a loadable model; bad input fails with one line before any model."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from aar import SAT
from aar.cli.main import main
from tests.train.conftest import small_config, write_sine_folder


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(small_config(max_steps=3, val_every=3).to_dict()))
    return path


def test_trains_on_a_folder_with_corrupt_and_empty_files(tmp_path, config_file, capsys):
    data = write_sine_folder(tmp_path / "data", n=5)
    (data / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    (data / "sub").mkdir()
    (data / "sub" / "zero.flac").write_bytes(b"")
    out = tmp_path / "run"
    code = main(["train-tokenizer", "--config", str(config_file), "--data", str(data), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    reported = " ".join(summary["undecodable"])
    assert len(summary["undecodable"]) == 2 and "corrupt.wav" in reported and "zero.flac: empty file" in reported
    assert "2 undecodable file(s) skipped" in err and "corrupt.wav" in err and "zero.flac" in err
    assert summary["steps"] == 3 and summary["samples_per_s"] > 0
    model = SAT.from_pretrained(out / "model")
    wav = torch.randn(1, 1, 24_000) * 0.1
    assert model.reconstruct(wav).shape == wav.shape
    assert (out / "tensorboard").is_dir() and (out / "train_config.yaml").is_file()

    # --resume with nothing but the run folder: config and data come from the run
    assert main(["train-tokenizer", "--out", str(out), "--resume", "--max-steps", "4"]) == 0
    assert json.loads((out / "summary.json").read_text())["start_step"] == 3


@pytest.mark.parametrize(
    "args,message",
    [
        (["--data", "{tmp}/missing"], "missing: no such file or directory"),
        (["--data", "{tmp}/empty"], "empty: no audio files found"),
        (["--data", "{tmp}/empty", "--config", "no-such-preset"], "no-such-preset: no such config file or tokenizer preset"),
        (["--data", "{tmp}/shards-{{0..1}}.tar"], "shards-0.tar: WebDataset shard not found"),
    ],
)
def test_bad_input_is_one_line_before_any_model(tmp_path, config_file, capsys, args, message, monkeypatch):
    (tmp_path / "empty").mkdir()
    built = []
    monkeypatch.setattr("aar.train.tokenizer.SAT.__init__", lambda *a, **k: built.append(1))
    argv = ["train-tokenizer", "--out", str(tmp_path / "run")]
    if "--config" not in args:
        argv += ["--config", str(config_file)]
    argv += [a.format(tmp=tmp_path) for a in args]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not built


def test_unknown_config_key_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tiny\noptim:\n  learning_rate: 1.0\n")
    assert main(["train-tokenizer", "--config", str(bad), "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 1
    assert "unknown key(s) in config section 'optim': learning_rate" in capsys.readouterr().err


def test_presets_load():
    from aar.train import TokenizerTrainConfig

    tiny = TokenizerTrainConfig.load("tiny")
    assert tiny.model.dimension == 32 and tiny.train.max_steps and tiny.disc_skip_every == 3
    for name, dim, lat in (("paper-d128-lat128", 128, 128), ("paper-d1024-lat64", 1024, 64)):
        cfg = TokenizerTrainConfig.load(name)
        assert (cfg.model.dimension, cfg.model.latent_dim) == (dim, lat)
        assert cfg.optim.lr == 3e-4 and cfg.optim.betas == [0.5, 0.9] and cfg.optim.warmup_epochs == 2
        assert cfg.train.epochs == 100 and cfg.data.batch_size == 8 and cfg.discriminator.filters == 32
        assert (cfg.loss.adversarial, cfg.loss.feature, cfg.loss.time, cfg.loss.frequency) == (3, 3, 0.1, 1)


def test_time_limit_stops_cleanly_and_validation_can_come_from_elsewhere(tmp_path, capsys):
    data = write_sine_folder(tmp_path / "train", n=4, seed=1)
    heldout = write_sine_folder(tmp_path / "heldout", n=3, seed=2)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(small_config(max_steps=5, val_every=5).to_dict()))
    out = tmp_path / "run"
    argv = ["train-tokenizer", "--config", str(config), "--data", str(data), "--val-data", str(heldout), "--out", str(out)]
    assert main(argv + ["--time-limit", "1e-6"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_early"].startswith("time limit of 1e-06 min reached at step 1 of 5")
    assert [v["step"] for v in summary["validation"]] == [0, 1]  # validated at the stop
    assert (out / "checkpoints" / "step_00000001.pt").is_file() and (out / "model" / "config.json").is_file()
    # all of --data trains; validation takes val_clips (2) of the 3 --val-data clips
    assert "4 files; 4 training clips, 2 validation clips" in capsys.readouterr().err
    # locations and config come from the run; the time limit is lifted
    assert main(["train-tokenizer", "--out", str(out), "--resume", "--time-limit", "0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["start_step"], summary["end_step"], summary["stopped_early"]) == (1, 5, None)
