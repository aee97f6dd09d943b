"""What every benchmark shares: timing with device synchronisation, peak memory of a call, and a
description of the machine.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` over the call minus what was allocated
before it. On CPU, torch's allocations are invisible to ``tracemalloc``, so the process's
resident set is read instead: free heap is returned to the system (``malloc_trim``), the
kernel's high-water mark is reset (``/proc/self/clear_refs``), and the peak is the high-water
mark after the call minus the resident set before it (Linux; elsewhere reported as None).
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Callable

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[int], object], device: torch.device, repeats: int, warmup: int = 1) -> list[float]:
    """Wall times of ``repeats`` calls ``fn(i)`` after ``warmup`` untimed ones, synchronised on CUDA."""
    for i in range(warmup):
        fn(-1 - i)
    times = []
    for i in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn(i)
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def median(times: list[float]) -> float:
    return statistics.median(times)


# ---------------------------------------------------------------------- memory
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _trim_heap() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_rss_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_memory(fn: Callable[[], object], device: torch.device) -> tuple[float | None, str]:
    """Run ``fn`` once; returns (MiB it needed at its peak beyond what was in use before, method)."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20, "torch.cuda.max_memory_allocated"
    _trim_heap()
    before = _status_kib("VmRSS")
    if before is None or not _reset_rss_peak():
        fn()
        return None, "unavailable (needs Linux /proc)"
    fn()
    return max(0, _status_kib("VmHWM") - before) / 1024, "resident set high-water mark (/proc)"


# ---------------------------------------------------------------------- machine
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device, dtypes) -> dict:
    """Device, threads, torch version, dtype(s) and the load average (CPU timings on a shared machine
    are only as good as the load beside them)."""
    info = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "dtype": dtypes if isinstance(dtypes, str) else list(dtypes),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cpu":
        from aar.transformer.fast_linear import cpu_support

        support = cpu_support()
        info["cpu_capability"] = support.capability
        info["cpu_support"] = support.summary()
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
    return info


def write_report(report: dict, path: str | os.PathLike) -> int:
    """Write a benchmark's ``report`` as indented JSON to ``path`` (folders made), say so, and
    return 0 (the exit status of a benchmark's ``main``)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0
