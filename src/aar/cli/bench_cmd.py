"""``aar bench``: next-scale vs next-token generation, tokenizer real-time factor and training
throughput measured in one process on this machine, written as JSON and a markdown table.

The measurements are the ``aar.bench`` package (``aar.bench.bench_suite`` and the modules it
runs), installed with aar; this command runs them.
"""

from __future__ import annotations

import argparse

from aar.cli.main import CLIError

_OPTIONS = ("device", "dtypes", "presets", "batches", "repeats", "threads", "sections", "train_presets",
            "train_batch", "train_steps")


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run (the options that were given)."""
    parts = ["aar bench"] + (["--quick"] if args.quick else [])
    for name in _OPTIONS:
        value = getattr(args, name)
        if value is not None:
            flag = "--" + name.replace("_", "-")
            parts.append(f"{flag} {' '.join(map(str, value)) if isinstance(value, list) else value}")
    return " ".join(parts)


def run_bench(args: argparse.Namespace) -> int:
    import torch

    from aar.cli.tokenizer_cmds import pick_device

    for name in ("repeats", "threads", "train_batch", "train_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.batches is not None and min(args.batches) < 1:
        raise CLIError(f"--batches must be >= 1, got {args.batches}")
    device = pick_device(args.device or "cpu")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from aar.bench import bench_suite as suite

    given = {name: getattr(args, name) for name in _OPTIONS if name != "threads" and getattr(args, name) is not None}
    given["device"] = str(device)
    cfg = suite.SuiteConfig.quick(**given) if args.quick else suite.SuiteConfig(**given)
    command = _command(args)
    print(f"{command}: {', '.join(cfg.sections)} on {device}, {torch.get_num_threads()} threads", flush=True)
    report = suite.run(cfg)
    report["command"] = command
    name = args.name or f"bench-{device.type}{'-quick' if args.quick else ''}"
    json_path, md_path = suite.write(report, args.out, name, command)
    print(suite.markdown(report, command))
    print(f"wrote {json_path} and {md_path}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark next-scale vs next-token generation, the tokenizer and training on this machine",
        description=(
            "Measure, in one process: generation latency per clip, clips/s, AR steps, tokens/s and peak memory of the "
            "next-scale AAR and the next-token baseline at equal size (random weights, guidance on, median of "
            "--repeats after a warm-up); the tokenizer's encode/decode real-time factor; training throughput from a "
            "token cache. Writes OUT/NAME.json and OUT/NAME.md."
        ),
    )
    p.add_argument("--quick", action="store_true", help="CI-sized models over the tiny tokenizer, one repeat (< 1 minute)")
    p.add_argument("--device", help="cpu (default), cuda or cuda:N; timings synchronise CUDA")
    p.add_argument("--dtypes", nargs="+", choices=["float32", "bfloat16", "int8"],
                   help="transformer precisions (default float32; bfloat16 runs as float32 where the device has "
                        "no bfloat16 units, and the report says so)")
    p.add_argument("--presets", nargs="+", choices=["d4", "d8", "d16"], help="model sizes to generate with (default all)")
    p.add_argument("--batches", nargs="+", type=int, help="clips per generate call, also tokenizer batches (default 1 8)")
    p.add_argument("--repeats", type=int, help="timed calls per configuration after the warm-up (default 3)")
    p.add_argument("--threads", type=int, help="intra-op CPU threads (default: torch's)")
    p.add_argument("--sections", nargs="+", choices=["generation", "tokenizer", "training"],
                   help="what to measure (default all)")
    p.add_argument("--train-presets", nargs="+", choices=["d4", "d8", "d16"], help="model sizes to train (default all)")
    p.add_argument("--train-batch", type=int, help="sequences per training step (default 4)")
    p.add_argument("--train-steps", type=int, help="timed training steps after the warm-up (default 2)")
    p.add_argument("-o", "--out", default="bench", help="output folder (default ./bench)")
    p.add_argument("--name", help="file name stem (default bench-<device>[-quick])")
    p.set_defaults(func=run_bench)
