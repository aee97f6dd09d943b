"""A corpus of bad inputs for every command that reads a file: audio, checkpoints, code files.

Each case is ``(name, expect)``: ``"ok"`` when a command must succeed on it with finite, valid
output, ``"error"`` when it must be refused with one line naming the file. Files that would run
code if unpickled touch :data:`MARKER`'s path instead, so a test can prove they never ran.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file

SR = 24_000
MARKER = "PWNED"


def _tone(seconds: float, sr: int = SR, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(max(1, int(seconds * sr))) / sr
    wav = 0.3 * np.sin(2 * np.pi * 440 * t)[:, None] + 0.01 * rng.standard_normal((t.size, channels))
    return wav.astype(np.float32)


def _float_wav(path: Path, wav: np.ndarray, sr: int = SR) -> None:
    sf.write(path, wav, sr, subtype="FLOAT")


class _RunsCode:
    """Unpickling this calls ``open(MARKER_PATH, "w")``: proof that a loader ran the file's code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _good_wav_bytes(seconds: float = 0.5) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, _tone(seconds), SR, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def build_audio(root: Path) -> list[tuple[str, str]]:
    """Audio inputs, under audio-file names."""
    root.mkdir(parents=True, exist_ok=True)
    good = _good_wav_bytes()
    cases = []

    def add(name: str, expect: str) -> Path:
        cases.append((name, expect))
        return root / name

    add("empty.wav", "error").write_bytes(b"")
    add("header_only.wav", "error").write_bytes(good[:44])
    add("truncated_header.wav", "error").write_bytes(good[:30])
    add("cut_mid_data.wav", "ok").write_bytes(good[: len(good) // 2])  # header claims more data than there is
    lying = bytearray(good)
    lying[40:44] = (0x7FFFFFF0).to_bytes(4, "little")  # data chunk size far beyond the file
    add("lying_header.wav", "ok").write_bytes(bytes(lying))
    add("text.wav", "error").write_text("this is not audio\n" * 20)
    add("png.flac", "error").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    add("random.mp3", "error").write_bytes(np.random.default_rng(1).bytes(5000))
    add("id3_then_junk.mp3", "error").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + np.random.default_rng(2).bytes(3000))
    add("zeros.ogg", "error").write_bytes(bytes(4096))
    nan = _tone(1.0)
    nan[1000] = np.nan
    _float_wav(add("nan.wav", "error"), nan)
    inf = _tone(1.0)
    inf[5] = np.inf
    _float_wav(add("inf.wav", "error"), inf)
    stereo = _tone(1.0, channels=2)
    stereo[200, 1] = -np.inf
    _float_wav(add("neg_inf_stereo.wav", "error"), stereo)
    huge = _tone(1.0)
    huge[10] = 1e30
    _float_wav(add("huge_1e30.wav", "error"), huge)
    _float_wav(add("loud_float.wav", "ok"), _tone(1.0) * 40)  # finite, out of [-1, 1]: clipped on output
    sf.write(add("one_sample.wav", "ok"), np.array([0.5], np.float32), SR)
    sf.write(add("one_sample_8k.wav", "ok"), np.array([0.5], np.float32), 8_000)
    sf.write(add("silent.wav", "ok"), np.zeros(SR, np.float32), SR)
    sf.write(add("8khz.wav", "ok"), _tone(1.0, 8_000), 8_000)
    sf.write(add("96khz.flac", "ok"), _tone(0.5, 96_000), 96_000)
    sf.write(add("six_channel.wav", "ok"), _tone(0.5, channels=6), SR)
    sf.write(add("long_20s.flac", "ok"), _tone(20.0), SR)
    sf.write(add("no_frames.wav", "error"), np.zeros((0, 1), np.float32), SR)
    sf.write(add("odd name ünï $(x) ;'.wav", "ok"), _tone(0.3), SR)
    sf.write(add("wav_named.mp3", "ok"), _tone(0.3), SR, format="WAV")
    add("folder.wav", "error").mkdir()
    os.symlink("loop.wav", add("loop.wav", "error"))
    os.symlink("nowhere.wav", add("dangling.wav", "error"))
    os.mkfifo(add("fifo.wav", "error"))
    cases.append(("missing.wav", "error"))
    return cases


def build_checkpoints(root: Path, sat_dir: Path, aar_dir: Path) -> list[tuple[str, str]]:
    """Model inputs (files and folders) for --tokenizer, --model, convert-official and --weights.
    Every one must be refused: none is a usable model of the kind asked for."""
    root.mkdir(parents=True, exist_ok=True)
    marker = root / MARKER
    cases = []

    def add(name: str) -> Path:
        cases.append((name, "error"))
        return root / name

    weights = (sat_dir / "model.safetensors").read_bytes()
    state = load_file(str(sat_dir / "model.safetensors"))
    buffer = io.BytesIO()
    torch.save({"generator_state_dict": state}, buffer)
    release_like = buffer.getvalue()

    add("empty.pth").write_bytes(b"")
    add("truncated.pth").write_bytes(release_like[: len(release_like) // 2])
    add("random.pth").write_bytes(np.random.default_rng(3).bytes(4000))
    add("text.pth").write_text("model weights go here\n")
    torch.save({"generator_state_dict": _RunsCode(marker)}, add("hostile.pth"))
    with open(add("hostile_legacy.pth"), "wb") as fh:  # a bare pickle, torch.save's legacy layout
        pickle.dump({"model": _RunsCode(marker)}, fh, protocol=2)
    torch.save({"something": torch.zeros(3)}, add("wrong_keys.pth"))
    torch.save([1, 2, 3], add("a_list.pth"))
    nan_release = {k: v.clone() for k, v in state.items()}
    first = next(k for k, v in nan_release.items() if v.is_floating_point() and v.numel() > 1)
    nan_release[first].view(-1)[0] = float("nan")
    torch.save({"generator_state_dict": nan_release}, add("nan_release.pth"))
    (root / "truncated.safetensors").write_bytes(weights[: len(weights) // 3])
    cases.append(("truncated.safetensors", "error"))
    add("no_config_dir").mkdir()
    bad_json = add("bad_json_dir")
    bad_json.mkdir()
    (bad_json / "config.json").write_text("{not json")
    shutil.copy(sat_dir / "model.safetensors", bad_json / "model.safetensors")
    wrong_kind = add("wrong_kind_dir")
    wrong_kind.mkdir()
    (wrong_kind / "config.json").write_text(json.dumps({"kind": "discriminator"}))
    no_weights = add("no_weights_dir")
    no_weights.mkdir()
    shutil.copy(sat_dir / "config.json", no_weights / "config.json")
    truncated = add("truncated_weights_dir")
    shutil.copytree(sat_dir, truncated)
    (truncated / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    for name, folder in (("nan_sat_dir", sat_dir), ("nan_aar_dir", aar_dir)):
        poisoned = add(name)
        shutil.copytree(folder, poisoned)
        tensors = load_file(str(poisoned / "model.safetensors"))
        key = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1)
        tensors[key].view(-1)[-1] = float("inf") if "aar" in name else float("nan")
        save_file(tensors, str(poisoned / "model.safetensors"), metadata={"kind": json.loads((folder / "config.json").read_text())["kind"]})
    os.symlink("loop.pth", add("loop.pth"))
    cases.append(("missing.pth", "error"))
    return cases


def build_codes(root: Path, good_codes: Path) -> list[tuple[str, str]]:
    """Code files for ``aar decode``, made from a good one written by ``aar encode``."""
    root.mkdir(parents=True, exist_ok=True)
    with np.load(good_codes) as npz:
        good = {k: npz[k] for k in npz.files}
    cases = []

    def variant(name: str, expect: str = "error", **changes) -> None:
        arrays = {**good, **changes}
        arrays = {k: v for k, v in arrays.items() if v is not None}
        np.savez(root / name, **arrays)
        cases.append((name, expect))

    shutil.copy(good_codes, root / "good.npz")
    cases.append(("good.npz", "ok"))
    (root / "empty.npz").write_bytes(b"")
    cases.append(("empty.npz", "error"))
    data = good_codes.read_bytes()
    (root / "truncated.npz").write_bytes(data[: len(data) // 2])
    cases.append(("truncated.npz", "error"))
    (root / "random.npz").write_bytes(np.random.default_rng(4).bytes(3000))
    cases.append(("random.npz", "error"))
    with open(root / "pickle.npz", "wb") as fh:  # a bare pickle under a codes name
        pickle.dump({"codes_0": _RunsCode(root / MARKER)}, fh)
    cases.append(("pickle.npz", "error"))
    np.save(root / "array.npy", good["codes_0"])
    (root / "array.npy").rename(root / "npy_named.npz")
    cases.append(("npy_named.npz", "error"))
    variant("float_codes.npz", codes_3=good["codes_3"].astype(np.float32) + 0.5)
    variant("nan_codes.npz", codes_0=np.full(good["codes_0"].shape, np.nan))
    variant("out_of_range.npz", codes_2=good["codes_2"].astype(np.int32) + 100_000)
    variant("negative.npz", codes_1=good["codes_1"].astype(np.int32) - 10_000)
    variant("object_codes.npz", codes_0=np.array([[{"a": 1}]] * good["codes_0"].shape[0], dtype=object))
    variant("wrong_shape.npz", codes_4=good["codes_4"][:, :-1])
    variant("missing_length.npz", length=None)
    variant("wrong_format.npz", format=np.array("something-else/1"))
    variant("bytes_format.npz", format=np.array(b"aar-sat-codes/1"))
    variant("scales_mismatch.npz", scales=good["scales"][::-1].copy())
    variant("float_scales.npz", scales=good["scales"].astype(np.float64))
    variant("length_too_long.npz", length=np.array(10**9))
    variant("negative_windows.npz", num_windows=np.array(-1))
    variant("string_windows.npz", num_windows=np.array("two"))
    variant("array_length.npz", length=np.arange(3))
    variant("other_rate.npz", sample_rate=np.array(16_000))
    variant("coarse_only.npz", "ok", **{f"codes_{k}": None for k in range(4, len(good["scales"]))})
    return cases
