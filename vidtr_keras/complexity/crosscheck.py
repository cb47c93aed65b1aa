"""Backend FLOP counters, to cross-check the analytic "full" count of `flops`.

Every counter here reports FLOPs = 2 x multiply-adds (XLA's `cost_analysis()["flops"]` and
`torch.utils.flop_counter.FlopCounterMode` both count a multiply-add as two FLOPs), so the number to
compare with is `flops(...).flops` (2 x `flops(...).macs`).

- JAX: XLA's cost analysis. `linear_algebra_flops` sums XLA's count of every `dot_general` and
  `conv_general_dilated` of the traced model (each lowered on its own and passed to
  `Lowered.cost_analysis()`); `whole_program_flops` is `jax.jit(f).lower(...).compile().cost_analysis()`
  of the whole forward pass, which also counts element-wise work (softmax, LayerNorm, bias and residual
  adds): it is above the matmul count by that share, a fraction of a percent at full size and several
  percent on tiny widths, where element-wise work is not negligible next to d x d matmuls.
- PyTorch: `FlopCounterMode` on one forward pass; it counts matmuls and convolutions only (and the
  fused attention's two matmuls, with a formula added for its CPU kernel).
- TensorFlow: TF's profiler has no FLOP statistics for the Einsum op the layers use, so the count is
  taken from the traced graph of `tf.function(model)`: every Einsum, MatMul, BatchMatMul and Conv op,
  multiply-adds from its static shapes (output elements x contracted size). It is independent of the
  analytic model (the shapes come from the layers as they really run), but it is our counter, not TF's.

The backend libraries are imported inside the functions: Keras runs on one backend per process and an
environment (e.g. a tox env) may have only that backend's library installed.
"""

import dataclasses
import math

import keras
import numpy as np

from vidtr_keras.complexity.spec import model_spec

_DOT_PRIMITIVES = ("dot_general", "conv_general_dilated")
_TF_LINEAR_OPS = ("Einsum", "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Conv2D", "Conv3D", "Conv")


@dataclasses.dataclass
class CounterReport:
    """What a backend counter says about one forward pass.

    Attributes:
        backend: "jax", "torch" or "tensorflow".
        method: how the number was obtained.
        linear_algebra_flops: FLOPs (2 per multiply-add) of the matmuls, einsums and convolutions.
        whole_program_flops: XLA's count of the whole optimised program (JAX only), else None.
        by_op: {op or primitive name: FLOPs}.
    """

    backend: str
    method: str
    linear_algebra_flops: int
    whole_program_flops: object = None
    by_op: dict = dataclasses.field(default_factory=dict)

    @property
    def macs(self):
        return self.linear_algebra_flops // 2


def build_for_spec(spec, dtype=None):
    """A Keras model exactly as `spec` describes it: a `VidTrClassifier` when `spec.num_classes`,
    else the bare `VidTrBackbone`."""
    from vidtr_keras.models.backbone import VidTrBackbone
    from vidtr_keras.models.classifier import VidTrClassifier

    backbone = VidTrBackbone(**spec.config(), dtype=dtype, name=f"{spec.name or 'vidtr'}_backbone")
    if not spec.num_classes:
        return backbone
    return VidTrClassifier(backbone, spec.num_classes, dtype=dtype, name=spec.name or "vidtr")


def _input_shape(model, input_shape, batch_size):
    if input_shape is not None:
        return tuple(int(v) for v in input_shape)
    backbone = getattr(model, "backbone", model)
    h, w = backbone.image_size
    return (batch_size, backbone.num_frames, h, w, backbone.num_channels)


def backend_flops(model, input_shape=None, batch_size=1, whole_program=True):
    """Counts the FLOPs of one inference forward pass with the current backend's counter.

    Args:
        model: a built Keras model (e.g. from `build_for_spec` or `build_model`).
        input_shape: (batch, frames, height, width, channels); by default one clip of the size the
            model was configured for.
        batch_size: batch of the default input shape.
        whole_program: JAX only: also compile the whole forward pass for XLA's total.

    Returns:
        a `CounterReport`.
    """
    shape = _input_shape(model, input_shape, batch_size)
    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_flops(model, shape, whole_program)
    if backend == "torch":
        return _torch_flops(model, shape)
    if backend == "tensorflow":
        return _tensorflow_flops(model, shape)
    raise NotImplementedError(f"No FLOP counter for the {backend!r} backend.")


def count_flops(model_or_preset, frames=None, image_size=None, num_classes=None, whole_program=True, **overrides):
    """Builds the model a description stands for and counts it with the backend counter.

    Same arguments as `flops`; returns (`CounterReport`, the analytic `FlopReport` of the same model).
    """
    from vidtr_keras.complexity.flops import flops

    spec = model_spec(model_or_preset, frames=frames, image_size=image_size, num_classes=num_classes, **overrides)
    model = build_for_spec(spec)
    return backend_flops(model, whole_program=whole_program), flops(spec)


# --- JAX ---------------------------------------------------------------------------------------


def _sub_jaxprs(value):
    if hasattr(value, "eqns"):
        yield value
    elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
        yield value.jaxpr
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _sub_jaxprs(v)


def _walk_eqns(jaxpr):
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name in ("scan", "while", "fori_loop"):
            raise NotImplementedError(f"Loops ({name}) would need trip counts; the VidTr layers have none.")
        yield eqn
        for value in eqn.params.values():
            for sub in _sub_jaxprs(value):
                yield from _walk_eqns(sub)


