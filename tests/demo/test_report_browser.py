"""The demo report in a real headless browser (Debian's chromium + chromedriver, driven by
Selenium): the page loads, every audio element has a playable source, every image loads.

The report is written by the report code over a small demo folder made here (a few clips,
training histories and results), so the test takes seconds; it is skipped when chromium,
chromedriver or Selenium is missing.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from aar.audio import save_audio

CLASSES = ("music", "speech")
SR = 24_000


def _browser_or_skip():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium; it is in the test extra)")
    return chromium, driver


def _tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t) * np.exp(-3 * t)).astype(np.float32)


def _history(run_dir: Path, rows: list[dict], validation: list[dict]) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "summary.json").write_text(json.dumps({"validation": validation}))


def make_demo_folder(out: Path) -> dict:
    """A demo folder as the pipeline leaves it before its report stage; returns its state."""
    scales = [1, 2, 4]
    for c, label in enumerate(CLASSES):
        for i in range(2):
            save_audio(out / "audio" / "original" / label / f"{label}-{i}.wav", _tone(220 * (c + 1) + 40 * i), SR)
            save_audio(out / "audio" / "reconstructed" / label / f"{label}-{i}.wav", _tone(220 * (c + 1) + 40 * i) * 0.8, SR)
            save_audio(out / "audio" / "generated" / label / f"{i:03d}.wav", _tone(300 * (c + 1) + 50 * i), SR)
        for k in range(len(scales)):
            save_audio(out / "audio" / "coarse_to_fine" / label / f"scale_{k + 1:02d}.wav", _tone(220 * (c + 1)) * (k + 1) / 3, SR)
    steps = range(1, 21)
    _history(out / "tokenizer", [{"step": s, "seconds": 0.5, "loss": 30 - s, "freq": 20 - 0.5 * s} for s in steps],
             [{"step": s, "mel_distance": 2 - 0.05 * s, "stft_distance": 3 - 0.05 * s} for s in (0, 10, 20)])
    _history(out / "aar", [{"step": s, "seconds": 0.2, "loss": 7 - 0.1 * s, "accuracy": 0.01 * s} for s in steps],
             [{"step": s, "loss": 7 - 0.1 * s, "accuracy": 0.01 * s} for s in (0, 10, 20)])
    matrix = {"rows": list(CLASSES), "columns": list(CLASSES), "fad": [[1.0, 5.0], [6.0, 2.0]],
              "nearest": {c: c for c in CLASSES}, "matches": True}
    training = {"steps": 20, "train_seconds": 10.0, "budget_s": 12.0,
                "plan": {"calibration_steps": 10, "step_seconds": 0.5, "total_steps": 20}}
    results = {
        "corpus": {"path": str(out / "no-corpus"), "counts": {c: {"train": 4, "heldout": 2} for c in CLASSES}},
        "tokenizer": training,
        "tokens": {"windows": 8},
        "reconstruction": {
            "metrics": {"mel_distance": 1.5, "stft_distance": 2.5, "fad": 3.5},
            "per_class": {c: {"mel_distance": 1.5, "stft_distance": 2.5} for c in CLASSES},
            "counts": {"pairs": 4}, "backbone": "mel", "notes": [],
            "coarse_to_fine": {c: f"{c}/{c}-0" for c in CLASSES}, "scales": scales,
        },
        "aar": training,
        "generation": {
            "generation": {"clips_per_class": 2, "cfg": 4.0, "top_k": 200, "top_p": 0.95, "seed": 0, "seconds": 1.0, "clips": 4},
            "backbone": "mel", "fad_generated_vs_heldout": matrix, "fad_train_vs_heldout": matrix,
        },
        "speed": {
            "rows": [{"model": "next-scale (AAR)", "steps": 3, "batch": 1, "seconds": 0.1, "clips_per_s": 10.0},
                     {"model": "next-token (same size)", "steps": 7, "batch": 1, "seconds": 0.3, "clips_per_s": 3.3}],
            "speedup": {"1": 3.0},
            "settings": {"cfg": 4.0, "top_k": 200, "top_p": 0.95, "repeats": 2, "device": "cpu", "dtype": "float32", "threads": 1},
            "notes": [],
        },
    }
    return {"settings": {"device": "cpu"}, "stages": {k: {"seconds": 1.0, "result": v} for k, v in results.items()}}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served_report(tmp_path):
    from aar.demo.report import write_report

    out = tmp_path / "demo"
    write_report(out, make_demo_folder(out), shown_per_class=2)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html", out
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser(tmp_path):
    chromium, driver_path = _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


_MEDIA_STATE = """
return Array.from(document.querySelectorAll('audio')).map(a => ({
  src: a.currentSrc || a.getAttribute('src'), ready: a.readyState, duration: a.duration,
  error: a.error ? a.error.code : null, canPlay: a.canPlayType('audio/wav')}));
"""
_IMAGE_STATE = """
return Array.from(document.images).map(i => ({src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth}));
"""


def test_report_loads_with_playable_audio_and_loaded_images(served_report, browser):
    url, out = served_report
    browser.get(url)
    assert browser.execute_script("return document.readyState") == "complete"
    assert "aar demo" in browser.title
    text = browser.find_element("tag name", "body").text
    for heading in ("Reconstruction", "Generation", "Generation speed", "Training curves", "Coarse to fine"):
        assert heading in text

    deadline = time.monotonic() + 30
    while True:
        audio = browser.execute_script(_MEDIA_STATE)
        pending = [a for a in audio if a["error"] is None and a["ready"] < 1]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # originals + reconstructions, the coarse-to-fine ladders and the generated clips
    assert len(audio) == len(CLASSES) * (2 * 2 + 3 + 2)
    for a in audio:
        assert a["canPlay"], a
        assert a["error"] is None, a
        assert a["ready"] >= 1 and a["duration"] == pytest.approx(1.0, abs=0.01), a
        assert (out / a["src"].split("/", 3)[3]).is_file()

    images = browser.execute_script(_IMAGE_STATE)
    assert len(images) == len(audio) + 4  # a spectrogram per player and four training curves
    for image in images:
        assert image["complete"] and image["width"] > 0, image
