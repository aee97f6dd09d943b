"""Pictures for the demo report without plotting libraries: PNG spectrograms (a small PNG
encoder over zlib) and SVG line charts of training curves."""

from __future__ import annotations

import math
import struct
import zlib
from html import escape
from pathlib import Path

import numpy as np
import torch

from aar.audio.spectral import MelSpectrogram
from aar.checkpoint import atomic_path

# Anchor colours of the spectrogram colour map: black, violet, magenta, orange, pale yellow.
_ANCHORS = np.array([[0, 0, 4], [80, 18, 123], [183, 55, 121], [252, 137, 97], [252, 253, 191]], np.float64)
# Line colours of the charts (colour-blind safe).
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9")
SPEC_FLOOR_DB = -90.0  # the colour map spans [floor, 0] dB of mel power (full scale = 0 dB)


# ---------------------------------------------------------------------- PNG
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(rgb: np.ndarray) -> bytes:
    """``uint8[H x W x 3]`` -> the bytes of an 8-bit RGB PNG (no filtering, zlib level 6)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"expected a non-empty uint8 [H x W x 3] image, got shape {rgb.shape}")
    h, w, _ = rgb.shape
    rows = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, w * 3)], axis=1)  # filter byte 0 per row
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + _chunk(b"IEND", b"")


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(encode_png(rgb))
    return path


def colour_map(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] ``[H x W]`` -> ``uint8[H x W x 3]``, dark (0) to bright (1)."""
    pos = np.clip(values, 0.0, 1.0) * (len(_ANCHORS) - 1)
    i = np.minimum(pos.astype(int), len(_ANCHORS) - 2)
    frac = (pos - i)[..., None]
    rgb = _ANCHORS[i] * (1.0 - frac) + _ANCHORS[i + 1] * frac
    return np.round(rgb).astype(np.uint8)


class Spectrogram:
    """Log-mel pictures of clips on one fixed colour scale, so that pictures compare directly.

    ``image(wav)``: ``Tensor[T]`` at ``sample_rate`` -> ``uint8[n_mels x frames x 3]``, low
    frequencies at the bottom, [SPEC_FLOOR_DB, 0] dB of mel power mapped dark to bright.
    """

    def __init__(self, sample_rate: int = 24_000, n_mels: int = 80, hop_length: int = 128):
        self.mel = MelSpectrogram(sample_rate, n_fft=1024, hop_length=hop_length, n_mels=n_mels, log=True,
                                  clamp=10 ** (SPEC_FLOOR_DB / 10), center=True)

    @torch.inference_mode()
    def image(self, wav: torch.Tensor) -> np.ndarray:
        log_power = self.mel(wav.detach().float().cpu().reshape(1, -1))[0].numpy()  # [n_mels x frames], log10
        db = 10.0 * log_power
        return colour_map((db - SPEC_FLOOR_DB) / -SPEC_FLOOR_DB)[::-1]

    def write(self, wav: torch.Tensor, path: str | Path) -> Path:
        return write_png(path, self.image(wav))


# ---------------------------------------------------------------------- SVG charts
def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, value = [], first
    while value <= hi + 1e-9 * step:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-2:
        return f"{value:.0e}"
    return f"{value:g}"


def line_chart(series: list[dict], title: str, xlabel: str, ylabel: str, width: int = 480, height: int = 280,
               log_y: bool = False) -> str:
    """An SVG document: one polyline per series (``{"label", "x": [...], "y": [...]}``, optionally
    ``"dashed": True``) with axes, round ticks, a title and a legend. Non-finite points are
    dropped; with ``log_y`` the y axis is logarithmic (non-positive values dropped)."""
    left, right, top, bottom = 58, 12, 28, 42
    pw, ph = width - left - right, height - top - bottom
    cleaned = []
    for s in series:
        pts = [(float(x), float(y)) for x, y in zip(s["x"], s["y"]) if math.isfinite(float(y)) and (not log_y or y > 0)]
        if pts:
            cleaned.append((s, pts))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">{escape(title)}</text>']
    if not cleaned:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#666">no data</text></svg>')
        return "\n".join(out)
    xs = [x for _, pts in cleaned for x, _ in pts]
    ys = [y for _, pts in cleaned for _, y in pts]
    fy = math.log10 if log_y else (lambda v: v)
    x0, x1 = min(xs), max(xs)
    y0, y1 = fy(min(ys)), fy(max(ys))
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = 0.05 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + ph - (fy(y) - y0) / (y1 - y0) * ph

    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    for t in _nice_ticks(x0, x1):
        out.append(f'<line x1="{px(t):.1f}" y1="{top + ph}" x2="{px(t):.1f}" y2="{top + ph + 4}" stroke="#444"/>'
                   f'<text x="{px(t):.1f}" y="{top + ph + 16}" text-anchor="middle">{_label(t)}</text>')
    yticks = [10 ** e for e in range(math.floor(y0), math.ceil(y1) + 1)] if log_y else _nice_ticks(y0, y1)
    for t in yticks:
        if not y0 <= fy(t) <= y1:
            continue
        y = py(t)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">{_label(t)}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">{escape(xlabel)}</text>')
    out.append(f'<text x="14" y="{top + ph / 2}" text-anchor="middle" transform="rotate(-90 14 {top + ph / 2})">'
               f"{escape(ylabel)}</text>")
    box_w = 24 + 6.5 * max(len(s["label"]) for s, _ in cleaned)
    bx = left + pw - box_w - 4
    out.append(f'<rect x="{bx:.1f}" y="{top + 4}" width="{box_w:.1f}" height="{14 * len(cleaned) + 6}" '
               'fill="white" fill-opacity="0.85" stroke="#ccc"/>')
    for i, (s, pts) in enumerate(cleaned):
        colour = s.get("color", PALETTE[i % len(PALETTE)])
        dash = ' stroke-dasharray="5 3"' if s.get("dashed") else ""
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        if len(pts) == 1:
            out.append(f'<circle cx="{px(pts[0][0]):.1f}" cy="{py(pts[0][1]):.1f}" r="3" fill="{colour}"/>')
        else:
            out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5"{dash}/>')
    for i, (s, _) in enumerate(cleaned):
        colour = s.get("color", PALETTE[i % len(PALETTE)])
        dash = ' stroke-dasharray="5 3"' if s.get("dashed") else ""
        ly = top + 17 + 14 * i
        out.append(f'<line x1="{bx + 4:.1f}" y1="{ly - 4}" x2="{bx + 20:.1f}" y2="{ly - 4}" stroke="{colour}" '
                   f'stroke-width="2"{dash}/><text x="{bx + 24:.1f}" y="{ly}">{escape(s["label"])}</text>')
    out.append("</svg>")
    return "\n".join(out)


def smooth(values: list[float], window: int) -> list[float]:
    """Running mean over the last ``window`` values (the first values average what exists)."""
    if window <= 1 or not values:
        return list(values)
    arr = np.asarray(values, dtype=np.float64)
    sums = np.cumsum(np.insert(arr, 0, 0.0))
    idx = np.arange(1, len(arr) + 1)
    lo = np.maximum(0, idx - window)
    return ((sums[idx] - sums[lo]) / (idx - lo)).tolist()
