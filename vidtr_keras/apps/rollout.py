"""Attention rollout (Abnar & Zuidema, 2020) from the attention maps of a VidTr model, in numpy.

The paper visualises what VidTr attends to with rollout: per layer the heads are averaged, the
residual connection is modelled as 0.5 * A + 0.5 * I, the rows are renormalised, and the layers are
multiplied. `rollout_from_maps` takes the per-layer maps that `vidtr_keras.apps.explain.attention_maps`
captures (joint, or separable temporal and spatial, with std-topK / average / conv token pooling) and
gives the classified token's relevance on every patch of every sampled frame, a temporal importance
per frame, and the separate temporal, spatial and joint rollouts (`Rollout`). It is pure numpy, so it
is tested on hand-made maps (identity maps give the uniform answer). results/learning.md shows the
rollouts of the trained models of the learning run.
"""

import dataclasses

import numpy as np

from vidtr_keras.layers.temporal_pooling import adaptive_average_matrix


def _pool_matrix(kind, rows_in, rows_out, class_row):
    """(rows_out, rows_in) frame-mixing matrix of Table 4d's average / conv token pooling; the
    strided convolution is learned, so its rollout uses the uniform average over each stride window."""
    first = 1 if class_row else 0
    m = np.zeros((rows_out, rows_in))
    if first:
        m[0, 0] = 1.0
    m[first:, first:] = adaptive_average_matrix(rows_out - first, rows_in - first)
    del kind  # both kinds average their windows here
    return m


@dataclasses.dataclass
class Rollout:
    """Attention rollout of one clip (or a batch: every array then has a leading batch axis).

    Attributes:
        relevance: (T, gh, gw) the classified token's rolled-out attention on every patch of every
            original frame (the product over all layers, joint or separable, 0.5 * A + 0.5 * I each).
            Over all input tokens it sums to 1; `class_token_share` is the part on class tokens.
        frame_importance: (T,) relevance summed over each frame's patches, normalised to sum to 1.
        class_token_share: scalar, the relevance left on the input class tokens.
        temporal: (S', R, R0) temporal rollout of the separable layers, per spatial column (S'
            includes the class column in the grid layout): row j of the current frame rows over the
            R0 input rows (the class-token row first in the grid layout); None for a joint model.
            Rows sum to 1. With std-topK pooling R < R0 (see `row_frames`).
        spatial: (R, S', S') spatial rollout of the separable layers per frame row; pooled rows are
            carried by the selection averaged over columns and heads. None for a joint model.
        joint: (N, N) rollout of the joint layers (all layers of the vanilla model, the layers after
            the last pooling layer of C-VidTr), tokens [class, frame-major patches of the frames
            left]; None when there is none.
        row_frames: (S', heads, R) original frame of every row left after the separable layers
            (std-topK pooling, per column and head; -1 = class row), or None.
        kept_fraction: (T,) share of (column, head) pairs in which each frame survives std-topK
            pooling; None without it.
        layout, grid_size, num_layers, attention: the model's class-token layout, patch grid, depth
            and attention type, for titles.
    """

    relevance: np.ndarray
    frame_importance: np.ndarray
    class_token_share: np.ndarray
    temporal: np.ndarray = None
    spatial: np.ndarray = None
    joint: np.ndarray = None
    row_frames: np.ndarray = None
    kept_fraction: np.ndarray = None
    layout: str = "grid"
    grid_size: tuple = (14, 14)
    num_layers: int = 0
    attention: str = ""

    def first(self):
        """The rollout of the first clip of a batch (arrays without the batch axis)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = value[0] if isinstance(value, np.ndarray) else value
        return Rollout(**out)


def _renormalise(m):
    return m / np.sum(m, axis=-1, keepdims=True)


def _residual(attention, identity):
    """One rollout step: 0.5 * A + 0.5 * I (the residual connection), rows renormalised."""
    return _renormalise(0.5 * attention + 0.5 * identity)


def _readout_vector(mode, batch, rows, columns, layout):
    """The classified token(s) as a relevance vector over the last layer's tokens."""
    if layout == "grid":
        r = np.zeros((batch, rows, columns))
        if mode == "frame_mean":  # spatial-only model: mean of the spatial class tokens of the frames
            r[:, 1:, 0] = 1.0 / (rows - 1)
        else:
            r[:, 0, 0] = 1.0
        return r
    r = np.zeros((batch, 1 + rows * columns))
    r[:, 0] = 1.0
    return r


def _back_separable(r, entry):
    """Relevance (b, rows_out, S') of a separable layer's output tokens -> its input tokens, through
    the layer's full token mixing 0.5 * mean_h(attention) + 0.5 * residual (rows sum to 1, so no
    renormalisation is needed; the residual is each head's gathered frames under std-topK)."""
    kind = entry["attention"]
    ptm, psp = entry.get("temporal"), entry.get("spatial")
    sel = entry.get("selection")
    if entry["pooling"] in ("average", "conv"):  # pooling came after the residual add
        pool = _pool_matrix(entry["pooling"], entry["rows_in"], entry["rows_out"], entry["layout"] == "grid")
        r = np.einsum("bjs,ju->bus", r, pool)
    h = (ptm if ptm is not None else psp).shape[2]
    if kind == "temporal_spatial":
        w = np.einsum("bts,bthsr->bthr", r, psp)
        att = np.einsum("bthr,brhtu->bur", w, ptm) / h
    elif kind == "spatial_temporal":
        w = np.einsum("bts,bshtu->buhs", r, ptm)
        att = np.einsum("buhs,buhsr->bur", w, psp) / h
    elif kind == "spatial":
        att = np.einsum("bts,bthsr->btr", r, psp) / h
    else:
        att = np.einsum("bts,bshtu->bus", r, ptm) / h
    res = r if sel is None else np.einsum("btr,brhtu->bur", r, sel) / h
    return 0.5 * att + 0.5 * res


