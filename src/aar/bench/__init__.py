"""The benchmark suite behind ``aar bench`` (an application layer, beside ``aar.cli``).

- ``bench_suite``: runs the sections below in one process and writes JSON plus a markdown table;
- ``bench_generate``: next-scale (AAR) against next-token generation at equal size;
- ``bench_tokenizer``: the tokenizer's encode / decode real-time factor;
- ``bench_train``: training throughput from a synthetic token cache;
- ``bench_machine``: this machine's measured bandwidth and matrix throughput (the roofline);
- ``bench_common``: timing, peak memory and the environment record they share.

Each module but ``bench_common`` and ``bench_machine`` also runs on its own:
``python -m aar.bench.bench_generate --help``. They ship in the wheel, so ``aar bench`` works
from an installed package as well as from a source checkout.
"""
