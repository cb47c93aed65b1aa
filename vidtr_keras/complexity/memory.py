"""Analytic model of the memory of training a VidTr model: activations the forward pass keeps for
the backward pass, per layer and component, plus parameters, gradients and optimizer slots.

The activation model is that of reverse-mode autodiff without recomputation: every matmul keeps its
two inputs, a softmax its output, a ReLU its output, a dropout its boolean mask (1 byte per element)
and a LayerNorm its input and per-token mean and inverse std; additions and reshapes keep nothing.
For one pre-LN layer with N tokens of width d, MLP width m and attention maps of M elements per step:

- "norm": the inputs of both LayerNorms (the residual stream before and after the attention), their
  outputs (the inputs of the q/k/v projection and of the first MLP linear) and statistics: 4 N d + 4 N.
- "qkv": q, k, v: 3 N d (queries and keys serve both the temporal and the spatial step).
- "attention_maps": per step the softmax output and, when attention dropout is on, its dropped copy
  (the input of probabilities x values): 2 M floats (M without dropout). This is the term the paper's
  memory argument is about: M = h (T S + 1)^2 for joint attention, h [(S+1)(T+1)^2 + (T+1)(S+1)^2]
  for separable attention on the class-token grid (Section 1.2).
- "attention_output": the temporal step's output (the values of the spatial step, separable only) and
  the merged heads entering out_proj: 2 N d (N d for joint and single-step layers).
- "mlp_hidden": ReLU output and its dropped copy: 2 N m.
- "dropout_masks": one byte per element of every dropped tensor (attention maps, attention output,
  MLP hidden, MLP output).
- "pooling": std-topK's pooled rows, second softmax output and selection, the gathered q and k, and
  the residual stream it gathers (C-VidTr pooling layers only).
The patch embedding keeps the clip (input of the convolution); the head keeps the pooled feature.

With rematerialised blocks (`remat=True`) a block keeps only its input ("block_input") and the peak
comes during the backward pass of one block, the one with the largest footprint: its recomputed
activations (all the rows above) and the gradients its backward holds beside them
("recomputed_block"). Reverse-mode autodiff produces, for every float tensor the block keeps, a
gradient of the same shape (LayerNorm inputs and outputs, q, k, v, the attention probabilities before
and after dropout, the MLP hidden...); the dropout masks (bytes) get none. Not all of them exist at
once, but the element-wise temporaries of the backward take the place of those already freed (the
softmax backward's dP * P, dP - sum, their product; TensorFlow's dropout draws a float uniform of the
full size when the block is recomputed), so the count is the block's float activations once more.
Counting the recomputed activations alone, `fits_in_memory` fell short of TensorFlow's measured peak
resident memory; with the gradients it follows the measured peaks of VidTr-S, Vanilla-Tr and C-VidTr-S
at 8-64 frames (results/benchmark.md, the rows with remat). For C-VidTr the largest block
is a joint one after the pooling layers (1 + T'S tokens, T' the frames left), not the first,
un-pooled one: its attention maps grow with the square of the clip length.
Element-wise fusion (XLA) and layout copies made for batched matmuls (PyTorch's einsum) move real
backends away from this model in both directions; `measure` reports what they really use.

Per device on a DATAxMODEL mesh (`mesh`, the layout of `vidtr_keras.training.sharding`): each device
runs batch / DATA clips, so every activation row is that of the per-device batch; the tensors computed by
a model-split matmul pair ("qkv", "attention_maps", "attention_output", "mlp_hidden": the heads and the
MLP hidden units split over MODEL, Megatron-LM's layout) are divided by MODEL as well; the rest (the
residual stream, LayerNorms, dropout masks, pooling, embedding, head, remat's block rows) is counted
whole on every device. The weights of the split projections, MLP and pooling convolution
(`sharded_parameters`) and their gradients and optimizer slots are divided by MODEL, the others
replicated. An approximation: it counts what the layout asks for, not the collectives' buffers, and
XLA may keep a tensor whole that the layout would split (the packed q/k/v columns do not fall on head
boundaries).
"""

