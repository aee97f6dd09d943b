"""Parity with the authors' released SAT (fixtures made by running their code)."""

import json

import pytest
import torch

from aar import SAT
from aar.checkpoint import CheckpointError
from aar.tokenizer.official import infer_sat_config, map_official_key
from tests.conftest import official


@pytest.fixture(scope="module")
def sat_io():
    return torch.load(official("sat_tiny", "io.pt"), weights_only=True)


@pytest.fixture(scope="module")
def sat():
    return SAT.from_pretrained(official("sat_tiny", "ckpt.pt"))


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def test_config_read_from_shapes(sat, sat_io):
    cfg = sat.config
    assert (cfg.dimension, cfg.latent_dim, cfg.n_filters, cfg.lstm, cfg.n_residual_layers) == (32, 16, 4, 2, 1)
    assert cfg.ratios == [8, 5, 4, 2]
    assert cfg.scales == sat_io["scales"].tolist()
    assert not sat.training


def test_encoder_latent(sat, sat_io):
    assert rel_err(sat.encode_latent(sat_io["wav"]), sat_io["encoder_latent"]) <= 1e-4


def test_codes_identical(sat, sat_io):
    codes = sat.encode(sat_io["wav"])
    assert len(codes) == 16
    for ours, theirs in zip(codes, sat_io["codes"]):
        assert ours.dtype == torch.long
        assert torch.equal(ours, theirs)


def test_quantized_latent(sat, sat_io):
    assert rel_err(sat.latent_from_codes(sat_io["codes"]), sat_io["quantized_latent"]) <= 1e-4


def test_decode_and_forward(sat, sat_io):
    assert (sat.decode(sat_io["codes"]) - sat_io["decoded_wav"]).abs().max() <= 1e-4
    with torch.inference_mode():
        out, codes, _ = sat(sat_io["wav"])
    assert (out - sat_io["forward_wav"]).abs().max() <= 1e-4
    assert all(torch.equal(a, b) for a, b in zip(codes, sat_io["codes"]))


@pytest.mark.parametrize("name", ["sat_d128_lat128", "sat_d1024_lat64"])
def test_full_size_manifest_maps_every_key(name):
    manifest = json.loads(official("manifests", f"{name}.json").read_text())
    shapes = {k: tuple(v["shape"]) for k, v in manifest["state_dict"].items()}
    state = {map_official_key(k): torch.empty(s) for k, s in shapes.items()}
    cfg = infer_sat_config(state, None, name)
    model = SAT(cfg)
    own = model.state_dict()
    mapped = {map_official_key(k): tuple(s) for k, s in shapes.items()}
    assert set(mapped) == set(own), (sorted(set(mapped) - set(own))[:5], sorted(set(own) - set(mapped))[:5])
    for k, s in mapped.items():
        expected = tuple(own[k].shape)
        assert s == expected or (k.endswith("initialized") and s in ((), (1,))), (k, s, expected)
    expected_dims = {"sat_d128_lat128": (128, 128), "sat_d1024_lat64": (1024, 64)}[name]
    assert (cfg.dimension, cfg.latent_dim, cfg.n_filters) == (*expected_dims, 32)
    assert sum(p.numel() for p in model.parameters()) == manifest["total_params"]


def test_wrong_kind_checkpoint_is_named():
    with pytest.raises(CheckpointError, match="AAR"):
        SAT.from_pretrained(official("aar_tiny", "ckpt.pt"))


def test_scales_must_match_codebooks():
    with pytest.raises(CheckpointError, match="codebooks"):
        SAT.from_pretrained(official("sat_tiny", "ckpt.pt"), scales=[1, 75])
