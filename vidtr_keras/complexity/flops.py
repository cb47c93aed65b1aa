"""Analytic multiply-add count of a VidTr model, per layer and component, in two conventions.

Units: a multiply-add (MAC) is one multiplication and one addition. The paper's "GFLOPs" are
G multiply-adds (the paper's convention: Tables 2-4 count multiply-adds), so `FlopReport.gflops`
is MACs / 1e9. Backend counters (XLA's
cost analysis, `torch.utils.flop_counter`) count a multiply-add as 2 FLOPs: `FlopReport.flops` is
2 x MACs, the number to compare with them.

Conventions:
- "full": every multiply-add of the linear algebra the model runs, i.e. of its matmuls, einsums and
  convolutions: the patch-embedding convolution, the q/k/v and output projections, both attention
  matmuls (q k^T and probabilities x values) of every temporal, spatial and joint step, the MLP, the
  classifier head, and the pooling. std-topK pooling selects rows with one-hot selection matmuls
  (`TopKStdPooling`, `gather_frames`), and those are counted as the matmuls they are: the selection
  of attention rows, the gathering of q and k for the spatial step and of the residual stream per
  head (together under 0.5% of a full-size model; a gather-based implementation would make them
  free). Average pooling is an einsum and conv pooling a convolution: counted. Element-wise work
  (softmax, LayerNorm, activations, bias and residual additions, the std ranking) is not: it is not
  a multiply-add of a matrix product, torch's counter ignores it too, and it is under 1% of a
  full-size model (XLA's whole-program count, which includes it, shows by how much).
- "paper": the convention the published numbers follow: the patch-embedding convolution plus the
  two MLP linear layers applied to the patch tokens, T_l x S per layer with T_l the frames the layer
  keeps, as if there were no class tokens. It gives VidTr-S/M/L 89.7/179.4/358.8 and C-VidTr-S
  (released schedule) 39.8 against the published 89/179/351/39; counting the grid's T+S+1 class
  tokens as well would give 101.3 for VidTr-S, which matches nothing published.

Frames shrink as the model computes them: a pooling layer's attention output, out_proj and MLP
already run on the kept frames.
"""

import collections
import dataclasses

from vidtr_keras.complexity.spec import model_spec

CONVENTIONS = ("full", "paper")


@dataclasses.dataclass(frozen=True)
class FlopRow:
    """Multiply-adds of one component of one layer.

    Attributes:
        layer: encoder layer index, or None for the patch embedding and the head.
        component: e.g. "qkv_projection", "temporal_qk", "spatial_pv", "joint_qk", "mlp".
        macs: multiply-adds (one clip).
        detail: the shapes the count comes from.
    """

    layer: object
    component: str
    macs: int
    detail: str = ""


@dataclasses.dataclass
class FlopReport:
    """The per-layer, per-component multiply-add count of one clip (one view).

    Attributes:
        spec: the `ModelSpec` counted.
        convention: "full" or "paper".
        rows: `FlopRow`s, in the order the model runs them.
    """

    spec: object
    convention: str
    rows: list

    @property
    def macs(self):
        """Total multiply-adds of one clip."""
        return sum(r.macs for r in self.rows)

    total = macs

    @property
    def gflops(self):
        """G multiply-adds, the paper's "GFLOPs"."""
        return self.macs / 1e9

    @property
    def flops(self):
        """2 x multiply-adds: the FLOP unit of XLA's and torch's counters."""
        return 2 * self.macs

    def by_layer(self):
        """{layer (None = embedding and head): multiply-adds}."""
        out = collections.OrderedDict()
        for r in self.rows:
            out[r.layer] = out.get(r.layer, 0) + r.macs
        return out

    def by_component(self):
        """{component: multiply-adds summed over layers}."""
        out = collections.OrderedDict()
        for r in self.rows:
            out[r.component] = out.get(r.component, 0) + r.macs
        return out

    def to_markdown(self):
        lines = [
            f"{self.spec.name or 'model'}: {self.gflops:.2f} G multiply-adds per clip ({self.convention} convention)",
            "",
            "| layer | component | G multiply-adds | shapes |",
            "|---|---|---:|---|",
        ]
        for r in self.rows:
            layer = "-" if r.layer is None else str(r.layer)
            lines.append(f"| {layer} | {r.component} | {r.macs / 1e9:.4f} | {r.detail} |")
        return "\n".join(lines)


