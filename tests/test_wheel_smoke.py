"""The wheel smoke test's archive check (scripts/wheel_smoke.py): it passes on archives that
hold the package, and a failure names the file that is missing. The full smoke test (build,
fresh venv, commands) runs in ``make test``, not here."""

import importlib.util
import io
import re
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke():
    spec = importlib.util.spec_from_file_location("wheel_smoke", ROOT / "scripts" / "wheel_smoke.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_archives(smoke, tmp_path, drop=()):
    files = smoke.package_files()
    wheel = tmp_path / "aar_audio-9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("aar_audio-9.9.dist-info/METADATA", "Metadata-Version: 2.4\nName: aar-audio\nVersion: 9.9\n")
        for name in files + ["aar_audio-9.9.dist-info/licenses/LICENSE"]:
            if name not in drop:
                zf.writestr(name, "")
    sdist = tmp_path / "aar_audio-9.9.tar.gz"
    with tarfile.open(sdist, "w:gz") as tf:
        for name in list(smoke.SDIST_EXTRAS) + [f"src/{n}" for n in files]:
            if name not in drop:
                info = tarfile.TarInfo(f"aar_audio-9.9/{name}")
                tf.addfile(info, io.BytesIO(b""))
    return sdist, wheel


def test_package_files_cover_what_the_commands_need(smoke):
    files = smoke.package_files()
    for name in ("aar/py.typed", "aar/bench/bench_suite.py", "aar/cli/main.py", "aar/configs/tokenizer/tiny.yaml"):
        assert name in files
    assert not any("__pycache__" in name for name in files)


def test_complete_archives_pass_and_give_the_version(smoke, tmp_path):
    assert smoke.check_archives(*make_archives(smoke, tmp_path)) == "9.9"


@pytest.mark.parametrize("missing, where", [
    ("aar/py.typed", "wheel"),
    ("aar/bench/bench_suite.py", "wheel"),
    ("aar_audio-9.9.dist-info/licenses/LICENSE", "wheel"),
    ("CHANGELOG.md", "sdist"),
    ("CITATION.cff", "sdist"),
    ("src/aar/configs/tokenizer/tiny.yaml", "sdist"),
])
def test_a_missing_file_is_named(smoke, tmp_path, missing, where):
    with pytest.raises(smoke.SmokeFailure, match=rf"missing from the {where} \S+: {re.escape(missing)}( \(under|$)"):
        smoke.check_archives(*make_archives(smoke, tmp_path, drop=(missing,)))


def test_a_failed_command_is_named_with_its_output(smoke):
    with pytest.raises(smoke.SmokeFailure, match=r"aar bench --quick: `.*` exited 3\nboom"):
        smoke.run(["sh", "-c", "echo boom; exit 3"], "aar bench --quick")
