"""Where the JAX training step's time goes on the CPU: one compiled Keras train step per model, profiled
with `jax.profiler` and broken down by what XLA made of it.

Per model, in one fresh JAX process: the backend settings `vidtr train` applies (`tune_backend`), the
model compiled as `reproduce/benchmark` compiles it (SGD + momentum, sparse cross-entropy), its own
`train_on_batch` timed, then the same `model.train_step` jitted as Keras jits it
(`jax.jit(train_step, donate_argnums=0)`), lowered and compiled, timed again and traced with
`jax.profiler`. XLA:CPU runs a compiled step as a sequence of thunks, one per top-level HLO instruction
(a fusion, a dot, a copy), and the trace holds each thunk's time under its instruction's name; the
compiled HLO text (`compiled.as_text()`) says what each instruction is: its fused operations, the JAX
source path of the operation it came from (`op_name`, with Keras' layer names and `transpose(jvp(...))`
for the backward pass) and, for dots, the FLOPs from their shapes. `categorise` sorts the thunks into
categories (attention-map matmuls, dense matmuls, softmax, layout copies, LayerNorm, ...) and the report
gives each category's seconds, share of the step, GFLOP and GFLOP/s against the 2048^3 fp32 matmul peak
measured in the same process (`vidtr_keras.complexity.benchmark.matmul_peak`).

Writes results/jax_profile.{md,csv} and the raw figures to results/jax_profile_runs.json.

    python -m benchmarks jax_profile [--quick] [--presets vanilla_s vidtr_s cvidtr_s]
    python -m benchmarks jax_profile --report     the report again from the stored figures
"""

import argparse
import collections
import json
import math
import os
import re
import sys

from reproduce import common

PRESETS = ("vanilla_s", "vidtr_s", "cvidtr_s")
QUICK_PRESETS = ("vidtr_s",)  # --quick's default: one compile-bound process of about a minute
CLIP = (8, 224)  # frames, image size: the presets' own clip
QUICK_CLIP = (8, 64)  # 8 frames keep C-VidTr's pooling schedule (8 -> 6 -> 4 -> 2)
TIMEOUT_S = 900  # one model's process
TOP = 12  # thunks listed per model

# Categories, in report order. The attention maps are the batched dots of the attention layers and the
# std-topK pooling (q k^T, p v and their gradients); dense matmuls are the unbatched dots (qkv, output,
# MLP, patch embedding, head, and their data and weight gradients).
ATTENTION_MAPS = "attention maps: q k^T, p v (batched dots)"
DENSE = "dense matmuls: qkv, output, MLP, embedding, head"
FENCE = "gradient fence (identity matmul)"
SOFTMAX = "attention softmax, scale, bias, dropout"
LAYOUT = "layout: transposes, copies, reshapes"
NORM = "LayerNorm"
MLP_ACTIVATION = "MLP activation and bias"
RNG = "dropout: random bits and mask (fused)"
POOLING = "std-topK pooling (not dots)"
OPTIMIZER = "optimizer update (SGD)"
OTHER = "residual adds, drop path, embedding, loss, other"
CATEGORIES = (
    ATTENTION_MAPS,
    DENSE,
    FENCE,
    SOFTMAX,
    LAYOUT,
    NORM,
    MLP_ACTIVATION,
    RNG,
    POOLING,
    OPTIMIZER,
    OTHER,
)
DIRECTIONS = ("forward", "backward", "update", "unknown")

# Operations that only move or reinterpret data: a thunk made of nothing else is a layout change.
LAYOUT_OPS = frozenset(
    "copy transpose bitcast reshape broadcast slice concatenate pad parameter constant tuple "
    "get-tuple-element dynamic-slice dynamic-update-slice reverse".split()
)
RNG_OPS = frozenset({"xor", "shift-left", "shift-right-logical"})
_FENCE_MAX_CONTRACTION = 16  # the fence contracts over 8-channel groups; no model matmul is that thin


