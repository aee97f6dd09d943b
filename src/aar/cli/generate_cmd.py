"""``aar generate``: sample audio clips from an AAR model, prompted by audio, text, a class label
or nothing, and write them as WAV files with a JSON record of the settings."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import torch

from aar.checkpoint import atomic_write_text
from aar.cli.main import CLIError
from aar.transformer.precision import PRECISIONS, apply_precision, choose_precision
from aar.transformer.sampling import GUIDANCE_SCHEDULES

SETTINGS_NAME = "generation.json"


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:limit] or "prompt"


def _prompts(args) -> tuple[str, list[str]]:
    """(kind, prompts) from the mutually exclusive prompt options."""
    if args.prompt_audio:
        return "audio", args.prompt_audio
    if args.text:
        return "text", args.text
    if args.label:
        return "label", args.label
    return "none", []


def _conditioner(kind: str, model, args):
    """The conditioner for this prompt kind, checked against the model's conditioning."""
    from aar.conditioning import ClapAudioConditioner, ClapEmbedder, ClapTextConditioner, LabelConditioner

    condition = model.config.condition
    if kind in ("audio", "text"):
        option = "--prompt-audio" if kind == "audio" else "--text"
        if condition != "clap":
            raise CLIError(f"{option}: this model is conditioned on {condition!r}, not CLAP embeddings"
                           + (" (use --label)" if condition == "label" else ""))
        if not args.clap:
            raise CLIError(f"{option} needs a CLAP model: pass --clap DIR (a local copy of laion/larger_clap_general)")
        embedder = ClapEmbedder(args.clap, device=model.device)
        if embedder.dim != model.config.cond_dim:
            raise CLIError(f"--clap {args.clap}: embeddings of size {embedder.dim}, the model takes {model.config.cond_dim}")
        if kind == "audio":
            return ClapAudioConditioner(embedder, sample_rate=model.tokenizer.sample_rate)
        return ClapTextConditioner(embedder)
    if kind == "label":
        if condition != "label":
            raise CLIError(f"--label: this model is conditioned on {condition!r}, not class labels")
        return LabelConditioner(model.config.class_names)
    return None


def _check_model_path(path: Path, tokenizer: str | None) -> None:
    """What is wrong with ``--model`` when it is not one of our model folders, in the CLI's words."""
    from aar.checkpoint import CONFIG_NAME, is_folder_checkpoint, load_torch_file

    if is_folder_checkpoint(path) or not path.exists():
        return  # loading names what a folder holds, or that the path is missing
    if path.is_dir():
        raise CLIError(f"--model {path}: a folder without {CONFIG_NAME}, not a model folder")
    load_torch_file(path)  # a corrupt, empty or hostile file is named as such
    if not tokenizer:
        raise CLIError(f"--model {path}: an authors' AAR checkpoint holds no tokenizer; pass the SAT it was "
                       "trained with as --tokenizer")


def run_generate(args: argparse.Namespace) -> int:
    from aar.audio import save_audio
    from aar.cli.tokenizer_cmds import pick_device
    from aar.transformer import load_transformer

    if args.num < 1:
        raise CLIError(f"--num must be >= 1, got {args.num}")
    if args.top_k < 0 or not 0.0 <= args.top_p <= 1.0:
        raise CLIError(f"--top-k must be >= 0 and --top-p in [0, 1], got {args.top_k} and {args.top_p}")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise CLIError(f"{out}: exists and is not a folder")
    for path in args.prompt_audio or []:
        if not Path(path).is_file():
            raise CLIError(f"--prompt-audio {path}: no such file")
    device = pick_device(args.device)
    _check_model_path(Path(args.model), args.tokenizer)
    precision = choose_precision(args.dtype, device)
    print(precision.note, file=sys.stderr)
    model = apply_precision(load_transformer(args.model, tokenizer=args.tokenizer, device=device), precision)
    kind, prompts = _prompts(args)
    conditioner = _conditioner(kind, model, args)
    try:
        cond = conditioner(prompts) if conditioner is not None else None
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    seed = args.seed if args.seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())

    began = time.perf_counter()
    result = model.generate(cond, cfg=args.cfg, top_k=args.top_k, top_p=args.top_p, seed=seed, num_samples=args.num,
                            cfg_schedule=args.cfg_schedule)
    seconds = time.perf_counter() - began
    bad = [row for row, wav in enumerate(result.audio) if not bool(torch.isfinite(wav).all())]
    if bad:
        raise CLIError(f"--model {args.model}: generated {len(bad)} clip(s) with NaN or infinite samples "
                       f"(--dtype {args.dtype}); nothing written")

    out.mkdir(parents=True, exist_ok=True)
    names = [_slug(Path(p).stem if kind == "audio" else p) for p in prompts] or ["unconditional"]
    files = []
    for row, wav in enumerate(result.audio):
        p, k = divmod(row, args.num)
        path = save_audio(out / f"{p:02d}-{names[p]}-{k:02d}.wav", wav.float().cpu(), result.sample_rate)
        files.append({"file": path.name, "prompt": prompts[p] if prompts else None, "sample": k})
    settings = {
        "model": str(args.model),
        "prompt_kind": kind,
        "prompts": prompts,
        "clap": str(args.clap) if args.clap else None,
        "num_per_prompt": args.num,
        "cfg": args.cfg,
        "cfg_schedule": args.cfg_schedule,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "seed": seed,
        "device": str(device),
        "dtype": precision.name,
        "dtype_requested": args.dtype,
        "sample_rate": result.sample_rate,
        "seconds": round(seconds, 3),
        "files": files,
    }
    atomic_write_text(json.dumps(settings, indent=2) + "\n", out / SETTINGS_NAME)
    print(f"wrote {len(files)} clip(s) to {out} in {seconds:.2f} s (seed {seed}); settings in {out / SETTINGS_NAME}")
    return 0


