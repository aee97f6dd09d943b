"""scripts/build_demo_corpus.py: user errors are one line and exit code 1."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_demo_corpus.py"


def load_script():
    spec = importlib.util.spec_from_file_location("build_demo_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bad_settings_and_foreign_folder_are_one_line_errors(tmp_path, capsys):
    main = load_script().main
    assert main(["--out", str(tmp_path / "c"), "--clips-per-class", "0"]) == 1
    assert capsys.readouterr().err.strip() == "build_demo_corpus: error: clips_per_class must be at least 1, got 0"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["--out", str(tmp_path / "mine"), "--cache", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mine exists and is not a demo corpus" in err