# --- the compiled HLO text ------------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(?:ENTRY\s+)?%([\w.\-]+)\s*\(.*\{\s*$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%([\w.\-]+)\s*=\s*(.+?)\s+([a-z][\w\-]*)\((.*)$")
_ARRAY = re.compile(r"[a-z]\w*\[([\d,]*)\]")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_CALLS = re.compile(r"\bcalls=%([\w.\-]+)")
_DIMS = {key: re.compile(rf"\b{key}=\{{([\d,]*)\}}") for key in ("lhs_contracting_dims", "lhs_batch_dims")}


def _dims(shape_text):
    """The dimensions of the first array in an HLO shape (`f32[2,3]{1,0}` -> (2, 3); a scalar -> ())."""
    match = _ARRAY.search(shape_text)
    return tuple(int(d) for d in match.group(1).split(",") if d) if match else ()


def _split_operands(rest):
    """(operand text, attribute text) of the text after an instruction's opening parenthesis."""
    depth = 1
    for i, char in enumerate(rest):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return rest[:i], rest[i + 1 :]
    return rest, ""


def parse_hlo(text):
    """The instructions of an HLO module's text (`compiled.as_text()`).

    Returns:
        {computation name: [instruction dict]}, each instruction with `name`, `opcode`, `shape` (dims of
        its first array), `operands` (names), `op_name` (the JAX source path, "" when XLA dropped it),
        `calls` (the fused computation, or None), `contracting` and `batch` (a dot's lhs dims).
    """
    computations, current = {}, None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header and "=" not in line.split("(")[0]:
            current = computations.setdefault(header.group(1), [])
            continue
        match = _INSTRUCTION.match(line)
        if match is None or current is None:
            continue
        name, shape, opcode, rest = match.groups()
        operands, attributes = _split_operands(rest)
        op_name = _OP_NAME.search(attributes)
        calls = _CALLS.search(attributes)
        instruction = {
            "name": name,
            "opcode": opcode,
            "shape": _dims(shape),
            "operands": re.findall(r"%([\w.\-]+)", operands),
            "op_name": op_name.group(1).split(";")[0] if op_name else "",
            "calls": calls.group(1) if calls else None,
        }
        for key, pattern in _DIMS.items():
            found = pattern.search(attributes)
            instruction[key.split("_")[1]] = tuple(int(d) for d in found.group(1).split(",") if d) if found else ()
        current.append(instruction)
    return computations


def dot_flops(instruction, shapes):
    """2 x multiply-adds of a dot: output elements x the product of the lhs contracting dims."""
    lhs = shapes.get(instruction["operands"][0], ()) if instruction["operands"] else ()
    contraction = math.prod(lhs[d] for d in instruction["contracting"] if d < len(lhs))
    return 2 * math.prod(instruction["shape"]) * contraction


