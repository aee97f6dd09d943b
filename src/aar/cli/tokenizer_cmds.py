"""Tokenizer commands: ``aar reconstruct``, ``aar encode``, ``aar decode``, ``aar convert-official``.

Audio of any format, sample rate, channel count and length is read with
:func:`aar.audio.load_audio` (24 kHz mono), cut into the tokenizer's 1 s windows (the last one
zero-padded), processed in batches of windows and trimmed back to its full length.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from tqdm import tqdm

from aar.audio import AudioError, list_audio_files, load_audio, save_audio
from aar.checkpoint import CheckpointError, atomic_path, is_folder_checkpoint, load_torch_file
from aar.cli.main import CLIError
from aar.tokenizer import SAT
from aar.transformer.precision import CODEC_PRECISIONS, choose_precision

CODES_FORMAT = "aar-sat-codes/1"
DEFAULT_BATCH = 16
INFERENCE_DTYPES = tuple(str(dtype).removeprefix("torch.") for dtype in SAT.INFERENCE_DTYPES)


# ---------------------------------------------------------------- shared helpers
def pick_device(name: str | None) -> torch.device:
    """``--device`` -> a torch device; default CUDA when available, else CPU."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CLIError(f"--device: unknown device {name!r} (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise CLIError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def load_tokenizer(path: str, device: torch.device, dtype: str = "float32") -> SAT:
    """A SAT from our folder format or an authors' released ``.pth``, its encoder and decoder
    running in ``dtype`` (:attr:`SAT.inference_dtype`) where the device runs it fast, else in
    float32 with one line on standard error saying so; errors name ``path``."""
    precision = choose_precision(dtype, device, CODEC_PRECISIONS)
    if precision.name != dtype:
        print(precision.note, file=sys.stderr)
    return SAT.from_pretrained(path, device=device, inference_dtype=precision.name)


def check_num_scales(k: int | None, sat: SAT, available: int | None = None) -> int:
    """``--scales K`` -> K, checked against the tokenizer (and the codes at hand)."""
    limit = len(sat.scales) if available is None else available
    if k is None:
        return limit
    if not 1 <= k <= limit:
        raise CLIError(f"--scales must be between 1 and {limit}, got {k}")
    return k


def check_audio_suffix(path: Path) -> Path:
    if path.suffix.lstrip(".").upper() not in sf.available_formats():
        raise CLIError(f"{path}: unsupported output format {path.suffix!r} (use .wav, .flac, .ogg or .mp3)")
    return path


def to_windows(wav: torch.Tensor, window: int) -> torch.Tensor:
    """``Tensor[1 x T]`` -> ``Tensor[n x 1 x window]`` (the last window zero-padded)."""
    n = max(1, -(-wav.shape[-1] // window))
    return F.pad(wav, (0, n * window - wav.shape[-1])).view(n, 1, window)


def map_batches(fn: Callable, items: torch.Tensor, batch: int, device: torch.device, desc: str) -> list:
    """Apply ``fn`` to ``items`` (first dim = windows) in batches on ``device``; results come back on CPU."""
    chunks = items.split(batch)
    out = []
    for chunk in tqdm(chunks, desc=desc, unit="batch", leave=False, disable=len(chunks) < 2):
        result = fn(chunk.to(device))
        out.append([r.cpu() for r in result] if isinstance(result, list) else result.cpu())
    return out


def _existing_file(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, not an audio file")
    return p


def _add_common(p: argparse.ArgumentParser, scales_help: str | None = None) -> None:
    p.add_argument("--tokenizer", required=True, metavar="PATH",
                   help="SAT tokenizer: a folder written by save_pretrained/convert-official, or an authors' .pth")
    if scales_help:
        p.add_argument("--scales", type=int, metavar="K", help=scales_help)
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, metavar="N",
                   help=f"1 s windows per forward pass (default {DEFAULT_BATCH})")
    p.add_argument("--device", metavar="DEV", help="cpu, cuda or cuda:N (default: cuda if available, else cpu)")
    p.add_argument("--dtype", choices=INFERENCE_DTYPES, default="float32",
                   help="precision of the encoder and decoder (default float32, which matches the release to 1e-4; "
                        "bfloat16 is faster on GPUs and recent CPUs, about 0.5%% relative error; "
                        "float16 for GPUs; the quantizer always runs in float32)")


def _check_batch(n: int) -> int:
    if n < 1:
        raise CLIError(f"--batch-size must be at least 1, got {n}")
    return n


# ---------------------------------------------------------------- reconstruct
@dataclass
class _Job:
    src: Path
    dst: Path


def plan_reconstruct(inputs: list[str], output: str | None) -> list[_Job]:
    """Input paths (files or folders) and ``-o`` -> (input, output) pairs.

    One input file: ``-o`` is the output file (or an existing folder to write into). Several
    inputs or a folder: ``-o`` is a folder (folder inputs keep their sub-folders). Without
    ``-o`` each output is written beside its input as ``<stem>_recon.wav``.
    """
    out = Path(output) if output else None
    sources: list[tuple[Path, Path | None]] = []  # (file, folder it came from)
    for name in inputs:
        p = Path(name)
        if p.is_dir():
            if out is None:
                raise CLIError(f"{p}: reconstructing a folder needs -o OUT_DIR")
            files = list_audio_files(p)
            if not files:
                raise CLIError(f"{p}: no audio files found")
            sources += [(f, p) for f in files]
        else:
            sources.append((_existing_file(name), None))

    single = len(sources) == 1 and sources[0][1] is None
    if out is not None and not single and out.exists() and not out.is_dir():
        raise CLIError(f"{out}: -o must be a folder when reconstructing several inputs")
    jobs = []
    for src, root in sources:
        name = f"{src.stem}_recon.wav"
        if out is None:
            dst = src.with_name(name)
        elif single and not (out.is_dir() or output.endswith(("/", "\\"))):
            dst = check_audio_suffix(out)
        elif root is not None:
            dst = out / src.relative_to(root).with_name(name)
        else:
            dst = out / name
        if dst.resolve() == src.resolve():
            raise CLIError(f"{src}: the output would overwrite the input")
        jobs.append(_Job(src, dst))
    seen: dict[Path, Path] = {}
    for job in jobs:
        key = job.dst.resolve()
        if key in seen:
            raise CLIError(f"{seen[key]} and {job.src} would both be written to {job.dst}")
        seen[key] = job.src
    return jobs


def run_reconstruct(args: argparse.Namespace) -> int:
    jobs = plan_reconstruct(args.inputs, args.output)
    batch = _check_batch(args.batch_size)
    device = pick_device(args.device)
    sat = load_tokenizer(args.tokenizer, device, args.dtype)
    k = check_num_scales(args.scales, sat)

    def codec(windows: torch.Tensor) -> torch.Tensor:
        return sat.decode(sat.encode(windows, num_scales=k))

    pending: list[tuple[_Job, torch.Tensor, int]] = []
    failed = 0
    bar = tqdm(total=len(jobs), desc="reconstruct", unit="file", disable=len(jobs) < 2)

    def flush() -> None:
        windows = torch.cat([w for _, w, _ in pending])
        out = torch.cat(map_batches(codec, windows, batch, device, "windows"))
        for (job, w, length), piece in zip(pending, out.split([w.shape[0] for _, w, _ in pending])):
            save_audio(job.dst, piece.reshape(1, -1)[:, :length], sat.sample_rate)
        bar.update(len(pending))
        pending.clear()

    with torch.inference_mode():
        for job in jobs:
            try:
                wav = load_audio(job.src, sat.sample_rate)
            except AudioError as exc:
                tqdm.write(f"aar reconstruct: error: {exc}", file=sys.stderr)
                failed += 1
                bar.update(1)
                continue
            pending.append((job, to_windows(wav, sat.window_samples), wav.shape[-1]))
            if sum(w.shape[0] for _, w, _ in pending) >= batch:
                flush()
        if pending:
            flush()
    bar.close()
    done = len(jobs) - failed
    if len(jobs) == 1:
        if done:
            print(f"wrote {jobs[0].dst}")
    else:
        print(f"reconstructed {done} of {len(jobs)} files" + (f" ({failed} failed)" if failed else ""))
    return 1 if failed else 0


# ---------------------------------------------------------------- encode / decode
def run_encode(args: argparse.Namespace) -> int:
    src = _existing_file(args.input)
    batch = _check_batch(args.batch_size)
    device = pick_device(args.device)
    sat = load_tokenizer(args.tokenizer, device, args.dtype)
    with torch.inference_mode():
        wav = load_audio(src, sat.sample_rate)
        windows = to_windows(wav, sat.window_samples)
        parts = map_batches(sat.encode, windows, batch, device, "encode")
    codes = [torch.cat([p[k] for p in parts]) for k in range(len(sat.scales))]
    save_codes(args.output, codes, sat, wav.shape[-1])
    print(f"wrote {args.output} ({windows.shape[0]} window(s) x {sum(sat.scales)} tokens)")
    return 0


def save_codes(path: str | Path, codes: list[torch.Tensor], sat: SAT, length: int) -> Path:
    """Write per-scale codes ``LongTensor[n_windows x s_k]`` and what decoding needs to an ``.npz``."""
    dtype = np.int16 if sat.config.codebook_size <= np.iinfo(np.int16).max + 1 else np.int32
    arrays = {f"codes_{k}": c.numpy().astype(dtype) for k, c in enumerate(codes)}
    meta = dict(
        format=np.array(CODES_FORMAT),
        scales=np.array(sat.scales, dtype=np.int64),
        num_windows=np.array(codes[0].shape[0]),
        length=np.array(length),
        sample_rate=np.array(sat.sample_rate),
        codebook_size=np.array(sat.config.codebook_size),
    )
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **meta, **arrays)
    return path


def load_codes(path: str | Path, sat: SAT) -> tuple[list[torch.Tensor], int]:
    """Read an ``.npz`` written by :func:`save_codes`, checked against ``sat``.

    Returns (codes: ``LongTensor[n_windows x s_k]`` per stored scale, length in samples)."""
    path = Path(path)
    if not path.exists():
        raise CLIError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise CLIError(f"{path}: not a codes file written by 'aar encode' ({type(exc).__name__})") from None
    if _scalar(data.get("format"), str) != CODES_FORMAT:
        raise CLIError(f"{path}: not a codes file written by 'aar encode' (format {CODES_FORMAT} expected)")
    missing = [k for k in ("scales", "sample_rate", "num_windows", "length") if k not in data]
    if missing:
        raise CLIError(f"{path}: incomplete codes file (missing {', '.join(missing)})")
    scales = data["scales"].tolist() if data["scales"].dtype.kind in "iu" and data["scales"].ndim == 1 else None
    if scales != sat.scales:
        raise CLIError(f"{path}: encoded with scales {data['scales'].tolist()}, the tokenizer has {sat.scales}")
    sr, n, length = (_scalar(data[k], int) for k in ("sample_rate", "num_windows", "length"))
    if None in (sr, n, length):
        raise CLIError(f"{path}: sample_rate, num_windows and length must be single integers")
    if sr != sat.sample_rate:
        raise CLIError(f"{path}: encoded at {sr} Hz, the tokenizer runs at {sat.sample_rate} Hz")
    if n < 1 or not (n - 1) * sat.window_samples < length <= n * sat.window_samples:
        raise CLIError(f"{path}: length {length} does not fit {n} window(s) of {sat.window_samples} samples")
    codes = []
    for k, size in enumerate(scales):
        c = data.get(f"codes_{k}")
        if c is None:
            break
        if c.dtype.kind not in "iu":
            raise CLIError(f"{path}: codes_{k} holds {c.dtype} values, not integer code indices")
        if c.shape != (n, size):
            raise CLIError(f"{path}: codes_{k} has shape {c.shape}, expected {(n, size)}")
        if c.size and (c.min() < 0 or c.max() >= sat.config.codebook_size):
            raise CLIError(f"{path}: codes_{k} holds indices outside [0, {sat.config.codebook_size})")
        codes.append(torch.from_numpy(c.astype(np.int64)))
    if not codes:
        raise CLIError(f"{path}: holds no code arrays")
    return codes, length


def _scalar(value, kind: type):
    """A 0-d array of a codes file as ``kind`` (``int`` or ``str``), or None if it is not one."""
    if not isinstance(value, np.ndarray) or value.ndim != 0:
        return None
    if kind is int:
        return int(value) if value.dtype.kind in "iu" else None
    return str(value) if value.dtype.kind == "U" else None


def run_decode(args: argparse.Namespace) -> int:
    out = check_audio_suffix(Path(args.output))
    batch = _check_batch(args.batch_size)
    if not Path(args.codes).is_file():
        raise CLIError(f"{args.codes}: no such file")
    device = pick_device(args.device)
    sat = load_tokenizer(args.tokenizer, device, args.dtype)
    codes, length = load_codes(args.codes, sat)
    k = check_num_scales(args.scales, sat, available=len(codes))
    stacked = torch.cat(codes[:k], dim=1)  # [n x sum(s[:k])], split back per batch
    sizes = sat.scales[:k]
    with torch.inference_mode():
        parts = map_batches(lambda c: sat.decode(list(c.split(sizes, dim=1))), stacked, batch, device, "decode")
    wav = torch.cat(parts).reshape(1, -1)[:, :length]
    save_audio(out, wav, sat.sample_rate)
    print(f"wrote {out} ({length / sat.sample_rate:.2f} s, {k} of {len(sat.scales)} scales)")
    return 0


# ---------------------------------------------------------------- convert-official
def detect_official_kind(path: Path) -> str:
    """``'sat'`` or ``'aar'`` for an authors' release checkpoint; :class:`CheckpointError` otherwise."""
    if is_folder_checkpoint(path):
        raise CheckpointError(f"{path}: already a model folder in our format; nothing to convert")
    try:  # memory-mapped: only the top-level keys are needed, even for a 1 GB file
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        obj = load_torch_file(path)  # raises the file-naming error
    if isinstance(obj, dict):
        if "generator_state_dict" in obj:
            return "sat"
        if "model_state_dict" in obj:
            return "aar"
        if any(str(k).removeprefix("module.").startswith("encoder.model.") for k in obj):
            return "sat"  # a bare generator state dict
    raise CheckpointError(
        f"{path}: not an authors' release checkpoint "
        "(expected 'generator_state_dict' for SAT or 'model_state_dict' for AAR)"
    )


def convert_sat(path: Path, out: Path, args: argparse.Namespace) -> str:
    if args.tokenizer:
        raise CLIError("--tokenizer applies to AAR checkpoints only; this is a SAT tokenizer")
    sat = SAT.from_pretrained(path, scales=args.scales)
    sat.save_pretrained(out)
    c = sat.config
    n_params = sum(p.numel() for p in sat.parameters())
    return (
        f"SAT tokenizer: dimension {c.dimension}, latent {c.latent_dim}, {len(c.scales)} scales, "
        f"{n_params / 1e6:.2f} M parameters"
    )


def convert_aar(path: Path, out: Path, args: argparse.Namespace) -> str:
    if args.scales:
        raise CLIError("--scales applies to SAT checkpoints only; an AAR checkpoint stores its schedule")
    try:
        from aar.transformer.official import convert_official_aar
    except ModuleNotFoundError as exc:
        if exc.name not in ("aar.transformer", "aar.transformer.official"):
            raise
        raise CLIError(
            f"{path}: is an AAR transformer checkpoint; converting it needs the aar.transformer module, "
            "which this installation lacks"
        ) from None
    if not args.tokenizer:
        raise CLIError(f"{path}: an AAR checkpoint holds no tokenizer; pass the SAT it was trained with as --tokenizer")
    convert_official_aar(path, out, tokenizer=args.tokenizer)
    return "AAR transformer"


OFFICIAL_CONVERTERS: dict[str, Callable[[Path, Path, argparse.Namespace], str]] = {
    "sat": convert_sat,
    "aar": convert_aar,
}


def _scale_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers, got {text!r}") from None


def run_convert_official(args: argparse.Namespace) -> int:
    path, out = Path(args.checkpoint), Path(args.output)
    if out.exists() and not out.is_dir():
        raise CLIError(f"{out}: exists and is not a folder")
    if args.scales is not None:
        args.scales = [s for group in args.scales for s in group]
    kind = detect_official_kind(path)
    summary = OFFICIAL_CONVERTERS[kind](path, out, args)
    print(f"wrote {out} ({summary})")
    return 0


# ---------------------------------------------------------------- registration
_FMT = argparse.RawDescriptionHelpFormatter


def _describe(text: str) -> str:
    return textwrap.fill(text, 79)

_RECONSTRUCT_EPILOG = """\
examples:
  aar reconstruct song.mp3 --tokenizer sat/                 # -> song_recon.wav beside it
  aar reconstruct song.flac --tokenizer sat/ -o out.wav
  aar reconstruct a.wav b.ogg c.mp3 --tokenizer sat/ -o recon/
  aar reconstruct clips/ --tokenizer sat/ -o recon/ --scales 8   # coarse: first 8 scales
"""

_ENCODE_EPILOG = """\
The .npz holds codes_0 .. codes_{K-1} (int16 [n_windows x s_k], one per scale, coarse to
fine), num_windows, length (samples at 24 kHz), sample_rate, codebook_size and the
tokenizer's scale list, which 'aar decode' checks.

examples:
  aar encode speech.wav --tokenizer sat/ -o speech.npz
  aar encode music.mp3 --tokenizer sat_d128_lat128.pth -o music.npz
"""

_DECODE_EPILOG = """\
examples:
  aar decode speech.npz --tokenizer sat/ -o speech.wav
  aar decode speech.npz --tokenizer sat/ --scales 4 -o coarse.wav   # first 4 scales only
"""

_CONVERT_EPILOG = """\
The kind is read from the file: 'generator_state_dict' = SAT tokenizer, 'model_state_dict' =
AAR transformer (pass the SAT it was trained with as --tokenizer).

examples:
  aar convert-official sat_d128_lat128.pth -o sat_d128/
  aar convert-official my_sat.pth -o my_sat/ --scales 1,2,4,8,16,32,75
  aar convert-official aar_d16.pth --tokenizer sat_d128/ -o aar_d16/
"""


def register(sub) -> None:
    p = sub.add_parser(
        "reconstruct",
        help="encode and decode audio files with a SAT tokenizer",
        description=_describe(
            "Encode and decode audio (any format, sample rate, channels and length) with a SAT "
            "tokenizer and write the 24 kHz mono reconstruction, full length."
        ),
        epilog=_RECONSTRUCT_EPILOG,
        formatter_class=_FMT,
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files or folders (searched recursively)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file (one input) or folder (several inputs or a folder); "
                   "default: <stem>_recon.wav beside each input")
    _add_common(p, "use only the first K scales, coarse to fine (default: all)")
    p.set_defaults(func=run_reconstruct)

    p = sub.add_parser(
        "encode",
        help="audio file -> per-scale SAT codes (.npz)",
        description=_describe(
            "Encode an audio file (any format, sample rate, channels and length) into SAT codes, "
            "one 1 s window at a time."
        ),
        epilog=_ENCODE_EPILOG,
        formatter_class=_FMT,
    )
    p.add_argument("input", metavar="IN", help="audio file")
    p.add_argument("-o", "--output", required=True, metavar="CODES.npz", help="where to write the codes")
    _add_common(p)
    p.set_defaults(func=run_encode)

    p = sub.add_parser(
        "decode",
        help="SAT codes (.npz) -> audio file",
        description=_describe(
            "Decode codes written by 'aar encode' back to 24 kHz mono audio of the original length."
        ),
        epilog=_DECODE_EPILOG,
        formatter_class=_FMT,
    )
    p.add_argument("codes", metavar="CODES.npz", help="codes written by 'aar encode'")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="audio file (.wav, .flac, .ogg, .mp3)")
    _add_common(p, "decode from the first K scales only, coarse to fine (default: all)")
    p.set_defaults(func=run_decode)

    p = sub.add_parser(
        "convert-official",
        help="convert an authors' released checkpoint (.pth) to our folder format",
        description=_describe(
            "Convert a checkpoint released with the paper (SAT tokenizer or AAR transformer) "
            "into a folder with config.json + model.safetensors."
        ),
        epilog=_CONVERT_EPILOG,
        formatter_class=_FMT,
    )
    p.add_argument("checkpoint", metavar="CKPT.pth", help="the released checkpoint file")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("--scales", type=_scale_list, nargs="+", metavar="S",
                   help="SAT only: the scale schedule (token counts, e.g. 1,2,4,...,75); "
                   "required unless the file has the paper's 16 codebooks")
    p.add_argument("--tokenizer", metavar="PATH", help="AAR only: the SAT tokenizer the transformer was trained with")
    p.set_defaults(func=run_convert_official)
