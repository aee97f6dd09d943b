"""One call that turns a data location into everything a training run reads: the endless
training batches of this rank, the fixed validation clips and the record of decode failures.
It fails with :class:`DataError` (naming the path) before any model is built."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from aar.data.decode import FailureLog
from aar.data.sources import DataError, FileSource, ShardSource, open_source
from aar.data.split import (
    ValidationSet,
    check_shards_have_audio,
    load_file_validation,
    load_shard_validation,
    load_validation_source,
    split_files,
)
from aar.data.stream import BatchLoader, StreamSpec

log = logging.getLogger("aar.data")


@dataclass
class DataConfig:
    """Data settings of a training run (``batch_size`` is per process)."""

    batch_size: int = 8
    num_workers: int = 2
    val_fraction: float = 0.01
    val_clips: int = 64
    shuffle_buffer: int = 1000
    epoch_size: int | None = None  # samples per epoch; counted for files, needed for shards to use epochs

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")


@dataclass
class TrainingData:
    source: FileSource | ShardSource
    loader: BatchLoader
    validation: ValidationSet
    failures: FailureLog
    epoch_size: int | None  # training samples per epoch, when known

    def describe(self) -> str:
        size = f"{self.epoch_size} training clips" if self.epoch_size is not None else "streaming"
        return f"{self.source.describe()}; {size}, {len(self.validation)} validation clips"


def prepare_training_data(
    data: str | os.PathLike,
    cfg: DataConfig,
    length: int,
    sample_rate: int = 24_000,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    audioset_csv: str | os.PathLike | None = None,
    val_data: str | os.PathLike | None = None,
    with_validation: bool = True,
    pin_memory: bool = False,
) -> TrainingData:
    """Open ``data`` (folder, AudioSet folder + ``audioset_csv``, or WebDataset shards) and build this
    rank's loader of ``Tensor[batch_size x 1 x length]`` crops.

    Validation clips (loaded only when ``with_validation``) are up to ``cfg.val_clips`` fixed crops:
    from ``val_data`` when given (a separate folder or shards, e.g. an evaluation split; the
    training data is then used whole), otherwise held out of ``data`` by ``cfg.val_fraction``.
    """
    source = open_source(data, audioset_csv)
    val_source = open_source(val_data) if val_data is not None else None
    held_out = cfg.val_fraction if val_source is None else 0.0
    failures = FailureLog()
    spec = StreamSpec(
        source=source,
        batch_size=cfg.batch_size,
        length=length,
        sample_rate=sample_rate,
        seed=seed,
        rank=rank,
        world_size=world_size,
        shuffle_buffer=cfg.shuffle_buffer,
    )
    validation = ValidationSet.empty(length)
    if isinstance(source, FileSource):
        train, val = split_files(source, held_out, cfg.val_clips, seed)
        if len(train) == 0:
            raise DataError(f"{source.root}: no training files left after the validation split")
        spec.train_indices = train
        epoch_size = len(train)
        if with_validation and val_source is None:
            validation = load_file_validation(source, val, length, sample_rate, seed, failures)
    else:
        check_shards_have_audio(source)
        spec.val_fraction = held_out
        epoch_size = cfg.epoch_size
        if with_validation and val_source is None:
            validation = load_shard_validation(source, held_out, cfg.val_clips, length, sample_rate, seed, failures)
    if with_validation and val_source is not None:
        validation = load_validation_source(val_source, cfg.val_clips, length, sample_rate, seed, failures)
    if with_validation and len(validation) == 0:
        log.warning("no validation clips (data too small, val_fraction 0 or nothing decodable): validation is skipped")
    loader = BatchLoader(spec, cfg.num_workers, pin_memory=pin_memory, failures=failures)
    return TrainingData(source, loader, validation, failures, epoch_size)
