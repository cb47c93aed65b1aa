"""Why the official temporal-spatial order learns frame order slowly at the learning run's size: how
sensitive untrained variants are to frame order (`order_sensitivity`), and an easy-regime training
experiment that separates the position embedding's initialisation from the design (`easy_direction`).

`python -m reproduce.learning.sensitivity --easy SEEDS` is the easy-regime child process (one RESULT line).
"""

import sys

from reproduce import common
from reproduce.learning.recipe import BACKEND, FRAMES, HEAD, LAYERS, PATCH, POS_STD, SIZE

EASY_TIMEOUT_S = 1800  # the easy-regime child process: 5 variants x the seeds, a few hundred steps each

SENSITIVITY_VARIANTS = {
    "VidTr temp.-spat. (official)": ({}, None),
    "VidTr spat.-temp.": ({"attention": "spatial_temporal"}, None),
    "vanilla (joint)": ({"attention": "joint"}, None),
    "spatial only": ({"attention": "spatial"}, None),
    "VidTr temp.-spat., position embedding every layer": ({"position_embedding_every_layer": True}, None),
    f"VidTr temp.-spat., position embedding init std {POS_STD}": ({"position_embedding_stddev": POS_STD}, None),
    "VidTr temp.-spat., position embedding init std 1": ({"position_embedding_stddev": 1.0}, None),
    "VidTr spat.-temp., position embedding init std 1": (
        {"attention": "spatial_temporal", "position_embedding_stddev": 1.0},
        None,
    ),
}


def order_sensitivity(seeds=3, clips=48, frames=FRAMES, size=SIZE, patch=PATCH):
    """How much the classified feature of an untrained model changes when a clip is played backwards,
    relative to how much it changes between two different clips: mean ||f(x) - f(reversed x)|| /
    mean ||f(x) - f(x')|| over direction clips (0 = blind to frame order). Forward passes only
    (any backend, numpy included). Returns {variant: [ratio per seed]}."""
    import keras
    import numpy as np

    from vidtr_keras import build_model
    from vidtr_keras.data import procedural
    from vidtr_keras.data.transforms import normalize

    video, _ = procedural.generate("direction", clips, seed=3, split="val", frames=frames, size=size)
    x = normalize(video)
    out = {}
    for name, (overrides, pos_std) in SENSITIVITY_VARIANTS.items():
        ratios = []
        for seed in range(seeds):
            keras.utils.set_random_seed(seed)
            model = build_model(
                "vidtr_tiny",
                num_classes=HEAD,
                num_frames=frames,
                image_size=size,
                patch_size=patch,
                num_layers=LAYERS,
                **overrides,
            )
            if pos_std is not None:  # an explicit normal draw instead of the option's truncated normal
                pos = model.backbone.get_layer("position_embedding").embeddings
                pos.assign(np.random.default_rng(seed).normal(0, pos_std, pos.shape).astype("float32"))
            f = np.asarray(model.backbone(x, training=False))
            fr = np.asarray(model.backbone(x[:, ::-1], training=False))
            reversed_gap = np.linalg.norm(f - fr, axis=1).mean()
            other_gap = np.linalg.norm(f - np.roll(f, 1, axis=0), axis=1).mean()
            ratios.append(float(reversed_gap / other_gap))
        out[name] = ratios
    return out


EASY_VARIANTS = {
    "VidTr temp.-spat. (official), pos-emb std 0.02": {},
    f"VidTr temp.-spat. (official), pos-emb std {POS_STD}": {"position_embedding_stddev": POS_STD},
    "VidTr spat.-temp., pos-emb std 0.02": {"attention": "spatial_temporal"},
    "vanilla (joint), pos-emb std 0.02": {"attention": "joint"},
    "spatial only, pos-emb std 0.02": {"attention": "spatial"},
}


