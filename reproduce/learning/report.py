"""results/learning.{md,csv,png}: the headline table with 95 % intervals, the setup, the costs of each
variant, the sensitivity analysis, the paper's claims and the rollouts of trained models."""

import os
from pathlib import Path

from reproduce import common
from reproduce.learning.baseline import conv3d_costs
from reproduce.learning.claims import claims, interval
from reproduce.learning.plots import plot, plot_rollouts, task_classes
from reproduce.learning.pretrain import vit_text
from reproduce.learning.recipe import (
    BACKEND,
    BASE,
    COMPACT,
    FRAMES,
    FULL,
    HEAD,
    LAYERS,
    PATCH,
    PRETRAINED,
    REGIMES,
    SCRATCH,
    SIZE,
    TASK_NAMES,
    VARIANTS,
    steps,
)
from reproduce.learning.regimes import claims_section, regimes_section, weakness_section
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


def regime_stats(spec, runs, regime, key="top1"):
    """{(variant, task): (mean, 95 % half-width)} of `key` over the seeds of one regime; runs of older
    reports (no regime recorded) are from scratch."""
    stats = {}
    for v in spec["variants"]:
        for t in spec["tasks"]:
            values = [
                r[key]
                for r in runs
                if r["variant"] == v and r["task"] == t and r.get("regime", SCRATCH) == regime and key in r
            ]
            if values:
                stats[(v, t)] = interval(values)
    return stats


def _cell(stat):
    if stat is None:
        return "—"
    mean, half = stat
    return f"{mean:.2f}" + ("" if half is None else f" ± {half:.2f}")


