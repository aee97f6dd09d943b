"""The demo's report: ``DIR/index.html``, one page with audio players, spectrograms, training
curves and the tables of metrics and speed.

The page is self-contained (inline CSS, no script, nothing fetched from the network); audio and
pictures are files under DIR, linked by relative paths, so the folder can be moved or served
as it is. Spectrograms are PNG files and curves SVG files, drawn by :mod:`aar.demo.images`.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from aar.audio import list_audio_files, load_audio
from aar.checkpoint import atomic_write_text
from aar.demo.images import Spectrogram, line_chart, smooth
from aar.demo.recorder import read_history

REPORT = "index.html"

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1180px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; } th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; } thead th { background: #f2f2f2; }
td.best { background: #d9f2d9; font-weight: bold; } .ok { color: #1a7f37; } .bad { color: #b3261e; }
.clips { display: flex; flex-wrap: wrap; gap: 1em; } .pair { display: flex; gap: 0.4em; background: #f7f7f7; padding: 0.4em; border-radius: 4px; } .clip { border: 1px solid #ddd; padding: 0.5em; border-radius: 4px; }
.clip img { display: block; width: 282px; height: 120px; image-rendering: auto; margin-bottom: 0.3em; }
.clip audio { width: 282px; } .caption { font-size: 0.85em; color: #555; max-width: 282px; overflow-wrap: anywhere; }
.ladder { display: grid; grid-template-columns: repeat(4, 1fr); gap: 0.6em; }
.ladder .clip img { width: 100%; height: 90px; } .ladder .clip audio { width: 100%; }
.curves img { margin-right: 1em; border: 1px solid #eee; } .note { color: #555; font-size: 0.9em; }
"""


class _Pictures:
    """Writes spectrogram PNGs under ``DIR/images/spec`` mirroring the audio paths."""

    def __init__(self, out: Path):
        self.out = out
        self.spec = Spectrogram()

    def of(self, audio_rel: str) -> str:
        rel = Path("images") / "spec" / Path(audio_rel).relative_to("audio").with_suffix(".png")
        self.spec.write(load_audio(self.out / audio_rel, sample_rate=24_000)[0], self.out / rel)
        return rel.as_posix()


def _clip(pictures: _Pictures, audio_rel: str, caption: str) -> str:
    img = pictures.of(audio_rel)
    return (f'<div class="clip"><img src="{escape(img)}" alt="spectrogram of {escape(caption)}">'
            f'<audio controls preload="metadata" src="{escape(audio_rel)}"></audio>'
            f'<div class="caption">{escape(caption)}</div></div>')


def _rel(out: Path, path: Path) -> str:
    return path.relative_to(out).as_posix()


