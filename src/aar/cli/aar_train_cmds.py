"""``aar tokenize-dataset`` (encode a dataset once into a token cache) and ``aar train-aar``
(train the transformer on it, single process or every process of torchrun)."""

from __future__ import annotations

import argparse
import os

from aar.cli.main import CLIError


# ---------------------------------------------------------------- tokenize-dataset
def run_tokenize_dataset(args: argparse.Namespace) -> int:
    from aar.checkpoint import CheckpointError
    from aar.cli.tokenizer_cmds import pick_device
    from aar.data import DataError, open_source
    from aar.tokenizer import SAT
    from aar.train.tokenize import build_token_cache, join_processes, merge_token_cache

    condition = args.condition or ("clap" if args.clap else "none")
    if condition == "clap" and not args.clap:
        raise CLIError("--condition clap needs --clap DIR (a local copy of laion/larger_clap_general)")
    if condition != "clap" and args.clap:
        raise CLIError(f"--clap is only used with --condition clap, not {condition}")
    for name in ("batch_size", "shard_clips", "views", "decode_threads"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.max_windows is not None and args.max_windows < 1:
        raise CLIError(f"--max-windows must be >= 1, got {args.max_windows}")
    if not args.merge and not args.data:
        raise CLIError("--data is required (except with --merge)")
    try:
        processes = join_processes()
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    device = pick_device(args.device)
    if device.type == "cuda" and device.index is None:  # one GPU per process under torchrun
        device = torch_device_for(int(os.environ.get("LOCAL_RANK", "0")))
    tokenizer = SAT.from_pretrained(args.tokenizer, device=device)
    clap = None
    if condition == "clap" and not args.merge:
        from aar.conditioning import ClapEmbedder

        clap = ClapEmbedder(args.clap, device=device, batch_size=args.batch_size)
    try:
        if args.merge:
            meta = merge_token_cache(args.out, tokenizer)
        else:
            source = open_source(args.data, args.audioset_csv)
            meta = build_token_cache(
                tokenizer, source, args.out, condition=condition, clap=clap,
                batch_size=args.batch_size, shard_clips=args.shard_clips, max_windows=args.max_windows,
                views=args.views, processes=processes, merge=processes.barrier is not None or processes.world_size == 1,
                decode_threads=args.decode_threads,
            )
    except (ValueError, DataError, CheckpointError) as exc:
        raise CLIError(str(exc)) from None
    if meta is None:
        if processes.barrier is None:
            print(f"rank {processes.rank} of {processes.world_size}: its shards of {args.out} are written; "
                  "when every rank is done, run the same command with --merge to write the index")
        return 0
    extra = f", classes: {', '.join(meta['class_names'])}" if meta["class_names"] else ""
    print(
        f"wrote {args.out}: {meta['num_windows']} windows of {meta['seq_len']} tokens from {meta['num_clips']} clips "
        f"({meta['views']} view(s) each) "
        f"in {len(meta['shards'])} shard(s); condition {meta['condition']}{extra}; "
        f"{len(meta['undecodable'])} undecodable or non-finite file(s) skipped"
    )
    for reason in meta["undecodable"][:20]:
        print(f"  skipped: {reason}")
    if len(meta["undecodable"]) > 20:
        print(f"  ... and {len(meta['undecodable']) - 20} more (all listed in {args.out}/cache.json)")
    return 0


def torch_device_for(local_rank: int):
    import torch

    return torch.device("cuda", local_rank % torch.cuda.device_count())


# ---------------------------------------------------------------- train-aar
def run_train_aar(args: argparse.Namespace) -> int:
    from aar.cli.train_tokenizer_cmd import _setup_logging
    from aar.transformer.training import AARTrainConfig, load_run_config, saved_cache, train_aar

    _setup_logging()
    try:
        if args.config is not None:
            config = AARTrainConfig.load(args.config)
        elif args.resume:
            config = load_run_config(args.out)
        else:
            raise CLIError("--config is required (a YAML file or a preset: d4, d8, d16)")
        cache = args.cache
        if cache is None:
            if not args.resume:
                raise CLIError("--cache is required (a folder made by `aar tokenize-dataset`)")
            cache = saved_cache(args.out)
        if args.max_steps is not None:
            config.train.max_steps, config.train.epochs = args.max_steps, None
        if args.batch_size is not None:
            config.data.batch_size = args.batch_size
        if args.device is not None:
            config.train.device = args.device
        if args.arch is not None:
            config.arch = args.arch
        config.__post_init__()
        config.train.__post_init__()  # re-validate after the overrides
        config.data.__post_init__()
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    try:
        train_aar(config, cache, args.out, resume=args.resume)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    return 0


# ---------------------------------------------------------------- registration
def register(sub) -> None:
    p = sub.add_parser(
        "tokenize-dataset",
        help="encode a dataset once into a token cache for train-aar (runs under torchrun for several GPUs)",
        description=(
            "Encode every clip of a dataset with a SAT tokenizer (whole 1 s windows) and store the codes "
            "(int16) with each clip's condition in memory-mappable shards. Conditions: CLAP audio "
            "embeddings of the whole clip at 48 kHz (--clap), the clip's top-level folder as its class "
            "(--condition label), or none. Under torchrun every process encodes its share of the shards "
            "(torchrun --standalone --nproc_per_node 8 -m aar tokenize-dataset ...) and rank 0 writes the "
            "index; the cache is the same whatever the number of processes. Interrupted, the same command "
            "continues where it stopped (finished shards are kept)."
        ),
    )
    p.add_argument("--tokenizer", required=True, help="SAT tokenizer folder or an authors' .pth")
    p.add_argument("--data", help="audio folder, AudioSet mp3 folder (with --audioset-csv), or WebDataset shards")
    p.add_argument("--audioset-csv", help="AudioSet segments CSV: --data is then the folder of Y<YTID>.mp3 files")
    p.add_argument("--out", required=True, help="cache folder to create (or to continue)")
    p.add_argument("--condition", choices=["clap", "label", "none"],
                   help="what to store as each clip's condition (default: clap with --clap, else none)")
    p.add_argument("--clap", metavar="DIR", help="local folder of the CLAP model (laion/larger_clap_general)")
    p.add_argument("--max-windows", type=int, help="at most this many 1 s windows per clip (default: all)")
    p.add_argument("--views", type=int, default=1,
                   help="versions of every window to store (default 1): the clip, then the clip with its polarity "
                        "inverted and/or delayed by up to 30 ms; more distinct token sequences for a small dataset")
    p.add_argument("--batch-size", type=int, default=16, help="clips / windows encoded per batch (default 16)")
    p.add_argument("--shard-clips", type=int, default=1024,
                   help="audio files per cache shard, the unit of work and of resuming (default 1024; "
                        "a WebDataset shard always gives one cache shard)")
    p.add_argument("--decode-threads", type=int, default=2,
                   help="audio files decoded and resampled at once, ahead of the encoder (default 2); "
                        "the cache is the same for any number")
    p.add_argument("--merge", action="store_true",
                   help="only write the index of a cache whose shards were written by separate jobs "
                        "(RANK/WORLD_SIZE set without torchrun); fails naming the unfinished shards")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available; under torchrun cuda:LOCAL_RANK)")
    p.set_defaults(func=run_tokenize_dataset)

    p = sub.add_parser(
        "train-aar",
        help="train an AAR transformer on a token cache (runs under torchrun for several GPUs)",
        description=(
            "Train the next-scale transformer (or, with --arch next-token, the next-token baseline of the "
            "same size) on a token cache. Single process when started plainly; one "
            "process per device under torchrun (torchrun --nproc_per_node 8 -m aar train-aar ...). "
            "The final model is RUN_DIR/model (with its tokenizer), loadable by AAR.from_pretrained."
        ),
    )
    p.add_argument("--config", help="YAML file or preset name (d4, d8, d16); with --resume defaults to the run's saved config")
    p.add_argument("--cache", help="token cache from `aar tokenize-dataset`; with --resume defaults to the run's")
    p.add_argument("--out", required=True, help="run folder (checkpoints, TensorBoard logs, summary.json, model/)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--max-steps", type=int, help="override train.max_steps")
    p.add_argument("--batch-size", type=int, help="override data.batch_size (per process)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override train.device")
    p.add_argument("--arch", choices=["next-scale", "next-token"],
                   help="override arch: next-scale (the AAR, default) or next-token (the baseline of the same size)")
    p.set_defaults(func=run_train_aar)
