"""What the distribution says about itself: one version, the license file, the citation, the
changelog, the typed marker, and the README's install section against pyproject's extras."""

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

import aar

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_one_version_from_the_metadata():
    assert PYPROJECT["name"] == aar.DISTRIBUTION == "aar-audio"
    assert aar.__version__ == importlib.metadata.version("aar-audio") == PYPROJECT["version"]
    assert f'"{PYPROJECT["version"]}"' not in (ROOT / "src" / "aar" / "__init__.py").read_text()


def test_version_command_names_the_distribution():
    out = subprocess.run([sys.executable, "-m", "aar", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith(f"aar-audio {PYPROJECT['version']} "), out.stdout


def test_license_file_is_the_metadata_license():
    assert PYPROJECT["license"] == "MIT" and PYPROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "WITHOUT WARRANTY OF ANY KIND" in text


def test_citation_cites_the_paper_and_this_implementation():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["license"] == "MIT"
    assert "version" not in cff, "the version is written once, in pyproject.toml"
    paper = cff["preferred-citation"]
    assert paper["title"] == "Efficient Autoregressive Audio Modeling via Next-Scale Prediction"
    assert paper["authors"][0] == {"family-names": "Qiu", "given-names": "Kai"} and len(paper["authors"]) == 8
    assert paper["url"] == "https://arxiv.org/abs/2408.09027"


def test_changelog_has_this_release():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[?{re.escape(PYPROJECT['version'])}\]?\b", text, re.M), "no section for this version"


def test_typed_marker_is_package_data():
    assert (ROOT / "src" / "aar" / "py.typed").is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["aar"]
    assert "py.typed" in package_data


def test_readme_install_section_documents_every_extra():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set-up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    assert re.search(r'pip install "?aar-audio\[', section), "the install section does not show pip install aar-audio[...]"
    assert "make demo" in section and "make test" in section and "scripts/wheel_smoke.py" in section
    documented = set(re.findall(r"`\[([a-z]+)\]`", section))
    assert documented == set(PYPROJECT["optional-dependencies"]), documented