def describe(computations):
    """{instruction name: what one thunk runs}: its opcodes (through fusions), dot FLOPs, whether a dot is
    batched, its smallest dot contraction, and its op_name (the first fused one where XLA left the
    fusion's own empty)."""
    shapes_of = {comp: {i["name"]: i["shape"] for i in instructions} for comp, instructions in computations.items()}

    def inside(comp, seen=()):
        opcodes, flops, batched, contraction, op_name = set(), 0, False, math.inf, ""
        for i in computations.get(comp, []):
            opcodes.add(i["opcode"])
            op_name = op_name or i["op_name"]
            if i["opcode"] == "dot":
                flops += dot_flops(i, shapes_of[comp])
                batched = batched or bool(i["batch"])
                lhs = shapes_of[comp].get(i["operands"][0], ()) if i["operands"] else ()
                contraction = min(contraction, math.prod(lhs[d] for d in i["contracting"] if d < len(lhs)))
            if i["calls"] and i["calls"] not in seen:
                sub = inside(i["calls"], seen + (comp,))
                opcodes |= sub["opcodes"]
                flops += sub["flops"]
                batched = batched or sub["batched"]
                contraction = min(contraction, sub["contraction"])
                op_name = op_name or sub["op_name"]
        return {"opcodes": opcodes, "flops": flops, "batched": batched, "contraction": contraction, "op_name": op_name}

    described = {}
    for comp, instructions in computations.items():
        for i in instructions:
            if i["calls"]:
                thunk = inside(i["calls"])
                thunk["op_name"] = i["op_name"] or thunk["op_name"]
            else:
                flops = dot_flops(i, shapes_of[comp]) if i["opcode"] == "dot" else 0
                lhs = shapes_of[comp].get(i["operands"][0], ()) if i["operands"] else ()
                contraction = math.prod(lhs[d] for d in i["contracting"] if d < len(lhs)) if flops else math.inf
                thunk = {
                    "opcodes": {i["opcode"]},
                    "flops": flops,
                    "batched": bool(i["batch"]),
                    "contraction": contraction,
                    "op_name": i["op_name"],
                }
            thunk.update(opcode=i["opcode"], shape=i["shape"], operands=i["operands"])
            described[i["name"]] = thunk
    # A thunk XLA left without any source path takes its inputs': the backward one where any input is
    # from the backward pass (a gradient dot reads forward activations and a backward gradient).
    for thunk in described.values():
        if not thunk["op_name"]:
            names = [described[o]["op_name"] for o in thunk["operands"] if o in described]
            backward = [n for n in names if direction(n) == "backward"]
            thunk["op_name"] = (backward or [n for n in names if n] or [""])[0]
    return described


def direction(op_name):
    """forward, backward (`transpose(jvp(...))`, JAX's reverse pass), update (the optimizer) or unknown."""
    if "transpose(jvp(" in op_name:
        return "backward"
    if "jvp(" in op_name:
        return "forward"
    if "/sgd/" in op_name or "optimizer" in op_name:
        return "update"
    return "unknown"


def categorise(thunk):
    """The category (one of `CATEGORIES`) of one thunk as `describe` gives it."""
    path, opcodes = thunk["op_name"], thunk["opcodes"] - {"parameter", "constant"}
    scopes = path.split("/")
    if direction(path) == "update":
        return OPTIMIZER
    if thunk["flops"]:
        if thunk["batched"]:  # the models' only batched dots: attention maps, and the pooling's frame gather
            return ATTENTION_MAPS
        if thunk["contraction"] <= _FENCE_MAX_CONTRACTION:
            return FENCE
        return DENSE
    if opcodes <= LAYOUT_OPS:
        return LAYOUT
    if opcodes & RNG_OPS:
        return RNG
    if any(s.startswith("norm") or "layer_norm" in s for s in scopes):
        return NORM
    if "erf" in opcodes or "mlp_dense1" in scopes or "gelu" in path:
        return MLP_ACTIVATION
    if any("pooling" in s for s in scopes):
        return POOLING
    if "attention" in scopes:
        return SOFTMAX
    return OTHER


def thunk_times(trace, module="jit_train_step"):
    """{HLO instruction name: summed microseconds} from a Chrome-format trace (`*.trace.json.gz` of
    `jax.profiler.trace`): XLA:CPU's thunk events carry the instruction in `args.hlo_op`."""
    times = collections.Counter()
    for event in trace.get("traceEvents", []):
        args = event.get("args") or {}
        if event.get("ph") == "X" and args.get("hlo_module") == module and "hlo_op" in args:
            times[args["hlo_op"]] += float(event.get("dur", 0.0))
    return dict(times)