import collections
import dataclasses

from vidtr_keras.complexity.spec import model_spec
from vidtr_keras.training.sharding import parse_mesh

MASK_BYTES = 1
# Activations computed by the model-split matmuls: divided over the model axis of a mesh.
MODEL_SPLIT = ("qkv", "attention_maps", "attention_output", "mlp_hidden")


@dataclasses.dataclass(frozen=True)
class MemoryRow:
    """Bytes kept by one component of one layer.

    Attributes:
        layer: encoder layer index, or None for embedding / head.
        component: "norm", "qkv", "attention_maps", "attention_output", "mlp_hidden",
            "dropout_masks", "pooling", "embedding", "head".
        elements: number of values kept (whole batch).
        bytes: their size.
    """

    layer: object
    component: str
    elements: int
    bytes: int


@dataclasses.dataclass
class MemoryReport:
    """Training memory of one step, by the analytic model.

    Attributes:
        spec: the `ModelSpec`.
        batch_size: clips per step.
        rows: activation `MemoryRow`s.
        parameters: number of parameters.
        dtype_bytes: bytes per float (4 for float32).
        optimizer_slots: optimizer state tensors per parameter (0 plain SGD, 1 SGD momentum, 2 Adam).
        attention_map_elements: [per layer, elements of the attention maps of one clip, summed over
            the layer's steps and heads].
        remat: rows describe a rematerialised model (`VidTrBackbone(remat=True)`).
        mesh: (data, model) devices the rows and `parameters` are per device of ((1, 1): one device);
            `batch_size` stays the global batch.
    """

    spec: object
    batch_size: int
    rows: list
    parameters: int
    dtype_bytes: int
    optimizer_slots: int
    attention_map_elements: list
    remat: bool = False
    mesh: tuple = (1, 1)

    @property
    def activation_bytes(self):
        """What the forward pass keeps for the backward pass."""
        return sum(r.bytes for r in self.rows)

    @property
    def parameter_bytes(self):
        return self.parameters * self.dtype_bytes

    @property
    def state_bytes(self):
        """Parameters, their gradients and the optimizer slots."""
        return self.parameter_bytes * (2 + self.optimizer_slots)

    @property
    def total_bytes(self):
        """Activations + parameters + gradients + optimizer slots: the training footprint."""
        return self.activation_bytes + self.state_bytes

    def by_layer(self):
        out = collections.OrderedDict()
        for r in self.rows:
            out[r.layer] = out.get(r.layer, 0) + r.bytes
        return out

    def by_component(self):
        out = collections.OrderedDict()
        for r in self.rows:
            out[r.component] = out.get(r.component, 0) + r.bytes
        return out

    def to_markdown(self):
        gib = 2.0**30
        lines = [
            f"{self.spec.name or 'model'}: batch {self.batch_size}, activations {self.activation_bytes / gib:.3f} GiB, "
            f"parameters+gradients+optimizer {self.state_bytes / gib:.3f} GiB, total {self.total_bytes / gib:.3f} GiB",
            "",
            "| layer | component | MiB |",
            "|---|---|---:|",
        ]
        for r in self.rows:
            lines.append(f"| {'-' if r.layer is None else r.layer} | {r.component} | {r.bytes / 2**20:.1f} |")
        return "\n".join(lines)


def count_parameters(model_or_preset, **kwargs):
    """Parameters of the model, counted from its configuration (no model is built).

    Same arguments as `model_spec`. Equals `build_model(...).count_params()`.
    """
    spec = model_spec(model_or_preset, **kwargs)
    d, m = spec.hidden_dim, spec.mlp_dim
    pt, ph, pw = spec.patch_size
    t, s = spec.token_frames, spec.patches_per_frame
    n = d * spec.num_channels * pt * ph * pw + d
    if spec.class_token_layout == "grid":
        n += (s + 1) * d + t * d + (t + 1) * (s + 1) * d
    else:
        n += d + (1 + t * s) * d
    per_layer = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * m + m) + (m * d + d)
    n += spec.num_layers * per_layer
    for layer in spec.layers():
        if layer.pooling == "conv":
            stride = layer.frames_in // layer.frames_out
            n += stride * d * d + d
    n += 2 * d
    if spec.num_classes:
        n += d * spec.num_classes + spec.num_classes
    return n


