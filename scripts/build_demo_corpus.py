#!/usr/bin/env python3
"""Build the demo corpus of real recordings from Debian packages (see docs/demo_corpus.md).

    python scripts/build_demo_corpus.py --out demo_corpus

Fetches the packages with apt-get (``apt-get update`` first when running as root), cuts
their recordings into one-second 24 kHz mono clips of three classes and writes
``OUT/manifest.csv``. Rerunning on a complete folder does nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from aar.demo.corpus import DemoCorpusError, build_corpus
from aar.demo.debian import PackageError, default_cache_dir
from aar.demo.formats import FormatError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("demo_corpus"), help="corpus folder (default: demo_corpus)")
    parser.add_argument("--clips-per-class", type=int, default=120, help="clips of each class (default: 120)")
    parser.add_argument(
        "--heldout-fraction", type=float, default=0.2, help="share of each class held out for evaluation (default: 0.2)"
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help=f"where packages are unpacked (default: {default_cache_dir()})"
    )
    args = parser.parse_args(argv)
    began = time.perf_counter()
    try:
        summary = build_corpus(args.out, args.clips_per_class, args.heldout_fraction, args.cache)
    except (DemoCorpusError, PackageError, FormatError) as exc:
        print(f"build_demo_corpus: error: {exc}", file=sys.stderr)
        return 1
    state = "built" if summary.built else "already complete, reused"
    print(f"{summary.out_dir}: {state} in {time.perf_counter() - began:.1f} s, {summary.total_bytes / 1e6:.1f} MB")
    for label, counts in summary.counts.items():
        print(f"  {label:<12} train {counts['train']:>4}  heldout {counts['heldout']:>4}")
    for name, version in summary.packages.items():
        print(f"  package {name} {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
