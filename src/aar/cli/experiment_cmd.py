"""``aar experiment NAME``: run one of the paper's comparisons and write a table + JSON."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tqdm.auto import tqdm


def register(subparsers):
    from aar.train.config import preset_names

    p = subparsers.add_parser(
        "experiment",
        help="run an ablation (schedule, phi, discriminator, window, guidance) and write a results table",
        description=(
            "Train every variant of one ablation for the same wall-clock budget on the same data, evaluate "
            "each on the held-out clips (MEL/STFT distances, FAD with the mel backbone), and write "
            "OUT/results.md and OUT/results.json. The guidance experiment instead sweeps the guidance "
            "scale of a trained class-conditioned AAR (--aar-model). Finished variants are reused on a rerun."
        ),
    )
    p.add_argument("name", help=f"packaged experiment ({', '.join(preset_names('experiments'))}) or a YAML file")
    p.add_argument("--data", required=True,
                   help="training audio folder, or a corpus with manifest.csv (split by its train/heldout column)")
    p.add_argument("--eval-data", help="held-out audio folder (required unless --data has a manifest.csv)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--minutes-per-variant", type=float, default=2.0,
                   help="training wall time of each tokenizer variant (default 2)")
    p.add_argument("--aar-model", help="trained class-conditioned AAR folder (guidance experiment)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from aar.cli.main import CLIError
    from aar.experiments import ExperimentSpec, run_experiment
    from aar.experiments.runner import TABLE

    _setup_logging()
    if args.minutes_per_variant <= 0:
        raise CLIError(f"--minutes-per-variant must be positive, got {args.minutes_per_variant}")
    try:
        spec = ExperimentSpec.load(args.name)
        results = run_experiment(spec, args.data, args.out, args.minutes_per_variant, args.eval_data,
                                 args.aar_model, args.device)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print(f"{results['title']} ({results['wall_s']:.0f} s)")
    print((Path(args.out) / TABLE).read_text())
    return 0


class _TqdmHandler(logging.Handler):
    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def _setup_logging():
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("aar.experiments", "aar.train", "aar.data"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
