"""The one dataset layer for audio training: folders, the AudioSet layout and WebDataset shards,
decoded through :func:`aar.audio.load_audio` conventions (24 kHz mono), with random 1 s crops,
a fixed seeded validation split, worker-safe seeding and exact resume.

- :func:`prepare_training_data` -- loader + validation clips + failure record for a training run;
- :func:`open_source` -- resolve a location into a :class:`FileSource` or :class:`ShardSource`;
- :func:`iter_clips` -- every whole clip of a source, in order (offline passes such as token caches).
"""

from aar.data.clips import iter_clips
from aar.data.decode import FailureLog, decode_bytes, random_crop
from aar.data.sources import DataError, FileSource, ShardSource, audioset_source, folder_source, open_source, shard_source
from aar.data.split import ValidationSet, split_files
from aar.data.stream import BatchLoader, CropStream, StreamSpec
from aar.data.training import DataConfig, TrainingData, prepare_training_data

__all__ = [
    "BatchLoader",
    "CropStream",
    "DataConfig",
    "DataError",
    "FailureLog",
    "FileSource",
    "ShardSource",
    "StreamSpec",
    "TrainingData",
    "ValidationSet",
    "audioset_source",
    "decode_bytes",
    "folder_source",
    "iter_clips",
    "open_source",
    "prepare_training_data",
    "random_crop",
    "shard_source",
    "split_files",
]
