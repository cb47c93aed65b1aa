"""The numpy oracle (oracle.py) assembled into whole backbones for ANY `BackboneConfig`, not only the
three official model kinds of `oracle.official_forward`: the class-token grid with pooling (`keep_first`),
separable orders other than temporal-spatial, average pooling, cubic tubelets, the spatial-only
readout, GELU, the position embedding in every layer. Weights use the official names and layouts
(`gluonmm.to_state_dict` of the model), so this never calls the Keras layers.
"""

import numpy as np

import oracle


def backbone_forward(sd, config, clip_bthwc, num_classes=None):
    """Logits (with `fc.weight` in `sd`) or the class-token feature of a backbone described by `config`
    (a resolved `vidtr_keras.models.config.BackboneConfig`) on a (B, T, H, W, C) clip."""
    sd = {k: np.asarray(v, dtype=np.float64) for k, v in sd.items()}
    heads = config.num_heads
    patches = oracle.patch_embed(np.asarray(clip_bthwc, np.float64), sd["conv_stem.weight"], sd["conv_stem.bias"])
    b, t, gh, gw, d = patches.shape
    s = gh * gw
    grid = patches.reshape(b, t, s, d)
    if (t, gh, gw) != (config.token_frames,) + tuple(config.grid_size):
        raise ValueError("backbone_forward computes the model at the size it was made for (no resizing).")
    kw = {"activation": config.mlp_activation, "second_softmax": config.second_softmax, "pooling": config.pooling}
    pos = sd["pos_embedding"]
    if config.class_token_layout == "grid":
        row0 = np.broadcast_to(sd["cls_t"], (b, 1, s + 1, d))
        col0 = np.broadcast_to(sd["cls_s"][None], (b, t, 1, d))
        x = np.concatenate([row0, np.concatenate([col0, grid], axis=2)], axis=1)
        pos = pos.reshape(1, t + 1, s + 1, d)
        for i, (kind, dropped) in enumerate(config.layer_plan):
            use = i == 0 or config.position_embedding_every_layer
            x = oracle.encoder_block(
                x, _params(sd, i), heads, kind, pos if use else None, frames_dropped=dropped, keep_first=True, **kw
            )
        x = oracle.layer_norm(x, sd["encoder.norm.weight"], sd["encoder.norm.bias"], config.layer_norm_epsilon)
        feature = x[:, 1:, 0].mean(axis=1) if config.attention == "spatial" else x[:, 0, 0]
    else:
        cls = np.broadcast_to(sd["cls"], (b, 1, d))
        x = grid
        target = "qk" if config.attention == "joint" else "qkv"
        for i, (kind, dropped) in enumerate(config.layer_plan):
            use = i == 0 or config.position_embedding_every_layer
            if kind == "joint":
                if x.ndim == 4:
                    x = np.concatenate([cls, x.reshape(b, -1, d)], axis=1)
                x = oracle.encoder_block(
                    x, _params(sd, i), heads, "joint", pos if use else None, pos_target=target, **kw
                )
            else:
                x, cls = oracle.encoder_block(
                    x, _params(sd, i), heads, kind, pos if use else None, cls=cls, frames_dropped=dropped, **kw
                )
        if x.ndim == 4:
            x = np.concatenate([cls, x.reshape(b, -1, d)], axis=1)
        x = oracle.layer_norm(x, sd["encoder.norm.weight"], sd["encoder.norm.bias"], config.layer_norm_epsilon)
        feature = x[:, 0]
    if "fc.weight" not in sd:
        return feature
    return oracle.linear(feature, sd["fc.weight"], sd["fc.bias"])


def _params(sd, i):
    return oracle._attn_params(sd, i)


def seeded_state_dict(names_and_shapes, seed=2021, scale=0.3):
    """Seeded random weights for {official name: shape} (norm scales around 1), in sorted-name order."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in sorted(names_and_shapes.items()):
        value = rng.normal(0, scale, shape)
        if name.endswith(("norm1.weight", "norm2.weight")) or name == "encoder.norm.weight":
            value = value + 1.0
        out[name] = value.astype("float32")
    return out
