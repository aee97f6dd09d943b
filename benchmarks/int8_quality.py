"""What int8 weights cost in accuracy: a d16 AAR in float32 against the same model with int8 weights
(``aar generate --dtype int8``), teacher-forced and generating.

    python benchmarks/int8_quality.py [--depth 16] [--batch 4] [--seeds 0 1 2] [--threads 2]
                                      [-o benchmarks/results/int8_quality.json]

Random weights with the release's initialisation (``AAR.init_weights``) plus Gaussian noise of
std ``--noise`` on every parameter (the release's initialisation leaves the AdaLN gates near
zero, so its logits are nearly input-free; the noise makes every layer matter, as training
does), over the paper's tokenizer configuration with random codebooks. Per seed (weights,
conditions and codes drawn from it):

- teacher-forced logits of random codes: relative error ``|int8 - fp32| / |fp32|`` (Frobenius),
  mean KL(fp32 || int8) of the per-token distributions (nats), and the share of tokens whose
  most likely code is the same (top-1 agreement);
- greedy generation (top-k 1, guidance 4): the share of codes that come out the same, per scale
  (the first differing code changes everything after it, so later scales agree less).

Speed is measured beside the release by ``benchmarks/compare_release_generate.py --dtypes
float32 int8``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import torch

from aar.bench.bench_common import environment
from aar.bench.bench_generate import random_sat
from aar.transformer import AAR, AARConfig
from aar.transformer.precision import apply_precision, choose_precision


def build(depth: int, noise: float, seed: int) -> AAR:
    sat = random_sat("paper-d128-lat128")
    torch.manual_seed(seed)
    model = AAR(AARConfig.preset(f"d{depth}"), sat)
    model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * noise)
    return model.eval()


@torch.inference_mode()
def compare(model: AAR, batch: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(batch, model.config.cond_dim, generator=g)
    codes = [torch.randint(0, model.config.vocab_size, (batch, s), generator=g) for s in model.scales]
    fp32 = choose_precision("float32", "cpu")
    int8 = choose_precision("int8", "cpu")
    apply_precision(model, fp32)
    ref_logits = model(cond, codes)
    ref_codes = model.generate(cond, cfg=4.0, top_k=1).codes
    apply_precision(model, int8)
    q_logits = model(cond, codes)
    q_codes = model.generate(cond, cfg=4.0, top_k=1).codes
    apply_precision(model, fp32)
    log_p, log_q = ref_logits.log_softmax(-1), q_logits.log_softmax(-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1).mean()
    per_scale = [round((a == b).float().mean().item(), 4) for a, b in zip(ref_codes, q_codes)]
    return {
        "seed": seed,
        "logits_relative_error": round(((q_logits - ref_logits).norm() / ref_logits.norm()).item(), 5),
        "kl_fp32_int8_nats": round(kl.item(), 6),
        "top1_agreement": round((q_logits.argmax(-1) == ref_logits.argmax(-1)).float().mean().item(), 4),
        "logit_std": round(ref_logits.std().item(), 4),
        "greedy_codes_agreement": round(sum(int((a == b).sum()) for a, b in zip(ref_codes, q_codes))
                                        / sum(a.numel() for a in ref_codes), 4),
        "greedy_agreement_per_scale": per_scale,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depth", type=int, default=16)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--noise", type=float, default=0.02)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-o", "--out", default="benchmarks/results/int8_quality.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if choose_precision("int8", "cpu").name != "int8":
        print("this PyTorch has no int8 linear for this CPU; nothing to measure", file=sys.stderr)
        return 1
    load_before = os.getloadavg()
    rows = []
    for seed in args.seeds:
        rows.append(compare(build(args.depth, args.noise, seed), args.batch, seed))
        print(json.dumps(rows[-1]), flush=True)
    keys = ("logits_relative_error", "kl_fp32_int8_nats", "top1_agreement", "greedy_codes_agreement")
    report = {
        "benchmark": "int8_quality",
        "depth": args.depth, "batch": args.batch, "noise": args.noise,
        "environment": environment(torch.device("cpu"), ["float32", "int8"]),
        "load_average_before": [round(x, 2) for x in load_before],
        "summary": {k: {"mean": round(statistics.mean(r[k] for r in rows), 5),
                        "min": min(r[k] for r in rows), "max": max(r[k] for r in rows)} for k in keys},
        "results": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["summary"]))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
