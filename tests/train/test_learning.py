"""The tiny tokenizer learns: on generated audio, loss and validation distances fall within a few steps."""

from __future__ import annotations

from aar.train import train_tokenizer
from tests.train.conftest import small_config, write_sine_folder


def test_loss_and_validation_distances_fall(tmp_path):
    data = write_sine_folder(tmp_path / "data", n=8, seed=3)
    cfg = small_config(max_steps=10, val_every=10)
    summary = train_tokenizer(cfg, data, tmp_path / "run").summary
    loss = summary["train_loss"]
    assert loss["last"] < 0.8 * loss["first"], loss
    first, last = summary["validation"][0], summary["validation"][-1]
    assert (first["step"], last["step"]) == (0, 10)
    assert last["mel_distance"] < 0.7 * first["mel_distance"], summary["validation"]
    assert last["stft_distance"] < first["stft_distance"], summary["validation"]


def test_tensorboard_holds_scalars_audio_and_spectrograms(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = write_sine_folder(tmp_path / "data", n=4)
    train_tokenizer(small_config(max_steps=2, val_every=2), data, tmp_path / "run")
    (events,) = (tmp_path / "run" / "tensorboard").iterdir()
    acc = EventAccumulator(str(events), size_guidance={"audio": 0, "images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "train/freq", "train/adv", "train/lr", "train/samples_per_s", "val/mel_distance"} <= set(tags["scalars"])
    assert {"audio/0_original", "audio/0_reconstruction"} <= set(tags["audio"])
    assert "mel/0_original_vs_reconstruction" in tags["images"]
    assert [e.step for e in acc.Scalars("val/mel_distance")] == [0, 2]


def test_unit_gain_init_makes_a_fresh_model_depend_on_its_input():
    import torch

    from aar import SAT, SATConfig
    from aar.train.tokenizer import unit_gain_init
    from tests.conftest import sine_mix

    torch.manual_seed(0)
    x = sine_mix(2, seed=7)

    def spread(sat):  # how much the output differs between two inputs, relative to its size
        with torch.no_grad():
            y = sat.decoder(sat.encoder(x))
        return float((y[0] - y[1]).abs().mean() / y.abs().mean())

    sat = SAT(SATConfig.preset("tiny"))
    default = spread(sat)
    unit_gain_init(sat)
    gains = [m.weight_g for m in [*sat.encoder.modules(), *sat.decoder.modules()] if hasattr(m, "weight_g")]
    assert gains and all(bool((g == 1).all()) for g in gains)
    assert spread(sat) > 10 * default
