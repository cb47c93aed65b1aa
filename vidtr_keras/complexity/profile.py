"""Where a separable model's inference time goes: the forward pass's operations at the model's own
shapes, each timed alone on the current backend, next to the whole forward pass.

A model's forward pass is mostly dense matmuls (VidTr-S: the qkv and output projections and the MLP are
95 % of its multiply-adds), so how close inference comes to the backend's 2048^3 matmul peak is bounded
by how fast the backend runs matmuls *of the model's shapes* (e.g. 1773 tokens x 768 -> 3072 at 8
frames), plus the time of everything that is not a matmul (LayerNorm, the MLP activation, the attention
softmax and its small batched einsums, bias adds, residual adds). `inference_profile` measures both and
returns one row per operation, so a benchmark can say which of them keeps the forward pass from the peak.

Each operation runs the way the backend runs the model's inference (`predict_on_batch`): compiled with
`jax.jit` on JAX, a `tf.function` on TensorFlow (Keras leaves XLA off on a CPU-only machine), eager
under `torch.no_grad` on PyTorch. Backend modules are imported only for the backend that runs.
"""

import dataclasses
import statistics
import time

import keras
import numpy as np
from keras import ops

from vidtr_keras.layers.attention import SeparableAttention


@dataclasses.dataclass
class ProfileRow:
    """One operation of the forward pass.

    Attributes:
        name: the operation, e.g. "mlp (2 matmuls, bias, activation)".
        shapes: the shapes it runs at.
        count: how many times one forward pass runs it (e.g. once per encoder layer).
        seconds: median wall time of one run.
        flop: FLOP of one run (2 per multiply-add; 0 for elementwise operations).
        kind: "matmul" (the dense projections alone), "layer" (an operation as the model runs it), or
            "model" (the whole forward pass).
    """

    name: str
    shapes: str
    count: int
    seconds: float
    flop: float
    kind: str

    @property
    def gflops_per_second(self):
        return self.flop / self.seconds / 1e9 if self.seconds > 0 else 0.0