def sharded_parameters(spec):
    """Parameters split over the model axis by `vidtr_keras.training.sharding.LAYOUT_RULES`: every block's
    q/k/v projection (weights and bias), output projection weights, MLP weights and first bias, and the
    pooling convolution of convolutional pooling layers; (number, [(what, length that the model axis
    must divide)])."""
    d, m = spec.hidden_dim, spec.mlp_dim
    n = spec.num_layers * ((3 * d * d + 3 * d) + d * d + (d * m + m) + m * d)
    for layer in spec.layers():
        if layer.pooling == "conv":
            n += (layer.frames_in // layer.frames_out) * d * d + d
    return n, [("width", d), ("MLP width", m)]


def attention_map_elements(layer, num_heads):
    """Elements of one clip's attention maps in `layer` (a `LayerShape`), summed over steps and heads:
    {step: elements} with steps "joint", "temporal" and "spatial"."""
    if layer.kind == "joint":
        n = layer.columns
        return {"joint": num_heads * n * n}
    rows_in, cols = layer.rows_in, layer.columns
    kept = layer.rows_out if layer.pooling == "std_topk" else rows_in
    out = {}
    if layer.kind in ("temporal_spatial", "spatial_temporal", "temporal"):
        out["temporal"] = num_heads * cols * rows_in * rows_in
    if layer.kind == "temporal_spatial":
        out["spatial"] = num_heads * kept * cols * cols
    elif layer.kind in ("spatial_temporal", "spatial"):
        out["spatial"] = num_heads * rows_in * cols * cols
    return out


def _layer_rows(layer, spec, b, fb, dropout_on, att_dropout_on):
    d, m, h = spec.hidden_dim, spec.mlp_dim, spec.num_heads
    i = layer.index
    n_in = layer.tokens_in + layer.bypass_tokens
    std_topk = layer.pooling == "std_topk"
    n_out = layer.tokens_out + layer.bypass_tokens  # tokens after the attention (std-topK) / pooling
    n_att = layer.rows_out * layer.columns if std_topk else layer.tokens_in  # attention output tokens
    maps = attention_map_elements(layer, h)
    map_elements = sum(maps.values())
    rows = []

    def add(component, elements, nbytes):
        rows.append(MemoryRow(i, component, b * elements, b * elements * nbytes))

    # LayerNorm 1 input and output, LayerNorm 2 input and output (+ per-token mean and inverse std).
    add("norm", 2 * n_in * d + 2 * n_out * d + 2 * n_in + 2 * n_out, fb)
    add("qkv", 3 * layer.tokens_in * d, fb)
    add("attention_maps", map_elements * (2 if att_dropout_on else 1), fb)
    steps = len(maps)
    add("attention_output", n_att * d * (2 if steps == 2 else 1), fb)
    add("mlp_hidden", n_out * m * (2 if dropout_on else 1), fb)
    masks = 0
    if att_dropout_on:
        masks += map_elements
    if dropout_on:
        masks += n_att * d + n_out * m + n_out * d + layer.bypass_tokens * d
    if masks:
        add("dropout_masks", masks, MASK_BYTES)
    if layer.pooling:
        kept, rows_in, cols = layer.rows_out, layer.rows_in, layer.columns
        if std_topk:
            selection = h * cols * kept * rows_in
            pooled = 2 * h * cols * kept * rows_in  # selected rows, second softmax
            gathered = 2 * kept * cols * d if layer.kind == "temporal_spatial" else 0
            add("pooling", selection + pooled + gathered + rows_in * cols * d, fb)
        else:
            add("pooling", layer.tokens_in * d, fb)
    return rows


def memory(
    model_or_preset,
    batch_size=1,
    frames=None,
    image_size=None,
    num_classes=None,
    dtype_bytes=4,
    optimizer_slots=0,
    training=True,
    remat=False,
    mesh=None,
    **overrides,
):
    """Analytic training memory of one step (see the module docstring for what is counted).

    Args:
        model_or_preset: a preset name, config dict, `ModelSpec`, `VidTrBackbone` or `VidTrClassifier`.
        batch_size: clips per step.
        frames, image_size: clip size (the model is taken as configured for it).
        num_classes: classifier width (the preset's by default).
        dtype_bytes: bytes per float value (4: float32, 2: float16/bfloat16).
        optimizer_slots: optimizer state tensors per parameter (0 for plain SGD, 1 for SGD with
            momentum as the paper trains, 2 for Adam).
        training: with dropout (the rates of the config); False counts the same tensors without the
            dropout masks and copies, as a model with dropout off would keep.
        remat: the model rematerialises its encoder blocks (`VidTrBackbone(remat=True)`): each block
            keeps only its input ("block_input"), and the backward pass holds the full activations
            of one block at a time plus the gradients of their float tensors; the block where that
            is largest gives "recomputed_block" (layer None). XLA on the CPU keeps remat only with
            the setting `import vidtr_keras` makes (`vidtr_keras.backends.xla_cpu`); without it, it keeps
            what `remat=False` describes.
        mesh: "DATAxMODEL" or (data, model): the memory of one device of that mesh (module docstring);
            `batch_size` (the global batch) must split over DATA, the widths over MODEL.
        **overrides: other backbone arguments.

    Returns:
        a `MemoryReport`.

    Example:
    >>> report = memory("vidtr_s", batch_size=1)
    >>> round(report.activation_bytes / 2**30, 2)  # GiB kept for the backward pass
    1.58
    """
    spec = model_spec(model_or_preset, frames=frames, image_size=image_size, num_classes=num_classes, **overrides)
    data, model = (1, 1) if mesh is None else parse_mesh(mesh) if isinstance(mesh, str) else tuple(map(int, mesh))
    if batch_size % data:
        raise ValueError(f"`batch_size` {batch_size} does not split evenly over `mesh`'s {data} data-axis devices.")
    sharded, widths = sharded_parameters(spec)
    for what, length in widths:
        if length % model:
            raise ValueError(f"`mesh` {data}x{model}: the model's {what} {length} does not split over {model} devices.")
    b, fb = int(batch_size) // data, int(dtype_bytes)
    dropout_on = training and spec.dropout > 0
    att_dropout_on = training and spec.attention_dropout > 0
    h, w = spec.image_size
    rows = [
        MemoryRow(
            None,
            "embedding",
            b * spec.num_channels * spec.num_frames * h * w,
            b * spec.num_channels * spec.num_frames * h * w * fb,
        )
    ]
    map_counts = []
    largest_block = 0
    for layer in spec.layers():
        layer_rows = _layer_rows(layer, spec, b, fb, dropout_on, att_dropout_on)
        if remat:
            # Recomputed activations + a gradient of the same size for every float tensor among them
            # (dropout masks are bytes and get no gradient): see the module docstring.
            recomputed = sum(r.bytes for r in layer_rows)
            gradients = sum(r.bytes for r in layer_rows if r.component != "dropout_masks")
            largest_block = max(largest_block, recomputed + gradients)
            kept = b * (layer.tokens_in + layer.bypass_tokens) * spec.hidden_dim
            layer_rows = [MemoryRow(layer.index, "block_input", kept, kept * fb)]
        rows += layer_rows
        map_counts.append(sum(attention_map_elements(layer, spec.num_heads).values()))
    if remat:
        rows.append(MemoryRow(None, "recomputed_block", largest_block // fb, largest_block))
    last = spec.layers()[-1]
    final_tokens = last.tokens_out + last.bypass_tokens
    rows.append(
        MemoryRow(None, "head", b * (final_tokens + 1) * spec.hidden_dim, b * (final_tokens + 1) * spec.hidden_dim * fb)
    )
    if model > 1:
        rows = [
            dataclasses.replace(r, elements=-(-r.elements // model), bytes=-(-r.bytes // model))
            if r.component in MODEL_SPLIT
            else r
            for r in rows
        ]
    parameters = count_parameters(spec) - sharded + sharded // model
    return MemoryReport(
        spec, int(batch_size), rows, parameters, fb, int(optimizer_slots), map_counts, bool(remat), (data, model)
    )


# Resident memory of the process before any model exists: the interpreter, Keras and the backend
# library (the "baseline RSS" column of results/benchmark.md, per backend).
RUNTIME_BYTES = 1 << 30


@dataclasses.dataclass(frozen=True)
class FitReport:
    """Whether one training step fits in a memory budget, by the analytic model.

    Attributes:
        fits: required_bytes <= available_bytes.
        required_bytes: runtime + state + activations x (1 + margin).
        available_bytes: the budget.
        activation_bytes: what the forward pass keeps (`MemoryReport.activation_bytes`).
        state_bytes: float32 parameters, gradients and optimizer slots.
        runtime_bytes: the process before any model exists.
        margin: fraction added to the activations for backend temporaries.
        remat, mixed_precision: the options the estimate is for.
    """

    fits: bool
    required_bytes: int
    available_bytes: int
    activation_bytes: int
    state_bytes: int
    runtime_bytes: int
    margin: float
    remat: bool
    mixed_precision: bool


def fits_in_memory(
    model_or_preset,
    available_bytes,
    batch_size=1,
    frames=None,
    image_size=None,
    num_classes=None,
    optimizer_slots=1,
    remat=False,
    mixed_precision=False,
    runtime_bytes=RUNTIME_BYTES,
    margin=0.15,
    mesh=None,
    **overrides,
):
    """Predicts, before anything is allocated, whether a training step fits in `available_bytes`.

    Args:
        model_or_preset: as for `memory`.
        available_bytes: the memory budget (e.g. the machine's RAM), bytes.
        batch_size, frames, image_size, num_classes: the step's clips and classifier.
        optimizer_slots: 1 for SGD with momentum (the paper's optimizer), 2 for Adam.
        remat: with rematerialised encoder blocks.
        mixed_precision: `mixed_bfloat16`: activations in 2 bytes, variables stay float32.
        runtime_bytes: memory of the process before the model (interpreter and libraries).
        margin: fraction of the activations added for the backend's temporaries.
        mesh: "DATAxMODEL": whether one device of that mesh fits (`memory`'s `mesh`).
        **overrides: other backbone arguments.

    Returns:
        a `FitReport`.

    Example:
    >>> fits_in_memory("vidtr_s", 8 * 2**30, frames=64).fits
    False
    >>> fits_in_memory("vidtr_s", 8 * 2**30, frames=64, remat=True).fits
    True
    """
    if available_bytes <= 0:
        raise ValueError(f"available_bytes must be positive, got {available_bytes}.")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}.")
    report = memory(
        model_or_preset,
        batch_size=batch_size,
        frames=frames,
        image_size=image_size,
        num_classes=num_classes,
        dtype_bytes=2 if mixed_precision else 4,
        optimizer_slots=optimizer_slots,
        remat=remat,
        mesh=mesh,
        **overrides,
    )
    state = report.parameters * 4 * (2 + report.optimizer_slots)
    activations = report.activation_bytes
    required = int(runtime_bytes + state + activations * (1.0 + margin))
    return FitReport(
        fits=required <= available_bytes,
        required_bytes=required,
        available_bytes=int(available_bytes),
        activation_bytes=int(activations),
        state_bytes=int(state),
        runtime_bytes=int(runtime_bytes),
        margin=float(margin),
        remat=bool(remat),
        mixed_precision=bool(mixed_precision),
    )
