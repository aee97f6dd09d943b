"""The published reference implementations, loaded without their network or torchaudio imports.

Each reference package is installed by the ``test`` extra with ``--no-deps``-compatible pins (see
pyproject.toml); a missing one makes the tests that need it skip with the reason. Where a
package's ``__init__`` pulls in torchaudio, matplotlib or a download, only the file that holds
the model class or metric function is imported, with its parent packages registered as bare
namespaces for the duration of the import (their ``__init__`` never runs).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import types

import pytest
import torch


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


# Installed by the test extra, or (their declared dependencies would replace torch) with --no-deps.
INSTALL = {
    "torchvggish": "pip install -e '.[test]'",
    "audioldm_eval": "pip install --no-deps audioldm-eval==0.0.3 (its dependencies pull torchaudio)",
    "frechet_audio_distance": "pip install --no-deps frechet-audio-distance==0.3.4 (its dependencies pull torchaudio, numpy<2)",
}


def submodule(package: str, dotted: str, distribution: str):
    """Import ``package.dotted`` without running the ``__init__`` of ``package`` or its sub-packages.

    Skips the calling test when ``distribution`` is not installed or the file cannot be imported.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"reference package {distribution} is not installed ({INSTALL.get(package, 'pip install ' + distribution)})")
    parts = [package, *dotted.split(".")[:-1]]
    root = list(spec.submodule_search_locations)[0]
    registered = {}
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        namespace = types.ModuleType(name)
        namespace.__path__ = ["/".join([root, *parts[1:depth]])]
        registered[name] = sys.modules.get(name)
        sys.modules[name] = namespace
    full_name = f"{package}.{dotted}"
    try:
        return importlib.import_module(full_name)
    except ImportError as exc:
        pytest.skip(f"{full_name} ({distribution} {version(distribution)}) cannot be imported here: {exc}")
    finally:
        sys.modules.pop(full_name, None)
        for name, previous in registered.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def sensitive_random_init(module: torch.nn.Module, seed: int) -> None:
    """Variance-preserving random weights and non-trivial BatchNorm statistics.

    PyTorch's default initialisation shrinks activations layer by layer, so a deep random network
    gives nearly the same output for every input; this one keeps embeddings input-dependent, and
    makes loading the BatchNorm statistics matter. Parameters that are not trained (the frozen STFT
    and mel matrices of torchlibrosa front ends) are left as they are.
    """
    generator = torch.Generator().manual_seed(seed)
    for layer in module.modules():
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu", generator=generator)
            if layer.bias is not None:
                torch.nn.init.normal_(layer.bias, std=0.01, generator=generator)
        elif isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.normal_(0.0, 0.1, generator=generator)
            layer.running_var.uniform_(0.5, 1.5, generator=generator)
            layer.weight.data.uniform_(0.8, 1.2, generator=generator)
            layer.bias.data.normal_(0.0, 0.1, generator=generator)


def torchvggish_vgg(seed: int) -> torch.nn.Module:
    """torchvggish's ``VGG`` (what ``vggish(postprocess=False)`` builds) with seeded random weights."""
    module = submodule("torchvggish", "torchvggish", "torchvggish")
    model = module.VGG(module.make_layers(), postprocess=False)
    sensitive_random_init(model, seed)
    return model.eval()


def panns_cnn14(seed: int) -> torch.nn.Module:
    """The 32 kHz CNN14 of the PANNs code (frechet_audio_distance's copy, torchlibrosa front end).

    Built with the front end of ``Cnn14_mAP=0.431.pth`` (window 1024, hop 320, 64 mel bands,
    50 Hz - 14 kHz), random weights and dB-scale ``bn0`` statistics.
    """
    module = submodule("frechet_audio_distance", "models.pann", "frechet_audio_distance")
    model = module.Cnn14(
        sample_rate=32_000, window_size=1024, hop_size=320, mel_bins=64, fmin=50, fmax=14_000, classes_num=527
    )
    sensitive_random_init(model, seed)
    model.bn0.running_mean.fill_(-40.0)  # the log-mel input is in dB
    model.bn0.running_var.fill_(400.0)
    return model.eval()