def breakdown(described, times_us, steps):
    """Per (category, direction): seconds per step, GFLOP per step and thunk count; and the thunks by
    time. Thunks absent from the HLO (none expected) count as OTHER/unknown."""
    table = collections.defaultdict(lambda: {"seconds": 0.0, "gflop": 0.0, "thunks": 0})
    thunks = []
    for name, us in times_us.items():
        thunk = described.get(name, {"opcodes": set(), "flops": 0, "batched": False, "op_name": "", "shape": ()})
        category = categorise(thunk) if name in described else OTHER
        way = direction(thunk["op_name"])
        seconds = us / 1e6 / steps
        row = table[(category, way)]
        row["seconds"] += seconds
        row["gflop"] += thunk["flops"] / 1e9
        row["thunks"] += 1
        thunks.append(
            {
                "name": name,
                "category": category,
                "direction": way,
                "seconds": seconds,
                "gflop": thunk["flops"] / 1e9,
                "shape": list(thunk.get("shape", ())),
                "op_name": thunk["op_name"],
            }
        )
    thunks.sort(key=lambda t: -t["seconds"])
    return [{"category": c, "direction": d, **v} for (c, d), v in table.items()], thunks


# --- the measuring child ----------------------------------------------------------------------------------


def _note(text):
    print(f"PROGRESS {text}", flush=True)


def worker(preset, frames, image_size, runs, compiled_runs, profile_steps):
    """Runs in a fresh JAX process: one RESULT line with the step times, the breakdown and the peak."""
    import glob
    import gzip
    import statistics
    import tempfile
    import time

    import jax
    import keras
    import numpy as np

    from vidtr_keras.backends import tune_backend
    from vidtr_keras.complexity.benchmark import matmul_peak
    from vidtr_keras.complexity.flops import flops
    from vidtr_keras.models import build_model

    tuning = tune_backend()
    _note("matmul peak")
    peaks = [matmul_peak()]
    keras.utils.set_random_seed(0)
    model = build_model(preset, num_frames=frames, image_size=image_size)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    clip = np.random.default_rng(0).standard_normal((1, frames, image_size, image_size, 3)).astype("float32")
    labels = np.zeros((1,), dtype="int32")
    _note("train_on_batch: compile")
    model.train_on_batch(clip, labels)
    keras_s = []
    for i in range(runs):
        _note(f"train_on_batch {i + 1}/{runs}")
        start = time.perf_counter()
        model.train_on_batch(clip, labels)
        keras_s.append(time.perf_counter() - start)

    # The step Keras runs (keras/src/backend/jax/trainer.py, make_train_function), on the model's state.
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )
    data = (clip, labels, None)
    _note("lower and compile the train step")
    compiled = jax.jit(model.train_step, donate_argnums=0).lower(state, data).compile()
    hlo = compiled.as_text()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    compiled_s = []
    for i in range(compiled_runs):
        _note(f"compiled step {i + 1}/{compiled_runs}")
        start = time.perf_counter()
        state = compiled(state, data)[1]
        jax.block_until_ready(state)
        compiled_s.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as folder:
        _note(f"profile {profile_steps} step(s)")
        start = time.perf_counter()
        with jax.profiler.trace(folder):
            for _ in range(profile_steps):
                state = compiled(state, data)[1]
                jax.block_until_ready(state)
        profiled_s = (time.perf_counter() - start) / profile_steps
        (path,) = glob.glob(os.path.join(folder, "plugins", "profile", "*", "*.trace.json.gz"))
        with gzip.open(path) as f:
            times = thunk_times(json.load(f))
    _note("matmul peak")
    peaks.append(matmul_peak())
    rows, thunks = breakdown(describe(parse_hlo(hlo)), times, profile_steps)
    result = {
        "preset": preset,
        "frames": frames,
        "image_size": image_size,
        "keras_step_s": statistics.median(keras_s),
        "keras_runs_s": keras_s,
        "compiled_step_s": statistics.median(compiled_s),
        "compiled_runs_s": compiled_s,
        "profiled_step_s": profiled_s,
        "profile_steps": profile_steps,
        "thunk_s": sum(times.values()) / 1e6 / profile_steps,
        "xla_gflop": float(cost.get("flops", 0.0)) / 1e9 if cost else None,
        "model_gflop": 3 * flops(preset, frames=frames, image_size=image_size, convention="full").flops / 1e9,
        "peak_gflops": max(peaks),
        "peaks": peaks,
        "rows": rows,
        "top": thunks[:TOP],
        "thunk_count": len(times),
        "tuning": tuning,
        "jax": jax.__version__,
        "loadavg": os.getloadavg()[0],
    }
    print("RESULT " + json.dumps(result), flush=True)


