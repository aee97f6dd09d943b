"""Smoke-test the package as a user gets it: build the sdist and the wheel, install the wheel
into a fresh virtual environment outside the source tree, and run there what the README
promises.

    python scripts/wheel_smoke.py [--torch torch==2.13.0] [--keep DIR]

``make test`` runs it after the test suite and mypy (CI: ``.ci/run``). Steps, each timed:

1. ``python -m build``: the sdist and the wheel (the wheel is built from the sdist, so a file
   the sdist lacks fails here); both are checked against the files the package needs: every
   ``.py``, ``.yaml`` and ``py.typed`` under ``src/aar``, the LICENSE, and in the sdist the
   README, CITATION.cff and CHANGELOG.md.
2. A fresh venv with ``--torch`` (the CPU wheel pip finds on local disk) and the wheel.
3. In an empty folder, with that venv's Python (the repository is not on its path):
   ``aar --version``, ``aar --help`` and every subcommand's ``--help``, every module of the
   installed package imported, ``aar bench --quick``, a tiny encode / decode / reconstruct
   round trip, ``aar generate`` on a tiny label-conditioned model, and the doctests of the
   public API (the modules defining ``aar.__all__``).

A failure prints one line naming what is missing (the file, or the command with its exit
status and the tail of its output) and exits 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_SUFFIXES = (".py", ".yaml", ".typed")
SDIST_EXTRAS = ("pyproject.toml", "README.md", "LICENSE", "CITATION.cff", "CHANGELOG.md")


class SmokeFailure(Exception):
    """One line (plus an output tail) saying what is missing or what failed."""


def run(cmd: list[str], what: str, cwd: Path | None = None, env: dict | None = None) -> str:
    """Run ``cmd``; its stdout and stderr, or :class:`SmokeFailure` naming ``what`` and the tail."""
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = "\n".join(out.strip().splitlines()[-15:])
        raise SmokeFailure(f"{what}: `{' '.join(map(str, cmd))}` exited {proc.returncode}\n{tail}")
    return out


def expect_file(path: Path, made_by: str) -> Path:
    if not path.is_file():
        raise SmokeFailure(f"{made_by} did not write {path.name} (no file {path})")
    return path


def timed(name: str, fn, *args):
    began = time.perf_counter()
    result = fn(*args)
    print(f"wheel smoke: {name}: ok ({time.perf_counter() - began:.1f} s)", flush=True)
    return result


# ---------------------------------------------------------------------------------------------
# Outside: build, check the archives, make the venv (run with the developer's Python)


def package_files() -> list[str]:
    """The package's files as the wheel names them (``aar/...``), from the source tree."""
    src = ROOT / "src"
    return sorted(p.relative_to(src).as_posix() for p in (src / "aar").rglob("*")
                  if p.is_file() and p.suffix in PACKAGE_SUFFIXES and "__pycache__" not in p.parts)


def build(dist: Path) -> tuple[Path, Path]:
    try:
        import build  # noqa: F401  (only to say what to install when it is missing)
    except ImportError:
        raise SmokeFailure("python -m build: the 'build' package is not installed (it is in the [test] extra)") from None
    run([sys.executable, "-m", "build", "--outdir", dist, ROOT], "building the sdist and the wheel")
    sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise SmokeFailure(f"python -m build wrote {[p.name for p in dist.iterdir()]}, not one sdist and one wheel")
    return sdists[0], wheels[0]


def check_archives(sdist: Path, wheel: Path) -> str:
    """The wheel's version; :class:`SmokeFailure` naming the first file either archive lacks."""
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = set(zf.namelist())
        info = next((n for n in in_wheel if n.endswith(".dist-info/METADATA")), None)
        if info is None:
            raise SmokeFailure(f"{wheel.name}: no .dist-info/METADATA")
        metadata = dict(line.split(": ", 1) for line in zf.read(info).decode().splitlines() if ": " in line)
    dist_info = info.rsplit("/", 1)[0]
    if metadata.get("Name") != "aar-audio":
        raise SmokeFailure(f"{wheel.name}: distribution name {metadata.get('Name')!r}, expected 'aar-audio'")
    for name in package_files() + [f"{dist_info}/licenses/LICENSE"]:
        if name not in in_wheel:
            raise SmokeFailure(f"missing from the wheel {wheel.name}: {name}")
    with tarfile.open(sdist) as tf:
        top = tf.getnames()[0].split("/", 1)[0]
        in_sdist = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for name in list(SDIST_EXTRAS) + [f"src/{n}" for n in package_files()]:
        if name not in in_sdist:
            raise SmokeFailure(f"missing from the sdist {sdist.name}: {name} (under {top}/)")
    return metadata["Version"]


