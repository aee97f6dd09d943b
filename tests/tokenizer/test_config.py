import json

import pytest

from aar import SATConfig
from aar.tokenizer import PAPER_SCALES, linear_schedule, quadratic_schedule, validate_scales
from aar.tokenizer.config import phi_index


def test_paper_schedule_is_quadratic_default():
    assert quadratic_schedule(16, 75) == PAPER_SCALES
    assert sum(PAPER_SCALES) == 455
    cfg = SATConfig()
    assert cfg.scales == PAPER_SCALES and cfg.tokens_per_second == 455 and cfg.latent_length == 75


@pytest.mark.parametrize("n,length", [(16, 75), (8, 75), (16, 38), (16, 150), (75, 75), (1, 75)])
def test_generated_schedules_are_valid(n, length):
    for sched in (quadratic_schedule(n, length), linear_schedule(n, length)):
        assert len(sched) == n
        assert validate_scales(sched, length) == sched


def test_linear_schedule_has_more_tokens():
    assert linear_schedule(16, 75)[0] == 1 and linear_schedule(16, 75)[-1] == 75
    assert sum(linear_schedule(16, 75)) > sum(quadratic_schedule(16, 75))


@pytest.mark.parametrize(
    "scales,match",
    [
        ([1, 2, 4, 70], "last scale must equal"),
        ([1, 5, 4, 75], "increasing"),
        ([0, 2, 75], "positive"),
        ([], "empty"),
        (["a", 75], "integers"),
    ],
)
def test_bad_schedules_are_rejected(scales, match):
    with pytest.raises(ValueError, match=match):
        SATConfig(scales=scales)


def test_window_follows_schedule():
    cfg = SATConfig(window_seconds=2.0, scales=quadratic_schedule(16, 150))
    assert cfg.latent_length == 150 and cfg.window_samples == 48_000
    with pytest.raises(ValueError, match="latent length 150"):
        SATConfig(window_seconds=2.0)


def test_partially_shared_phi_assignment_matches_release():
    # ties at k = 5 and k = 10 go to the lower index
    assert [phi_index(k, 16, 6) for k in range(16)] == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 5, 5, 5]
    assert SATConfig(phi="shared").num_phi == 1
    assert SATConfig(phi="per_scale").phi_for_scale(7) == 7
    assert SATConfig(phi="none").phi_for_scale(3) is None


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_round_trip(tmp_path, suffix):
    cfg = SATConfig(dimension=64, latent_dim=8, n_filters=4, scales=linear_schedule(5, 75), causal=True, phi="shared")
    path = cfg.save(tmp_path / f"sat{suffix}")
    assert SATConfig.load(path) == cfg
    if suffix == ".json":
        assert json.loads(path.read_text())["scales"] == cfg.scales


def test_unknown_field_and_preset_are_named(tmp_path):
    with pytest.raises(ValueError, match="bogus"):
        SATConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="nope"):
        SATConfig.preset("nope")
    for name in ("tiny", "paper-d128-lat128", "paper-d1024-lat64"):
        assert SATConfig.preset(name).scales == PAPER_SCALES
    assert (SATConfig.preset("paper-d1024-lat64").dimension, SATConfig.preset("paper-d1024-lat64").latent_dim) == (1024, 64)


def test_rvq_baseline_is_a_schedule():
    cfg = SATConfig(scales=[75] * 8, phi="none")
    assert cfg.tokens_per_second == 600 and cfg.num_phi == 0
