"""``aar demo``: the end-to-end demo on real audio, within a time budget (see docs/demo.md)."""

from __future__ import annotations

import argparse
import logging
import sys

from tqdm.auto import tqdm

from aar.cli.main import CLIError


class _TqdmHandler(logging.Handler):
    """Log lines that do not break progress bars."""

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def _setup_logging() -> None:
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("aar.demo", "aar.train", "aar.data"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _print_summary(state: dict, out) -> None:
    stages = state["stages"]
    print(f"\nreport: {out / 'index.html'}")
    rec = stages.get("reconstruction", {}).get("result")
    if rec:
        m = rec["metrics"]
        print(f"reconstruction of {rec['counts']['pairs']} held-out clips: MEL distance {m['mel_distance']:.3f}, "
              f"STFT distance {m['stft_distance']:.3f}, FAD ({rec['backbone']}) {m['fad']:.3f}")
    gen = stages.get("generation", {}).get("result")
    if gen:
        matrix = gen["fad_generated_vs_heldout"]
        print(f"FAD ({gen['backbone']}) of generated clips (rows) against held-out clips (columns):")
        print(" " * 14 + "".join(f"{c:>13}" for c in matrix["columns"]))
        for name, row in zip(matrix["rows"], matrix["fad"]):
            print(f"{name:<14}" + "".join(f"{v:>13.3f}" for v in row))
        print("every generated class is nearest its own class" if matrix["matches"]
              else "NOT every generated class is nearest its own class")
    speed = stages.get("speed", {}).get("result")
    if speed:
        for row in speed["rows"]:
            print(f"{row['model']:<24} batch {row['batch']:>2}: {row['seconds']:.3f} s per call ({row['steps']} steps)")
    times = ", ".join(f"{name} {v['seconds']:.0f} s" for name, v in stages.items())
    print(f"stage wall times: {times}; this run {state.get('last_run_seconds', 0.0) / 60:.1f} min")


def run_demo_cmd(args: argparse.Namespace) -> int:
    from aar.data import DataError
    from aar.demo.corpus import DemoCorpusError
    from aar.demo.debian import PackageError
    from aar.demo.formats import FormatError
    from aar.demo.pipeline import run_demo
    from aar.demo.settings import DemoSettings

    if args.device not in ("auto", "cpu", "cuda"):
        raise CLIError(f"--device must be auto, cpu or cuda, got {args.device!r}")
    try:
        settings = DemoSettings(out=args.out, corpus=args.corpus, minutes=args.minutes, device=args.device)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if settings.out.exists() and not settings.out.is_dir():
        raise CLIError(f"--out {settings.out}: exists and is not a folder")
    _setup_logging()
    try:
        state = run_demo(settings)
    except (DemoCorpusError, PackageError, FormatError, DataError) as exc:
        raise CLIError(str(exc)) from None
    _print_summary(state, settings.out)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="end-to-end demo: train a tokenizer and an AAR on real audio, generate, evaluate, report",
        description=(
            "Build the demo corpus if needed (real recordings from Debian packages), train the tiny SAT "
            "tokenizer and a small class-conditioned AAR within the time budget, reconstruct held-out clips, "
            "generate clips of every class, measure them (MEL/STFT distances, FAD matrix), time next-scale "
            "against next-token generation, and write DIR/index.html. Finished stages are skipped when run "
            "again on the same folder."
        ),
    )
    p.add_argument("--out", default="demo_out", metavar="DIR", help="output folder (default demo_out)")
    p.add_argument("--minutes", type=float, default=15.0, metavar="N",
                   help="time budget of the whole run; the training stages are sized to it (default 15)")
    p.add_argument("--corpus", default="demo_corpus", metavar="DIR",
                   help="corpus folder, built there when missing (default demo_corpus)")
    p.add_argument("--device", default="auto", metavar="DEVICE", help="auto (CUDA when available), cpu or cuda (default auto)")
    p.set_defaults(func=run_demo_cmd)
