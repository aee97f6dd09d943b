"""Getting the files of Debian packages without installing them system-wide.

A package that is already installed is read where it lies (``/``). Any other is fetched
with ``apt-get download`` (after one ``apt-get update``) and unpacked with ``dpkg-deb -x``
into a cache folder, so building the corpus pulls in no dependencies, changes nothing on the
system, and works again offline once the cache is filled.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Reserved for an independent evaluation: the demo corpus must never draw on these.
FORBIDDEN_PACKAGE_PREFIXES = ("asterisk-core-sounds-", "asterisk-moh-")
FORBIDDEN_PACKAGES = frozenset(
    {"ufoai-sound", "sonic-pi-samples", "wordwarvi-sound", "heroes-sound-effects", "fb-music-high"}
)

VERSION_FILE = ".aar-package-version"


class PackageError(RuntimeError):
    """A package could not be obtained; the message names it and says what to do."""


@dataclass(frozen=True)
class PackageTree:
    """The files of one package: ``root`` is the folder its paths are relative to."""

    name: str
    version: str
    root: Path

    def path(self, relative: str) -> Path:
        return self.root / relative

    def copyright_file(self) -> Path:
        return self.root / "usr/share/doc" / self.name / "copyright"


def is_forbidden(name: str) -> bool:
    return name in FORBIDDEN_PACKAGES or name.startswith(FORBIDDEN_PACKAGE_PREFIXES)


def default_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "aar" / "debian"


def installed_version(name: str) -> str | None:
    """Version of ``name`` if dpkg says it is installed, else None."""
    if shutil.which("dpkg-query") is None:
        return None
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", name], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    status, _, version = result.stdout.partition("\t")
    return version if status.endswith(" installed") else None


def local_tree(name: str, cache_dir: Path | None = None) -> PackageTree | None:
    """The files of ``name`` if it is installed or already unpacked in ``cache_dir``; never downloads."""
    version = installed_version(name)
    if version is not None:
        return PackageTree(name, version, Path("/"))
    unpacked = (Path(cache_dir) if cache_dir else default_cache_dir()) / "root" / name
    if (unpacked / VERSION_FILE).is_file():
        return PackageTree(name, (unpacked / VERSION_FILE).read_text().strip(), unpacked)
    return None


def fetch_packages(names: list[str], cache_dir: Path | None = None) -> dict[str, PackageTree]:
    """The file trees of the packages ``names``, installed or unpacked into ``cache_dir``.

    Raises:
        PackageError: a package is reserved, apt-get/dpkg-deb are missing, or apt cannot
            download a package (the message names it).
    """
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    for name in names:
        if is_forbidden(name):
            raise PackageError(f"{name}: reserved for independent evaluation, the demo corpus must not use it")
    trees = {name: tree for name in names if (tree := local_tree(name, cache_dir)) is not None}
    missing = [name for name in names if name not in trees]
    if missing:
        debs = _download(missing, cache_dir / "debs")
        for name, deb in debs.items():
            trees[name] = _unpack(name, deb, cache_dir / "root" / name)
    return {name: trees[name] for name in names}


def _require(tool: str, names: list[str]) -> None:
    if shutil.which(tool) is None:
        raise PackageError(
            f"{tool} not found: the demo corpus is built from the Debian packages {', '.join(names)}; "
            "run on Debian/Ubuntu, or install those packages and rerun"
        )


def _download(names: list[str], deb_dir: Path) -> dict[str, Path]:
    _require("apt-get", names)
    _require("dpkg-deb", names)
    deb_dir.mkdir(parents=True, exist_ok=True)
    found = {name: _find_deb(deb_dir, name) for name in names}
    wanted = [name for name, deb in found.items() if deb is None]
    if wanted:
        hint = " (run 'apt-get update' as root first)"
        if os.geteuid() == 0:
            # A failed update (no network, a broken mirror) may still leave usable lists.
            update = subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
            hint = "" if update.returncode == 0 else f" (apt-get update failed too: {_last_line(update.stderr)})"
        result = subprocess.run(["apt-get", "download", "-q", *wanted], cwd=deb_dir, capture_output=True, text=True)
        if result.returncode != 0:
            bad = [name for name in wanted if name in result.stderr] or wanted
            raise PackageError(f"cannot download Debian package(s) {', '.join(bad)}: {_last_line(result.stderr)}{hint}")
        found = {name: _find_deb(deb_dir, name) for name in names}
        lost = [name for name, deb in found.items() if deb is None]
        if lost:
            raise PackageError(f"apt-get download gave no .deb for {', '.join(lost)} in {deb_dir}")
    return found  # type: ignore[return-value]


def _find_deb(deb_dir: Path, name: str) -> Path | None:
    debs = sorted(deb_dir.glob(f"{name}_*.deb"))
    return debs[-1] if debs else None


def _unpack(name: str, deb: Path, target: Path) -> PackageTree:
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True)
    if version.returncode != 0:
        raise PackageError(f"{deb}: not a readable .deb ({_last_line(version.stderr)}); delete it and rerun")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    result = subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], capture_output=True, text=True)
    if result.returncode != 0:
        raise PackageError(f"{deb}: dpkg-deb -x failed ({_last_line(result.stderr)}); delete it and rerun")
    (partial / VERSION_FILE).write_text(version.stdout.strip() + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    deb.unlink()
    return PackageTree(name, version.stdout.strip(), target)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
