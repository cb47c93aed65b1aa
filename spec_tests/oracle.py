"""A plain-numpy (float64) oracle of VidTr's math, written from the paper and the official code's described behaviour
independently of the Keras layers. Parameters use the OFFICIAL names and layouts (PyTorch Linear
weights (out, in), conv_stem (d, C, t, h, w), in_proj (3d, d) split q, k, v), so comparing a Keras
model with it also checks the converter.
"""

import numpy as np


def softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def layer_norm(x, gamma, beta, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def linear(x, weight, bias):
    return x @ weight.T + bias


def relu(x):
    return np.maximum(x, 0.0)


def gelu(x):
    from math import erf, sqrt

    return 0.5 * x * (1.0 + np.vectorize(erf)(x / sqrt(2.0)))


def patch_embed(clip_bthwc, weight, bias):
    """Non-overlapping Conv3D: clip (B, T, H, W, C), weight (d, C, t, h, w) -> (B, T/t, H/h, W/w, d)."""
    b, t, h, w, c = clip_bthwc.shape
    d, _, pt, ph, pw = weight.shape
    x = clip_bthwc.reshape(b, t // pt, pt, h // ph, ph, w // pw, pw, c)
    return np.einsum("bTtHhWwc,dcthw->bTHWd", x, weight) + bias


def project_qkv(x, p, heads, value_x=None):
    d = x.shape[-1]
    w, bias = p["in_proj_weight"], p["in_proj_bias"]
    q = linear(x, w[:d], bias[:d]) / np.sqrt(d // heads)
    k = linear(x, w[d : 2 * d], bias[d : 2 * d])
    v = linear(x if value_x is None else value_x, w[2 * d :], bias[2 * d :])
    split = lambda a: a.reshape(a.shape[:-1] + (heads, d // heads))  # noqa: E731
    return split(q), split(k), split(v)


def joint_attention(x, p, heads, value_x=None, record=None):
    """x (B, N, d) -> (B, N, d). A dict `record` receives the probabilities: "joint" (B, h, N, N)."""
    q, k, v = project_qkv(x, p, heads, value_x)
    probs = softmax(np.einsum("bqhd,bkhd->bhqk", q, k))
    if record is not None:
        record["joint"] = probs
    out = np.einsum("bhqk,bkhd->bqhd", probs, v)
    return linear(out.reshape(x.shape), p["out_proj_weight"], p["out_proj_bias"])


def std_topk_indices(probs, num_kept, keep_first=False):
    """Indices (ascending) of the num_kept rows of probs (..., T, T) with the highest unbiased std;
    ties go to the earlier row; row 0 always kept with keep_first."""
    std = probs.std(axis=-1, ddof=1) if probs.shape[-1] > 1 else np.zeros(probs.shape[:-1])
    t = probs.shape[-1]
    lead = std.shape[:-1]
    flat = std.reshape(-1, t)
    out = np.zeros((flat.shape[0], num_kept), dtype=np.int64)
    for n, row in enumerate(flat):
        order = sorted(range(t), key=lambda i: (-(np.inf if keep_first and i == 0 else row[i]), i))
        out[n] = sorted(order[:num_kept])
    return out.reshape(lead + (num_kept,))


def take_rows(a, idx):
    """a (..., T, X), idx (..., K) -> (..., K, X)."""
    return np.take_along_axis(a, idx[..., None], axis=-2)


def separable_attention(
    x, p, heads, order="temporal_spatial", frames_dropped=0, second_softmax=True, keep_first=False, record=None
):
    """x (B, T, S, d) token grid -> (out (B, T', S, d), kept indices (B, S, h, T') or None).
    A dict `record` receives the probabilities that multiply the values: "temporal" (B, S, h, T', T)
    (kept rows, after the second softmax), "spatial" (B, T', h, S, S), and with pooling "kept" (the
    indices) and "temporal_before_pooling" (B, S, h, T, T)."""
    record = {} if record is None else record
    b, t, s, d = x.shape
    q, k, v = project_qkv(x, p, heads)  # (B, T, S, h, dh)
    # per (b, s, h) sequences over time: (B, S, h, T, dh)
    to_time = lambda a: a.transpose(0, 2, 3, 1, 4)  # noqa: E731
    from_time = lambda a: a.transpose(0, 3, 1, 2, 4)  # noqa: E731
    to_space = lambda a: a.transpose(0, 1, 3, 2, 4)  # (B, T, h, S, dh)  # noqa: E731

    def temporal(q, k, v):
        probs = softmax(to_time(q) @ to_time(k).swapaxes(-1, -2))  # (B, S, h, T, T)
        idx = None
        if frames_dropped:
            record["temporal_before_pooling"] = probs
            idx = std_topk_indices(probs, probs.shape[-1] - frames_dropped, keep_first)
            record["kept"] = idx
            probs = take_rows(probs, idx)
            if second_softmax:
                probs = softmax(probs)
        record["temporal"] = probs
        return from_time(probs @ to_time(v)), idx

    def spatial(q, k, v):
        probs = softmax(to_space(q) @ to_space(k).swapaxes(-1, -2))  # (B, T, h, S, S)
        record["spatial"] = probs
        return to_space(probs @ to_space(v))

    idx = None
    if order == "temporal_spatial":
        out, idx = temporal(q, k, v)
        if idx is not None:
            q = from_time(take_rows(to_time(q), idx))
            k = from_time(take_rows(to_time(k), idx))
        out = spatial(q, k, out)
    elif order == "spatial_temporal":
        out, idx = temporal(q, k, spatial(q, k, v))
    elif order == "spatial":
        out = spatial(q, k, v)
    else:
        out, idx = temporal(q, k, v)
    out = out.reshape(out.shape[:3] + (d,))
    return linear(out, p["out_proj_weight"], p["out_proj_bias"]), idx


def gather_residual(x, idx, heads):
    """x (B, T, S, d), idx (B, S, h, T') -> per-head gathered (B, T', S, d)."""
    b, t, s, d = x.shape
    xh = x.reshape(b, t, s, heads, d // heads).transpose(0, 2, 3, 1, 4)  # (B, S, h, T, dh)
    g = take_rows(xh, idx)  # (B, S, h, T', dh)
    return g.transpose(0, 3, 1, 2, 4).reshape(b, idx.shape[-1], s, d)


def adaptive_average(x, kept):
    """x (B, T, S, d) -> (B, kept, S, d), bins like adaptive_avg_pool1d."""
    t = x.shape[1]
    rows = []
    for j in range(kept):
        lo, hi = (j * t) // kept, -((-(j + 1) * t) // kept)
        rows.append(x[:, lo:hi].mean(axis=1))
    return np.stack(rows, axis=1)


def mlp(x, p, activation="relu"):
    act = relu if activation == "relu" else gelu
    return linear(act(linear(x, p["linear1.weight"], p["linear1.bias"])), p["linear2.weight"], p["linear2.bias"])


def encoder_block(
    x,
    p,
    heads,
    kind,
    pos=None,
    cls=None,
    frames_dropped=0,
    pos_target="qkv",
    activation="relu",
    second_softmax=True,
    keep_first=False,
    pooling="std_topk",
    record=None,
):
    """One pre-LN layer. x: (B, N, d) joint or (B, T, S, d) separable; cls (B, 1, d) bypasses.
    A dict `record` receives the layer's attention probabilities (see the attention functions)."""
    ln1 = lambda a: layer_norm(a, p["norm1.weight"], p["norm1.bias"])  # noqa: E731
    ln2 = lambda a: layer_norm(a, p["norm2.weight"], p["norm2.bias"])  # noqa: E731
    y = ln1(x)
    cls_pos = None
    if pos is not None and cls is not None:
        cls_pos, pos = pos[:, :1], pos[:, 1:].reshape((1,) + x.shape[1:])
    if kind == "joint":
        if pos is None:
            out = joint_attention(y, p, heads, record=record)
        elif pos_target == "qk":
            out = joint_attention(y + pos, p, heads, value_x=y, record=record)
        else:
            out = joint_attention(y + pos, p, heads, record=record)
    else:
        drop_in_attention = frames_dropped if pooling == "std_topk" else 0
        out, idx = separable_attention(
            y if pos is None else y + pos, p, heads, kind, drop_in_attention, second_softmax, keep_first, record=record
        )
        if idx is not None:
            x = gather_residual(x, idx, heads)
    x = x + out
    if frames_dropped and pooling == "average":
        if keep_first:
            x = np.concatenate([x[:, :1], adaptive_average(x[:, 1:], x.shape[1] - 1 - frames_dropped)], axis=1)
        else:
            x = adaptive_average(x, x.shape[1] - frames_dropped)
    x = x + mlp(ln2(x), p, activation)
    if cls is None:
        return x
    c = ln1(cls) + (0 if cls_pos is None else cls_pos)
    cls = cls + c
    return x, cls + mlp(ln2(cls), p, activation)


def _attn_params(sd, i):
    pre = f"encoder.layers.{i}."
    g = lambda n: sd[pre + n]  # noqa: E731
    return {
        "in_proj_weight": g("self_attn.in_proj_weight"),
        "in_proj_bias": g("self_attn.in_proj_bias"),
        "out_proj_weight": g("self_attn.out_proj.weight"),
        "out_proj_bias": g("self_attn.out_proj.bias"),
        "linear1.weight": g("linear1.weight"),
        "linear1.bias": g("linear1.bias"),
        "linear2.weight": g("linear2.weight"),
        "linear2.bias": g("linear2.bias"),
        "norm1.weight": g("norm1.weight"),
        "norm1.bias": g("norm1.bias"),
        "norm2.weight": g("norm2.weight"),
        "norm2.bias": g("norm2.bias"),
    }


def official_forward(sd, config, clip_bcthw, records=None):
    """Logits of an official model (state dict + official constructor config) on an official-layout
    clip (B, C, T, H, W), following the official gluonmm code's behaviour. A list `records` receives one dict of
    attention probabilities per layer (see `encoder_block`)."""

    def rec():
        if records is None:
            return None
        records.append({})
        return records[-1]

    sd = {k: np.asarray(v, dtype=np.float64) for k, v in sd.items()}
    heads = int(config["nhead"])
    layers = int(config["num_encoder_layers"])
    frames = int(config["temporal_size"])
    clip = np.transpose(np.asarray(clip_bcthw, np.float64), (0, 2, 3, 4, 1))
    patches = patch_embed(clip, sd["conv_stem.weight"], sd["conv_stem.bias"])  # (B, T, h, w, d)
    b, t, gh, gw, d = patches.shape
    s = gh * gw
    grid = patches.reshape(b, t, s, d)
    compact = config["cls"] == "CompactVidTr"
    joint = not compact and config.get("merge_later", False)
    if compact or joint:
        cls = np.broadcast_to(sd["cls"], (b, 1, d))
        pos = sd["pos_embedding"]
        if joint:
            x = np.concatenate([cls, grid.reshape(b, t * s, d)], axis=1)
            every = frames == 16
            for i in range(layers):
                use = i == 0 or every
                x = encoder_block(
                    x, _attn_params(sd, i), heads, "joint", pos if use else None, pos_target="qk", record=rec()
                )
            x = layer_norm(x, sd["encoder.norm.weight"], sd["encoder.norm.bias"])
            return linear(x[:, 0], sd["fc.weight"], sd["fc.bias"])
        pools = dict(zip(config.get("layer_pool", []), config.get("number_of_keys", [])))
        last_pool = max(pools) if pools else -1
        x = grid
        for i in range(layers):
            p = _attn_params(sd, i)
            if i <= last_pool:
                x, cls = encoder_block(
                    x,
                    p,
                    heads,
                    "temporal_spatial",
                    pos if i == 0 else None,
                    cls=cls,
                    frames_dropped=pools.get(i, 0),
                    record=rec(),
                )
            else:
                if x.ndim == 4:
                    x = np.concatenate([cls, x.reshape(b, -1, d)], axis=1)
                x = encoder_block(x, p, heads, "joint", record=rec())
        if x.ndim == 4:  # no joint layer after the last pooling layer: the class token is still apart
            x = np.concatenate([cls, x.reshape(b, -1, d)], axis=1)
        x = layer_norm(x, sd["encoder.norm.weight"], sd["encoder.norm.bias"])
        return linear(x[:, 0], sd["fc.weight"], sd["fc.bias"])
    # VidTr-S/M/L: (T+1) x (S+1) grid
    row0 = np.broadcast_to(sd["cls_t"], (b, 1, s + 1, d))
    col0 = np.broadcast_to(sd["cls_s"][None], (b, t, 1, d))
    x = np.concatenate([row0, np.concatenate([col0, grid], axis=2)], axis=1)
    pos = sd["pos_embedding"].reshape(1, t + 1, s + 1, d)
    every = frames == 16
    for i in range(layers):
        x = encoder_block(
            x, _attn_params(sd, i), heads, "temporal_spatial", pos if (i == 0 or every) else None, record=rec()
        )
    x = layer_norm(x, sd["encoder.norm.weight"], sd["encoder.norm.bias"])
    return linear(x[:, 0, 0], sd["fc.weight"], sd["fc.bias"])


def interpolation_1d(new, old):
    """Linear resize matrix with half-pixel centres built from np.interp (an independent construction)."""
    m = np.zeros((new, old))
    for j in range(old):
        e = np.zeros(old)
        e[j] = 1.0
        centres = (np.arange(new) + 0.5) * old / new - 0.5
        m[:, j] = np.interp(np.clip(centres, 0, old - 1), np.arange(old), e)
    return m
