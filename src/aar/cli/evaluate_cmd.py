"""``aar evaluate``: the paper's metrics between a reference folder and a generated folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

METRIC_LABELS = {
    "fad": "FAD",
    "mel_distance": "MEL distance",
    "stft_distance": "STFT distance",
    "isc_mean": "ISc",
    "kl_softmax": "KL (softmax)",
    "kl_sigmoid": "KL (sigmoid)",
}


def register(subparsers) -> None:
    from aar.metrics.backbones import BACKBONES, WEIGHTS_ENV
    from aar.metrics.evaluate import METRICS

    env = ", ".join(f"{name}: {var}" for name, var in WEIGHTS_ENV.items())
    parser = subparsers.add_parser(
        "evaluate",
        help="FAD, MEL/STFT distances, ISc and KL between two folders of audio",
        description=(
            "Compare generated clips with reference clips. Paired metrics (mel, stft, kl) match files by "
            "name (relative path without extension); fad and isc use the whole sets. The reference set's "
            "statistics are cached, so it is embedded once."
        ),
        epilog=f"Weights can also come from environment variables ({env}). See docs/evaluation.md.",
    )
    parser.add_argument("--reference", required=True, type=Path, help="folder of reference (ground-truth) clips")
    parser.add_argument("--generated", required=True, type=Path, help="folder of generated or reconstructed clips")
    parser.add_argument(
        "--backbone",
        choices=list(BACKBONES),
        default="mel",
        help="embedding network for FAD (and classifier for isc/kl: panns); default 'mel', weight-free and "
        "not comparable with published FADs",
    )
    parser.add_argument("--weights", type=Path, help="local weight file (vggish, panns) or folder (clap)")
    parser.add_argument(
        "--metrics",
        nargs="+",
        choices=list(METRICS),
        help="metrics to compute (default: all the backbone supports; isc and kl need --backbone panns)",
    )
    parser.add_argument("-o", "--output", type=Path, help="write the full report (per-pair values included) as JSON")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per forward pass (default 16)")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument(
        "--cache-dir", type=Path, help="where reference statistics are cached (default ~/.cache/aar/evaluate)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run)


def format_table(report: dict) -> str:
    """The report's metrics as an aligned text table."""
    counts = report["counts"]
    backbone = report["backbone"]["name"]
    rows = [("metric", "value", "over")]
    for key, value in report["metrics"].items():
        if key == "isc_std":
            continue
        label = METRIC_LABELS[key]
        if key == "fad":
            label = f"FAD ({backbone})"
            over = f"{counts['reference_embeddings']} / {counts['generated_embeddings']} embeddings"
        elif key == "isc_mean":
            label = f"ISc ({backbone})"
            value_text = f"{value:.4f} ± {report['metrics']['isc_std']:.4f}"
            rows.append((label, value_text, f"{counts['generated_embeddings']} clips, {counts['isc_splits']} splits"))
            continue
        elif key.startswith("kl_"):
            over = f"{counts['kl_pairs']} pairs" + ("  (paper-style KL)" if key == "kl_softmax" else "")
        else:
            over = f"{counts['spectral_pairs']} pairs"
        rows.append((label, f"{value:.4f}", over))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]}".rstrip() for row in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import torch

    from aar.checkpoint import atomic_write_text
    from aar.cli.main import CLIError
    from aar.metrics.backbones import load_backbone
    from aar.metrics.cache import default_cache_dir
    from aar.metrics.errors import MetricError
    from aar.metrics.evaluate import evaluate_folders

    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise CLIError(f"--device {device}: CUDA is not available on this machine")
    except RuntimeError:
        raise CLIError(f"--device {device}: not a torch device (e.g. cpu, cuda, cuda:1)") from None
    try:
        backbone = load_backbone(args.backbone, args.weights, device)
        report = evaluate_folders(
            args.reference,
            args.generated,
            backbone,
            metrics=args.metrics,
            batch_size=args.batch_size,
            cache_dir=args.cache_dir or default_cache_dir(),
            progress=not args.no_progress,
        )
    except MetricError as exc:
        raise CLIError(str(exc)) from None
    print(format_table(report))
    for entry in report["skipped"]:
        print(f"skipped: {entry['reason']}")
    for note in report["notes"]:
        print(f"note: {note}")
    if args.output:
        atomic_write_text(json.dumps(report, indent=2) + "\n", args.output)
        print(f"report written to {args.output}")
    return 0