def easy_direction(seeds=3, steps=160):
    """The direction task in a regime where tiny transformers learn within seconds: 4 frames of 16 px on
    flat grey (no clutter), 2-frame tubelets of 4x4 px, one encoder layer of `vidtr_tiny`, no dropout,
    Adam 3e-3, batch 32 (the per-backend learning smoke test's recipe). Test top-1 on 128 clips after
    `steps` steps, {variant: [top-1 per seed]}; runs in this process, any backend."""
    import keras
    import numpy as np

    from vidtr_keras import build_model
    from vidtr_keras.data import procedural
    from vidtr_keras.data.transforms import normalize

    frames, size, count = 4, 16, 256
    x, y = procedural.generate("direction", count, seed=0, frames=frames, size=size, clutter=False)
    xt, yt = procedural.generate("direction", 128, seed=0, split="test", frames=frames, size=size, clutter=False)
    x, xt = normalize(x), normalize(xt)
    out = {}
    for name, overrides in EASY_VARIANTS.items():
        out[name] = []
        for seed in range(seeds):
            keras.utils.set_random_seed(seed)
            model = build_model(
                "vidtr_tiny",
                num_classes=HEAD,
                head_dropout=0.0,
                num_frames=frames,
                image_size=size,
                patch_size=(2, 4, 4),
                num_layers=1,
                dropout=0.0,
                attention_dropout=0.0,
                **overrides,
            )
            model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            model.fit(x, y, batch_size=32, epochs=steps * 32 // count, verbose=0, shuffle=True)
            logits = model.predict(xt, batch_size=64, verbose=0)
            out[name].append(float(np.mean(np.argmax(logits, -1) == yt)))
    return out


def run_easy(seeds):
    """`easy_direction(seeds)` in a fresh process on the training backend (this process has no trainer:
    `reproduce` runs on Keras' numpy backend). Returns {"backend", "seeds", "result"}."""
    from vidtr_keras.backends.env import child_env
    from vidtr_keras.complexity.runner import run_child

    command = [common.python_executable(), "-m", "reproduce.learning.sensitivity", "--easy", str(seeds)]
    run = run_child(
        command,
        env=child_env(BACKEND),
        cwd=common.ROOT,
        timeout=EASY_TIMEOUT_S,
        name=f"the easy-regime worker ({BACKEND})",
    )
    if run.result is None:
        raise RuntimeError(f"The easy-regime worker printed no result; its last output line: {run.last_line}")
    return {"backend": BACKEND, "seeds": seeds, "result": run.result}


def easy_section(easy):
    seeds, result = easy["seeds"], easy["result"]
    rows = [[n] + [f"{x:.2f}" for x in (sum(v) / len(v), min(v), max(v))] for n, v in result.items()]
    columns = [f"variant (easy regime, {seeds} seeds)", "direction top-1 mean", "min", "max"]
    table = common.markdown_table(columns, rows)
    names = list(result)
    official, larger, st = (sum(result[n]) / len(result[n]) for n in names[:3])
    if larger >= st - 0.1 and official < st - 0.1:
        verdict = (
            f"The larger initialisation (std {POS_STD}) alone brings the official order up to the spatial-temporal "
            "order: the cause is the initialisation, not the design."
        )
    elif official >= st - 0.1:
        verdict = "The official order learns as well as the spatial-temporal order here: no order effect to explain."
    else:
        verdict = (
            f"The larger initialisation (std {POS_STD}) does not close the gap ({official:.2f} -> {larger:.2f} vs "
            f"{st:.2f} for spatial-temporal at ViT's init): the initialisation is not the cause. What is left is the "
            "official temporal-spatial data flow itself (its spatial step takes its values from the temporal output), "
            "a property of the design at this scale, not of this port (the parity tests against the official outputs "
            "hold); the order-sensitivity table above measures the untrained symptom, not the cause."
        )
    return (
        "### The experiment that separates initialisation from design\n\n"
        "Direction of motion in a regime where tiny transformers learn within 160 steps (4 frames of 16 px on flat "
        "grey, 2-frame tubelets of 4x4 px, one encoder layer of `vidtr_tiny`, no dropout, Adam 3e-3, batch 32: the "
        f"recipe of the per-backend learning smoke test; {easy['backend']} backend), the same for every "
        "row:\n\n" + table + "\n\n" + verdict
    )


def sensitivity_section():
    sens = order_sensitivity()
    rows = [[name] + [f"{x:.4f}" for x in (sum(v) / len(v), min(v), max(v))] for name, v in sens.items()]
    columns = [
        f"untrained model (vidtr_tiny, {LAYERS} layers, {FRAMES} frames of {SIZE} px, {PATCH[1]}x{PATCH[2]} patches)",
        "order sensitivity (mean of 3 seeds)",
        "min",
        "max",
    ]
    table = common.markdown_table(columns, rows)
    return (
        "The classified feature of an untrained model, for direction clips played forwards and backwards: "
        "||f(x) - f(reversed x)|| relative to ||f(x) - f(another clip)|| (0 = blind to frame order; "
        "`order_sensitivity` in reproduce/learning/sensitivity.py). This is the signal gradient descent "
        "starts from.\n\n" + table + "\n\n"
        "In the official temporal-spatial layer the spatial step takes its values from the temporal output, so every "
        "token, the per-frame spatial class tokens included, only ever receives content that was first pooled over "
        "the frames of its column; the class-token row's temporal step is a set pooling over frames. The one thing "
        "that tells frames apart inside those pools is the position embedding, added to LayerNorm-ed tokens of unit "
        "scale at the ViT initialisation std of 0.02, i.e. about 1/50 of the signal. In the spatial-temporal order the "
        "per-frame class tokens read their frame's values directly (spatial step first), and the strong, normalised "
        "per-frame class tokens then weight the frames. Released models inflate ViT's trained embeddings, so they do "
        "not start from this point. A larger initialisation (`position_embedding_stddev`) removes this untrained "
        "symptom; whether it removes the learning gap is tested by training, below. Not the whole story: the joint "
        "model starts as blind (its values carry no position embedding), yet it learns direction given enough "
        "steps: there every token attends to every (frame, patch) token in one step, so a position signal that "
        "training amplifies reaches the class token directly instead of through per-column pools."
    )


def main(argv=None):
    import json

    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) != 2 or argv[0] != "--easy":
        sys.exit("usage: python -m reproduce.learning.sensitivity --easy SEEDS  (the easy-regime child process)")
    print("RESULT " + json.dumps(easy_direction(int(argv[1]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