def _jax_flops(model, shape, whole_program):
    import functools

    import jax  # the counter of this backend; only imported when the backend is JAX

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    clip = jax.ShapeDtypeStruct(shape, "float32")

    def forward(tv, ntv, x):
        return model.stateless_call(tv, ntv, x, training=False)[0]

    closed = jax.make_jaxpr(forward)(trainable, non_trainable, clip)
    cache, by_op, total = {}, {}, 0
    for eqn in _walk_eqns(closed.jaxpr):
        name = eqn.primitive.name
        if name not in _DOT_PRIMITIVES:
            continue
        avals = [jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype) for v in eqn.invars]
        key = (name, tuple((a.shape, str(a.dtype)) for a in avals), repr(sorted(eqn.params.items(), key=str)))
        if key not in cache:
            fn = functools.partial(eqn.primitive.bind, **eqn.params)
            cache[key] = int(jax.jit(fn).lower(*avals).cost_analysis()["flops"])
        by_op[name] = by_op.get(name, 0) + cache[key]
        total += cache[key]
    whole = None
    if whole_program:
        analysis = jax.jit(forward).lower(trainable, non_trainable, clip).compile().cost_analysis()
        if isinstance(analysis, (list, tuple)):  # older JAX returned one dict per device
            analysis = analysis[0]
        whole = int(analysis["flops"])
    return CounterReport(
        "jax",
        "XLA cost_analysis (per dot/conv of the jaxpr; whole program compiled)",
        total,
        whole,
        by_op,
    )


# --- PyTorch -------------------------------------------------------------------------------------


class _GlobalScope:
    """Stands in for FlopCounterMode's module tracker: its forward hooks register gradient hooks on
    module outputs and fail on Keras layers that return views of parameters (e.g. class tokens), and
    only the global total is needed here."""

    parents = ("Global",)

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


def _torch_flops(model, shape):
    import torch  # the counter of this backend; only imported when the backend is torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def fused_attention(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query_shape, key_shape, value_shape)  # q k^T and p v, as on CUDA

    clip = keras.ops.zeros(shape, dtype="float32")
    # The attention layers run PyTorch's fused attention in inference, whose CPU kernel the counter
    # has no formula for (it counts the CUDA ones): the same two matmuls are counted for it here.
    cpu_flash = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    counter = FlopCounterMode(display=False, custom_mapping={cpu_flash: fused_attention} if cpu_flash else None)
    counter.mod_tracker = _GlobalScope()
    with torch.inference_mode(), counter:
        model(clip, training=False)
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return CounterReport(
        "torch", "torch.utils.flop_counter.FlopCounterMode", int(counter.get_total_flops()), None, by_op
    )


# --- TensorFlow ----------------------------------------------------------------------------------


def _einsum_macs(equation, inputs, output):
    lhs, _ = equation.replace(" ", "").split("->")
    sizes = {}
    for term, tensor in zip(lhs.split(","), inputs):
        dims = list(tensor.shape)
        if "..." in term:
            head, tail = term.split("...")
            letters = list(head) + [None] * (len(dims) - len(head) - len(tail)) + list(tail)
        else:
            letters = list(term)
        for letter, size in zip(letters, dims):
            if letter is not None:
                sizes[letter] = int(size)
    out_letters = set(equation.split("->")[1])
    contracted = [sizes[c] for c in sizes if c not in out_letters]
    return int(np.prod(output.shape.as_list(), dtype=np.int64)) * math.prod(contracted)


def _tf_op_macs(op):
    out = op.outputs[0]
    if out.shape.rank is None or None in out.shape.as_list():
        raise ValueError(f"{op.type} {op.name} has an unknown output shape {out.shape}.")
    out_elements = int(np.prod(out.shape.as_list(), dtype=np.int64))
    if op.type == "Einsum":
        equation = op.get_attr("equation").decode()
        return _einsum_macs(equation, op.inputs, out)
    if op.type == "MatMul":
        a = op.inputs[0].shape.as_list()
        k = a[0] if op.get_attr("transpose_a") else a[1]
        return out_elements * k
    if op.type.startswith("BatchMatMul"):
        a = op.inputs[0].shape.as_list()
        k = a[-2] if op.get_attr("adj_x") else a[-1]
        return out_elements * k
    # Conv2D / Conv3D / Conv, channels last, one group: each output element is a dot product over the
    # kernel window and the input channels (filter shape (..., in, out)).
    kernel = op.inputs[1].shape.as_list()
    return out_elements * math.prod(kernel[:-1])


_TF_CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall", "While", "StatelessWhile", "If", "StatelessIf")


def _tf_graph_ops(graph):
    for op in graph.get_operations():
        if op.type in _TF_CALL_OPS:
            # The traced VidTr graph is flat; a nested function would hide ops from this count.
            raise NotImplementedError(f"{op.type} {op.name}: nested graph functions are not counted.")
        yield op


def _tensorflow_flops(model, shape):
    import tensorflow as tf  # the graph of this backend; only imported when the backend is TensorFlow

    fn = tf.function(lambda x: model(x, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec(shape, tf.float32)).graph
    by_op, total = {}, 0
    for op in _tf_graph_ops(graph):
        if op.type in _TF_LINEAR_OPS:
            flops = 2 * _tf_op_macs(op)
            by_op[op.type] = by_op.get(op.type, 0) + flops
            total += flops
    return CounterReport(
        "tensorflow", "shapes of the Einsum/MatMul/Conv ops of the traced tf.function graph", total, None, by_op
    )
