"""The end-to-end demo (``aar demo``): corpus -> tokenizer -> token cache -> transformer ->
reconstructions, generations, metrics, speed -> report, into one folder.

Each stage records what it did in ``DIR/demo.json`` when it finishes. Running the demo again
on the same folder skips the finished stages (a training stage that was interrupted resumes
from its newest checkpoint); when a stage runs again, every later stage is redone.

Layout of DIR::

    demo.json                       stages: wall time, results; the settings
    metrics.json                    reconstruction, generation (FAD matrix) and speed figures
    index.html                      the report (audio players, spectrograms, curves, tables)
    data/{train,heldout}/<class>/   links to the corpus clips of each split
    tokenizer/                      SAT run: model/, checkpoints/, history.jsonl, summary.json
    tokens/                         token cache of the training clips (class labels)
    aar/                            AAR run: model/ (with its tokenizer), checkpoints/, ...
    audio/original/<class>/         held-out clips           audio/reconstructed/<class>/
    audio/coarse_to_fine/<class>/   scale_01.wav .. scale_16.wav of one held-out clip
    audio/generated/<class>/        generated clips          images/  spectrograms and curves
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from aar.checkpoint import atomic_write_text
from aar.demo.budget import MIN_STEPS, TOKENIZER_SHARE, reserved_from_measured, reserved_seconds
from aar.demo.settings import DemoSettings
from aar.demo.threads import pick_threads
from aar.train.distributed import resolve_device

log = logging.getLogger("aar.demo")

STATE = "demo.json"
METRICS = "metrics.json"
REPORT = "index.html"
SPLITS = ("train", "heldout")


@dataclass
class Stage:
    name: str
    title: str
    outputs: tuple[str, ...]  # paths under DIR the stage writes (removed when it is redone)
    resumable: bool = False  # keeps its outputs when redone (training resumes from checkpoints)


STAGES = (
    Stage("corpus", "demo corpus", ()),
    Stage("data", "train / held-out split", ("data",)),
    Stage("tokenizer", "train the tiny SAT tokenizer", ("tokenizer",), resumable=True),
    Stage("tokens", "encode the training clips into a token cache", ("tokens",)),
    Stage("reconstruction", "reconstruct held-out clips, coarse to fine", ("audio/original", "audio/reconstructed", "audio/coarse_to_fine")),
    Stage("aar", "train the label-conditioned AAR", ("aar",), resumable=True),
    Stage("generation", "generate clips of every class, FAD matrix", ("audio/generated",)),
    Stage("speed", "time next-scale against next-token generation", ()),
    Stage("report", "write the report", ("images", REPORT)),
)
TRAINED = ("tokenizer", "aar")


class DemoState:
    """``DIR/demo.json``: the settings and, per finished stage, its wall time and results."""

    def __init__(self, out: Path):
        self.path = out / STATE
        self.data = {"stages": {}}
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text())
            except json.JSONDecodeError:
                log.warning("%s is unreadable: every stage is redone", self.path)
        self.data.setdefault("stages", {})

    @property
    def stages(self) -> dict:
        return self.data["stages"]

    def done(self, name: str) -> bool:
        return name in self.stages

    def result(self, name: str) -> dict:
        return self.stages[name]["result"]

    def finish(self, name: str, seconds: float, result: dict) -> None:
        self.stages[name] = {"seconds": round(seconds, 2), "result": result}
        self.save()

    def forget(self, name: str) -> None:
        self.stages.pop(name, None)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json.dumps(self.data, indent=2) + "\n", self.path)


class Demo:
    """One demo run into ``settings.out``: :meth:`run` executes (or skips) every stage."""

    def __init__(self, settings: DemoSettings):
        self.s = settings
        self.out = settings.out
        self.state = DemoState(self.out)
        self.began = time.perf_counter()
        self.deadline = self.began + settings.minutes * 60.0

    # ------------------------------------------------------------------ driver
    def run(self) -> dict:
        """Run every stage not finished yet; returns ``demo.json``'s content. The CPU thread
        count chosen for the run is restored afterwards."""
        threads_before = torch.get_num_threads()
        try:
            return self._run()
        finally:
            torch.set_num_threads(threads_before)

    def _run(self) -> dict:
        self.out.mkdir(parents=True, exist_ok=True)
        previous = self.state.data.get("settings")
        if previous is not None and _comparable(previous) != _comparable(self.s.describe()):
            log.warning("%s was made with other settings; finished stages are kept (delete the folder to start afresh)",
                        self.out)
        self.state.data["settings"] = self.s.describe()
        if resolve_device(self.s.device).type == "cpu":
            threads, medians = pick_threads()
            self.state.data["threads"] = threads
            log.info("CPU threads: %d (a small training workload took %s)", threads,
                     ", ".join(f"{t * 1000:.0f} ms with {n}" for n, t in medians.items()) or "no choice")
        redo_rest = False
        for index, stage in enumerate(STAGES, 1):
            head = f"[{index}/{len(STAGES)}] {stage.name}: {stage.title}"
            if self.state.done(stage.name) and not redo_rest:
                log.info("%s -- done earlier (%.1f s), skipped", head, self.state.stages[stage.name]["seconds"])
                continue
            if not redo_rest:  # everything after a stage that runs is redone
                for later in STAGES[index:]:
                    if self.state.done(later.name):
                        self._clear(later, keep=False)
                redo_rest = True
            self._clear(stage, keep=stage.resumable)
            log.info("%s", head)
            began = time.perf_counter()
            result = getattr(self, f"stage_{stage.name}")()
            seconds = time.perf_counter() - began
            self.state.finish(stage.name, seconds, result)
            log.info("[%d/%d] %s finished in %.1f s", index, len(STAGES), stage.name, seconds)
        self.state.data["last_run_seconds"] = round(time.perf_counter() - self.began, 2)
        self.state.save()
        self._write_metrics()  # again, with every stage's time (the report's included)
        return self.state.data

    def _clear(self, stage: Stage, keep: bool) -> None:
        self.state.forget(stage.name)
        if keep:
            return
        for rel in stage.outputs:
            path = self.out / rel
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()

    def seconds_left(self) -> float:
        return self.deadline - time.perf_counter()

    def untrained_after(self, stage: str) -> list[str]:
        """The stages after ``stage`` that train nothing."""
        names = [s.name for s in STAGES]
        return [n for n in names[names.index(stage) + 1 :] if n not in TRAINED]

    # ------------------------------------------------------------------ stages
    def stage_corpus(self) -> dict:
        from aar.demo.corpus import DemoCorpusError, build_corpus, load_manifest

        corpus = self.s.corpus
        if not _usable_corpus(corpus):
            log.info("building the corpus into %s (Debian packages, see docs/demo_corpus.md)", corpus)
            build_corpus(corpus)
        counts: dict[str, dict[str, int]] = {}
        for record in load_manifest(corpus):
            counts.setdefault(record.label, {s: 0 for s in SPLITS})[record.split] += 1
        for label, c in sorted(counts.items()):
            log.info("  %-12s train %4d  heldout %4d", label, c["train"], c["heldout"])
        short = [label for label, c in counts.items() if c["heldout"] < 2 or c["train"] < 1]
        if len(counts) < 2 or short:
            raise DemoCorpusError(f"{corpus}: the demo needs at least 2 classes, each with training clips and 2 held-out "
                             f"clips ({', '.join(short) or 'one class only'})")
        return {"path": str(corpus.resolve()), "counts": counts}

    def stage_data(self) -> dict:
        from aar.demo.corpus import load_manifest

        corpus = self.s.corpus.resolve()
        for record in load_manifest(corpus):
            link = self.out / "data" / record.split / record.label / Path(record.file).name
            link.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.symlink(corpus / record.file, link)
            except OSError:  # no symlinks here (some file systems): copy
                shutil.copyfile(corpus / record.file, link)
        return {"train": str(self.out / "data" / "train"), "heldout": str(self.out / "data" / "heldout")}

    def stage_tokenizer(self) -> dict:
        from aar.demo.training import tokenizer_runner, train_within

        budget = None
        if self.s.tokenizer_steps is None:
            began, untrained = time.perf_counter(), self.untrained_after("tokenizer")

            def tokenizer_budget(step_s: float) -> float:
                reserve = reserved_seconds(untrained, step_s)
                left = self.deadline - began  # when the stage began
                share = max(0.0, (left - reserve) * TOKENIZER_SHARE)
                log.info("time budget: %.0f s of the %.0f s left when the stage began (%.0f s kept for the "
                         "stages that train nothing)", share, left, reserve)
                return share

            budget = tokenizer_budget
        run_dir = self.out / "tokenizer"
        run = tokenizer_runner(self.s.tokenizer, self.out / "data" / "train", self.out / "data" / "heldout", run_dir)
        summary, plan = train_within(run, run_dir, budget, self.s.calibration_steps, MIN_STEPS, self.s.tokenizer_steps)
        return _training_result(summary, plan, plan.budget_s)

    def stage_tokens(self) -> dict:
        from aar.data import open_source
        from aar.tokenizer import SAT
        from aar.transformer.token_cache import build_token_cache

        sat = SAT.from_pretrained(self.out / "tokenizer" / "model", device=resolve_device(self.s.device))
        meta = build_token_cache(sat, open_source(self.out / "data" / "train"), self.out / "tokens", condition="label",
                                 views=self.s.token_views)
        log.info("  %d windows (%d views of %d clips) of %d tokens, classes %s", meta["num_windows"], meta["views"],
                 meta["num_clips"], meta["seq_len"], ", ".join(meta["class_names"]))
        return {"windows": meta["num_windows"], "views": meta["views"], "clips": meta["num_clips"],
                "seq_len": meta["seq_len"], "classes": meta["class_names"]}

    def stage_aar(self) -> dict:
        from aar.demo.training import aar_runner, train_within
        from aar.transformer import AAR

        budget = None
        if self.s.aar_steps is None:
            measured = {n: self.state.stages[n]["seconds"] for n in ("tokens", "reconstruction")}
            reserve = reserved_from_measured(self.untrained_after("aar"), measured)
            budget = max(0.0, self.seconds_left() - reserve)
            log.info("time budget: %.0f s of the %.0f s left (%.0f s kept for the stages that train nothing)",
                     budget, self.seconds_left(), reserve)
        run_dir = self.out / "aar"
        run = aar_runner(self.s.aar, self.out / "tokens", run_dir)
        summary, plan = train_within(run, run_dir, budget, self.s.calibration_steps, MIN_STEPS, self.s.aar_steps)
        result = _training_result(summary, plan, plan.budget_s)
        model = AAR.from_pretrained(run_dir / "model")
        result["parameters"] = sum(p.numel() for p in model.parameters())
        result["config"] = {k: model.config.to_dict()[k] for k in ("depth", "width", "num_heads", "class_names", "scales")}
        return result

    def _tokenizer(self):
        from aar.tokenizer import SAT

        return SAT.from_pretrained(self.out / "tokenizer" / "model", device=resolve_device(self.s.device))

    def stage_reconstruction(self) -> dict:
        from aar.demo.evaluation import clip_key, coarse_to_fine, reconstruct_clips, reconstruction_metrics
        from aar.audio import list_audio_files

        sat = self._tokenizer()
        heldout = self.out / "data" / "heldout"
        clips = {clip_key(p, heldout): p for p in list_audio_files(heldout)}
        original, recon = self.out / "audio" / "original", self.out / "audio" / "reconstructed"
        reconstruct_clips(sat, clips, original, recon)
        ladders = {}
        for label in sorted({k.split("/", 1)[0] for k in clips}):
            first = sorted(k for k in clips if k.startswith(label + "/"))[0]
            coarse_to_fine(sat, original / f"{first}.wav", self.out / "audio" / "coarse_to_fine" / label)
            ladders[label] = first
        result = reconstruction_metrics(original, recon)
        result["coarse_to_fine"] = ladders
        result["scales"] = sat.scales
        m = result["metrics"]
        log.info("  MEL distance %.3f, STFT distance %.3f, FAD (%s) %.3f over %d held-out clips",
                 m["mel_distance"], m["stft_distance"], result["backbone"], m["fad"], result["counts"]["pairs"])
        self._write_metrics(reconstruction=result)
        return result

    def stage_generation(self) -> dict:
        from aar.demo.evaluation import BACKBONE, class_stats, fad_matrix, generate_per_class
        from aar.metrics import load_backbone
        from aar.transformer import AAR

        model = AAR.from_pretrained(self.out / "aar" / "model", device=resolve_device(self.s.device))
        classes = list(model.config.class_names)
        gen_dir = self.out / "audio" / "generated"
        s = self.s
        info = generate_per_class(model, classes, s.generated_per_class, gen_dir, s.cfg, s.top_k, s.top_p, s.seed,
                                  batch_size=s.generation_batch, cfg_schedule=s.cfg_schedule)
        log.info("  %d clips in %.1f s", info["clips"], info["seconds"])
        backbone = load_backbone(BACKBONE)
        heldout = class_stats(self.out / "data" / "heldout", classes, backbone)
        generated = class_stats(gen_dir, classes, backbone)
        training = class_stats(self.out / "data" / "train", classes, backbone)
        result = {
            "generation": info,
            "backbone": BACKBONE,
            "fad_generated_vs_heldout": fad_matrix(generated, heldout),
            "fad_train_vs_heldout": fad_matrix(training, heldout),
        }
        _log_matrix(result["fad_generated_vs_heldout"], "generated")
        self._write_metrics(generation=result)
        return result

    def stage_speed(self) -> dict:
        from aar.demo.speed import speed_table
        from aar.transformer import AAR

        model = AAR.from_pretrained(self.out / "aar" / "model", device=resolve_device(self.s.device))
        table = speed_table(model, list(self.s.speed_batches), self.s.speed_repeats, self.s.cfg, self.s.top_k, self.s.top_p)
        for row in table["rows"]:
            log.info("  %-24s batch %2d: %7.3f s per call, %6.2f clips/s (%d steps)",
                     row["model"], row["batch"], row["seconds"], row["clips_per_s"], row["steps"])
        for batch, factor in table["speedup"].items():
            log.info("  batch %s: next-scale is %.1fx faster", batch, factor)
        self._write_metrics(speed=table)
        return table

    def stage_report(self) -> dict:
        from aar.demo.report import write_report

        self._write_metrics()
        path = write_report(self.out, self.state.data, self.s.shown_per_class)
        log.info("  %s", path)
        return {"report": str(path)}

    # ------------------------------------------------------------------ metrics.json
    def _write_metrics(self, **fresh) -> None:
        """``DIR/metrics.json`` from the finished stages (plus results not recorded yet)."""
        st = self.state.stages

        def get(name: str):
            return fresh[name] if name in fresh else st.get(name, {}).get("result")

        metrics = {
            "reconstruction": get("reconstruction"),
            "generation": get("generation"),
            "speed": get("speed"),
            "training": {n: st[n]["result"] for n in ("tokenizer", "aar") if n in st},
            "stage_seconds": {n: v["seconds"] for n, v in st.items()},
        }
        atomic_write_text(json.dumps(metrics, indent=2) + "\n", self.out / METRICS)


def _comparable(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k not in ("minutes", "out")}


def _usable_corpus(corpus: Path) -> bool:
    """A folder with a manifest whose clips all exist (the built corpus, or one laid out alike)."""
    from aar.demo.corpus import DemoCorpusError, load_manifest

    try:
        records = load_manifest(corpus)
    except (DemoCorpusError, OSError):
        return False
    return bool(records) and all((corpus / r.file).is_file() for r in records)


def _training_result(summary: dict, plan, budget: float | None) -> dict:
    validation = summary.get("validation") or []
    return {
        "steps": summary["steps"],
        "train_seconds": summary["elapsed_s"],
        "budget_s": None if budget is None else round(budget, 1),
        "plan": {"calibration_steps": plan.calibration_steps, "step_seconds": plan.step_seconds,
                 "total_steps": plan.total_steps},
        "final_validation": validation[-1] if validation else None,
        "validation": validation,
        "model": summary.get("export"),
    }


def _log_matrix(matrix: dict, what: str) -> None:
    cols = matrix["columns"]
    log.info("  FAD of %s (rows) against held-out clips (columns):", what)
    log.info("  %-14s" + "".join(f"{c:>14}" for c in cols), "")
    for name, row in zip(matrix["rows"], matrix["fad"]):
        log.info("  %-14s" + "".join(f"{v:>14.3f}" for v in row) + "   nearest: %s", name, matrix["nearest"][name])


def run_demo(settings: DemoSettings) -> dict:
    """Run the demo described by ``settings``; returns ``DIR/demo.json``'s content."""
    return Demo(settings).run()
