"""``aar train-tokenizer``: train a SAT on your audio (single process, or every process of torchrun)."""

from __future__ import annotations

import logging
import os
import sys

from tqdm.auto import tqdm


class _TqdmHandler(logging.Handler):
    """Log lines that do not break the progress bar."""

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def _setup_logging():
    rank = int(os.environ.get("RANK", "0"))
    handler = _TqdmHandler()
    prefix = "" if rank == 0 else f"[rank {rank}] "
    handler.setFormatter(logging.Formatter(prefix + "%(message)s"))
    for name in ("aar.train", "aar.data"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO if rank == 0 else logging.WARNING)
        logger.propagate = False


def register(subparsers):
    p = subparsers.add_parser(
        "train-tokenizer",
        help="train a SAT tokenizer (runs under torchrun for several GPUs or nodes)",
        description=(
            "Train a Scale-level Audio Tokenizer. Single process when started plainly; one process per "
            "device under torchrun (e.g. torchrun --nproc_per_node 8 -m aar train-tokenizer ...). "
            "The final model is RUN_DIR/model, loadable by SAT.from_pretrained."
        ),
    )
    p.add_argument("--config", help="YAML file or preset name (tiny, paper-d128-lat128, paper-d1024-lat64); "
                   "with --resume defaults to the run's saved config")
    p.add_argument("--data", help="audio folder, AudioSet mp3 folder (with --audioset-csv), or WebDataset shards "
                   "(path/URL/brace pattern such as 'shards/train-{0000..0099}.tar'); with --resume defaults to the run's")
    p.add_argument("--audioset-csv", help="AudioSet segments CSV: --data is then the folder of Y<YTID>.mp3 files")
    p.add_argument("--val-data", help="validation audio (folder or shards, e.g. an evaluation split); "
                   "default: data.val_fraction of --data is held out")
    p.add_argument("--out", required=True, help="run folder (checkpoints, TensorBoard logs, summary.json, model/)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--max-steps", type=int, help="override train.max_steps")
    p.add_argument("--batch-size", type=int, help="override data.batch_size (per process)")
    p.add_argument("--num-workers", type=int, help="override data.num_workers")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override train.device")
    p.add_argument("--time-limit", type=float, metavar="MINUTES",
                   help="stop cleanly (validate, checkpoint, export) after this much wall time (0: no limit); "
                   "--resume continues")
    p.set_defaults(func=run)


def run(args) -> int:
    from aar.cli.main import CLIError
    from aar.data import DataError
    from aar.train.tokenizer import TokenizerTrainConfig, load_run_config, saved_data_location, train_tokenizer

    _setup_logging()
    data, audioset_csv, val_data = args.data, args.audioset_csv, args.val_data
    try:
        if args.config is not None:
            config = TokenizerTrainConfig.load(args.config)
        elif args.resume:
            config = load_run_config(args.out)
        else:
            raise CLIError("--config is required (a YAML file or a preset: tiny, paper-d128-lat128, paper-d1024-lat64)")
        if data is None:
            if not args.resume:
                raise CLIError("--data is required")
            data, audioset_csv, val_data = saved_data_location(args.out)
        if args.max_steps is not None:
            config.train.max_steps, config.train.epochs = args.max_steps, None
        if args.batch_size is not None:
            config.data.batch_size = args.batch_size
        if args.num_workers is not None:
            config.data.num_workers = args.num_workers
        if args.device is not None:
            config.train.device = args.device
        if args.time_limit is not None:
            config.train.time_limit_minutes = args.time_limit
        config.train.__post_init__()  # re-validate after the overrides
        config.data.__post_init__()
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    try:
        train_tokenizer(config, data, args.out, resume=args.resume, audioset_csv=audioset_csv, val_data=val_data)
    except DataError as exc:
        raise CLIError(str(exc)) from None
    return 0
