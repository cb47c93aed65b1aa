"""The paper's qualitative claims, each checked against the 95 % intervals of the learning run."""

import math

from reproduce.learning.recipe import LONG_RANGE, TASK_NAMES, TEMPORAL

T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def interval(values):
    """Mean and the half-width of its 95 % t interval (None for one value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, T_975.get(n - 1, 1.96) * sd / math.sqrt(n)


VERDICTS = ("held", "not held", "undecided")


def _verdict(held, text, decidable=True, why="the variants compared are at chance on every task: equal only trivially"):
    """A markdown line: **held** / **not held** where the numbers decide, **undecided** (and why) where not."""
    if not decidable:
        return f"- **undecided** ({why}): {text}"
    return f"- **{'held' if held else 'not held'}**: {text}"


def verdict_of(line):
    """The verdict word of a `claims` line."""
    return next(v for v in VERDICTS if line.startswith(f"- **{v}**"))


# Short names of the six claims, in the order `claims` lists them.
CLAIM_NAMES = (
    "separable ~ joint",
    "temp.-spat. ~ spat.-temp.",
    "spatial-only behind",
    "std-topK >= average >= conv",
    "VidTr > Conv3D long-range",
    "Conv3D > VidTr fast motion",
)


# A variant "learned" a task when its interval's lower end is this far above chance: with tight
# intervals, a 0.515 +- 0.008 on a two-class task is above chance beyond the interval but is not a
# model that learned the task, and an equality claim between two such models says nothing.
LEARNED_MARGIN = 0.05


def claims(stats, cost):
    """The paper's qualitative claims, each checked against the intervals."""

    def m(v, t):
        return stats[(v, t)][0]

    def hw(v, t):
        return stats[(v, t)][1] or 0.0

    def apart(a, b, t):  # a ahead of b beyond both intervals
        return m(a, t) - hw(a, t) > m(b, t) + hw(b, t)

    def within(a, b, t):
        return abs(m(a, t) - m(b, t)) <= hw(a, t) + hw(b, t)

    def learned(v, t):  # the interval's lower end at least LEARNED_MARGIN above chance
        from vidtr_keras.data import procedural

        return m(v, t) - hw(v, t) > 1.0 / len(procedural.TASKS[t].classes) + LEARNED_MARGIN

    def informative(a, b):  # an equality claim says something only where one of the two learned
        return any(learned(a, t) or learned(b, t) for t in tasks)

    def differ(a, b, same):  # the tasks where a and b are apart, with both means
        rest = [t for t in tasks if t not in same]
        if not rest:
            return ""
        return "; apart on " + ", ".join(f"{t} ({a} {m(a, t):.2f} vs {m(b, t):.2f})" for t in rest)

    tasks = sorted({t for _, t in stats}, key=TASK_NAMES.index)
    have = {v for v, _ in stats}
    lines = []
    if (
        not {
            "vanilla (joint)",
            "VidTr temp.-spat.",
            "VidTr spat.-temp.",
            "spatial only",
            "C-VidTr std-topK",
            "C-VidTr average",
            "C-VidTr 1-D conv",
            "Conv3D",
        }
        <= have
    ):
        return ["- (quick mode: not every variant ran; the claims are checked by the full run only)"]
    ts, joint = "VidTr temp.-spat.", "vanilla (joint)"
    ratio = cost[joint][2] / cost[ts][2]
    same = [t for t in tasks if within(ts, joint, t)]
    lines.append(
        _verdict(
            len(same) == len(tasks),
            f"separable (temp.-spat.) matches joint within the intervals on {len(same)}/{len(tasks)} tasks "
            f"({', '.join(same) or 'none'}){differ(ts, joint, same)}, at {1 / ratio:.2f}x the training memory of "
            "joint attention (analytic, batch 32; "
            f"the joint model needs {ratio:.1f}x).",
            informative(ts, joint),
        )
    )
    st = "VidTr spat.-temp."
    same = [t for t in tasks if within(ts, st, t)]
    lines.append(
        _verdict(
            len(same) == len(tasks),
            f"temporal-spatial and spatial-temporal orders are equal (Table 4b: 77.7 both) within the intervals on "
            f"{len(same)}/{len(tasks)} tasks ({', '.join(same) or 'none'}){differ(ts, st, same)}.",
            informative(ts, st),
        )
    )
    sp = "spatial only"
    temporal = [t for t in tasks if t in TEMPORAL]
    behind = [t for t in temporal if apart(ts, sp, t)]
    static_ok = "static" not in tasks or not apart(ts, sp, "static")
    lines.append(
        _verdict(
            len(behind) == len(temporal) and static_ok,
            "spatial-only falls behind VidTr (temp.-spat.) beyond the intervals on "
            f"{len(behind)}/{len(temporal)} temporal "
            f"tasks ({', '.join(behind) or 'none'})"
            + (
                f"; on the static control it is {'not ' if static_ok else ''}behind "
                f"({m(sp, 'static'):.2f} vs {m(ts, 'static'):.2f})."
                if "static" in tasks
                else "."
            ),
            any(learned(ts, t) or learned(sp, t) for t in temporal),
            "neither model learned a temporal task",
        )
    )
    mean_over = {
        v: sum(m(v, t) for t in tasks) / len(tasks) for v in ("C-VidTr std-topK", "C-VidTr average", "C-VidTr 1-D conv")
    }
    s, a, c = mean_over.values()
    lines.append(
        _verdict(
            s >= a >= c,
            f"std-topK >= average >= 1-D conv pooling (Table 4d: 75.7 / 74.9 / 75.4 top-1; note the paper's own conv "
            f"row is above average pooling): mean top-1 over the tasks {s:.3f} / {a:.3f} / {c:.3f}; "
            + ", ".join(
                f"{t}: {m('C-VidTr std-topK', t):.2f} / {m('C-VidTr average', t):.2f} / {m('C-VidTr 1-D conv', t):.2f}"
                for t in tasks
            )
            + ".",
            any(learned(v, t) for v in mean_over for t in tasks),
            "no pooling variant learned any task",
        )
    )
    long_range = [t for t in LONG_RANGE if t in tasks]
    if long_range:
        ahead = [t for t in long_range if apart(ts, "Conv3D", t)]
        lines.append(
            _verdict(
                len(ahead) == len(long_range),
                "VidTr ahead of the Conv3D on the long-range tasks beyond the intervals on "
                f"{len(ahead)}/{len(long_range)} "
                "(" + ", ".join(f"{t}: {m(ts, t):.2f} vs {m('Conv3D', t):.2f}" for t in long_range) + ").",
                any(learned(ts, t) or learned("Conv3D", t) for t in long_range),
                "neither model learned a long-range task",
            )
        )
    else:
        lines.append(
            _verdict(False, "VidTr ahead of the Conv3D on the long-range tasks.", False, "no long-range task ran")
        )
    if "motion" in tasks:
        lines.append(
            _verdict(
                apart("Conv3D", ts, "motion"),
                "the Conv3D ahead of VidTr on fast local motion: "
                f"{m('Conv3D', 'motion'):.2f} vs {m(ts, 'motion'):.2f}.",
                learned(ts, "motion") or learned("Conv3D", "motion"),
                "neither model learned fast motion",
            )
        )
    else:
        lines.append(
            _verdict(False, "the Conv3D ahead of VidTr on fast local motion.", False, "the motion task did not run")
        )
    return lines
