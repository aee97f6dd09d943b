"""Side-by-side generation speed of our transformers and the authors' release, same weights, one process.

    git clone <the authors' AAR repository> /tmp/aar_release   # not part of this project; needs einops
    python benchmarks/compare_release_generate.py --release /tmp/aar_release [--depths 16] [-o out.json]

The release's code is imported from the given folder at run time (never copied here; the
modules it imports but generation never uses, torchaudio and torchlibrosa, are stubbed). Both
sides hold the same random weights: the release's AAR and SAT are built with random codebooks
and loaded into ours through our converters, and greedy decoding (top-k 1) must give the same
audio on both sides before anything is timed.

Timed, with the release's sampling settings (guidance 4, top-k 200, top-p 0.95), float32:

- next-scale: their ``autoregressive_infer_cfg`` against our ``AAR.generate`` (16 steps);
- next-token: a loop over their blocks with their KV cache (455 one-token steps, guidance
  halves batched, their sampler, the token's codebook vector through ``word_embed``) against
  our ``NextTokenAR.generate`` -- the same blocks, so the two should take about as long.

``--dtypes float32 int8`` adds rows where ours runs in another precision (chosen by
``aar.transformer.precision``: bfloat16 runs as float32 on a CPU without bfloat16 units, and
the row says so); the release always runs float32. Every row carries the measured floor:
the matrix products of the call at this machine's measured float32 GEMM rate and read
bandwidth (``aar.bench.bench_machine``), and our time over it.

Calls alternate (release, ours, release, ours, ...) after one warm-up each; the JSON keeps
every wall time, their median and minimum, the process's CPU time per call (the figure least
disturbed by other work on a shared machine when one thread runs), and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import types
from pathlib import Path

import torch

from aar import SAT
from aar.bench.bench_common import environment, write_report
from aar.bench.bench_machine import measure, roofline
from aar.tokenizer import PAPER_SCALES
from aar.tokenizer.model import _load_state
from aar.tokenizer.official import infer_sat_config, official_sat_state
from aar.transformer import AAR, NextTokenAR
from aar.transformer import fast_linear
from aar.transformer.official import infer_aar_config, official_aar_state
from aar.transformer.precision import apply_precision, choose_precision

SAMPLING = dict(cfg=4.0, top_k=200, top_p=0.95)


def import_release(release: Path):
    """The release's ``model`` package (``build_aar``, ``SAT``) and ``modules.helpers``."""
    for name in ("torchaudio", "torchaudio.transforms", "torchlibrosa"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["torchaudio"].transforms = sys.modules["torchaudio.transforms"]
    sys.path.insert(0, str(release))
    import model as release_model  # noqa: E402  (the release's package)
    from modules import helpers  # noqa: E402

    return release_model, helpers


def build_pair(release_model, depth: int):
    """(their AAR, our AAR, our NextTokenAR), all with the same random weights."""
    torch.manual_seed(0)
    sat = release_model.SAT(causal=False, multi_scale=list(PAPER_SCALES), phi_kernel=[9] * 6, dimension=128,
                            latent_dim=128, n_residual_layers=1, lstm=2)
    sat.quantizer.vq.shared_codebook = False  # the attribute the release reads but never sets
    with torch.no_grad():
        for layer in sat.quantizer.vq.layers:
            layer._codebook.embed.normal_()
            layer._codebook.inited.fill_(1)
    theirs = release_model.build_aar(vae=sat.eval(), depth=depth, patch_nums=list(PAPER_SCALES), cos_attn=True).eval()

    state = official_sat_state({"generator_state_dict": sat.state_dict()})
    our_sat = SAT(infer_sat_config(state, None))
    _load_state(our_sat, {k: v.reshape(1) if k.endswith(".initialized") else v for k, v in state.items()}, "release")
    weights, derived = official_aar_state({"model_state_dict": theirs.state_dict()})
    config = infer_aar_config(weights, derived)
    ours = AAR(config, our_sat.eval()).eval()
    ours.load_state_dict(weights)
    baseline = NextTokenAR(config, our_sat).eval()
    baseline.load_state_dict(weights)
    return theirs, ours, baseline


def release_next_token(theirs, helpers, cond: torch.Tensor, seed: int) -> torch.Tensor:
    """455 one-token steps through the release's blocks and KV cache; returns the codes ``[B x L]``."""
    batch, scales = cond.shape[0], list(theirs.patch_nums)
    levels = [k for k, s in enumerate(scales) for _ in range(s)]
    books = [layer._codebook.embed for layer in theirs.vae_quant_proxy[0].vq.layers]
    rng = theirs.rng.manual_seed(seed)
    cond_bd = theirs.class_emb(torch.cat((cond, theirs.uncond_embedding.expand_as(cond))))
    lvl_pos = theirs.lvl_embed(theirs.lvl_1L) + theirs.pos_1LC
    x = cond_bd[:, None] + theirs.pos_start + lvl_pos[:, :1]
    codes = []
    for b in theirs.blocks:
        b.attn.kv_caching(True)
    for i, k in enumerate(levels):
        for b in theirs.blocks:
            x = b(x=x, cond_BD=cond_bd, attn_bias=None)
        logits = theirs.get_logits(x, cond_bd)
        t = SAMPLING["cfg"] * k / (len(scales) - 1)
        logits = (1 + t) * logits[:batch] - t * logits[batch:]
        idx = helpers.sample_with_top_k_top_p_(logits, rng=rng, top_k=SAMPLING["top_k"], top_p=SAMPLING["top_p"])[:, :, 0]
        codes.append(idx)
        if i + 1 < len(levels):
            x = (theirs.word_embed(books[k][idx]) + lvl_pos[:, i + 1 : i + 2]).repeat(2, 1, 1)
    for b in theirs.blocks:
        b.attn.kv_caching(False)
    return torch.cat(codes, 1)


def interleaved(fns: dict, repeats: int) -> dict[str, dict[str, list[float]]]:
    """Alternate the calls after one warm-up each; per name, every wall time and every CPU time
    of this process (with one thread, the CPU time is what a call costs whatever else the
    machine runs; with more, it also counts the threads' waiting)."""
    for fn in fns.values():
        fn(0)
    times = {name: {"wall": [], "cpu": []} for name in fns}
    for r in range(repeats):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn(r + 1)
            times[name]["cpu"].append(time.process_time() - cpu)
            times[name]["wall"].append(time.perf_counter() - wall)
    return times


def summary(times: dict[str, list[float]]) -> dict:
    wall, cpu = times["wall"], times["cpu"]
    return {"median_s": round(statistics.median(wall), 3), "min_s": round(min(wall), 3), "times_s": [round(t, 3) for t in wall],
            "cpu_median_s": round(statistics.median(cpu), 3), "cpu_times_s": [round(t, 3) for t in cpu]}


def comparison(arch: str, depth: int, batch: int, steps: int, times: dict, **extra) -> dict:
    rel, our = summary(times["release"]), summary(times["ours"])
    return dict(arch=arch, depth=depth, batch=batch, steps=steps, **extra, release=rel, ours=our,
                speedup_median=round(rel["median_s"] / our["median_s"], 2),
                speedup_min=round(rel["min_s"] / our["min_s"], 2),
                speedup_cpu_time=round(rel["cpu_median_s"] / our["cpu_median_s"], 2))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--release", required=True, type=Path, help="folder of the authors' AAR repository")
    p.add_argument("--depths", nargs="*", type=int, default=[16], help="depths at which to time next-scale generation")
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--next-token-depths", nargs="*", type=int, default=[8],
                   help="depths at which to time the one-token-per-step loops (batch 1)")
    p.add_argument("--dtypes", nargs="+", default=["float32"], choices=["float32", "bfloat16", "int8"],
                   help="precisions of ours for the next-scale rows (the release runs float32)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-o", "--out", default="benchmarks/results/compare_release_generate.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    release_model, helpers = import_release(args.release)
    precisions = {name: choose_precision(name, "cpu") for name in args.dtypes}
    for precision in precisions.values():
        print(precision.note, flush=True)
    limits = measure(torch.device("cpu"), "float32")
    print(f"machine limits (float32): {json.dumps(limits)}", flush=True)
    load_before = os.getloadavg()
    rows = []
    for depth in sorted(set(args.depths) | set(args.next_token_depths)):
        theirs, ours, baseline = build_pair(release_model, depth)  # outside inference mode: ordinary parameters
        with torch.inference_mode():
            cond = torch.randn(2, 512)
            same = torch.allclose(
                theirs.autoregressive_infer_cfg(2, cond, g_seed=0, cfg=4.0, top_k=1, top_p=0.0),
                ours.generate(cond, cfg=4.0, top_k=1).audio, atol=1e-4,
            )
            print(f"depth {depth}: greedy audio identical to the release: {same}", flush=True)
            if depth in args.depths:
                for asked, precision in precisions.items():
                    apply_precision(ours, precision)
                    for batch in args.batches:
                        cond = torch.randn(batch, 512)
                        times = interleaved({
                            "release": lambda s: theirs.autoregressive_infer_cfg(batch, cond, g_seed=s, **SAMPLING),
                            "ours": lambda s: ours.generate(cond, seed=s, **SAMPLING),
                        }, args.repeats)
                        floor = roofline(ours, "next-scale", batch, True, limits, "float32")["bound_s"]
                        rows.append(comparison("next-scale", depth, batch, ours.num_steps, times, greedy_identical=same,
                                               dtype=precision.name, dtype_requested=asked, floor_s=floor))
                        rows[-1]["ours_over_floor"] = round(rows[-1]["ours"]["median_s"] / floor, 2)
                        rows[-1]["release_over_floor"] = round(rows[-1]["release"]["median_s"] / floor, 2)
                        print(json.dumps(rows[-1]), flush=True)
                apply_precision(ours, choose_precision("float32", "cpu"))
            if depth in args.next_token_depths:
                cond = torch.randn(1, 512)
                times = interleaved({
                    "release": lambda s: release_next_token(theirs, helpers, cond, s),
                    "ours": lambda s: baseline.generate(cond, seed=s, **SAMPLING),
                }, max(1, args.repeats - 1))
                rows.append(comparison("next-token", depth, 1, baseline.num_steps, times))
                print(json.dumps(rows[-1]), flush=True)
            del theirs, ours, baseline
    result = dict(benchmark="compare_release_generate", sampling=SAMPLING, dtype="float32",
                  environment=environment(torch.device("cpu"), "float32"),
                  linear_kernel_policy=fast_linear.policy(),
                  precision_notes={name: p.note for name, p in precisions.items()},
                  machine_limits_float32=limits,
                  load_average_before=[round(x, 2) for x in load_before],
                  load_average_after=[round(x, 2) for x in os.getloadavg()], results=rows)
    return write_report(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
