"""The end-to-end demo: budget planning, training records, pictures, FAD matrix, and one tiny
run of the whole pipeline (with its resume behaviour and the CLI's errors)."""

from __future__ import annotations

import csv
import json
import logging
import struct
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from aar.audio import save_audio
from aar.demo.budget import STEP_UNITS, reserved_from_measured, reserved_seconds
from aar.demo.evaluation import fad_matrix
from aar.demo.images import Spectrogram, encode_png, line_chart, smooth
from aar.demo.recorder import RecordingTask, read_history, typical_step_seconds
from aar.demo.training import BUDGET_USE, REPLAN_AT, REPLANNED_USE, TrainPlan, steps_for_budget, train_within
from aar.metrics import EmbeddingStats

SR = 24_000
CLASSES = ("chirp", "noise", "tone")


# ---------------------------------------------------------------------- helpers
def decode_png(data: bytes) -> np.ndarray:
    """Minimal reader for the encoder's output (8-bit RGB, filter 0)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    w, h, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2)
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, 1 + 3 * w)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, 3)


def synthetic_clip(label: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    if label == "tone":
        wav = 0.3 * np.sin(2 * np.pi * rng.uniform(300, 600) * t)
    elif label == "noise":
        wav = 0.1 * rng.standard_normal(SR)
    else:
        wav = np.zeros(SR)
        wav[:: rng.integers(600, 1200)] = 0.8
        wav = np.convolve(wav, np.exp(-np.arange(200) / 20.0), mode="same")
    return wav.astype(np.float32)


def make_corpus(root: Path, train: int = 3, heldout: int = 2) -> Path:
    """A corpus folder laid out like the built one (manifest + class folders) with synthetic clips."""
    rows = []
    for c, label in enumerate(CLASSES):
        for i in range(train + heldout):
            file = f"{label}/{label}-{i}.wav"
            save_audio(root / file, synthetic_clip(label, 100 * c + i), SR)
            rows.append({"file": file, "class": label, "split": "train" if i < train else "heldout",
                         "package": "synthetic", "version": "0", "source_file": f"{label}-{i}", "start_s": 0.0,
                         "content_s": 1.0, "licence": "CC0-1.0", "credit": "test signal"})
    with (root / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


# ---------------------------------------------------------------------- budget and plans
def test_steps_for_budget_fills_what_is_left():
    # 100 s budget, 20 s spent, 10 s expected overhead: 70 s at 0.5 s/step -> 140 more steps
    assert steps_for_budget(100.0, 20.0, 0.5, 10.0, done=10, min_steps=5) == 150
    # nothing left: the minimum is still trained
    assert steps_for_budget(10.0, 20.0, 0.5, 10.0, done=10, min_steps=5) == 15


def test_reserve_scales_with_the_probe_and_with_measured_stages():
    assert reserved_seconds(["generation", "report"], 2.0) == pytest.approx(2.0 * (STEP_UNITS["generation"] + STEP_UNITS["report"]))
    # measured stages twice as slow as their units predict -> the reserve doubles
    measured = {"tokens": 2 * STEP_UNITS["tokens"], "reconstruction": 2 * STEP_UNITS["reconstruction"]}
    assert reserved_from_measured(["speed"], measured) == pytest.approx(2 * STEP_UNITS["speed"])
    with pytest.raises(ValueError, match="no measured"):
        reserved_from_measured(["speed"], {"corpus": 3.0})


class _FakeRuns:
    """A RunFn on a fake clock: every step takes ``step_s`` (written to the history as 0.5 s, the
    speed calibration sees), a time limit stops the run at the first step past it, as the engine
    does. Records the calls."""

    def __init__(self, run_dir: Path, step_s: float = 0.5):
        self.run_dir, self.calls, self.step_s, self.now = run_dir, [], step_s, 0.0

    def clock(self) -> float:
        return self.now

    def __call__(self, total: int, val_every: int, time_limit_s=None):
        self.calls.append((total, val_every, time_limit_s))
        start = done = len(read_history(self.run_dir))
        deadline = None if time_limit_s is None else self.now + time_limit_s
        with (self.run_dir / "history.jsonl").open("a") as fh:
            while done < total:
                done += 1
                self.now += self.step_s
                fh.write(json.dumps({"step": done, "seconds": 0.5 if done > 1 else None, "loss": 1.0}) + "\n")
                if deadline is not None and done < total and self.now > deadline:
                    break
        task = SimpleNamespace(step_seconds=[self.step_s] * (done - start))  # what train_within reads of the task
        stopped = "time limit" if done < total else None
        return {"steps": total, "start_step": start, "end_step": done, "stopped_early": stopped,
                "elapsed_s": self.step_s * (done - start), "validation": []}, task


def test_train_within_calibrates_then_plans_and_resumes_to_the_same_plan(tmp_path):
    runs = _FakeRuns(tmp_path)
    summary, plan = train_within(runs, tmp_path, budget_s=60.0, calibration_steps=10, min_steps=5, clock=runs.clock)
    assert runs.calls[0] == (10, 10, None)  # calibration, validated at its end
    assert plan.step_seconds == pytest.approx(0.5)
    # the steps ran at the calibrated pace: planned again at REPLAN_AT of the budget, for REPLANNED_USE of it
    assert plan.first_total_steps == 10 + int((60 * BUDGET_USE - 5) / 0.5)
    assert runs.calls[1] == (plan.first_total_steps, (plan.first_total_steps - 10) // 8, pytest.approx(60 * REPLAN_AT - 5))
    assert plan.replanned_at == 10 + 27 and plan.replanned_step_seconds == pytest.approx(0.5)
    assert plan.total_steps == plan.replanned_at + int((60 * REPLANNED_USE - 0.5 * plan.replanned_at) / 0.5)
    assert runs.calls[2] == (plan.total_steps, plan.val_every, None) and summary["steps"] == plan.total_steps
    assert summary["elapsed_s"] == pytest.approx(0.5 * (plan.total_steps - 10))  # both legs
    assert TrainPlan.load(tmp_path) == plan
    # a second call (e.g. after an interruption) reuses the plan without calibrating again
    again = _FakeRuns(tmp_path)
    _, plan2 = train_within(again, tmp_path, budget_s=1.0, calibration_steps=10, min_steps=5, clock=again.clock)
    assert plan2 == plan and again.calls == [(plan.total_steps, plan.val_every, None)]


@pytest.mark.parametrize("step_s", [0.4, 0.6])
def test_train_within_plans_again_from_the_pace_of_the_first_leg(tmp_path, step_s):
    """Steps 20 % faster or slower than calibrated: the second plan fills the budget at the real pace."""
    runs = _FakeRuns(tmp_path, step_s)
    _, plan = train_within(runs, tmp_path, budget_s=100.0, calibration_steps=10, min_steps=5, clock=runs.clock)
    assert plan.step_seconds == pytest.approx(0.5) and plan.replanned_step_seconds == pytest.approx(step_s)
    assert plan.first_total_steps == 10 + int((100 * BUDGET_USE - 10 * step_s) / 0.5)
    assert abs(runs.now - 100 * REPLANNED_USE) <= step_s  # the run ends where the budget does
    assert (plan.total_steps > plan.first_total_steps) == (step_s < 0.5)


def test_train_within_does_not_split_a_short_run(tmp_path):
    runs = _FakeRuns(tmp_path)
    _, plan = train_within(runs, tmp_path, budget_s=15.0, calibration_steps=10, min_steps=5, clock=runs.clock)
    assert len(runs.calls) == 2 and runs.calls[1][2] is None and plan.replanned_at is None


def test_train_within_takes_a_budget_that_depends_on_the_step_time(tmp_path):
    seen = []

    def budget(step_s):
        seen.append(step_s)
        return 25.0  # 50 steps of 0.5 s, of which BUDGET_USE are planned (the calibration took 5 s of them)

    runs = _FakeRuns(tmp_path)
    _, plan = train_within(runs, tmp_path, budget, calibration_steps=10, min_steps=5, clock=runs.clock)
    assert seen == [pytest.approx(0.5)]
    assert plan.budget_s == 25.0 and plan.first_total_steps == 10 + int((25.0 * BUDGET_USE - 5) / 0.5)


def test_train_within_with_fixed_steps_does_not_calibrate(tmp_path):
    runs = _FakeRuns(tmp_path)
    _, plan = train_within(runs, tmp_path, budget_s=None, calibration_steps=10, min_steps=5, fixed_steps=7)
    assert runs.calls == [(7, 1, None)] and plan.calibration_steps is None


class _Counter:
    """The smallest TrainTask the recorder can wrap."""

    def build(self, ctx, schedule):
        pass

    def train_step(self, batches, step):
        return {"loss": 10.0 / (step + 1), "lr": 0.1}

    def validate(self, step, monitor):
        return {"loss": 1.0}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass

    def export(self, directory):
        return directory


def test_recording_task_writes_history_and_drops_steps_after_a_resume_point(tmp_path):
    task = RecordingTask(_Counter(), tmp_path)
    for step in range(5):
        task.train_step([], step)
    rows = read_history(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["seconds"] is None and all(r["seconds"] >= 0 for r in rows[1:])
    assert rows[2]["loss"] == pytest.approx(10.0 / 3)
    # resumed from the checkpoint of step 3: the rows of steps 4 and 5 belonged to lost weights
    resumed = RecordingTask(_Counter(), tmp_path)
    resumed.train_step([], 3)
    assert [r["step"] for r in read_history(tmp_path)] == [1, 2, 3, 4]
    assert typical_step_seconds([{"seconds": None}, {"seconds": 1.0}, {"seconds": 3.0}]) == 2.0
    assert typical_step_seconds([{"seconds": None}]) is None


# ---------------------------------------------------------------------- pictures and metrics
def test_png_encoder_round_trips():
    rgb = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_png(encode_png(rgb)), rgb)
    with pytest.raises(ValueError, match="H x W x 3"):
        encode_png(np.zeros((4, 4), np.uint8))


def test_spectrogram_puts_a_low_tone_at_the_bottom_and_high_at_the_top():
    t = torch.arange(SR) / SR
    spec = Spectrogram()
    low = spec.image(0.5 * torch.sin(2 * np.pi * 200 * t)).astype(float).sum(axis=(1, 2))
    high = spec.image(0.5 * torch.sin(2 * np.pi * 8000 * t)).astype(float).sum(axis=(1, 2))
    assert low.shape == (80,)
    assert np.argmax(low) > 60  # bright rows near the bottom of the picture
    assert np.argmax(high) < 20
    silent = spec.image(torch.zeros(SR))
    assert silent.max() < 10  # silence is black on the fixed scale


def test_line_chart_is_valid_svg_with_one_line_per_series():
    svg = line_chart([{"label": "a", "x": [1, 2, 3], "y": [3.0, 2.0, 1.0]},
                      {"label": "b <val>", "x": [1, 3], "y": [2.5, float("nan")], "dashed": True}],
                     "title & more", "step", "loss")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}polyline")) == 1 and len(root.findall(f"{ns}circle")) == 1  # NaN point dropped
    assert "b &lt;val&gt;" in svg
    empty = ET.fromstring(line_chart([], "t", "x", "y"))
    assert any(el.text == "no data" for el in empty.iter(f"{ns}text"))
    assert smooth([1.0, 3.0, 5.0], 2) == [1.0, 2.0, 4.0]


def test_fad_matrix_finds_the_nearest_class():
    rng = np.random.default_rng(0)

    def stats(mean):
        return EmbeddingStats.from_embeddings(rng.normal(mean, 1.0, (200, 4)))

    ref = {"a": stats(0.0), "b": stats(5.0)}
    good = fad_matrix({"a": stats(0.0), "b": stats(5.0)}, ref)
    assert good["matches"] and good["nearest"] == {"a": "a", "b": "b"}
    assert good["fad"][0][0] < good["fad"][0][1]
    bad = fad_matrix({"a": stats(5.0), "b": stats(5.0)}, ref)
    assert not bad["matches"] and bad["nearest"]["a"] == "b"


# ---------------------------------------------------------------------- the whole pipeline, tiny
def tiny_settings(out: Path, corpus: Path):
    from aar.demo.settings import DemoSettings
    from aar.tokenizer import SATConfig
    from aar.transformer.config import AARConfig

    settings = DemoSettings(out=out, corpus=corpus, device="cpu", tokenizer_steps=1, aar_steps=2,
                            generated_per_class=2, shown_per_class=1, speed_batches=(2,), speed_repeats=1)
    # a 0.2 s window of 15 latent frames in 5 scales keeps every stage (next-token timing included) fast
    settings.tokenizer.model = SATConfig(dimension=16, latent_dim=8, n_filters=4, lstm=0, codebook_size=64,
                                         window_seconds=0.2, scales=[1, 2, 4, 8, 15], kmeans_iters=2)
    settings.tokenizer.discriminator.filters = 4
    settings.tokenizer.data.batch_size, settings.tokenizer.data.num_workers = 2, 0
    settings.tokenizer.data.val_clips = 4
    settings.aar.model = AARConfig(depth=1, width=32, num_heads=2)
    settings.aar.data.batch_size = 4
    return settings


def test_pipeline_runs_every_stage_then_skips_them_and_redoes_what_follows_a_redone_stage(tmp_path, caplog):
    from aar.demo.pipeline import STAGES, run_demo

    corpus = make_corpus(tmp_path / "corpus")
    out = tmp_path / "demo"
    state = run_demo(tiny_settings(out, corpus))

    assert list(state["stages"]) == [s.name for s in STAGES]
    for rel in ("index.html", "metrics.json", "tokenizer/model/config.json", "aar/model/config.json",
                "aar/model/tokenizer/config.json", "tokens/cache.json"):
        assert (out / rel).is_file(), rel
    for label in CLASSES:
        assert len(list((out / "audio" / "generated" / label).glob("*.wav"))) == 2
        assert len(list((out / "audio" / "original" / label).glob("*.wav"))) == 2
        assert len(list((out / "audio" / "reconstructed" / label).glob("*.wav"))) == 2
        assert len(list((out / "audio" / "coarse_to_fine" / label).glob("scale_*.wav"))) == 5
    metrics = json.loads((out / "metrics.json").read_text())
    matrix = metrics["generation"]["fad_generated_vs_heldout"]
    assert matrix["rows"] == list(CLASSES) and matrix["columns"] == list(CLASSES)
    assert np.isfinite(np.array(matrix["fad"])).all()
    assert metrics["reconstruction"]["metrics"]["mel_distance"] > 0
    assert {r["model"] for r in metrics["speed"]["rows"]} == {"next-scale (AAR)", "next-token (same size)"}
    assert [r["steps"] for r in metrics["speed"]["rows"]] == [5, 30]
    assert metrics["training"]["aar"]["steps"] == 2
    assert [r["step"] for r in read_history(out / "aar")] == [1, 2]
    # the demo's tokenizer learns from its reconstruction losses alone: no discriminator terms
    (tokenizer_step,) = read_history(out / "tokenizer")
    assert "freq" in tokenizer_step and not {"adv", "feat", "disc_loss"} & set(tokenizer_step), tokenizer_step
    html = (out / "index.html").read_text()
    assert html.count("<audio") == 3 * (2 + 5 + 2) and "FAD" in html

    # everything finished: a second run skips every stage
    model_time = (out / "tokenizer" / "model" / "model.safetensors").stat().st_mtime_ns
    caplog.set_level(logging.INFO, logger="aar.demo")
    again = run_demo(tiny_settings(out, corpus))
    assert sum("skipped" in r.getMessage() for r in caplog.records if r.name == "aar.demo") == len(STAGES)
    assert again["stages"] == state["stages"]

    # a stage redone (here: generation, its record removed) redoes every later stage, not earlier ones
    data = json.loads((out / "demo.json").read_text())
    del data["stages"]["generation"]
    (out / "demo.json").write_text(json.dumps(data))
    caplog.clear()
    third = run_demo(tiny_settings(out, corpus))
    ran = [r.getMessage() for r in caplog.records if "finished in" in r.getMessage()]
    assert [m.split()[1] for m in ran] == ["generation", "speed", "report"]
    assert third["stages"]["tokenizer"] == state["stages"]["tokenizer"]
    assert (out / "tokenizer" / "model" / "model.safetensors").stat().st_mtime_ns == model_time


def test_pipeline_refuses_a_corpus_with_too_few_held_out_clips(tmp_path):
    from aar.demo.corpus import DemoCorpusError
    from aar.demo.pipeline import run_demo

    corpus = make_corpus(tmp_path / "corpus", train=2, heldout=1)
    with pytest.raises(DemoCorpusError, match="2 held-out"):
        run_demo(tiny_settings(tmp_path / "demo", corpus))


def test_cli_reports_bad_arguments_in_one_line(tmp_path, capsys):
    from aar.cli.main import main

    assert main(["demo", "--out", str(tmp_path / "x"), "--minutes", "0"]) == 1
    assert "minutes must be positive" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["demo", "--out", str(tmp_path / "file"), "--corpus", str(tmp_path)]) == 1
    assert "exists and is not a folder" in capsys.readouterr().err
    assert main(["demo", "--device", "tpu"]) == 1
    assert "--device" in capsys.readouterr().err


@pytest.mark.parametrize("field, value, message", [
    ("minutes", 0, "minutes must be positive"),
    ("tokenizer_steps", 0, "tokenizer_steps must be >= 1"),
    ("token_views", 0, "token_views must be >= 1"),
    ("generated_per_class", 1, "generated_per_class must be >= 2"),
    ("generation_batch", 0, "generation_batch must be >= 1"),
    ("cfg_schedule", "cubic", "cubic"),
])
def test_demo_settings_name_the_bad_value(tmp_path, field, value, message):
    from aar.demo.settings import DemoSettings

    with pytest.raises(ValueError, match=message):
        DemoSettings(out=tmp_path, corpus=tmp_path, **{field: value})


def test_demo_settings_record_the_generation_settings(tmp_path):
    from aar.demo.settings import DemoSettings

    described = DemoSettings(out=tmp_path, corpus=tmp_path, generated_per_class=5, generation_batch=3).describe()
    assert described["generated_per_class"] == 5 and described["generation_batch"] == 3 and described["cfg"] == 3.0
