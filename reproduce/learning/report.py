"""results/learning.{md,csv,png}: the headline table with 95 % intervals, the setup, the costs of each
variant, the sensitivity analysis, the paper's claims and the rollouts of trained models."""

import os

from reproduce import common
from reproduce.learning.baseline import conv3d_costs
from reproduce.learning.claims import claims, interval
from reproduce.learning.plots import plot, plot_rollouts, task_classes
from reproduce.learning.recipe import (
    BACKEND,
    BASE,
    COMPACT,
    FRAMES,
    HEAD,
    LAYERS,
    PATCH,
    SIZE,
    VARIANTS,
    steps,
)
from reproduce.learning.sensitivity import easy_section, run_easy, sensitivity_section
from reproduce.learning.worker import workers_text


def costs(variant, batch_size):
    """(G multiply-adds per clip, parameters, analytic training memory in MiB at `batch_size`)."""
    if VARIANTS[variant] is None:
        macs, params, nbytes = conv3d_costs(batch_size=batch_size)
        return macs / 1e9, params, nbytes / 2**20
    from vidtr_keras.complexity import count_parameters, flops, memory

    overrides = {k: v for k, v in dict(VARIANTS[variant], **BASE).items() if k != "head_dropout"}  # backbone only
    report = memory("vidtr_tiny", batch_size=batch_size, num_classes=HEAD, optimizer_slots=2, **overrides)
    return (
        flops("vidtr_tiny", num_classes=HEAD, **overrides).gflops,
        count_parameters("vidtr_tiny", num_classes=HEAD, **overrides),
        report.total_bytes / 2**20,
    )


def report(ctx, spec, runs, minutes, easy=None, reruns=None):
    """Writes results/learning.{md,csv,png} from the runs (also `python -m reproduce.learning --report`,
    from results/learning_runs.json, without training again)."""
    tasks = spec["tasks"]
    stats = {}
    for v in spec["variants"]:
        for t in tasks:
            stats[(v, t)] = interval([r["top1"] for r in runs if r["variant"] == v and r["task"] == t])
    cost = {v: costs(v, spec["batch_size"]) for v in spec["variants"]}
    columns = (
        ["variant"]
        + [f"{t} top-1" for t in tasks]
        + [f"{t} ±95%" for t in tasks]
        + ["parameters", "GFLOPs (G multiply-adds per clip)", "training memory MiB (analytic, batch 32)"]
    )
    rows = []
    for v in spec["variants"]:
        rows.append(
            [v]
            + [stats[(v, t)][0] for t in tasks]
            + [stats[(v, t)][1] for t in tasks]
            + [cost[v][1], round(cost[v][0], 4), cost[v][2]]
        )
    display = [
        "| variant | "
        + " | ".join(f"{t} ({len(task_classes(t))} cl.)" for t in tasks)
        + " | params | MFLOPs | train MiB |",
        "|" + "---|" * (len(tasks) + 4),
    ]
    for v in spec["variants"]:
        cells = []
        for t in tasks:
            mean, half = stats[(v, t)]
            cells.append(f"{mean:.2f}" + ("" if half is None else f" ± {half:.2f}"))
        display.append(
            f"| {v} | " + " | ".join(cells) + f" | {cost[v][1]:,} | {cost[v][0] * 1e3:.1f} | {cost[v][2]:.0f} |"
        )
    plot(common.RESULTS / "learning.png", stats, spec["variants"], tasks)
    rollout_png = common.RESULTS / "learning_rollouts.png"
    if os.path.exists(spec["rollouts"]):
        rollout_png = plot_rollouts(rollout_png, spec["rollouts"], stats)
        os.remove(spec["rollouts"])
    elif not rollout_png.exists():  # `--report` keeps the picture of the run it reports
        rollout_png = None
    notes = [spec["note"]] if spec.get("note") else []
    for again in reruns or ():
        notes.append(
            f"The {again['task']} task was trained again for every variant on {again['date']} "
            f"(`python -m reproduce.learning --rerun-task {again['task']}`, {again['minutes']:.1f} min), after a "
            "fix of its data; the runs it replaced are kept in learning_runs.json under `superseded`."
        )
    seen = "once each (fresh clips every step: the generator is unlimited)"
    if spec["epochs"] > 1:
        seen = f"{spec['epochs']} times each"
    notes += [
        "## Headline: test top-1, mean ± 95 % t interval over seeds",
        "\n".join(display),
        "![top-1 per variant and task](learning.png)",
        f"Setup: {'QUICK MODE (one seed, fewer clips): not for conclusions. ' if ctx.quick else ''}"
        f"`vidtr_keras.data.procedural` tasks at {FRAMES} frames of {SIZE}x{SIZE} px, {spec['train']:,} training "
        f"clips per task seen {seen} "
        f"and {spec['test']} test clips (disjoint seed streams, balanced classes), the same data for every "
        f"variant; {spec['seeds']} seeds (weights and batch order) per variant and task. Transformers: the "
        f"`vidtr_tiny` preset (width 32, 4 heads, MLP 64) with {LAYERS} encoder layers and no dropout, at {FRAMES} "
        f"frames with {PATCH[1]}x{PATCH[2]} patches ({SIZE // PATCH[1]}x{SIZE // PATCH[2]} patches a frame), "
        "position embedding initialised at ViT's std 0.02; C-VidTr pools "
        f"{FRAMES} -> {FRAMES - sum(COMPACT['frames_dropped'])} frames in layer(s) "
        f"{', '.join(map(str, COMPACT['pool_layers']))} (joint attention after) with std-topK, average or strided "
        "1-D conv pooling; the Conv3D baseline has three 3x3x3 convolutions (16-32-32 channels, head dropout 0.5). "
        f"One recipe for all, never tuned per variant: AdamW (weight decay 0.004), batch {spec['batch_size']}, "
        f"{steps(spec)} steps, learning rate warmed up linearly from 0 to {spec['lr']} over the first "
        f"{spec.get('warmup', 0.0):.0%} of the steps, then cosine-decayed to 0; no augmentation, test accuracy "
        f"after the last step. {BACKEND} backend; {minutes:.1f} min of training (wall time, "
        f"{workers_text(spec)}).",
        "GFLOPs: `vidtr_keras.complexity.flops` (full count) for the transformers, conv multiply-adds for the "
        "Conv3D; training memory: `vidtr_keras.complexity.memory` (activations kept for the backward pass, "
        "parameters, gradients, two AdamW slots) and the same accounting by hand for the Conv3D.",
        "## Why the official temporal-spatial order learns order so slowly at this size",
        sensitivity_section(),
        easy_section(easy or run_easy(1 if ctx.quick else 3)),
        "## The paper's claims, one by one",
        "\n".join(claims(stats, cost)),
    ]
    if rollout_png:
        notes += [
            "## Attention rollout of trained models",
            "Residual as 0.5 identity, rows renormalised, multiplied over layers "
            "(`vidtr_keras.apps.explain.attention_rollout`); "
            "each variant's seed-0 model on a test clip of the moving-object task it learned best (direction "
            "or fast local motion, by mean top-1; the row says which and its top-1). Does the attention follow "
            "the moving square? A model near chance on both tasks shows where an untrained-like model looks.",
            f"![rollouts]({rollout_png.name})",
        ]
    else:
        notes += [
            "## Attention rollout of trained models",
            "Not produced: `vidtr_keras.apps.explain.attention_rollout` was not importable.",
        ]
    return common.write(
        "learning",
        "Does it learn? Accuracy on a procedural temporal-reasoning benchmark",
        columns,
        rows,
        notes=notes,
        backends=(BACKEND,),
    )