def _measure(ctx, bar, preset, frames, image_size, runs, compiled_runs, profile_steps, xla_flags=""):
    from vidtr_keras.backends.env import child_env
    from vidtr_keras.complexity.runner import ChildError, ChildTimeout, run_child

    args = [preset, frames, image_size, runs, compiled_runs, profile_steps]
    cmd = [common.python_executable(), "-m", "benchmarks.jax_profile", "--worker", *map(str, args)]
    env = child_env("jax")
    if xla_flags:  # after the caller's own flags: XLA keeps the last occurrence of a flag
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {xla_flags}".strip()
    try:
        run = run_child(
            cmd,
            env=env,
            cwd=common.ROOT,
            timeout=TIMEOUT_S,
            on_progress=lambda text: ctx.progress.update(bar, description=f"jax_profile: {preset}: {text}"),
            name=f"the jax_profile worker ({preset})",
        )
        result = run.result or {"error": f"no RESULT line; last output: {run.last_line or 'none'}"}
    except (ChildError, ChildTimeout) as err:
        result = {"error": str(err)}
    if "error" in result:
        result.update(preset=preset, frames=frames, image_size=image_size)
        ctx.log(f"[red]jax_profile {preset}: {result['error']}[/red]")
    result["xla_flags"] = xla_flags
    ctx.advance(bar, f"jax_profile: {preset}{' with ' + xla_flags if xla_flags else ''} done")
    return result


# --- the report ---------------------------------------------------------------------------------------------


def _pct(part, whole):
    return 100.0 * part / whole if whole else None


def category_rows(result):
    """Table rows of one model's result: per category, forward and backward (and update) apart, then the
    category's total, in `CATEGORIES` order."""
    step, peak = result["thunk_s"], result["peak_gflops"]
    by_category = collections.defaultdict(list)
    for row in result["rows"]:
        by_category[row["category"]].append(row)
    rows = []
    for category in CATEGORIES:
        parts = sorted(by_category.get(category, []), key=lambda r: DIRECTIONS.index(r["direction"]))
        if not parts:
            continue
        seconds = sum(r["seconds"] for r in parts)
        gflop = sum(r["gflop"] for r in parts)
        split = ", ".join(f"{r['direction']} {r['seconds']:.2f} s" for r in parts)
        rate = gflop / seconds if gflop and seconds else None
        rows.append(
            [
                result["preset"],
                category,
                seconds,
                _pct(seconds, step),
                split,
                gflop or None,
                rate,
                _pct(rate, peak) if rate else None,
                sum(r["thunks"] for r in parts),
            ]
        )
    return rows


def _top_table(result):
    columns = ["thunk", "category", "direction", "ms", "% of step", "GFLOP", "GFLOP/s", "output shape", "op_name"]
    rows = []
    for t in result["top"]:
        rate = t["gflop"] / t["seconds"] if t["gflop"] and t["seconds"] else None
        op_name = t["op_name"].replace("jit(train_step)/", "")
        rows.append(
            [
                f"`{t['name']}`",
                t["category"],
                t["direction"],
                t["seconds"] * 1e3,
                _pct(t["seconds"], result["thunk_s"]),
                t["gflop"] or None,
                rate,
                "x".join(map(str, t["shape"])),
                f"`{op_name}`" if op_name else "-",
            ]
        )
    return common.markdown_table(columns, rows)


