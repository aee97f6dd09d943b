"""Each switch trains: a few tokenizer steps with the RVQ baseline, per-scale phi, the waveform
discriminators and a 0.48 s window (the data crop follows the window); and ``aar experiment``
runs a small experiment end to end into a table + JSON."""

from __future__ import annotations

import json

import pytest
import yaml

from aar.cli.main import main
from aar.experiments import ExperimentSpec, run_experiment
from aar.tokenizer import SAT
from aar.train import train_tokenizer
from tests.train.conftest import one_thread, small_config, write_sine_folder  # noqa: F401 (autouse fixture)


def _config(model: dict | None = None, discriminator: dict | None = None, steps: int = 2):
    cfg = small_config(max_steps=steps)
    data = cfg.to_dict()
    data["model"].update(model or {})
    data["discriminator"].update(discriminator or {})
    return type(cfg).from_dict(data)


@pytest.mark.parametrize(
    "model,discriminator",
    [
        ({"scales": [75] * 4, "phi": "none"}, {}),
        ({"phi": "per_scale", "scales": [1, 5, 20, 45, 75]}, {"waveform": ["multi_period", "multi_scale_waveform"]}),
        ({"window_seconds": 0.48, "scales": [1, 4, 9, 16, 25, 36]}, {"waveform": ["multi_period"]}),
    ],
    ids=["rvq", "per-scale-phi+mpd+msd", "window-0.48s"],
)
def test_switch_trains_a_few_steps(tmp_path, model, discriminator):
    data = write_sine_folder(tmp_path / "data", n=4)
    cfg = _config(model, discriminator)
    result = train_tokenizer(cfg, data, tmp_path / "run")
    assert result.summary["end_step"] == 2
    assert all(v["mel_distance"] > 0 for v in result.summary["validation"])
    sat = SAT.from_pretrained(tmp_path / "run" / "model")
    assert sat.config.scales == cfg.model.scales and sat.window_samples == cfg.model.window_samples
    state = yaml.safe_load((tmp_path / "run" / "train_config.yaml").read_text())
    assert state["discriminator"]["waveform"] == cfg.discriminator.waveform


def test_experiment_runs_end_to_end(tmp_path):
    train = write_sine_folder(tmp_path / "train", n=4)
    heldout = write_sine_folder(tmp_path / "heldout", n=2, seed=1)
    base = _config().to_dict()
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    spec_path = tmp_path / "mini.yaml"
    spec_path.write_text(yaml.safe_dump({
        "title": "mini",
        "kind": "tokenizer",
        "base": str(tmp_path / "base.yaml"),
        "variants": [
            {"name": "quad", "model": {"scales": "quadratic"}},
            {"name": "rvq", "model": {"scales": [75] * 3, "phi": "none"}},
        ],
    }))
    results = run_experiment(ExperimentSpec.load(spec_path), train, tmp_path / "out", minutes_per_variant=0.005,
                             eval_data=heldout)
    rows = {r["variant"]: r for r in results["rows"]}
    assert rows["quad"]["tokens_per_s"] == 455 and rows["rvq"]["tokens_per_s"] == 225
    assert rows["rvq"]["num_phi"] == 0 and rows["quad"]["num_phi"] == 6
    for row in rows.values():
        assert row["steps"] >= 1 and row["heldout_clips"] == 2
        assert row["mel_distance"] > 0 and row["fad_mel"] >= 0
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["variant"] for r in saved["rows"]] == ["quad", "rvq"]
    table = (tmp_path / "out" / "results.md").read_text().splitlines()
    assert table[0].startswith("| variant |") and len(table) == 4 and "| rvq | 3 |" in table[3]


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["experiment", "no-such-experiment", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "no-such-experiment" in capsys.readouterr().err
    data = write_sine_folder(tmp_path / "d", n=1)
    assert main(["experiment", "guidance", "--data", str(data), "--eval-data", str(data), "--out",
                 str(tmp_path / "o")]) == 1
    assert "--aar-model" in capsys.readouterr().err
    assert main(["experiment", "phi", "--data", str(data), "--out", str(tmp_path / "o")]) == 1
    assert "--eval-data" in capsys.readouterr().err
