"""Getting package files: reserved packages, missing tools, unpacking a .deb into the cache."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from aar.demo.debian import VERSION_FILE, PackageError, fetch_packages, local_tree

FAKE = "aar-test-fake-sounds"


def test_reserved_packages_are_refused_before_any_download(tmp_path):
    with pytest.raises(PackageError, match="sonic-pi-samples: reserved for independent evaluation"):
        fetch_packages(["freepats", "sonic-pi-samples"], tmp_path)
    with pytest.raises(PackageError, match="asterisk-moh-opsound-wav: reserved"):
        fetch_packages(["asterisk-moh-opsound-wav"], tmp_path)
    assert not any(tmp_path.iterdir())


def test_missing_apt_says_which_packages_are_needed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(PackageError, match=f"apt-get not found.*{FAKE}"):
        fetch_packages([FAKE], tmp_path / "cache")


def test_a_downloaded_deb_is_unpacked_once_and_reused(tmp_path):
    if not (shutil.which("dpkg-deb") and shutil.which("apt-get")):
        pytest.skip("dpkg-deb/apt-get not available (not a Debian system)")
    build = tmp_path / "build"
    (build / "DEBIAN").mkdir(parents=True)
    (build / "DEBIAN/control").write_text(
        f"Package: {FAKE}\nVersion: 1.2-3\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n"
    )
    (build / "usr/share/doc" / FAKE).mkdir(parents=True)
    (build / "usr/share/doc" / FAKE / "copyright").write_text("test licence\n")
    cache = tmp_path / "cache"
    (cache / "debs").mkdir(parents=True)
    deb = cache / "debs" / f"{FAKE}_1.2-3_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(build), str(deb)], check=True, capture_output=True)

    tree = fetch_packages([FAKE], cache)[FAKE]
    assert (tree.version, tree.root) == ("1.2-3", cache / "root" / FAKE)
    assert tree.copyright_file().read_text() == "test licence\n"
    assert (tree.root / VERSION_FILE).read_text().strip() == "1.2-3"
    assert not deb.exists()  # only the unpacked tree is kept
    assert local_tree(FAKE, cache) == tree
    assert fetch_packages([FAKE], cache)[FAKE] == tree  # reused, nothing downloaded
    assert local_tree(FAKE, tmp_path / "elsewhere") is None