def summary_line(result):
    """One sentence per model: the step, its share of the peak, and the largest categories."""
    model_rate = result["model_gflop"] / result["keras_step_s"]
    ranked = sorted(category_rows(result), key=lambda r: -r[2])[:3]
    parts = "; ".join(f"{r[1]} {r[2]:.2f} s ({r[3]:.0f} %)" for r in ranked)
    return (
        f"- **{result['preset']}** ({result['frames']}x{result['image_size']}x{result['image_size']}): "
        f"`train_on_batch` {result['keras_step_s']:.2f} s = {_pct(model_rate, result['peak_gflops']):.0f} % of "
        f"the {result['peak_gflops']:.0f} GFLOP/s peak ({result['model_gflop']:.0f} GFLOP, 3x the forward); "
        f"the compiled step alone {result['compiled_step_s']:.2f} s, profiled {result['profiled_step_s']:.2f} s, "
        f"its {result['thunk_count']} thunks sum to {result['thunk_s']:.2f} s; largest: {parts} "
        f"(load {result['loadavg']:.1f})."
    )


def comparison_rows(base, other):
    """Rows of one model measured twice (`base`, then `other` with XLA flags added): the whole step, then
    each category's seconds per step, and the ratio other / base."""

    def seconds(result):
        return {row[1]: row[2] for row in category_rows(result)}

    rows = [
        [base["preset"], "train_on_batch (median)", base["keras_step_s"], other["keras_step_s"]],
        [base["preset"], "compiled step", base["compiled_step_s"], other["compiled_step_s"]],
        [base["preset"], "thunks, summed", base["thunk_s"], other["thunk_s"]],
    ]
    before, after = seconds(base), seconds(other)
    rows += [
        [base["preset"], c, before.get(c, 0.0), after.get(c, 0.0)] for c in CATEGORIES if c in before or c in after
    ]
    return [row + [row[3] / row[2] if row[2] else None] for row in rows]


def _comparison(results, flagged):
    pairs = [(b, o) for b, o in zip(results, flagged) if "rows" in b and "rows" in o]
    if not pairs:
        return []
    flags = flagged[0]["xla_flags"]
    columns = ["preset", "what", "s per step", f"s with {flags}", "ratio"]
    table = common.markdown_table(columns, [row for b, o in pairs for row in comparison_rows(b, o)])
    loads = ", ".join(f"{b['preset']} {b['loadavg']:.1f} / {o['loadavg']:.1f}" for b, o in pairs)
    lines = []
    for b, o in pairs:
        rows = comparison_rows(b, o)
        changed = sorted(rows[3:], key=lambda r: -abs(r[3] - r[2]))[:3]
        runs = [", ".join(f"{t:.1f}" for t in r["keras_runs_s"]) for r in (b, o)]
        lines.append(
            f"- **{b['preset']}**: `train_on_batch` {rows[0][2]:.2f} -> {rows[0][3]:.2f} s (x{rows[0][4]:.2f}; runs "
            f"{runs[0]} -> {runs[1]} s); largest changes: "
            + "; ".join(f"{r[1]} {r[2]:.2f} -> {r[3]:.2f} s" for r in changed)
            + "."
        )
    return [
        f"## With `XLA_FLAGS={flags}` added",
        "Each model profiled a second time right after the first, in its own process, with these flags "
        f"appended to `XLA_FLAGS` (`--xla-flags`); load averages (1 min) of the two processes: {loads}. "
        "One pair per model: on a shared machine a ratio is a hint until the pair is repeated; a category "
        "that shrinks in both (thunks that XLA no longer emits) is the firmer evidence.",
        "\n".join(lines),
        table,
    ]


