"""The learning report's figures: top-1 per variant and task, and attention rollouts of trained models."""

from reproduce.learning.recipe import FRAMES, ROLLOUT_TASKS, SIZE, VARIANTS


def plot(path, top1, shuffled, variants, tasks):
    """One panel per regime: top-1 bars with 95 % intervals, the same models on shuffled frames as black
    ticks, chance dotted. `top1` and `shuffled`: {regime: {(variant, task): (mean, half-width)}}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = list(top1)
    fig, axes = plt.subplots(len(regimes), 1, figsize=(11, 3.6 * len(regimes) + 0.8), squeeze=False)
    width = 0.8 / len(variants)
    for ax, g in zip(axes[:, 0], regimes):
        stats = top1[g]
        for i, v in enumerate(variants):
            js = [j for j, t in enumerate(tasks) if (v, t) in stats]
            if not js:
                continue
            xs = [j + (i - (len(variants) - 1) / 2) * width for j in js]
            means = [stats[(v, tasks[j])][0] for j in js]
            errs = [stats[(v, tasks[j])][1] or 0.0 for j in js]
            ax.bar(xs, means, width, yerr=errs, capsize=2, label=v, color=f"C{i}")
            shuf = [shuffled[g].get((v, tasks[j]), (float("nan"),))[0] for j in js]
            ax.plot(xs, shuf, "k_", markersize=9, label="shuffled frames" if i == 0 else None)
        for j, t in enumerate(tasks):
            chance = 1.0 / len(task_classes(t))
            ax.hlines(chance, j - 0.45, j + 0.45, colors="k", linestyles="dotted", linewidth=1)
        ax.set_xticks(range(len(tasks)))
        ax.set_xticklabels(tasks)
        ax.set_ylabel("test top-1 (mean, 95% CI)")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"Procedural benchmark, tiny models, {g} (black ticks: shuffled frames; dotted: chance)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, ncol=5, loc="lower center")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def task_classes(task):
    from vidtr_keras.data.procedural import TASKS

    return TASKS[task].classes


def plot_rollouts(path, npz, stats, regime=""):
    """Each variant's seed-0 rollout on a test clip of the ROLLOUT_TASKS task it learned best (highest mean
    top-1 in `stats`), over that clip's frames; the raw test clips on top. None without rollouts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from vidtr_keras.data import procedural

    with np.load(npz) as f:
        entries = {k: f[k] for k in f.files}
    stored = {tuple(k.split("|")[:2]) for k in entries if k.endswith("|spatial")}
    variants = sorted({v for v, _ in stored}, key=list(VARIANTS).index)
    if not variants:
        return None
    tasks = [t for t in ROLLOUT_TASKS if any((v, t) in stored for v in variants)]
    clips = {t: procedural.generate(t, 2, seed=0, split="test", frames=FRAMES, size=SIZE) for t in tasks}
    shown = {}
    for v in variants:
        candidates = [t for t in tasks if (v, t) in stored]
        shown[v] = max(candidates, key=lambda t: stats.get((v, t), (0.0, None))[0])
    rows = len(tasks) + len(variants)
    fig, axes = plt.subplots(rows, FRAMES + 1, figsize=(FRAMES + 2.5, 1.25 * rows), squeeze=False)
    for row, t in enumerate(tasks):
        frames, labels = clips[t]
        for f in range(FRAMES):
            axes[row, f].imshow(frames[0, f])
            if row == 0:
                axes[row, f].set_title(f"frame {f}", fontsize=7)
        axes[row, 0].set_ylabel(f"{t} test clip\n({procedural.TASKS[t].classes[labels[0]]})", fontsize=7)
        axes[row, FRAMES].axis("off")
    for row, v in enumerate(variants, start=len(tasks)):
        t = shown[v]
        frames = clips[t][0][0]
        spatial, temporal = entries[f"{v}|{t}|spatial"][0], entries[f"{v}|{t}|temporal"][0]
        for f in range(FRAMES):
            ax = axes[row, f]
            ax.imshow(frames[f])
            if f < len(spatial):
                ax.imshow(
                    spatial[f],
                    cmap="inferno",
                    alpha=0.6,
                    extent=(0, SIZE, SIZE, 0),
                    interpolation="nearest",
                    vmin=0.0,
                    vmax=float(spatial.max()),
                )
        mean = stats.get((v, t), (float("nan"), None))[0]
        axes[row, 0].set_ylabel(f"{v}\n{t}, top-1 {mean:.2f}", fontsize=6)
        axes[row, FRAMES].bar(range(len(temporal)), temporal)
        axes[row, FRAMES].set_title("frame importance", fontsize=6)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        f"Attention rollout of seed-0 models{' (' + regime + ')' if regime else ''} on a test clip of the task "
        "each learned best (direction or fast motion):\nthe classified token's relevance on every patch of every "
        "frame (one colour scale per model) and per frame",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
