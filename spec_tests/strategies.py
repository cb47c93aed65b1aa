"""Hypothesis strategies and random-weight helpers shared by the spec modules."""

from hypothesis import strategies as st

heads_and_width = st.tuples(st.integers(1, 4), st.integers(1, 6)).map(lambda hd: (hd[0], hd[0] * hd[1]))
seeds = st.integers(0, 2**31 - 1)


def attention_params(rng, d, scale=0.5):
    """Random official-layout attention weights."""
    return {
        "in_proj_weight": rng.normal(0, scale, (3 * d, d)),
        "in_proj_bias": rng.normal(0, 0.1, (3 * d,)),
        "out_proj_weight": rng.normal(0, scale, (d, d)),
        "out_proj_bias": rng.normal(0, 0.1, (d,)),
    }


def block_params(rng, d, mlp, scale=0.4):
    p = attention_params(rng, d, scale)
    p.update(
        {
            "linear1.weight": rng.normal(0, scale, (mlp, d)),
            "linear1.bias": rng.normal(0, 0.1, (mlp,)),
            "linear2.weight": rng.normal(0, scale, (d, mlp)),
            "linear2.bias": rng.normal(0, 0.1, (d,)),
            "norm1.weight": 1 + rng.normal(0, 0.1, (d,)),
            "norm1.bias": rng.normal(0, 0.1, (d,)),
            "norm2.weight": 1 + rng.normal(0, 0.1, (d,)),
            "norm2.bias": rng.normal(0, 0.1, (d,)),
        }
    )
    return p


def set_attention_weights(layer, p):
    layer.in_proj_kernel.assign(p["in_proj_weight"].T.astype("float32"))
    layer.in_proj_bias.assign(p["in_proj_bias"].astype("float32"))
    layer.out_proj_kernel.assign(p["out_proj_weight"].T.astype("float32"))
    layer.out_proj_bias.assign(p["out_proj_bias"].astype("float32"))


def set_block_weights(block, p):
    set_attention_weights(block.attn, p)
    block.mlp_dense1.kernel.assign(p["linear1.weight"].T.astype("float32"))
    block.mlp_dense1.bias.assign(p["linear1.bias"].astype("float32"))
    block.mlp_dense2.kernel.assign(p["linear2.weight"].T.astype("float32"))
    block.mlp_dense2.bias.assign(p["linear2.bias"].astype("float32"))
    block.norm1.gamma.assign(p["norm1.weight"].astype("float32"))
    block.norm1.beta.assign(p["norm1.bias"].astype("float32"))
    block.norm2.gamma.assign(p["norm2.weight"].astype("float32"))
    block.norm2.beta.assign(p["norm2.bias"].astype("float32"))


def official_state_dict(rng, config, grid, scale=0.3):
    """Random weights under official names for an official constructor `config` and patch grid (gh, gw)."""
    d, mlp = config["d_model"], config["dim_feedforward"]
    pt, ph, pw = config["patch_size"]
    t = config["temporal_size"] // pt
    s = grid[0] * grid[1]
    sd = {
        "conv_stem.weight": rng.normal(0, scale, (d, 3, pt, ph, pw)),
        "conv_stem.bias": rng.normal(0, 0.1, (d,)),
        "encoder.norm.weight": 1 + rng.normal(0, 0.1, (d,)),
        "encoder.norm.bias": rng.normal(0, 0.1, (d,)),
        "fc.weight": rng.normal(0, scale, (config["activity_num"], d)),
        "fc.bias": rng.normal(0, 0.1, (config["activity_num"],)),
    }
    if config["cls"] == "VidTr" and not config.get("merge_later", False):
        sd["cls_t"] = rng.normal(0, 0.5, (1, s + 1, d))
        sd["cls_s"] = rng.normal(0, 0.5, (t, 1, d))
        sd["pos_embedding"] = rng.normal(0, 0.5, (1, (t + 1) * (s + 1), d))
    else:
        sd["cls"] = rng.normal(0, 0.5, (1, 1, d))
        sd["pos_embedding"] = rng.normal(0, 0.5, (1, 1 + t * s, d))
    for i in range(config["num_encoder_layers"]):
        for name, value in block_params(rng, d, mlp, scale).items():
            official = name.replace("in_proj", "self_attn.in_proj").replace("out_proj_", "self_attn.out_proj.")
            sd[f"encoder.layers.{i}.{official}"] = value
    return {k: v.astype("float32") for k, v in sd.items()}
