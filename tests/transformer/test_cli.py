"""The AAR commands: tokenize-dataset, train-aar, generate, convert-official for AAR files."""

import json

import pytest
import torch

from aar.cli.main import main
from aar.transformer import AAR, AARConfig
from tests.conftest import official
from tests.transformer.conftest import random_codebook_sat


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


@pytest.fixture(scope="module")
def tiny_clap_dir(tmp_path_factory):
    pytest.importorskip("transformers")
    from tests.conditioning.tiny_clap import save_tiny_clap

    return save_tiny_clap(tmp_path_factory.mktemp("clap") / "tiny_clap")


@pytest.fixture(scope="module")
def clap_model_dir(tmp_path_factory):
    """A small CLAP-conditioned AAR (16-d conditions, like the tiny test CLAP) saved to a folder."""
    from tests.conditioning.tiny_clap import TINY_CLAP_DIM

    torch.manual_seed(0)
    model = AAR(AARConfig(depth=1, width=32, num_heads=2, cond_dim=TINY_CLAP_DIM), random_codebook_sat())
    return model.save_pretrained(tmp_path_factory.mktemp("clapmodel") / "m")


def test_tokenize_train_generate(capsys, tmp_path, sat_dir, labelled_audio):
    code, out = run(capsys, "tokenize-dataset", "--tokenizer", sat_dir, "--data", labelled_audio,
                    "--out", tmp_path / "cache", "--condition", "label")
    assert code == 0, out.err
    assert "4 windows of 455 tokens from 4 clips (1 view(s) each)" in out.out and "classes: cls0, cls1, cls2, cls3" in out.out
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("model: {depth: 1, width: 32, num_heads: 2}\ndata: {batch_size: 2, val_fraction: 0.0}\n"
                   "train: {max_steps: 2, val_every: 0, device: cpu}\nsample: {clips: 0}\n")
    code, out = run(capsys, "train-aar", "--config", cfg, "--cache", tmp_path / "cache", "--out", tmp_path / "run")
    assert code == 0, out.err
    model_dir = tmp_path / "run" / "model"
    assert AAR.from_pretrained(model_dir).config.class_names == ["cls0", "cls1", "cls2", "cls3"]
    for name in ("g1", "g2"):
        code, out = run(capsys, "generate", "--model", model_dir, "--label", "cls1", "cls3", "--num", "2",
                        "--seed", "7", "-o", tmp_path / name)
        assert code == 0, out.err
    settings = json.loads((tmp_path / "g1" / "generation.json").read_text())
    assert settings["seed"] == 7 and settings["cfg"] == 4.0 and settings["top_k"] == 200
    assert [f["file"] for f in settings["files"]] == ["00-cls1-00.wav", "00-cls1-01.wav", "01-cls3-00.wav", "01-cls3-01.wav"]
    for f in settings["files"]:
        assert (tmp_path / "g1" / f["file"]).read_bytes() == (tmp_path / "g2" / f["file"]).read_bytes()
    assert settings["cfg_schedule"] == "linear"
    code, out = run(capsys, "generate", "--model", model_dir, "--label", "cls1", "--seed", "7",
                    "--cfg-schedule", "constant", "-o", tmp_path / "g3")
    assert code == 0, out.err
    assert json.loads((tmp_path / "g3" / "generation.json").read_text())["cfg_schedule"] == "constant"
    code, out = run(capsys, "tokenize-dataset", "--tokenizer", sat_dir, "--data", labelled_audio,
                    "--out", tmp_path / "cache2", "--condition", "label", "--views", "2")
    assert code == 0, out.err
    assert "8 windows of 455 tokens from 4 clips (2 view(s) each)" in out.out


def test_generate_errors(capsys, tmp_path, sat_dir, clap_model_dir):
    code, out = run(capsys, "generate", "--model", tmp_path / "missing", "-o", tmp_path / "o")
    assert code == 1 and "missing: no such file or directory" in out.err
    code, out = run(capsys, "generate", "--model", sat_dir, "-o", tmp_path / "o")
    assert code == 1 and "holds a sat model, expected a aar model" in out.err
    code, out = run(capsys, "generate", "--model", clap_model_dir, "--text", "a dog barks", "-o", tmp_path / "o")
    assert code == 1 and "--text needs a CLAP model: pass --clap DIR" in out.err
    code, out = run(capsys, "generate", "--model", clap_model_dir, "--label", "dog", "-o", tmp_path / "o")
    assert code == 1 and "conditioned on 'clap', not class labels" in out.err
    code, out = run(capsys, "generate", "--model", clap_model_dir, "--prompt-audio", tmp_path / "no.wav", "-o", tmp_path / "o")
    assert code == 1 and "no.wav: no such file" in out.err
    assert not (tmp_path / "o").exists()


def test_generate_from_text_with_clap(capsys, tmp_path, clap_model_dir, tiny_clap_dir):
    code, out = run(capsys, "generate", "--model", clap_model_dir, "--text", "a dog barks", "--clap", tiny_clap_dir,
                    "--seed", "1", "-o", tmp_path / "o")
    assert code == 0, out.err
    settings = json.loads((tmp_path / "o" / "generation.json").read_text())
    assert settings["prompt_kind"] == "text" and settings["files"][0]["file"] == "00-a_dog_barks-00.wav"


def test_tokenize_and_train_errors(capsys, tmp_path, sat_dir, labelled_audio):
    code, out = run(capsys, "tokenize-dataset", "--tokenizer", sat_dir, "--data", labelled_audio,
                    "--out", tmp_path / "c", "--condition", "clap")
    assert code == 1 and "--condition clap needs --clap DIR" in out.err
    code, out = run(capsys, "tokenize-dataset", "--tokenizer", sat_dir, "--data", tmp_path / "nope", "--out", tmp_path / "c")
    assert code == 1 and "nope: no such file or directory" in out.err
    code, out = run(capsys, "tokenize-dataset", "--tokenizer", sat_dir, "--data", labelled_audio,
                    "--out", tmp_path / "c", "--views", "0")
    assert code == 1 and "--views must be >= 1, got 0" in out.err
    code, out = run(capsys, "train-aar", "--config", "d4", "--cache", labelled_audio, "--out", tmp_path / "r")
    assert code == 1 and "not a token cache" in out.err
    code, out = run(capsys, "train-aar", "--config", "d4", "--out", tmp_path / "r")
    assert code == 1 and "--cache is required" in out.err


def test_convert_official_aar(capsys, tmp_path):
    ckpt, sat = official("aar_tiny", "ckpt.pt"), official("sat_tiny", "ckpt.pt")
    code, out = run(capsys, "convert-official", ckpt, "--tokenizer", sat, "-o", tmp_path / "aar")
    assert code == 0, out.err
    io = torch.load(official("aar_tiny", "io.pt"), weights_only=True)
    ref = torch.load(official("aar_tiny", "logits.pt"), weights_only=True)["logits"]
    with torch.inference_mode():
        logits = AAR.from_pretrained(tmp_path / "aar")(io["cond"], io["codes"])
    assert ((logits - ref).abs().max() / ref.abs().max()) <= 1e-4