def rollout_from_maps(maps, readout="corner"):
    """Attention rollout from the list `attention_maps` returns (pure numpy, float64).

    Args:
        maps: `attention_maps(model, clip)`; any probabilities of the same shapes (e.g. identity
            maps) work, which is how the rollout itself is tested.
        readout: the classified token: "corner" (token (0, 0) of the grid), "frame_mean" (mean of
            the spatial class tokens, the spatial-only grid model) or "first" (the single class token).

    Returns:
        A `Rollout` with the batch axis.
    """
    if not maps:
        raise ValueError("rollout_from_maps needs the maps of at least one layer.")
    # float64, every probability row renormalised (rows of low-precision maps sum to 1 only roughly)
    maps = [
        {k: _renormalise(v.astype(np.float64)) if k in ("joint", "temporal", "spatial") else v for k, v in m.items()}
        for m in maps
    ]
    layout = maps[0]["layout"]
    class_row = layout == "grid"
    gh, gw = maps[0]["grid_size"]
    columns = gh * gw + int(class_row)
    rows0 = maps[0]["rows_in"]
    batch = next(v for k, v in maps[0].items() if k in ("joint", "temporal", "spatial")).shape[0]

    temporal = spatial = joint = None
    row_frames = None
    separable = [m for m in maps if m["attention"] != "joint"]
    if separable:
        temporal = np.broadcast_to(np.eye(rows0), (batch, columns, rows0, rows0)).copy()
        spatial = np.broadcast_to(np.eye(columns), (batch, rows0, columns, columns)).copy()
    for m in maps:
        if m["attention"] == "joint":
            a = np.mean(m["joint"], axis=1)
            step = _residual(a, np.eye(a.shape[-1]))
            joint = step if joint is None else step @ joint
            continue
        row_frames = m["row_frames"]
        ptm, psp = m.get("temporal"), m.get("spatial")
        sel = m.get("selection")
        if ptm is not None:
            eye = np.eye(ptm.shape[-1]) if sel is None else np.mean(sel, axis=2)
            t_step = _residual(np.mean(ptm, axis=2), eye)
            temporal = t_step @ temporal
        s_step = None
        if psp is not None:
            s_step = _residual(np.mean(psp, axis=2), np.eye(columns))
        carry = None if sel is None else np.mean(sel, axis=(1, 2))  # (b, rows_out, rows_in)
        if m["attention"] == "spatial_temporal" or carry is None:
            if s_step is not None:
                spatial = s_step @ spatial
            if carry is not None:
                spatial = np.einsum("bjt,btsr->bjsr", carry, spatial)
        else:  # temporal step pooled first; the spatial step runs on the kept rows
            spatial = np.einsum("bjt,btsr->bjsr", carry, spatial)
            if s_step is not None:
                spatial = s_step @ spatial
        if m["pooling"] in ("average", "conv"):
            pool = _pool_matrix(m["pooling"], m["rows_in"], m["rows_out"], class_row)
            temporal = np.einsum("ju,bsur->bsjr", pool, temporal)
            spatial = np.einsum("ju,busr->bjsr", pool, spatial)

    # The classified token's relevance: its row of the product over all layers, propagated back as a
    # vector (the full (N x N) product of every layer is not needed and is large for full-size models).
    last = maps[-1]
    rows = last["rows_out"] if last["attention"] != "joint" else (last["joint"].shape[-1] - 1) // columns
    r = _readout_vector(readout, batch, rows, columns, layout if last["attention"] != "joint" else "single")
    for m in reversed(maps):
        if m["attention"] == "joint":
            a = np.mean(m["joint"], axis=1)
            r = np.einsum("bq,bqk->bk", r, _residual(a, np.eye(a.shape[-1])))
            continue
        if r.ndim == 2:  # single layout (C-VidTr): the class token bypasses separable layers
            cls, r = r[:, :1], r[:, 1:].reshape(batch, m["rows_out"], columns)
            r = _back_separable(r, m)
            r = np.concatenate([cls, r.reshape(batch, -1)], axis=1)
            continue
        r = _back_separable(r, m)
    if layout == "grid":
        patches = r[:, 1:, 1:]
        class_share = r.sum(axis=(1, 2)) - patches.sum(axis=(1, 2))
    else:
        class_share = r[:, 0].copy()
        patches = r[:, 1:].reshape(batch, rows0, columns)
    relevance = patches.reshape(batch, -1, gh, gw)
    per_frame = relevance.sum(axis=(2, 3))
    total = per_frame.sum(axis=1, keepdims=True)
    importance = np.divide(per_frame, total, out=np.zeros_like(per_frame), where=total > 0)

    kept_fraction = None
    if row_frames is not None and any(m.get("selection") is not None for m in maps):
        frames = rows0 - int(class_row)
        hits = row_frames[..., None] == np.arange(frames)  # (b, S', h, R, T)
        kept_fraction = hits.any(axis=3).mean(axis=(1, 2))
    return Rollout(
        relevance=relevance,
        frame_importance=importance,
        class_token_share=class_share,
        temporal=temporal,
        spatial=spatial,
        joint=joint,
        row_frames=row_frames,
        kept_fraction=kept_fraction,
        layout=layout,
        grid_size=(gh, gw),
        num_layers=len(maps),
        attention=maps[0]["attention"],
    )


__all__ = ["Rollout", "rollout_from_maps"]
