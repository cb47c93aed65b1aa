"""Memory and FLOPs against frames (8-64) and resolution (112-448) for joint, separable and compact
models: analytic everywhere, measured where it is affordable, plotted."""

from reproduce import common

FRAMES = [8, 16, 32, 64]
SIZES = [112, 160, 224, 320, 448]
FAMILIES = ["joint", "separable", "compact"]
GIB = 2.0**30


def compact_schedule(frames):
    """C-VidTr's schedules: the released C-VidTr-S at 8 frames, C-VidTr-M / -L at 16 / 32, and the same
    halving pattern extended to 64 frames (64 -> 32 -> 16 -> 8 -> 4 -> 2 at layers 1, 2, 4, 6, 8)."""
    return {
        8: ((1, 3, 5), (2, 2, 2)),
        16: ((1, 2, 4), (8, 4, 2)),
        32: ((1, 2, 4, 6), (16, 8, 4, 2)),
        64: ((1, 2, 4, 6, 8), (32, 16, 8, 4, 2)),
    }[frames]


def point(family, frames, size):
    overrides = {"num_frames": frames, "image_size": size}
    if family == "joint":
        overrides["attention"] = "joint"
    elif family == "compact":
        layers, dropped = compact_schedule(frames)
        overrides.update(pool_layers=list(layers), frames_dropped=list(dropped))
    return {"preset": "vidtr_s", "overrides": overrides, "label": f"{family} {frames}x{size}"}