def _table(head: list[str], rows: list[list[str]], raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (cells given as ``<td ...>...</td>``)."""
    out = ["<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for row in rows:
        cells = row if raw else [f"<td>{escape(c)}</td>" for c in row]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _matrix_table(matrix: dict, row_what: str) -> str:
    head = [f"{row_what} \\ held-out"] + matrix["columns"] + ["nearest"]
    rows = []
    for name, values in zip(matrix["rows"], matrix["fad"]):
        best = min(values)
        cells = [f"<td>{escape(name)}</td>"]
        cells += [f'<td class="{"best" if v == best else ""}">{v:.3f}</td>' for v in values]
        ok = matrix["nearest"][name] == name
        cells.append(f'<td class="{"ok" if ok else "bad"}">{escape(matrix["nearest"][name])} {"✓" if ok else "✗"}</td>')
        rows.append(cells)
    return _table(head, rows, raw=True)


def _curves(out: Path, run: str, title: str) -> list[str]:
    """SVG charts of one training run (training scalars from history.jsonl, validation from
    summary.json); returns their paths relative to ``out``."""
    rows = read_history(out / run)
    summary_path = out / run / "summary.json"
    validation = json.loads(summary_path.read_text()).get("validation", []) if summary_path.is_file() else []
    if not rows:
        return []
    steps = [r["step"] for r in rows]
    window = max(1, len(rows) // 25)
    charts = []
    if run == "tokenizer":
        train = [{"label": "generator loss", "x": steps, "y": smooth([r["loss"] for r in rows], window)}]
        if "freq" in rows[0]:
            train.append({"label": "mel loss (L1)", "x": steps, "y": smooth([r["freq"] for r in rows], window)})
        val = [{"label": f"held-out {k.replace('_', ' ')}", "x": [v["step"] for v in validation],
                "y": [v[k] for v in validation]} for k in ("mel_distance", "stft_distance") if validation and k in validation[0]]
        charts.append(("tokenizer_loss", line_chart(train, f"{title}: training loss", "step", "loss")))
        charts.append(("tokenizer_validation", line_chart(val, f"{title}: reconstruction of held-out clips", "step", "distance")))
    else:
        val_steps = [v["step"] for v in validation]
        loss = [{"label": "training loss", "x": steps, "y": smooth([r["loss"] for r in rows], window)}]
        acc = [{"label": "training accuracy", "x": steps, "y": smooth([r.get("accuracy", float("nan")) for r in rows], window)}]
        if validation and "loss" in validation[0]:
            loss.append({"label": "validation loss", "x": val_steps, "y": [v["loss"] for v in validation], "dashed": True})
            acc.append({"label": "validation accuracy", "x": val_steps, "y": [v["accuracy"] for v in validation], "dashed": True})
        charts.append(("aar_loss", line_chart(loss, f"{title}: cross-entropy", "step", "loss (nats)")))
        charts.append(("aar_accuracy", line_chart(acc, f"{title}: token accuracy", "step", "accuracy")))
    paths = []
    for name, svg in charts:
        path = out / "images" / f"{name}.svg"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(svg, path)
        paths.append(_rel(out, path))
    return paths


def _credits(corpus: Path | None) -> dict[str, dict]:
    """Manifest rows of the corpus by ``<class>/<file stem>``."""
    if corpus is None:
        return {}
    from aar.demo.corpus import DemoCorpusError, load_manifest

    try:
        return {Path(r.file).with_suffix("").as_posix(): r for r in load_manifest(corpus)}
    except (DemoCorpusError, OSError):
        return {}


def _by_class(folder: Path) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    if folder.is_dir():
        for path in list_audio_files(folder):
            groups.setdefault(path.relative_to(folder).parts[0], []).append(path)
    return groups


def write_report(out: str | Path, state: dict, shown_per_class: int = 3) -> Path:
    """Write ``out/index.html`` (and its pictures) from the demo folder ``out`` and the content
    of its ``demo.json`` (``state``). Sections whose stage has not run are left out."""
    out = Path(out)
    stages = state.get("stages", {})
    result = {name: v.get("result", {}) for name, v in stages.items()}
    pictures = _Pictures(out)
    corpus = Path(result["corpus"]["path"]) if "corpus" in result else None
    credits = _credits(corpus)
    body: list[str] = []

    # ---- summary
    total = sum(v["seconds"] for v in stages.values())
    counts = result.get("corpus", {}).get("counts", {})
    aar_res, tok_res = result.get("aar", {}), result.get("tokenizer", {})
    body.append("<h1>aar demo: audio generation by next-scale prediction</h1>")
    body.append(
        "<p>A tiny SAT tokenizer and a small class-conditioned AAR transformer, trained from scratch on "
        f"{sum(c.get('train', 0) for c in counts.values())} one-second clips of real recordings "
        f"({escape(', '.join(sorted(counts)))}), then asked to reconstruct held-out clips and to generate new clips of "
        f"every class. Stages took {total / 60:.1f} minutes in all on {escape(str(state.get('settings', {}).get('device', 'auto')))} "
        "(device <code>auto</code>: CUDA when available). Everything below comes from the files in this folder.</p>")
    stage_rows = []
    for name, v in stages.items():
        r = v.get("result", {})
        detail = ""
        if name in ("tokenizer", "aar") and r:
            detail = f"{r['steps']} steps"
            if r.get("plan", {}).get("step_seconds"):
                detail += f", {r['plan']['step_seconds']:.2f} s/step"
        elif name == "generation" and r:
            detail = f"{r['generation']['clips']} clips"
        stage_rows.append([name, f"{v['seconds']:.1f}", detail])
    body.append("<h2>Stages</h2>" + _table(["stage", "wall time (s)", "detail"], stage_rows))

    # ---- metrics
    rec = result.get("reconstruction")
    if rec:
        m = rec["metrics"]
        rows = [["all held-out clips", f"{m['mel_distance']:.3f}", f"{m['stft_distance']:.3f}", f"{m['fad']:.3f}"]]
        rows += [[c, f"{v['mel_distance']:.3f}", f"{v['stft_distance']:.3f}", ""] for c, v in rec["per_class"].items()]
        body.append("<h2>Reconstruction (tokenizer)</h2>" + _table(
            ["clips", "MEL distance", "STFT distance", f"FAD ({rec['backbone']})"], rows))
        body.append(f'<p class="note">{rec["counts"]["pairs"]} held-out clips encoded and decoded with all '
                    f"{len(rec['scales'])} scales. Lower is better. FAD uses the weight-free '{escape(rec['backbone'])}' "
                    "backbone of <code>aar evaluate</code> (log-mel statistics): comparable between runs of this tool, "
                    "not with published FADs.</p>")
    gen = result.get("generation")
    if gen:
        g = gen["fad_generated_vs_heldout"]
        verdict = ('<span class="ok">every generated class is nearest its own held-out class</span>' if g["matches"]
                   else '<span class="bad">some generated class is nearer another class\'s held-out clips</span>')
        body.append("<h2>Generation (class-conditioned AAR)</h2>")
        body.append(f"<p>FAD between the {gen['generation']['clips_per_class']} generated clips of each class (rows) and "
                    f"the held-out clips of each class (columns); lower is closer. Verdict: {verdict}.</p>")
        body.append(_matrix_table(g, "generated"))
        body.append("<p>For scale, the same distances from the real training clips of each class:</p>")
        body.append(_matrix_table(gen["fad_train_vs_heldout"], "training"))
        info = gen["generation"]
        body.append(f'<p class="note">Sampling: guidance {info["cfg"]} ({escape(info.get("cfg_schedule", "linear"))} over the scales), top-k {info["top_k"]}, top-p {info["top_p"]}, '
                    f'seed {info["seed"]}; {info["clips"]} clips in {info["seconds"]:.1f} s. Backbone: '
                    f"'{escape(gen['backbone'])}'.</p>")
    speed = result.get("speed")
    if speed:
        rows = [[r["model"], str(r["steps"]), str(r["batch"]), f"{r['seconds']:.3f}", f"{r['clips_per_s']:.2f}"]
                for r in speed["rows"]]
        body.append("<h2>Generation speed</h2>" + _table(
            ["model", "steps per clip", "batch", "seconds per call", "clips / s"], rows))
        ups = ", ".join(f"batch {b}: {f:.1f}x" for b, f in speed["speedup"].items())
        st = speed["settings"]
        body.append(f'<p class="note">{("Next-scale speed-up " + ups + ". ") if ups else ""}Next-scale: median of {st["repeats"]} calls after a '
                    f"warm-up; next-token: one call. Guidance {st['cfg']}, top-k {st['top_k']}, top-p {st['top_p']}, {st['dtype']} on "
                    f"{escape(st['device'])} ({st['threads']} CPU thread{'s' if st['threads'] != 1 else ''}), audio decoding included. "
                    + " ".join(escape(n) for n in speed["notes"]) + "</p>")

    # ---- curves
    charts = []
    if tok_res:
        charts += _curves(out, "tokenizer", "SAT tokenizer")
    if aar_res:
        charts += _curves(out, "aar", "AAR")
    if charts:
        body.append('<h2>Training curves</h2><div class="curves">'
                    + "".join(f'<img src="{escape(c)}" alt="{escape(Path(c).stem)}">' for c in charts) + "</div>")
        notes = []
        for name, r in (("tokenizer", tok_res), ("transformer", aar_res)):
            if r:
                plan = r.get("plan", {})
                how = (f"sized to a {r['budget_s']:.0f} s budget from {plan['calibration_steps']} timed steps"
                       if plan.get("calibration_steps") else "a fixed number of steps")
                notes.append(f"{name}: {r['steps']} steps in {r['train_seconds']:.0f} s ({how})")
        body.append(f'<p class="note">Training curves are running means. {escape("; ".join(notes))}.</p>')

    # ---- audio
    if rec:
        original, recon = out / "audio" / "original", out / "audio" / "reconstructed"
        body.append("<h2>Held-out clips and their reconstructions</h2>")
        for label, paths in sorted(_by_class(original).items()):
            cells = []
            for path in paths[:shown_per_class]:
                key = path.relative_to(original).with_suffix("").as_posix()
                credit = credits.get(key)
                src = f" — {credit.package}, {credit.licence}" if credit else ""
                cells.append('<div class="pair">' + _clip(pictures, _rel(out, path), f"original {key}{src}")
                             + _clip(pictures, _rel(out, recon / f"{key}.wav"), "its reconstruction") + "</div>")
            body.append(f"<h3>{escape(label)}</h3><div class=\"clips\">{''.join(cells)}</div>")
        body.append("<h2>Coarse to fine</h2><p>One held-out clip per class decoded from its first k scales "
                    f"(k = 1 .. {len(rec['scales'])}, token counts {escape(', '.join(map(str, rec['scales'])))}): each scale adds "
                    "detail to the same clip.</p>")
        for label, key in sorted(rec["coarse_to_fine"].items()):
            ladder = sorted((out / "audio" / "coarse_to_fine" / label).glob("scale_*.wav"))
            cells = [_clip(pictures, _rel(out, p), f"{k + 1} scale{'s' if k else ''} ({sum(rec['scales'][: k + 1])} tokens)")
                     for k, p in enumerate(ladder)]
            body.append(f"<h3>{escape(label)}: {escape(key)}</h3><div class=\"ladder\">{''.join(cells)}</div>")
    if gen:
        body.append("<h2>Generated clips</h2>")
        for label, paths in sorted(_by_class(out / "audio" / "generated").items()):
            cells = [_clip(pictures, _rel(out, p), f"generated {label} #{p.stem}") for p in paths[:shown_per_class + 1]]
            body.append(f"<h3>{escape(label)}</h3><div class=\"clips\">{''.join(cells)}</div>")

    if corpus is not None:
        body.append('<h2>Data and licences</h2><p class="note">The clips are cut from recordings in Debian packages '
                    "(GPL-2(+), CC-BY-3.0, CC-BY-SA-3.0, CC0-1.0 and public-domain recordings). Their provenance, licence "
                    f"and credit are listed per clip in <code>{escape(str(corpus / 'manifest.csv'))}</code> and the "
                    f"packages' copyright files in <code>{escape(str(corpus / 'licenses'))}</code>; keep them with any "
                    "copy of these clips, reconstructions or generations. See docs/demo_corpus.md.</p>")

    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>aar demo report</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    path = out / REPORT
    atomic_write_text(page, path)
    return path