_EPILOG = """\
examples:
  aar generate --model aar_d16/ --prompt-audio dog.wav --clap clap/ --num 4 -o out/
  aar generate --model aar_d16/ --text "rain on a tin roof" --clap clap/ -o out/
  aar generate --model demo_run/model --label music --num 8 --seed 1 -o out/
  aar generate --model AAR_d16.pth --tokenizer sat_d128/ --prompt-audio a.wav --clap clap/ -o out/

The paper's model is conditioned on CLAP audio embeddings; --text uses CLAP's text embedding,
which lives in the same space (see docs/transformer.md). Without a prompt the model samples
from its null condition (no guidance). The same --seed gives the same audio on the same device.
"""


def register(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="generate audio clips with an AAR model",
        description=(
            "Generate 1 s clips with an AAR model (next-scale prediction, one step per scale) or a next-token "
            "baseline trained with `aar train-aar --arch next-token` (one step per token)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="AAR model folder (save_pretrained / train-aar / convert-official) or an authors' .pth")
    p.add_argument("--tokenizer", help="SAT tokenizer for an authors' .pth (our folders include theirs)")
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--prompt-audio", nargs="+", metavar="FILE", help="audio prompt(s), embedded with CLAP")
    prompt.add_argument("--text", nargs="+", metavar="STR", help="text prompt(s), embedded with CLAP")
    prompt.add_argument("--label", nargs="+", metavar="NAME", help="class label(s) of a label-conditioned model")
    p.add_argument("--clap", metavar="DIR", help="local folder of the CLAP model (laion/larger_clap_general)")
    p.add_argument("--num", type=int, default=1, help="clips per prompt (default 1)")
    p.add_argument("--cfg", type=float, default=4.0, help="classifier-free guidance at the last scale (default 4; 0 = none)")
    p.add_argument("--cfg-schedule", choices=GUIDANCE_SCHEDULES, default="linear",
                   help="how guidance grows over the scales: linear, from 0 at the first scale to --cfg at the "
                        "last (the release's, default), or constant, --cfg at every scale (stronger class "
                        "identity from small models; docs/transformer.md)")
    p.add_argument("--top-k", type=int, default=200, help="sample among the k most likely codes (default 200; 1 = greedy)")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (default 0.95; 0 = off)")
    p.add_argument("--seed", type=int, help="random seed (default: drawn, and recorded in the JSON)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available)")
    p.add_argument("--dtype", choices=PRECISIONS, default="float32",
                   help="transformer precision (default float32). bfloat16 runs only where the device has "
                        "bfloat16 units (GPUs, CPUs with AVX512-BF16 or AMX), else float32 with a note; int8: "
                        "int8 weights on CPU, faster where weights dominate (batch 1), with a small error "
                        "(docs/benchmarks.md); auto: bfloat16 where fast, else float32")
    p.add_argument("-o", "--output", required=True, help="output folder for the WAV files and generation.json")
    p.set_defaults(func=run_generate)
