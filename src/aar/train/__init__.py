"""The one training engine of the project, and the tokenizer's training task.

- :class:`Trainer` + :class:`TrainTask` -- the generic loop (DDP via torchrun, bf16 autocast on
  CUDA, warm-up + cosine, clipping, accumulation, atomic checkpoints, exact resume, progress
  bar, TensorBoard, validation);
- :func:`train_tokenizer` / :class:`TokenizerTrainConfig` -- SAT training (``aar train-tokenizer``).
"""

from aar.train.distributed import DistContext, init_distributed, no_sync, unwrap
from aar.train.engine import Schedule, TrainConfig, Trainer, TrainTask
from aar.train.monitor import Monitor
from aar.train.optim import OptimConfig, Optimization, lr_factor
from aar.train.tokenizer import SATTask, TokenizerTrainConfig, TokenizerTrainResult, train_tokenizer

__all__ = [
    "DistContext",
    "Monitor",
    "OptimConfig",
    "Optimization",
    "SATTask",
    "Schedule",
    "TokenizerTrainConfig",
    "TokenizerTrainResult",
    "TrainConfig",
    "TrainTask",
    "Trainer",
    "init_distributed",
    "lr_factor",
    "no_sync",
    "train_tokenizer",
    "unwrap",
]
