"""Side-by-side speed of our SAT and the authors' released implementation, same weights, one process.

    pip install einops   # needed by the release's quantizer
    git clone <the authors' AAR repository> /tmp/aar_release   # not part of this project
    python benchmarks/compare_release_tokenizer.py --release /tmp/aar_release [-o out.json]

The release's code is imported from the given folder at run time (never copied here). Both
models hold the same random weights (ours is loaded from the release's state dict through
our converter, so this also re-checks parity); their encode is ``audio_to_idxBl`` and their
decode ``decoder(quantizer.decode(codes))``. Reports each side's fastest of ``--repeats`` interleaved runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import types
from pathlib import Path

import torch

from aar.bench.bench_common import write_report

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aar import SAT  # noqa: E402
from aar.tokenizer import PAPER_SCALES  # noqa: E402
from aar.tokenizer.model import _load_state  # noqa: E402
from aar.tokenizer.official import infer_sat_config, official_sat_state  # noqa: E402


def interleaved(fn_a, fn_b, repeats: int) -> tuple[float, float]:
    """Time two functions alternately (A, B, A, B, ...) after a warm-up and keep each one's
    fastest run: on a shared machine the minimum is the estimate least disturbed by other load."""
    for fn in (fn_a, fn_b, fn_a, fn_b):
        fn()
    best_a = best_b = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn_a()
        t1 = time.perf_counter()
        fn_b()
        t2 = time.perf_counter()
        best_a, best_b = min(best_a, t1 - t0), min(best_b, t2 - t1)
    return best_a, best_b


def load_release_sat(release: Path, dimension: int, latent_dim: int):
    # the release imports torchaudio.transforms without using it; a stub keeps torchaudio out
    stub = types.ModuleType("torchaudio")
    stub.transforms = types.ModuleType("torchaudio.transforms")
    sys.modules.setdefault("torchaudio", stub)
    sys.modules.setdefault("torchaudio.transforms", stub.transforms)
    sys.path.insert(0, str(release))
    # load model/SAT.py on its own: model/__init__ pulls in the discriminator's extra dependencies
    spec = importlib.util.spec_from_file_location("release_sat", release / "model" / "SAT.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ReleaseSAT = module.SAT

    torch.manual_seed(0)
    model = ReleaseSAT(
        causal=False,
        multi_scale=list(PAPER_SCALES),
        phi_kernel=[9] * 6,
        dimension=dimension,
        latent_dim=latent_dim,
        n_residual_layers=1,
        lstm=2,
    )
    model.quantizer.vq.shared_codebook = False  # the attribute the release reads but never sets
    with torch.no_grad():
        for layer in model.quantizer.vq.layers:
            layer._codebook.embed.normal_()
            layer._codebook.inited.fill_(1)
    return model.eval()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--release", required=True, type=Path, help="folder of the authors' AAR repository")
    p.add_argument("--dimension", type=int, default=128)
    p.add_argument("--latent-dim", type=int, default=128)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="our encoder/decoder dtype")
    p.add_argument("-o", "--out", default="benchmarks/results/compare_release_tokenizer.json")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    theirs = load_release_sat(args.release, args.dimension, args.latent_dim)
    state = official_sat_state({"generator_state_dict": theirs.state_dict()})
    ours = SAT(infer_sat_config(state, None))
    _load_state(ours, {k: v.reshape(1) if k.endswith(".initialized") else v for k, v in state.items()}, "release")
    ours.eval()
    ours.inference_dtype = args.dtype
    rows = []
    for batch in (1, 8):
        wav = torch.randn(batch, 1, 24_000) * 0.1
        with torch.inference_mode():
            codes_theirs = theirs.audio_to_idxBl(wav)
            codes_ours = ours.encode(wav)
            same = all(torch.equal(a, b) for a, b in zip(codes_theirs, codes_ours))
            t_enc, o_enc = interleaved(
                lambda: theirs.audio_to_idxBl(wav), lambda: ours.encode(wav), args.repeats
            )
            t_dec, o_dec = interleaved(
                lambda: theirs.decoder(theirs.quantizer.decode(codes_theirs)), lambda: ours.decode(codes_ours), args.repeats
            )
        row = dict(
            batch=batch,
            codes_identical=same,
            release_encode_s=round(t_enc, 5),
            ours_encode_s=round(o_enc, 5),
            release_decode_s=round(t_dec, 5),
            ours_decode_s=round(o_dec, 5),
            encode_speedup=round(t_enc / o_enc, 2),
            decode_speedup=round(t_dec / o_dec, 2),
            encode_decode_speedup=round((t_enc + t_dec) / (o_enc + o_dec), 2),
        )
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = dict(
        benchmark="compare_release_tokenizer",
        dimension=args.dimension,
        latent_dim=args.latent_dim,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        dtype=args.dtype,
        load_average=list(os.getloadavg()),
        results=rows,
    )
    return write_report(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