def report(ctx, spec, runs, minutes, easy=None, reruns=None, easy_date=None):
    """Writes results/learning.{md,csv,png} from the runs (also `python -m reproduce.learning --report`,
    from results/learning_runs.json, without training again)."""
    tasks = spec["tasks"]
    if easy is None:
        easy = run_easy(1 if ctx.quick else 3)
    regimes = [r for r in spec.get("regimes", [SCRATCH]) if r in REGIMES]
    top1 = {g: regime_stats(spec, runs, g) for g in regimes}
    shuffled = {g: regime_stats(spec, runs, g, "shuffled_top1") for g in regimes}
    cost = {v: costs(v, spec["batch_size"]) for v in spec["variants"]}
    columns = (
        ["variant", "initialisation"]
        + [f"{t} top-1" for t in tasks]
        + [f"{t} ±95%" for t in tasks]
        + [f"{t} shuffled-frames top-1" for t in tasks]
        + ["parameters", "GFLOPs (G multiply-adds per clip)", "training memory MiB (analytic, batch 32)"]
    )
    rows = []
    for g in regimes:
        for v in spec["variants"]:
            if not any((v, t) in top1[g] for t in tasks):
                continue
            rows.append(
                [v, g]
                + [top1[g][(v, t)][0] for t in tasks]
                + [top1[g][(v, t)][1] for t in tasks]
                + [shuffled[g].get((v, t), (None,))[0] for t in tasks]
                + [cost[v][1], round(cost[v][0], 4), cost[v][2]]
            )
    headline = []
    for g in regimes:
        display = [
            "| variant | "
            + " | ".join(f"{t} ({len(task_classes(t))} cl.) | {t} shuffled" for t in tasks)
            + " | params | MFLOPs | train MiB |",
            "|" + "---|" * (2 * len(tasks) + 4),
        ]
        for v in spec["variants"]:
            if not any((v, t) in top1[g] for t in tasks):
                blank = ["no pretrained form (from scratch only)"] + [""] * (2 * len(tasks) - 1)
                display.append(
                    f"| {v} | " + " | ".join(blank) + f" | {cost[v][1]:,} | {cost[v][0] * 1e3:.1f} | {cost[v][2]:.0f} |"
                )
                continue
            cells = [f"{_cell(top1[g].get((v, t)))} | {_cell(shuffled[g].get((v, t)))}" for t in tasks]
            display.append(
                f"| {v} | " + " | ".join(cells) + f" | {cost[v][1]:,} | {cost[v][0] * 1e3:.1f} | {cost[v][2]:.0f} |"
            )
        headline += [f"### {g}", "\n".join(display)]
    plot(common.RESULTS / "learning.png", top1, shuffled, spec["variants"], tasks)
    # The paper's regime where the run has it; the Conv3D has no pretrained form and joins from scratch.
    shown = PRETRAINED if PRETRAINED in regimes else SCRATCH
    shown_stats = {**top1.get(SCRATCH, {}), **top1[shown]}
    rollout_png = common.RESULTS / "learning_rollouts.png"
    if os.path.exists(spec["rollouts"]):
        rollout_png = plot_rollouts(rollout_png, spec["rollouts"], shown_stats, shown)
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
    cut = [t for t in TASK_NAMES if t not in tasks]
    cut_variants = [v for v in VARIANTS if v not in spec["variants"]]
    pretrained_text = ""
    if PRETRAINED in regimes and spec.get("vit_record"):
        pretrained_text = vit_text(spec["vit_record"], Path(spec["vit"]), spec.get("pretrain_minutes")) + " "
    claim_lines = {g: claims({**top1.get(SCRATCH, {}), **top1[g]}, cost) for g in regimes}
    notes += [
        "## Headline: test top-1, mean ± 95 % t interval over seeds, and on shuffled frames",
        "Each cell: top-1 on the test clips | top-1 of the same models on the same clips with their frames "
        "randomly permuted (one non-identity permutation per clip). A model that uses frame order drops towards "
        "chance on shuffled frames; one that does not keeps its accuracy."
        + (f" **Cut to fit the time budget:** the tasks {', '.join(cut)}" if cut else "")
        + (f"; the variants {', '.join(cut_variants)}" if cut_variants else "")
        + (" (the stored from-scratch-only run of 2026-11-26 had all five tasks)." if cut else "")
        + (
            f" This run was made with `python -m reproduce.learning --run {' '.join(tasks)}` (the machine was shared "
            f"with other jobs); `python -m reproduce learning` trains {', '.join(FULL['tasks'])}."
            if not ctx.quick and list(tasks) != list(FULL["tasks"])
            else ""
        ),
        *headline,
        "![top-1 per variant and task](learning.png)",
        f"Setup: {'QUICK MODE (one seed, fewer clips): not for conclusions. ' if ctx.quick else ''}"
        f"`vidtr_keras.data.procedural` tasks at {FRAMES} frames of {SIZE}x{SIZE} px, {spec['train']:,} training "
        f"clips per task seen {seen} "
        f"and {spec['test']} test clips (disjoint seed streams, balanced classes), the same data for every "
        f"variant; {spec['seeds']} seed{'s' if spec['seeds'] > 1 else ''} per variant, task and regime (the "
        "initial weights: all of them from "
        "scratch, the head and C-VidTr's pooling convolution after inflation; the models of a variant train side "
        "by side on the same batches, so the intervals do not include batch-order or pretraining variation). "
        f"Transformers: the `vidtr_tiny` preset (width 32, 4 heads, MLP 64, ReLU) with {LAYERS} encoder layers "
        f"and no dropout, at {FRAMES} frames with {PATCH[1]}x{PATCH[2]} patches ({SIZE // PATCH[1]}x"
        f"{SIZE // PATCH[2]} patches a frame), position embedding initialised at ViT's std 0.02; C-VidTr pools "
        f"{FRAMES} -> {FRAMES - sum(COMPACT['frames_dropped'])} frames in layer(s) "
        f"{', '.join(map(str, COMPACT['pool_layers']))} (joint attention after) with std-topK, average or strided "
        "1-D conv pooling; the Conv3D baseline has three 3x3x3 convolutions (16-32-32 channels, head dropout 0.5). "
        "Regimes: from scratch (random weights) and fractal-pretrained (every tensor but the head inflated from "
        "one image ViT by `vidtr_keras.convert.vit.inflate`, as `vidtr inflate` does: patch kernel as is, "
        "position embedding repeated over the frames, class token into every class token, each block's "
        "attention, MLP and norms into the same block of every variant). "
        + pretrained_text
        + "The Conv3D has no pretrained form (no image model of its shape exists here): it runs from scratch only "
        "and stands in both regimes' claims as it is. "
        f"One recipe for all, never tuned per variant or regime: AdamW (weight decay 0.004), batch "
        f"{spec['batch_size']}, {steps(spec)} steps, learning rate warmed up linearly from 0 to {spec['lr']} over "
        f"the first {spec.get('warmup', 0.0):.0%} of the steps, then cosine-decayed to 0; no augmentation, no "
        f"layer decay, test accuracy after the last step. {BACKEND} backend; {minutes:.1f} min in all (wall time, "
        f"{workers_text(spec)})"
        + (
            f"; the last session of a run continued after an interruption ({spec['continued']} runs kept from the "
            "earlier session, whose time is not counted)."
            if spec.get("continued")
            else "."
        ),
        "GFLOPs: `vidtr_keras.complexity.flops` (full count) for the transformers, conv multiply-adds for the "
        "Conv3D; training memory: `vidtr_keras.complexity.memory` (activations kept for the backward pass, "
        "parameters, gradients, two AdamW slots) and the same accounting by hand for the Conv3D.",
        "## Does image pretraining help? Pretrained minus from scratch",
        regimes_section(top1, shuffled, spec["variants"], tasks, regimes),
        "## The paper's claims, one by one, in each regime",
        claims_section(claim_lines, regimes),
        "## Does the official order's weakness from scratch survive image pretraining?",
        weakness_section(top1, shuffled, tasks, regimes, easy),
        "## Why the official temporal-spatial order learns order so slowly from scratch at this size",
        sensitivity_section(),
        easy_section(easy)
        + (
            f"\n\n(The easy-regime numbers are those of {easy_date}, kept from that run: they do not depend on "
            "the regimes and were not trained again.)"
            if easy_date
            else ""
        ),
    ]
    if rollout_png:
        notes += [
            "## Attention rollout of trained models",
            "Residual as 0.5 identity, rows renormalised, multiplied over layers "
            "(`vidtr_keras.apps.explain.attention_rollout`); "
            f"each variant's seed-0 model ({shown}) on a test clip of the moving-object task it learned best "
            "(direction or fast local motion, by mean top-1; the row says which and its top-1). Does the attention "
            "follow the moving square? A model near chance on both tasks shows where an untrained-like model looks.",
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
