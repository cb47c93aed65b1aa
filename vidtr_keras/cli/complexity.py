"""`vidtr info PRESET` and `vidtr reproduce [NAME|all]`."""

import argparse
import os
import pathlib
import subprocess
import sys

from vidtr_keras.cli.args import rich_console


def cmd_info(args):
    from rich.table import Table

    from vidtr_keras.complexity.flops import flops
    from vidtr_keras.complexity.memory import memory
    from vidtr_keras.complexity.spec import model_spec

    overrides = {}
    if args.frames:
        overrides["frames"] = args.frames
    if args.image_size:
        overrides["image_size"] = args.image_size
    spec = model_spec(args.preset, num_classes=args.num_classes, **overrides)
    full, paper = flops(spec), flops(spec, convention="paper")
    mem = memory(spec, batch_size=args.batch, optimizer_slots=args.optimizer_slots)
    gib = 2.0**30
    console = rich_console()
    table = Table(title=f"{args.preset}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    plan = ", ".join(f"{kind}{f' (drop {k})' if k else ''}" for kind, k in spec.plan)
    rows = [
        ("clip", f"{spec.num_frames} frames x {spec.image_size[0]}x{spec.image_size[1]} px, patch {spec.patch_size}"),
        ("width / layers / heads / MLP", f"{spec.hidden_dim} / {spec.num_layers} / {spec.num_heads} / {spec.mlp_dim}"),
        ("class tokens", spec.class_token_layout),
        ("layers", plan),
        ("temporal tokens after each layer", str([layer.frames_out for layer in spec.layers()])),
        ("parameters", f"{mem.parameters:,}"),
        ("GFLOPs, full (G multiply-adds)", f"{full.gflops:.1f}"),
        ("GFLOPs, paper convention", f"{paper.gflops:.1f}"),
        (
            f"training memory, batch {args.batch} (analytic)",
            f"{mem.total_bytes / gib:.2f} GiB = activations {mem.activation_bytes / gib:.2f} + "
            f"parameters/gradients/optimizer {mem.state_bytes / gib:.2f}",
        ),
        ("attention-map elements per clip", f"{sum(mem.attention_map_elements):,}"),
    ]
    if args.mesh is not None:
        shard = memory(spec, batch_size=args.batch, optimizer_slots=args.optimizer_slots, mesh=args.mesh)
        data, model = shard.mesh
        rows.append(
            (
                f"per device on a {data}x{model} mesh (analytic, model-parallel layout)",
                f"{shard.total_bytes / gib:.2f} GiB = activations {shard.activation_bytes / gib:.2f} (batch "
                f"{args.batch // data} per device; attention and MLP tensors / {model}) + "
                f"parameters/gradients/optimizer {shard.state_bytes / gib:.2f} ({shard.parameters:,} parameters)",
            )
        )
    if args.memory is not None:
        from vidtr_keras.complexity.memory import fits_in_memory

        fit = fits_in_memory(
            spec,
            args.memory * gib,
            batch_size=args.batch,
            optimizer_slots=args.optimizer_slots,
            remat=args.remat,
            mixed_precision=args.mixed_precision,
            mesh=args.mesh,
        )
        chosen = (
            ("remat", args.remat),
            ("mixed_bfloat16", args.mixed_precision),
            (f"one device of a {args.mesh} mesh", args.mesh),
        )
        options = ", ".join(name for name, on in chosen if on)
        rows.append(
            (
                f"fits in {args.memory:g} GiB{f' ({options})' if options else ''}?",
                f"{'yes' if fit.fits else 'NO'}: needs about {fit.required_bytes / gib:.2f} GiB (runtime "
                f"{fit.runtime_bytes / gib:.1f} + state {fit.state_bytes / gib:.2f} + activations "
                f"{fit.activation_bytes / gib:.2f} x {1 + fit.margin:.2f})",
            )
        )
    for what, value in rows:
        table.add_row(what, value)
    console.print(table)
    if args.layers:
        breakdown = Table(title="per layer (G multiply-adds, MiB of activations)")
        for col in ("layer", "full GMACs", "paper GMACs", "activations MiB"):
            breakdown.add_column(col, justify="right")
        full_l, paper_l, mem_l = full.by_layer(), paper.by_layer(), mem.by_layer()
        for layer in full_l:
            label = "embedding/head" if layer is None else str(layer)
            breakdown.add_row(
                label,
                f"{full_l[layer] / 1e9:.2f}",
                f"{paper_l.get(layer, 0) / 1e9:.2f}",
                f"{mem_l.get(layer, 0) / 2**20:.1f}",
            )
        console.print(breakdown)
    return 0


def _mesh(text):
    from vidtr_keras.training.sharding import mesh_from_text

    try:
        return mesh_from_text(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).replace("`mesh`", "--mesh")) from None