def _separable_rows(layer, d, h, m):
    """The multiply-adds of a separable layer, in the order `SeparableAttention` runs them."""
    i = layer.index
    rows_in, kept, cols = layer.rows_in, layer.rows_out, layer.columns
    std_topk = layer.pooling == "std_topk"
    # std-topK pools inside the temporal attention; average/conv pooling run on the grid afterwards.
    att_rows = kept if std_topk else rows_in
    out = [FlopRow(i, "qkv_projection", rows_in * cols * d * 3 * d, f"{rows_in}x{cols} tokens, {d}->{3 * d}")]

    def temporal(rows):
        res = [
            FlopRow(
                i, "temporal_qk", cols * rows_in * rows_in * d, f"{cols} columns x {h} heads, {rows_in}x{rows_in} maps"
            )
        ]
        if std_topk:
            res.append(
                FlopRow(
                    i,
                    "pooling_selection",
                    cols * h * kept * rows_in * rows_in,
                    f"select {kept} of {rows_in} rows per map",
                )
            )
        res.append(FlopRow(i, "temporal_pv", cols * rows * rows_in * d, f"{rows}x{rows_in} maps x values"))
        return res

    def spatial(rows):
        return [
            FlopRow(i, "spatial_qk", rows * cols * cols * d, f"{rows} rows x {h} heads, {cols}x{cols} maps"),
            FlopRow(i, "spatial_pv", rows * cols * cols * d, f"{cols}x{cols} maps x values"),
        ]

    if layer.kind == "temporal_spatial":
        out += temporal(att_rows)
        if std_topk:
            out.append(
                FlopRow(i, "pooling_selection", 2 * cols * kept * rows_in * d, "gather q and k of the kept frames")
            )
        out += spatial(att_rows)
    elif layer.kind == "spatial_temporal":
        out += spatial(rows_in)
        out += temporal(att_rows)
    elif layer.kind == "spatial":
        out += spatial(rows_in)
    else:
        out += temporal(att_rows)
    out.append(FlopRow(i, "output_projection", att_rows * cols * d * d, f"{att_rows}x{cols} tokens, {d}->{d}"))
    if std_topk:
        out.append(FlopRow(i, "pooling_selection", cols * kept * rows_in * d, "gather the residual stream per head"))
    if layer.pooling == "average":
        body_in, body_out = layer.frames_in, layer.frames_out
        out.append(FlopRow(i, "token_pooling", body_out * body_in * cols * d, f"average {body_in}->{body_out} frames"))
    elif layer.pooling == "conv":
        body_in, body_out = layer.frames_in, layer.frames_out
        stride = body_in // body_out
        out.append(
            FlopRow(
                i,
                "token_pooling",
                body_out * cols * d * d * stride,
                f"conv stride {stride}, {body_in}->{body_out} frames",
            )
        )
    tokens = layer.tokens_out + layer.bypass_tokens
    out.append(FlopRow(i, "mlp", tokens * 2 * d * m, f"{tokens} tokens, {d}->{m}->{d}"))
    return out


def _joint_rows(layer, d, h, m):
    i, n = layer.index, layer.columns
    return [
        FlopRow(i, "qkv_projection", n * d * 3 * d, f"{n} tokens, {d}->{3 * d}"),
        FlopRow(i, "joint_qk", n * n * d, f"{h} heads, {n}x{n} maps"),
        FlopRow(i, "joint_pv", n * n * d, f"{n}x{n} maps x values"),
        FlopRow(i, "output_projection", n * d * d, f"{n} tokens, {d}->{d}"),
        FlopRow(i, "mlp", n * 2 * d * m, f"{n} tokens, {d}->{m}->{d}"),
    ]


def _embedding_row(spec):
    pt, ph, pw = spec.patch_size
    tokens = spec.token_frames * spec.patches_per_frame
    kernel = spec.num_channels * pt * ph * pw
    return FlopRow(
        None,
        "patch_embedding",
        tokens * spec.hidden_dim * kernel,
        f"{tokens} tubelets of {kernel} values -> {spec.hidden_dim}",
    )


def flops(model_or_preset, convention="full", frames=None, image_size=None, num_classes=None, **overrides):
    """Multiply-adds of one clip (one view) from the analytic per-layer model.

    Args:
        model_or_preset: a preset name, config dict, `ModelSpec`, `VidTrBackbone` or `VidTrClassifier`.
        convention: "full" (all matmuls, einsums and convolutions the model runs) or "paper" (patch
            embedding + MLP over the patch tokens, the published numbers' convention); see the module
            docstring.
        frames, image_size: clip size; the model is counted as configured for it.
        num_classes: classifier width; the preset's by default, 0 for no head.
        **overrides: other backbone arguments, e.g. `attention="joint"`, `pool_layers=(1, 3)`.

    Returns:
        a `FlopReport` (`.macs`, `.gflops` = G multiply-adds, `.flops` = 2 x multiply-adds, rows per
        layer and component).

    Example:
    >>> round(flops("vidtr_s", convention="paper").gflops, 1)
    89.7
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}.")
    spec = model_spec(model_or_preset, frames=frames, image_size=image_size, num_classes=num_classes, **overrides)
    d, h, m = spec.hidden_dim, spec.num_heads, spec.mlp_dim
    rows = [_embedding_row(spec)]
    for layer in spec.layers():
        if convention == "paper":
            tokens = layer.frames_out * spec.patches_per_frame
            rows.append(FlopRow(layer.index, "mlp", tokens * 2 * d * m, f"{tokens} patch tokens, {d}->{m}->{d}"))
        elif layer.kind == "joint":
            rows += _joint_rows(layer, d, h, m)
        else:
            rows += _separable_rows(layer, d, h, m)
    if convention == "full" and spec.num_classes:
        rows.append(FlopRow(None, "head", d * spec.num_classes, f"{d}->{spec.num_classes}"))
    return FlopReport(spec, convention, rows)
