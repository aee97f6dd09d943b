"""Tokenizer speed: encode / decode real-time factor of a SAT on this machine.

    python benchmarks/tokenizer_speed.py [--preset paper-d128-lat128] [--device cpu] [-o out.json]

The measurement is ``aar.bench.bench_tokenizer`` (also a section of ``aar bench``); this script
runs it on its own and writes its JSON, by default to benchmarks/results/tokenizer_speed.json.
"""

from __future__ import annotations

import sys

from aar.bench.bench_tokenizer import main

if __name__ == "__main__":
    sys.exit(main())