def add_info_command(subparsers):
    """Registers `vidtr info PRESET`: configuration, parameters, GFLOPs in both conventions and the
    estimated training memory per clip."""
    from vidtr_keras.models.presets import preset_names

    p = subparsers.add_parser("info", help="configuration, parameters, GFLOPs (both conventions), training memory")
    p.add_argument("preset", choices=preset_names(), metavar="PRESET", help="one of: " + ", ".join(preset_names()))
    p.add_argument("--frames", type=int, default=None, help="clip length (default: the preset's)")
    p.add_argument("--image-size", type=int, default=None, help="frame size (default: the preset's)")
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--batch", type=int, default=1, help="clips per training step for the memory estimate")
    p.add_argument(
        "--optimizer-slots", type=int, default=1, help="optimizer tensors per parameter (1: SGD momentum, the paper's)"
    )
    p.add_argument("--layers", action="store_true", help="also print the per-layer breakdown")
    p.add_argument(
        "--memory",
        type=float,
        default=None,
        metavar="GIB",
        help="say whether a training step fits in this many GiB (analytic, nothing is allocated)",
    )
    p.add_argument("--remat", action="store_true", help="for --memory: with rematerialised encoder blocks")
    p.add_argument("--mixed-precision", action="store_true", help="for --memory: with mixed_bfloat16")
    p.add_argument(
        "--mesh",
        type=_mesh,
        default=None,
        metavar="DATAxMODEL",
        help="also the memory of one device of a model-parallel mesh (`vidtr train --distribute model-parallel`): "
        "the batch split over DATA, attention and MLP weights and tensors over MODEL; --memory then asks per device",
    )
    p.set_defaults(func=cmd_info)
    return p


def _repository_root():
    """The checkout holding `reproduce/` (the package is installed editable from it)."""
    here = pathlib.Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "reproduce" / "__main__.py").exists():
            return parent
    return None


def cmd_reproduce(args):
    root = _repository_root()
    if root is None:
        raise FileNotFoundError(
            "reproduce/ is only in a source checkout of vidtr-keras (not installed with the package)."
        )
    cmd = [sys.executable, "-m", "reproduce", args.name]
    if args.quick:
        cmd.append("--quick")
    return subprocess.call(cmd, cwd=root, env=dict(os.environ))


def add_reproduce_command(subparsers):
    """Registers `vidtr reproduce [NAME|all]`: runs `python -m reproduce NAME` in the source checkout,
    writing results/NAME.md and results/NAME.csv."""
    p = subparsers.add_parser("reproduce", help="reproduce the paper's tables (FLOPs, memory, latency) into results/")
    p.add_argument(
        "name",
        nargs="?",
        default="all",
        help="a paper table (table1, table2, ..., scaling), a named run (crosscheck, learning, benchmark), "
        "or all: the paper's tables",
    )
    p.add_argument("--quick", action="store_true", help="fewer timed runs and measured points")
    p.set_defaults(func=cmd_reproduce)
    return p


def register(subparsers):
    add_info_command(subparsers)
    add_reproduce_command(subparsers)