def compiled(fn):
    """`fn` run the way the backend runs a model's inference (see the module docstring); the returned
    callable blocks until the result is computed."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax  # the backend's compiler; imported only when it is the backend

        f = jax.jit(fn)
        return lambda *a: f(*a).block_until_ready()
    if backend == "tensorflow":
        import tensorflow as tf  # the backend's compiler; imported only when it is the backend

        f = tf.function(fn, jit_compile=False)
        return lambda *a: f(*a).numpy()
    if backend == "torch":
        import torch  # imported only when it is the backend

        def run(*a):
            with torch.no_grad():
                return fn(*a).cpu().numpy()

        return run
    return lambda *a: ops.convert_to_numpy(fn(*a))


def _time(fn, args, runs):
    run = compiled(fn)
    run(*args)  # compile / warm up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def inference_profile(preset="vidtr_s", runs=5, frames=None, image_size=None, on_row=None):
    """Times the forward pass of a separable preset (batch 1) and its operations at its shapes.

    Args:
        preset: a separable preset without temporal pooling (e.g. "vidtr_s", "vidtr_m").
        runs: timed runs per operation (median), after one warm-up run.
        frames, image_size: override the preset's clip geometry.
        on_row: optional callback called with each `ProfileRow` as it is measured (progress).

    Returns:
        list of `ProfileRow`: the dense matmuls alone, each layer operation, and the whole model.
    """
    from vidtr_keras.complexity.crosscheck import build_for_spec
    from vidtr_keras.complexity.flops import flops
    from vidtr_keras.complexity.spec import model_spec

    spec = model_spec(preset, frames=frames, image_size=image_size)
    if spec.attention != "temporal_spatial" or any(
        layer.kind != "temporal_spatial" or layer.pooling for layer in spec.layers()
    ):
        raise ValueError(
            f"inference_profile: {preset!r} is not a separable model without temporal pooling "
            f"(attention {spec.attention!r}); profile VidTr-S/M/L-style presets."
        )
    rng = np.random.default_rng(0)

    def tensor(*shape):
        return ops.convert_to_tensor(rng.standard_normal(shape).astype("float32") * 0.1)

    d, heads, m = spec.hidden_dim, spec.num_heads, spec.mlp_dim
    first = spec.layers()[0]
    rows_t, cols = first.rows_in, first.columns  # token grid: frames (+ class row) x patches (+ class)
    n = rows_t * cols
    hd = d // heads
    depth = len(spec.layers())
    out = []

    def add(name, shapes, count, fn, args, flop, kind):
        row = ProfileRow(name, shapes, count, _time(fn, args, runs), float(flop), kind)
        out.append(row)
        if on_row is not None:
            on_row(row)

    x, x_mlp = tensor(n, d), tensor(n, m)
    w_qkv, w_out, w1, w2 = tensor(d, 3 * d), tensor(d, d), tensor(d, m), tensor(m, d)
    b_qkv, b_out, b1, b2 = tensor(3 * d), tensor(d), tensor(m), tensor(d)
    add("qkv projection matmul", f"[{n},{d}]x[{d},{3 * d}]", depth, ops.matmul, (x, w_qkv), 2 * n * d * 3 * d, "matmul")
    add("output projection matmul", f"[{n},{d}]x[{d},{d}]", depth, ops.matmul, (x, w_out), 2 * n * d * d, "matmul")
    add("MLP first matmul", f"[{n},{d}]x[{d},{m}]", depth, ops.matmul, (x, w1), 2 * n * d * m, "matmul")
    add("MLP second matmul", f"[{n},{m}]x[{m},{d}]", depth, ops.matmul, (x_mlp, w2), 2 * n * m * d, "matmul")

    activation = keras.activations.get(spec.mlp_activation)
    gamma, beta = tensor(d) + 1.0, tensor(d)

    def layer_norm(v):
        mean = ops.mean(v, axis=-1, keepdims=True)
        var = ops.mean(ops.square(v - mean), axis=-1, keepdims=True)
        return (v - mean) * ops.rsqrt(var + 1e-5) * gamma + beta

    add("LayerNorm + residual add", f"[{n},{d}]", 2 * depth, lambda v: layer_norm(v) + v, (x,), 0, "layer")
    add(
        "qkv projection (matmul + bias)",
        f"[{n},{d}]->[{n},{3 * d}]",
        depth,
        lambda v: ops.matmul(v, w_qkv) + b_qkv,
        (x,),
        2 * n * d * 3 * d,
        "layer",
    )
    q, k, v = (tensor(1, rows_t, cols, heads, hd) for _ in range(3))

    # The layer's own attention steps (no pooling, no dropout), so the profile times what the model runs.
    attention = SeparableAttention(heads)
    attention.build((1, rows_t, cols, d))

    def temporal(q, k, v):  # attention along each patch column (over frames)
        return attention._temporal(q, k, v, training=False)[0]

    def spatial(q, k, v):  # attention within each frame row (over patches)
        return attention._spatial(q, k, v, training=False)

    att_shape = f"{rows_t}x{cols} tokens, {heads} heads of {hd}"
    add(
        "temporal attention (einsums + softmax)",
        att_shape,
        depth,
        temporal,
        (q, k, v),
        4 * cols * heads * rows_t**2 * hd,
        "layer",
    )
    add(
        "spatial attention (batched matmuls + softmax)",
        att_shape,
        depth,
        spatial,
        (q, k, v),
        4 * rows_t * heads * cols**2 * hd,
        "layer",
    )
    add(
        "output projection (matmul + bias)",
        f"[{n},{d}]->[{n},{d}]",
        depth,
        lambda v: ops.matmul(v, w_out) + b_out,
        (x,),
        2 * n * d * d,
        "layer",
    )
    add(
        f"MLP (2 matmuls, bias, {spec.mlp_activation})",
        f"[{n},{d}]->[{n},{m}]->[{n},{d}]",
        depth,
        lambda v: ops.matmul(activation(ops.matmul(v, w1) + b1), w2) + b2,
        (x,),
        2 * n * d * m * 2,
        "layer",
    )

    model = build_for_spec(spec)
    h, w = (spec.image_size, spec.image_size) if isinstance(spec.image_size, int) else tuple(spec.image_size)
    clip = rng.standard_normal((1, spec.num_frames, h, w, spec.num_channels)).astype("float32")
    model.predict_on_batch(clip)  # compile / warm up: Keras's own inference path, as `inference_latency`
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        np.asarray(model.predict_on_batch(clip))
        times.append(time.perf_counter() - start)
    row = ProfileRow(
        "whole forward pass (predict_on_batch)",
        f"1 clip of {spec.num_frames}x{h}x{w}",
        1,
        statistics.median(times),
        float(flops(spec).flops),
        "model",
    )
    out.append(row)
    if on_row is not None:
        on_row(row)
    return out


def summary(rows, peak):
    """The figures that say how far a profiled forward pass is from the matmul peak.

    Args:
        rows: `inference_profile`'s rows (`ProfileRow`s or their `dataclasses.asdict` dicts).
        peak: the backend's matmul peak in GFLOP/s, measured in the same process.

    Returns:
        dict: `peak`; `whole_s` and `whole_pct` (the whole forward pass, % of peak); `matmul_s` and
        `matmul_pct` (the model-shaped dense matmuls alone); `ops_s` (the encoder's operations, each
        timed alone, summed over the layers) and `ops_pct` (the forward pass's FLOP at that time);
        `not_matmul_s` (what of `ops_s` is not a dense matmul).
    """
    rows = [dataclasses.asdict(r) if isinstance(r, ProfileRow) else r for r in rows]
    whole = next(r for r in rows if r["kind"] == "model")
    matmuls = [r for r in rows if r["kind"] == "matmul"]
    ops_rows = [r for r in rows if r["kind"] == "layer"]
    mm_time = sum(r["count"] * r["seconds"] for r in matmuls)
    mm_flop = sum(r["count"] * r["flop"] for r in matmuls)
    ops_time = sum(r["count"] * r["seconds"] for r in ops_rows)
    return {
        "peak": peak,
        "whole_s": whole["seconds"],
        "whole_pct": 100 * whole["flop"] / whole["seconds"] / 1e9 / peak,
        "matmul_pct": 100 * mm_flop / mm_time / 1e9 / peak,
        "matmul_s": mm_time,
        "ops_s": ops_time,
        "ops_pct": 100 * whole["flop"] / ops_time / 1e9 / peak,
        "not_matmul_s": max(0.0, ops_time - mm_time),
    }
