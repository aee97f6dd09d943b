"""The paper's comparisons as reproducible experiments (``aar experiment NAME``): tokenizer
ablations (scale schedule with the RVQ baseline, phi, discriminator, window) trained for the same
budget on the same data, and the guidance sweep of a trained AAR."""

from aar.experiments.runner import run_experiment
from aar.experiments.spec import ExperimentSpec, variant_config

__all__ = ["ExperimentSpec", "run_experiment", "variant_config"]
