"""The whole benchmark suite behind ``aar bench``: generation (next-scale vs next-token), the
tokenizer's real-time factor and training throughput, in one process, written as JSON plus a
markdown table.

    python -m aar.bench.bench_suite [--quick] [--device cpu|cuda] [--dtypes float32 bfloat16] [-o DIR]

(``aar bench`` takes the same options.) ``--quick`` runs CI-sized models over the tiny
tokenizer with one repeat each: every field of the full report, in well under a minute.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from aar.bench import bench_generate, bench_train
from aar.bench import bench_tokenizer as tokenizer_speed
from aar.bench.bench_common import environment


@dataclass
class SuiteConfig:
    """What one run measures. ``presets``: AAR preset names (or AARConfig field dicts)."""

    device: str = "cpu"
    dtypes: list[str] = field(default_factory=lambda: ["float32"])
    presets: list = field(default_factory=lambda: ["d4", "d8", "d16"])
    batches: list[int] = field(default_factory=lambda: [1, 8])
    repeats: int = 3
    tokenizer: str = "paper-d128-lat128"
    tokenizer_seconds: list[int] = field(default_factory=lambda: [1, 10])
    tokenizer_repeats: int = 3
    train_presets: list = field(default_factory=lambda: ["d4", "d8", "d16"])
    train_batch: int = 4
    train_steps: int = 2
    sections: list[str] = field(default_factory=lambda: list(SECTIONS))

    @classmethod
    def quick(cls, **overrides) -> "SuiteConfig":
        tiny = dict(bench_generate.QUICK_MODEL)
        base = dict(presets=[tiny], repeats=1, tokenizer="tiny", tokenizer_seconds=[1], tokenizer_repeats=1,
                    train_presets=[tiny], train_batch=4, train_steps=2)
        return cls(**{**base, **overrides})


SECTIONS = ("generation", "tokenizer", "training")


def run(cfg: SuiteConfig, progress=print) -> dict:
    """Run the sections of ``cfg`` in this process; the report as a JSON-ready dict."""
    device = torch.device(cfg.device)
    began = time.perf_counter()
    report = {"benchmark": "aar bench", "config": asdict(cfg), "environment": environment(device, cfg.dtypes)}
    if "generation" in cfg.sections:
        progress("== generation: next-scale vs next-token")
        report["generation"] = bench_generate.run(cfg.presets, cfg.batches, cfg.dtypes, cfg.repeats, cfg.device,
                                                  tokenizer=cfg.tokenizer, progress=progress)
    if "tokenizer" in cfg.sections:
        progress("== tokenizer: encode / decode real-time factor")
        report["tokenizer"] = tokenizer_speed.run(cfg.tokenizer, cfg.device, seconds=tuple(cfg.tokenizer_seconds),
                                                  batches=tuple(cfg.batches), repeats=cfg.tokenizer_repeats)
    if "training" in cfg.sections:
        progress("== training: sequences/s from a token cache")
        precisions = ["fp32", "bf16"] if device.type == "cuda" else ["fp32"]
        report["training"] = bench_train.run(cfg.train_presets, ("next-scale", "next-token"), cfg.train_batch,
                                             cfg.train_steps, cfg.device, precisions, cfg.tokenizer, progress)
    report["environment"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["seconds"] = round(time.perf_counter() - began, 1)
    return report


# ---------------------------------------------------------------------- markdown
def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _fmt(x, digits=3) -> str:
    if x is None:
        return "n/a"
    return f"{x:.{digits}g}" if isinstance(x, float) and abs(x) < 1000 else f"{x:,.0f}" if isinstance(x, float) else str(x)


def markdown(report: dict, command: str | None = None) -> str:
    """The report as markdown tables (the README's benchmark section)."""
    env = report["environment"]
    out = [
        f"Device: **{env['device_name']}** ({env['device']}), {env['threads']} threads, torch {env['torch']}, "
        f"dtype {', '.join(env['dtype'])}; load average {env['load_average']} before, "
        f"{env.get('load_average_after')} after; {report['seconds']:.0f} s in all.",
        "",
    ]
    if command:
        out[:0] = [f"`{command}`", ""]
    gen = report.get("generation")
    if gen:
        out += [f"**Generation** (1 s clips, guidance on: cfg {gen['sampling']['cfg']:g}, top-k {gen['sampling']['top_k']}, "
                f"top-p {gen['sampling']['top_p']}; random weights; median of {gen['repeats']} after a warm-up; "
                "peak memory beyond the loaded model)", ""]
        rows = [[r["model"], r["params_m"], r["dtype"], r["batch"], r["arch"], r["ar_steps"], _fmt(r["seconds_per_call"]),
                 _fmt(r["latency_per_clip_s"]), _fmt(r["clips_per_s"]), _fmt(r["tokens_per_s"]),
                 _fmt(r["peak_memory_mib"], 4), _fmt(r["roofline_s"])] for r in gen["results"]]
        out += _table(["model", "params (M)", "dtype", "batch", "arch", "AR steps", "s / call", "s / clip", "clips/s",
                       "tokens/s", "peak MiB", "bound s"], rows)
        limits = "; ".join(f"{d}: read {v['read_gb_s']} GB/s, linear {v['linear_gflop_s']} GFLOP/s"
                           for d, v in gen["machine_limits"].items())
        out += ["", f"Machine limits measured in this run ({limits}); \"bound s\" is the call's roofline: per step, "
                "the larger of reading the weights and key/value cache at that bandwidth and doing its FLOPs at that rate."]
        out += ["", "Latency ratio next-token / next-scale (same size, dtype, batch):", ""]
        out += _table(["model", "dtype", "batch", "next-token ÷ next-scale"],
                      [[r["model"], r["dtype"], r["batch"], f"{r['next_token_over_next_scale']:.1f}x"] for r in gen["ratios"]])
        out.append("")
    tok = report.get("tokenizer")
    if tok:
        out += [f"**Tokenizer** `{tok['preset']}` ({tok['dtype']}; real-time factor = seconds of audio per second)", ""]
        out += _table(["audio (s)", "batch", "encode s", "encode RTF", "decode s", "decode RTF"],
                      [[r["seconds"], r["batch"], _fmt(r["encode_s"]), _fmt(r["encode_rtf"]), _fmt(r["decode_s"]),
                        _fmt(r["decode_rtf"])] for r in tok["results"]])
        out.append("")
    train = report.get("training")
    if train:
        out += [f"**Training** from a token cache (full optimiser step; median of {train['steps']} after a warm-up)", ""]
        out += _table(["model", "arch", "precision", "batch", "s / step", "sequences/s", "tokens/s"],
                      [[r["model"], r["arch"], r["precision"], r["batch"], _fmt(r["seconds_per_step"]),
                        _fmt(r["sequences_per_s"]), _fmt(r["tokens_per_s"])] for r in train["results"]])
        out.append("")
    return "\n".join(out)


def write(report: dict, out_dir: str | os.PathLike, name: str, command: str | None = None) -> tuple[Path, Path]:
    """``out_dir/name.json`` and ``out_dir/name.md``."""
    from aar.checkpoint import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = atomic_write_text(json.dumps(report, indent=2) + "\n", out_dir / f"{name}.json")
    md_path = atomic_write_text(markdown(report, command) + "\n", out_dir / f"{name}.md")
    return json_path, md_path


if __name__ == "__main__":
    from aar.cli.main import main as aar_main

    sys.exit(aar_main(["bench", *sys.argv[1:]]))