def run(ctx):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vidtr_keras.complexity import flops, memory

    points = []
    for family in FAMILIES:
        for frames in FRAMES:
            points.append((family, frames, 224))
        for size in SIZES:
            if size != 224:
                points.append((family, 8, size))
    models = [point(*p) for p in points]
    if ctx.quick:
        xla_points = [(f, 8, 112) for f in FAMILIES]
    else:
        xla_points = [(f, fr, sz) for f in FAMILIES for fr, sz in ((8, 112), (8, 160), (8, 224), (16, 224))]
        xla_points += [("separable", 32, 224), ("compact", 32, 224), ("compact", 8, 320)]
    saved = {
        i["label"]: i
        for i in common.worker(ctx, {"kind": "saved_tensors", "models": models}, "torch", "scaling saved tensors")
    }
    xla_flops = {
        i["label"]: i
        for i in common.worker(
            ctx, {"kind": "flops", "models": models, "whole_program": False}, "jax", "scaling XLA FLOPs", timeout=1200
        )
    }
    xla_mem = {
        i["label"]: i
        for i in common.worker(
            ctx,
            {"kind": "xla_memory", "models": [point(*p) for p in xla_points]},
            "jax",
            "scaling XLA memory",
            timeout=1200,
        )
    }

    rows, data = [], {}
    for family, frames, size in points:
        label = point(family, frames, size)["label"]
        overrides = point(family, frames, size)["overrides"]
        full = flops("vidtr_s", **overrides)
        paper = flops("vidtr_s", convention="paper", **overrides)
        mem = memory("vidtr_s", optimizer_slots=1, **overrides)
        s = saved.get(label, {}).get("saved_bytes")
        x = xla_mem.get(label, {}).get("xla_temp_bytes")
        xf = xla_flops.get(label, {}).get("backend_flops")
        row = [
            family,
            frames,
            size,
            full.gflops,
            paper.gflops,
            None if xf is None else xf / 2e9,
            mem.activation_bytes / GIB,
            mem.total_bytes / GIB,
            None if s is None else s / GIB,
            None if x is None else x / GIB,
        ]
        rows.append(row)
        data[(family, frames, size)] = row
    columns = [
        "model",
        "frames",
        "resolution",
        "GFLOPs full (analytic)",
        "GFLOPs paper convention",
        "GFLOPs XLA (measured)",
        "activations GiB (analytic)",
        "training total GiB (analytic, SGD momentum)",
        "torch saved tensors GiB (measured)",
        "XLA temp GiB (measured, jax)",
    ]

    fig, axes = plt.subplots(2, 2, figsize=(15, 8.5))
    colours = {"joint": "tab:red", "separable": "tab:blue", "compact": "tab:green"}
    for col, (axis_name, xs, key) in enumerate(
        (("frames (224 px)", FRAMES, lambda v: (v, 224)), ("resolution (8 frames)", SIZES, lambda v: (8, v)))
    ):
        for family in FAMILIES:
            c = colours[family]
            rows_f = [data[(family,) + key(v)] for v in xs]
            ax = axes[0, col]
            ax.plot(xs, [r[3] for r in rows_f], "-", color=c, label=f"{family}: full (analytic)")
            ax.plot(
                xs,
                [r[4] for r in rows_f],
                ":",
                color=c,
                label=f"{family}: paper convention" + (" (= joint)" if family == "separable" else ""),
            )
            ax.plot([v for v, r in zip(xs, rows_f) if r[5]], [r[5] for r in rows_f if r[5]], "o", color=c, mfc="none")
            ax = axes[1, col]
            ax.plot(xs, [r[6] for r in rows_f], "-", color=c, label=f"{family}: activations (analytic)")
            ax.plot(
                xs, [r[7] for r in rows_f], ":", color=c, lw=1, label=f"{family}: + parameters, gradients, momentum"
            )
            ax.plot(
                [v for v, r in zip(xs, rows_f) if r[8]],
                [r[8] for r in rows_f if r[8]],
                "s--",
                color=c,
                mfc="none",
                label=f"{family}: torch saved tensors (measured)",
            )
            ax.plot(
                [v for v, r in zip(xs, rows_f) if r[9]],
                [r[9] for r in rows_f if r[9]],
                "^",
                color=c,
                ms=9,
                label=f"{family}: XLA temp of the step (measured)",
            )
        for row, ylabel in ((0, "G multiply-adds per clip"), (1, "GiB per clip (batch 1)")):
            ax = axes[row, col]
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(xs)
            ax.set_xticklabels([str(v) for v in xs])
            ax.set_xlabel(axis_name)
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
        axes[1, col].axhline(_ram_gib(), color="grey", lw=0.8)
    for row in (0, 1):
        handles, labels = axes[row, 0].get_legend_handles_labels()
        axes[row, 1].legend(handles, labels, fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    axes[0, 0].set_title("FLOPs (circles: XLA's count)")
    axes[1, 0].set_title("training memory per clip (grey: this machine's RAM)")
    fig.tight_layout()
    common.RESULTS.mkdir(exist_ok=True)
    fig.savefig(common.RESULTS / "scaling.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

    j64, s64 = data[("joint", 64, 224)], data[("separable", 64, 224)]
    notes = [
        "![scaling](scaling.png)",
        "Models: joint = the vanilla transformer (joint attention, one class token); separable = VidTr (class-token "
        "grid); compact = C-VidTr (released C-VidTr-S schedule at 8 frames, C-VidTr-M/-L at 16/32, the halving "
        "pattern extended to 64 frames at layers 1, 2, 4, 6, 8). Each point is a model configured for that clip "
        "(position embedding sized for it).",
        "The memory panels compare like with like where possible: the solid line is the analytic activation memory "
        "(what the forward pass keeps for the backward pass), the dashed squares PyTorch's saved tensors (the same "
        "quantity as torch keeps it, with its layout copies), the triangles XLA's temporaries of the whole compiled "
        "step (activations plus gradients and backward buffers, after fusion); the dotted line adds parameters, "
        "gradients and one momentum slot to the analytic activations.",
        "Measured: FLOPs by XLA's cost analysis of the model's dot/convolution ops (jax, every point; equal to the "
        "analytic count, see crosscheck.md); activation memory by PyTorch's saved tensors on the meta device (every "
        "point: autograd's bookkeeping needs no memory there) and by XLA's memory analysis of the compiled training "
        f"step at {', '.join(sorted({f'{f} {fr}x{sz}' for f, fr, sz in xla_points}))} (each compile takes 10-35 s "
        "on this machine, so the larger points are analytic only; a compile-time analysis needs no memory, so "
        "points beyond this machine's RAM could be analysed, at a cost in time). No point is run for "
        "real beyond table4b's 8x224: a "
        f"64-frame joint training step would need {j64[7]:.0f} GiB (analytic) against this machine's "
        f"{_ram_gib():.0f} GiB.",
        f"At 64 frames joint attention costs {j64[3]:.0f} G multiply-adds and {j64[7]:.0f} GiB, separable "
        f"{s64[3]:.0f} G and {s64[7]:.1f} GiB: joint memory grows with (T S)^2, separable with T S (T + S) — the "
        "paper's memory argument, which the measured points follow.",
    ]
    return common.write(
        "scaling",
        "Scaling: memory and FLOPs against frames and resolution",
        columns,
        rows,
        notes,
        backends=("torch (meta device)", "jax"),
    )


def _ram_gib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 2**20
    return float("nan")