def report(results, quick, flagged=()):
    columns = [
        "preset",
        "category",
        "s per step",
        "% of step",
        "forward / backward",
        "GFLOP",
        "GFLOP/s",
        "% of matmul peak",
        "thunks",
    ]
    ok = [r for r in results if "rows" in r]
    rows = [row for r in ok for row in category_rows(r)]
    rows += [[r["preset"], f"failed: {r['error']}"] + [None] * 7 for r in results if "rows" not in r]
    notes = ["## Per model", "\n".join(summary_line(r) for r in ok)]
    extra = _comparison(results, flagged)
    for r in ok:
        extra += [f"### {r['preset']}: the {TOP} longest thunks", _top_table(r)]
    clip = QUICK_CLIP if quick else CLIP
    notes.append(
        f"Setup: batch 1, {clip[0]}x{clip[1]}x{clip[1]} clips, float32, JAX on the CPU; per model one fresh "
        "process: `tune_backend()` as `vidtr train` applies it, SGD + momentum and sparse cross-entropy as "
        "`python -m reproduce benchmark` compiles the model, `train_on_batch` timed (median), then the same "
        "`model.train_step` under `jax.jit(..., donate_argnums=0)` (what Keras' JAX trainer jits) lowered, "
        "compiled, timed and traced with `jax.profiler.trace`. A thunk is one top-level instruction of the "
        "compiled module (a fusion, a dot, a copy); its time is its event in the trace, and the share of "
        "the step is of the thunks' summed time (XLA may run independent thunks at once, so the sum can "
        "differ from the wall time; a thunk's time includes any wait for a core, so on a loaded machine single "
        "thunks and seconds are noisy: compare shares within one run). GFLOP counts the dots of each thunk "
        "from their HLO shapes (2 per "
        "multiply-add; elementwise work is not counted); the % of matmul peak is against the float32 "
        "2048^3 `jax.jit` matmul measured before and after in the same process (the best of the two). "
        "Categories come from each instruction's fused operations and JAX source path (`op_name`: the "
        "Keras layer names; `transpose(jvp(...))` is the backward pass): `benchmarks.jax_profile.categorise`."
    )
    return common.write(
        "jax_profile",
        "Where the JAX training step's time goes on the CPU",
        columns,
        rows,
        notes=notes,
        backends=("jax",),
        extra_markdown=extra,
        command="python -m benchmarks jax_profile"
        + (" --quick" if quick else "")
        + (f" --xla-flags={flagged[0]['xla_flags']}" if flagged else ""),
    )


def run(ctx, presets=PRESETS, xla_flags=""):
    """Profiles each preset; with `xla_flags`, each preset a second time with those flags, right after."""
    frames, image_size = QUICK_CLIP if ctx.quick else CLIP
    counts = (1, 1, 1) if ctx.quick else (3, 1, 1)  # train_on_batch runs, compiled-step runs, profiled steps
    bar = ctx.task("jax_profile", len(presets) * (2 if xla_flags else 1))
    results, flagged = [], []
    for preset in presets:
        results.append(_measure(ctx, bar, preset, frames, image_size, *counts))
        if xla_flags:
            flagged.append(_measure(ctx, bar, preset, frames, image_size, *counts, xla_flags=xla_flags))
    common.RESULTS.mkdir(exist_ok=True)
    (common.RESULTS / "jax_profile_runs.json").write_text(
        json.dumps({"quick": ctx.quick, "results": results, "flagged": flagged}, indent=1)
    )
    return report(results, ctx.quick, flagged)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 7 and argv[0] == "--worker":  # the measuring child process
        worker(argv[1], *map(int, argv[2:]))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks jax_profile",
        description="Where the JAX training step's time goes on the CPU (results/jax_profile.md).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_CLIP[0]}x{QUICK_CLIP[1]}px clips, one timed step, {' '.join(QUICK_PRESETS)} unless --presets",
    )
    parser.add_argument("--presets", nargs="+", help=f"the models (default: {' '.join(PRESETS)})")
    parser.add_argument(
        "--xla-flags",
        default="",
        metavar="FLAGS",
        help="also profile each model with these XLA_FLAGS added (a second process per model, twice the time), "
        "and report the two side by side",
    )
    parser.add_argument("--report", action="store_true", help="rewrite the report from the stored figures")
    args = parser.parse_args(argv)
    if args.report:
        saved = json.loads((common.RESULTS / "jax_profile_runs.json").read_text())
        print(report(saved["results"], saved["quick"], saved.get("flagged", [])))
        return 0
    with common.session(quick=args.quick) as ctx:
        presets = tuple(args.presets or (QUICK_PRESETS if args.quick else PRESETS))
        ctx.console.print(f"wrote {run(ctx, presets, args.xla_flags)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
