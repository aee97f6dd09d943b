"""``aar bench --quick``: one process, every field of the report, JSON and markdown written."""

import json

import pytest
import torch

from aar.cli.main import main


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    threads = torch.get_num_threads()
    # one thread: on a CI runner shared with other jobs, two threads on many tiny ops can stall
    code = main(["bench", "--quick", "--device", "cpu", "--threads", "1", "-o", str(out)])
    torch.set_num_threads(threads)
    assert code == 0
    return json.loads((out / "bench-cpu-quick.json").read_text()), (out / "bench-cpu-quick.md").read_text()


def test_environment_fields(quick_report):
    env = quick_report[0]["environment"]
    assert env["device"] == "cpu" and env["threads"] >= 1 and env["torch"] and env["dtype"] == ["float32"]
    assert len(env["load_average"]) == 3 and len(env["load_average_after"]) == 3
    assert quick_report[0]["command"] == "aar bench --quick --device cpu --threads 1"


def test_generation_fields_for_both_architectures(quick_report):
    gen = quick_report[0]["generation"]
    rows = {(r["arch"], r["batch"]): r for r in gen["results"]}
    assert set(rows) == {(a, b) for a in ("next-scale", "next-token") for b in (1, 8)}
    for (arch, batch), r in rows.items():
        assert r["ar_steps"] == (16 if arch == "next-scale" else 455)
        assert r["seconds_per_call"] > 0 and len(r["times_s"]) == 1
        assert r["latency_per_clip_s"] == pytest.approx(r["seconds_per_call"] / batch, rel=1e-2)
        assert r["clips_per_s"] == pytest.approx(batch / r["seconds_per_call"], rel=1e-2)
        assert r["tokens_per_s"] == pytest.approx(455 * batch / r["seconds_per_call"], rel=1e-2)
        assert r["peak_memory_mib"] is not None and r["peak_memory_mib"] >= 0 and r["memory_method"]
        assert 0 < r["roofline_s"] and 0 < r["roofline_fraction"] == pytest.approx(r["roofline_s"] / r["seconds_per_call"], rel=0.05)
        assert rows[("next-token", batch)]["params_m"] == rows[("next-scale", batch)]["params_m"]
    limits = gen["machine_limits"]["float32"]
    assert limits["read_gb_s"] > 0 and limits["linear_gflop_s"] > 0
    assert {r["batch"] for r in gen["ratios"]} == {1, 8}
    assert all(r["next_token_over_next_scale"] > 0 for r in gen["ratios"])


def test_tokenizer_and_training_fields(quick_report):
    tok = quick_report[0]["tokenizer"]["results"]
    assert {r["batch"] for r in tok} == {1, 8}
    assert all(r["encode_rtf"] > 0 and r["decode_rtf"] > 0 for r in tok)
    train = {r["arch"]: r for r in quick_report[0]["training"]["results"]}
    assert set(train) == {"next-scale", "next-token"}
    assert all(r["sequences_per_s"] > 0 and r["batch"] == 4 for r in train.values())


def test_markdown_tables(quick_report):
    md = quick_report[1]
    assert md.startswith("`aar bench --quick --device cpu --threads 1`")
    for header in ("| model | params (M) | dtype | batch | arch | AR steps |", "next-token ÷ next-scale",
                   "| audio (s) | batch | encode s |", "| model | arch | precision | batch | s / step |"):
        assert header in md


def test_bad_options_are_user_errors(capsys):
    assert main(["bench", "--quick", "--repeats", "0"]) == 1
    assert "--repeats must be >= 1" in capsys.readouterr().err


def test_suite_is_the_installed_package_not_a_checkout_folder():
    """``aar bench`` imports its suite from ``aar.bench`` (shipped in the wheel), not from a
    ``benchmarks/`` folder put on ``sys.path``."""
    import sys

    from aar.bench import bench_suite

    assert bench_suite.__name__ == "aar.bench.bench_suite"
    assert not any(name in sys.modules for name in ("bench_suite", "bench_generate", "tokenizer_speed"))