def make_venv(venv: Path, torch_req: str, wheel: Path) -> Path:
    """A fresh venv holding ``torch_req`` then the wheel; its Python."""
    run([sys.executable, "-m", "venv", venv], "creating the venv")
    python = venv / "bin" / "python"
    # --no-compile: byte-compiling torch's sources would triple the install time
    pip = [python, "-m", "pip", "install", "-q", "--no-compile", "--disable-pip-version-check"]
    run(pip + [torch_req], f"installing {torch_req} (pip finds the local CPU wheel)")
    run(pip + [wheel], f"installing {wheel.name}")
    return python


# ---------------------------------------------------------------------------------------------
# Inside: run in the fresh venv, from an empty folder


def inside(version: str) -> None:
    import aar

    prefix = Path(sys.prefix).resolve()
    if not Path(aar.__file__).resolve().is_relative_to(prefix):
        raise SmokeFailure(f"aar was imported from {aar.__file__}, not from the venv {prefix}")
    exe = Path(sys.executable).parent / "aar"
    expect_file(exe, f"installing the wheel (console script 'aar' in {exe.parent})")
    timed("aar --version and every --help", check_commands, exe, version)
    timed("every module imports", import_all)
    timed("aar bench --quick", check_bench, exe)
    sat_dir = timed("encode / decode / reconstruct", check_round_trip, exe)
    timed("aar generate", check_generate, exe, sat_dir)
    timed("doctests of the public API", check_doctests)


def check_commands(exe: Path, version: str) -> None:
    from aar.cli.main import build_parser

    out = run([exe, "--version"], "aar --version").strip()
    if not out.startswith(f"aar-audio {version} "):
        raise SmokeFailure(f"aar --version printed {out!r}, expected it to start 'aar-audio {version} '")
    listing = run([exe, "--help"], "aar --help")
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in sub.choices:
        if name not in listing:
            raise SmokeFailure(f"aar --help does not list the subcommand {name}")
        text = help_text(name)
        if not text.startswith(f"usage: aar {name}"):
            raise SmokeFailure(f"aar {name} --help printed no usage line:\n{text[:300]}")


def help_text(command: str) -> str:
    """What ``aar COMMAND --help`` prints, run in this process (one torch import for them all)."""
    import contextlib
    import io

    from aar.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main([command, "--help"])
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise SmokeFailure(f"aar {command} --help exited {exc.code}:\n{out.getvalue()[-600:]}") from None
        except Exception as exc:
            raise SmokeFailure(f"aar {command} --help raised {type(exc).__name__}: {exc}") from None
    return out.getvalue()


def import_all() -> None:
    import importlib
    import pkgutil

    import aar

    for mod in pkgutil.walk_packages(aar.__path__, "aar."):
        try:
            importlib.import_module(mod.name)
        except Exception as exc:
            raise SmokeFailure(f"import {mod.name} failed in the installed package: {type(exc).__name__}: {exc}") from None


def check_bench(exe: Path) -> None:
    import json

    run([exe, "bench", "--quick", "--threads", "1", "-o", "bench"], "aar bench --quick")
    report = json.loads(expect_file(Path("bench/bench-cpu-quick.json"), "aar bench --quick").read_text())
    expect_file(Path("bench/bench-cpu-quick.md"), "aar bench --quick")
    for section in ("generation", "tokenizer", "training"):
        if not report.get(section, {}).get("results"):
            raise SmokeFailure(f"aar bench --quick: the report has no {section} results")


