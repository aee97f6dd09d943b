"""Generation speed: the trained next-scale model against a next-token model of the same size.

Sampling cost does not depend on the weights, so the next-token model is built with the
trained model's configuration and tokenizer and left at its initial weights (the demo does not
spend its time budget training it). Both generate with the same settings (guidance, top-k,
top-p, batch), audio decoding included, after one warm-up call of the next-scale model (which
runs the same blocks). A next-scale time is the median of ``repeats`` calls; a next-token call,
one step per token instead of one per scale, is timed once to keep the demo short.
"""

from __future__ import annotations

import statistics
import time

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def time_generation(model, batch: int, repeats: int, cfg: float, top_k: int, top_p: float) -> list[float]:
    """Seconds of each of ``repeats`` ``generate`` calls making ``batch`` clips (class 0 when the
    model is label-conditioned, else unconditional)."""
    labelled = model.config.condition == "label"
    cond = torch.zeros(batch, dtype=torch.long) if labelled else None
    kwargs = dict(cfg=cfg, top_k=top_k, top_p=top_p, num_samples=1 if labelled else batch)
    times = []
    for i in range(repeats):
        _sync(model.device)
        began = time.perf_counter()
        model.generate(cond, seed=i + 1, **kwargs)
        _sync(model.device)
        times.append(time.perf_counter() - began)
    return times


def next_token_class():
    """The next-token baseline class, or None when this installation has none."""
    try:
        from aar.transformer.next_token import NextTokenAR
    except ImportError:
        return None
    return NextTokenAR


def speed_table(model, batches: list[int], repeats: int = 2, cfg: float = 4.0, top_k: int = 200,
                top_p: float = 0.95) -> dict:
    """Rows ``{"model", "steps", "batch", "seconds", "clips_per_s", "all_seconds"}`` for the
    next-scale ``model`` and, when the baseline exists, a same-size next-token model, plus the
    speed-up per batch size."""
    models = [("next-scale (AAR)", model, model.num_scales)]
    baseline_cls = next_token_class()
    notes = []
    if baseline_cls is None:
        notes.append("the next-token baseline (aar.transformer.next_token) is not available: next-scale timed alone")
    else:
        torch.manual_seed(0)
        baseline = baseline_cls(model.config, model.tokenizer).to(model.device).to(model.dtype).eval()
        models.append(("next-token (same size)", baseline, baseline.num_steps))
        notes.append("the next-token model has the trained model's size and settings but untrained weights "
                     "(sampling time does not depend on the weights)")
    time_generation(model, 1, 1, cfg, top_k, top_p)  # warm-up
    rows = []
    for batch in batches:
        for label, m, steps in models:
            times = time_generation(m, batch, repeats if m is model else 1, cfg, top_k, top_p)
            seconds = statistics.median(times)
            rows.append({"model": label, "steps": steps, "batch": batch, "seconds": round(seconds, 4),
                         "clips_per_s": round(batch / seconds, 3), "all_seconds": [round(t, 4) for t in times]})
    speedup = {}
    for batch in batches:
        times = {r["model"]: r["seconds"] for r in rows if r["batch"] == batch}
        if len(times) == 2:
            speedup[str(batch)] = round(times["next-token (same size)"] / times["next-scale (AAR)"], 2)
    return {
        "rows": rows,
        "speedup": speedup,
        "settings": {"cfg": cfg, "top_k": top_k, "top_p": top_p, "repeats": repeats,
                     "device": str(model.device), "dtype": str(model.dtype).replace("torch.", ""),
                     "threads": torch.get_num_threads()},
        "notes": notes,
    }
