"""Parity of the AAR with the authors' release (fixtures made by running their code)."""

import json

import pytest
import torch

from aar import SAT
from aar.checkpoint import CheckpointError
from aar.transformer import AAR
from aar.transformer.official import infer_aar_config, map_official_key
from tests.conftest import official


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.fixture(scope="module")
def sat():
    return SAT.from_pretrained(official("sat_tiny", "ckpt.pt"))


@pytest.fixture(scope="module")
def model(sat):
    return AAR.from_pretrained(official("aar_tiny", "ckpt.pt"), tokenizer=sat)


@pytest.fixture(scope="module")
def aar_io():
    return torch.load(official("aar_tiny", "io.pt"), weights_only=True)


def load(name):
    return torch.load(official("aar_tiny", f"{name}.pt"), weights_only=True)


def test_config_read_from_file(model, aar_io):
    cfg = model.config
    assert (cfg.depth, cfg.width, cfg.num_heads, cfg.cond_dim, cfg.latent_dim, cfg.vocab_size) == (2, 128, 2, 512, 16, 1024)
    assert cfg.cos_attn and cfg.condition == "clap"
    assert cfg.scales == aar_io["scales"].tolist()
    assert not model.training


def test_null_condition_comes_from_file(model):
    raw = torch.load(official("aar_tiny", "ckpt.pt"), weights_only=True)["model_state_dict"]
    assert torch.equal(model.uncond_embedding, raw["module.uncond_embedding"])


def test_mask_matches_release(model, aar_io):
    assert torch.equal(model.attn_mask, aar_io["attn_bias_for_masking"][0, 0] == 0)
    assert torch.equal(model.level_index, aar_io["lvl_1L"][0])


def test_teacher_forcing_inputs_match(model, aar_io):
    ours = model.tokenizer.teacher_forcing_inputs(aar_io["codes"])
    assert rel_err(torch.cat(ours, 1), aar_io["x_BLCv_wo_first_l"]) <= 1e-5


def test_teacher_forced_logits(model, aar_io):
    with torch.inference_mode():
        logits = model(aar_io["cond"], aar_io["codes"])
    assert logits.shape == (2, 455, 1024) and logits.dtype == torch.float32
    assert rel_err(logits, load("logits")["logits"]) <= 1e-4


def test_flat_int16_codes_accepted(model, aar_io):
    flat = torch.cat(aar_io["codes"], 1).to(torch.int16)
    with torch.inference_mode():
        assert torch.equal(model(aar_io["cond"], flat), model(aar_io["cond"], aar_io["codes"]))


@pytest.mark.parametrize("name", ["ar_greedy_cfg", "ar_greedy_cfg0"])
def test_greedy_generation(model, name):
    ref = load(name)
    out = model.generate(ref["cond"], cfg=ref["cfg"], top_k=1, top_p=0.0)
    assert len(out.codes) == 16
    for k, (ours, theirs) in enumerate(zip(out.codes, ref["codes"])):
        assert torch.equal(ours, theirs), f"scale {k} differs"
    assert (out.audio - ref["wav"]).abs().max() <= 1e-4


@pytest.mark.parametrize("name", ["ar_greedy_cfg", "ar_greedy_cfg0"])
def test_guided_logits_per_scale(model, name):
    """The guided logits the release sampled from equal ours recomputed by teacher forcing
    on the generated codes (cond and null halves combined with the ramp)."""
    ref = load(name)
    with torch.inference_mode():
        cond = model(ref["cond"], ref["codes"])
        uncond = model(None, ref["codes"])
    ramp = torch.cat([torch.full((s,), ref["cfg"] * k / 15) for k, s in enumerate(model.scales)])[None, :, None]
    guided = (1 + ramp) * cond - ramp * uncond
    assert rel_err(guided, ref["logits"]) <= 1e-4


def test_sampled_generation_logits_and_codes(model):
    ref, logits = load("ar_infer"), load("ar_infer_logits")["logits"]
    with torch.inference_mode():
        assert rel_err(model(ref["cond"], ref["codes"]), logits) <= 1e-4
    if not torch.__version__.startswith("2.13"):
        pytest.skip("the fixture's RNG stream is that of torch 2.13")
    out = model.generate(ref["cond"], cfg=0.0, top_k=0, top_p=0.0, seed=ref["g_seed"])
    assert all(torch.equal(a, b) for a, b in zip(out.codes, ref["codes"]))
    assert (out.audio - ref["wav"]).abs().max() <= 1e-4


def test_manifest_d16_maps_every_key():
    manifest = json.loads(official("manifests", "aar_d16.json").read_text())
    shapes = {map_official_key(k): tuple(v["shape"]) for k, v in manifest["state_dict"].items()}
    derived = {k for k in manifest["state_dict"] if k in ("lvl_1L", "attn_bias_for_masking") or k.endswith("zero_k_bias")}
    weights = {map_official_key(k): torch.empty(shapes[map_official_key(k)], device="meta") for k in manifest["state_dict"] if k not in derived}
    cfg = infer_aar_config(weights, {}, scales=manifest["config"]["patch_nums"])
    assert (cfg.depth, cfg.width, cfg.num_heads, cfg.cond_dim, cfg.latent_dim) == (16, 1024, 16, 512, 128)
    from aar.tokenizer import SATConfig

    with torch.device("meta"):
        sat = SAT(SATConfig.preset("paper-d128-lat128"))
        model = AAR(cfg, sat)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == {k: v for k, v in shapes.items() if k in weights}
    assert sum(p.numel() for p in model.parameters()) == manifest["total_params"]


def test_errors_name_the_problem(sat, tmp_path):
    ckpt = official("aar_tiny", "ckpt.pt")
    with pytest.raises(CheckpointError, match="holds no tokenizer"):
        AAR.from_pretrained(ckpt)
    with pytest.raises(CheckpointError, match="SAT tokenizer checkpoint"):
        AAR.from_pretrained(official("sat_tiny", "ckpt.pt"), tokenizer=sat)
    from aar.tokenizer import SATConfig

    other = SAT(SATConfig(**{**SATConfig.preset("tiny").to_dict(), "scales": [1, 5, 75]}))
    with pytest.raises(CheckpointError, match="tokenizer does not match"):
        AAR.from_pretrained(ckpt, tokenizer=other)
    with pytest.raises(CheckpointError, match="no such file"):
        AAR.from_pretrained(tmp_path / "missing.pth", tokenizer=sat)