def check_round_trip(exe: Path) -> Path:
    import soundfile as sf
    import torch

    from aar import SAT, SATConfig
    from aar.audio import save_audio

    torch.manual_seed(0)
    sat_dir = SAT(SATConfig.preset("tiny")).save_pretrained("sat")
    samples = int(1.5 * 24_000)
    save_audio("in.wav", 0.1 * torch.randn(1, samples), 24_000)
    run([exe, "encode", "in.wav", "--tokenizer", sat_dir, "-o", "codes.npz"], "aar encode")
    expect_file(Path("codes.npz"), "aar encode")
    run([exe, "decode", "codes.npz", "--tokenizer", sat_dir, "-o", "decoded.wav"], "aar decode")
    run([exe, "reconstruct", "in.wav", "--tokenizer", sat_dir, "-o", "recon.wav"], "aar reconstruct")
    for name in ("decoded.wav", "recon.wav"):
        info = sf.info(str(expect_file(Path(name), f"aar {name.split('.')[0].replace('recon', 'reconstruct')}")))
        if info.samplerate != 24_000 or info.frames != samples:
            raise SmokeFailure(f"{name}: {info.frames} samples at {info.samplerate} Hz, expected {samples} at 24000")
    return Path(sat_dir)


def check_generate(exe: Path, sat_dir: Path) -> None:
    import json

    import soundfile as sf
    import torch

    from aar import AAR, SAT, AARConfig

    torch.manual_seed(0)
    config = AARConfig(depth=1, width=32, num_heads=2, condition="label", class_names=["rain", "speech"])
    model_dir = AAR(config, SAT.from_pretrained(sat_dir)).save_pretrained("model")
    run([exe, "generate", "--model", model_dir, "--label", "speech", "--num", "2", "--seed", "0", "-o", "gen"],
        "aar generate")
    settings = json.loads(expect_file(Path("gen/generation.json"), "aar generate").read_text())
    if len(settings["files"]) != 2:
        raise SmokeFailure(f"aar generate --num 2 wrote {len(settings['files'])} clip(s)")
    for entry in settings["files"]:
        info = sf.info(str(expect_file(Path("gen") / entry["file"], "aar generate")))
        if info.frames != 24_000:
            raise SmokeFailure(f"aar generate: {entry['file']} has {info.frames} samples, expected 24000")


def check_doctests() -> None:
    import doctest
    import inspect

    import aar

    modules = {aar} | {inspect.getmodule(getattr(aar, name)) for name in aar.__all__}
    attempted = 0
    for module in sorted((m for m in modules if m is not None), key=lambda m: m.__name__):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        if result.failed:
            raise SmokeFailure(f"doctests of {module.__name__}: {result.failed} of {result.attempted} failed (above)")
        attempted += result.attempted
    if attempted == 0:
        raise SmokeFailure("no doctests found in the modules of aar.__all__")


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--torch", default="torch==2.13.0", help="the torch requirement installed first (default %(default)s)")
    p.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one, removed)")
    p.add_argument("--inside", metavar="VERSION", help=argparse.SUPPRESS)  # the checks, run in the fresh venv
    args = p.parse_args(argv)
    try:
        if args.inside:
            inside(args.inside)
            return 0
        began = time.perf_counter()
        work = Path(args.keep or tempfile.mkdtemp(prefix="aar-wheel-smoke-")).resolve()
        try:
            shutil.rmtree(work / "dist", ignore_errors=True)
            shutil.rmtree(work / "venv", ignore_errors=True)
            shutil.rmtree(work / "run", ignore_errors=True)
            sdist, wheel = timed("python -m build", build, work / "dist")
            version = timed("sdist and wheel contents", check_archives, sdist, wheel)
            python = timed(f"fresh venv with {args.torch} and {wheel.name}", make_venv, work / "venv", args.torch, wheel)
            (work / "run").mkdir()
            script = shutil.copy(__file__, work / "wheel_smoke.py")  # so the repository is not on sys.path
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
            proc = subprocess.run([python, script, "--inside", version], cwd=work / "run", env=env)
            if proc.returncode != 0:
                return 1  # the inside run printed its failure
        finally:
            if args.keep is None:
                shutil.rmtree(work, ignore_errors=True)
        print(f"wheel smoke: passed in {time.perf_counter() - began:.0f} s ({wheel.name}, {sdist.name})")
        return 0
    except SmokeFailure as exc:
        print(f"wheel smoke: FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
