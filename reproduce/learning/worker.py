"""The learning run's training: the models of each variant, the worker process that trains them
(`python -m reproduce.learning.worker SPEC`, on TensorFlow) and the parent side that deals the variants
out to spec["workers"] such processes running at once.

Each worker trains one traced graph per variant: the models of every (regime, seed) side by side in one
Keras model (`build_stack`), and each task re-initialises the weights (random, or inflated from the
pretrained image ViT) and the optimizer of the compiled model, so all runs of a variant share one trace.
After training, each model is tested on the test clips and on the same clips with their frames
shuffled (`shuffled_frames`, the control of how much a model uses time). Every variant has a 4-way head (the
most classes of any task; two-class tasks leave two logits unused). One thread per worker: the tiny
models' steps are short ops that one thread runs almost as fast as two.
"""

import json
import os
import sys
import time

from reproduce import common
from reproduce.learning.baseline import conv3d_baseline
from reproduce.learning.recipe import (
    BACKEND,
    BASE,
    FRAMES,
    HEAD,
    PRETRAINED,
    ROLLOUT_TASKS,
    SCRATCH,
    SIZE,
    STEP_COST,
    VARIANTS,
    learning_rate_schedule,
)

# The whole training of one worker, several times what a full run takes (results/learning.md): a hung worker is
# killed at this deadline instead of holding the run forever.
TRAIN_TIMEOUT_S = 4 * 3600


def build(variant, seed, regime=SCRATCH, vit=None):
    """One member: the variant's model with the weights of `seed`; in the PRETRAINED regime every
    tensor but the head (and C-VidTr's pooling convolution) then comes from the image ViT file `vit`,
    inflated as the paper does (`vidtr_keras.convert.vit.inflate`)."""
    import keras

    from vidtr_keras import build_model

    keras.utils.set_random_seed(seed)
    if VARIANTS[variant] is None:
        if regime != SCRATCH:
            raise ValueError(f"{variant} has no pretrained form (regime {regime!r}).")
        return conv3d_baseline(seed=seed)
    model = build_model("vidtr_tiny", num_classes=HEAD, **BASE, **VARIANTS[variant])
    if regime == PRETRAINED:
        from vidtr_keras.convert.vit import inflate

        inflate(model, vit)
    return model


def members_of(variant, seeds, regimes):
    """The (regime, seed) members a variant trains: every regime it has (the Conv3D: from scratch only)."""
    have = [r for r in regimes if VARIANTS[variant] is not None or r == SCRATCH]
    return [(regime, seed) for regime in have for seed in seeds]


def member_name(regime, seed):
    return f"{'pretrained' if regime == PRETRAINED else 'scratch'}_seed_{seed}"


def build_stack(variant, members, vit=None):
    """The members side by side in one model (same input, one output each): their losses add up and no
    weight is shared, so each member trains as it would alone, and one traced program serves all (the
    regimes share it too: the same steps on the same batches, only the initial weights differ)."""
    import keras

    outputs = []
    inputs = keras.Input((FRAMES, SIZE, SIZE, 3), name="clips")
    for regime, seed in members:
        member = build(variant, seed, regime, vit)
        x = keras.Input((FRAMES, SIZE, SIZE, 3))
        outputs.append(keras.Model(x, member(x), name=member_name(regime, seed))(inputs))
    return keras.Model(inputs, outputs, name="members")


def shuffled_frames(clips, seed=0):
    """The clips with their frames permuted, one random non-identity permutation per clip (seeded): the
    shuffled-frames control. A model that uses frame order loses accuracy on them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n, t = clips.shape[:2]
    perms = []
    for _ in range(n):
        p = rng.permutation(t)
        while t > 1 and np.all(p == np.arange(t)):
            p = rng.permutation(t)
        perms.append(p)
    return clips[np.arange(n)[:, None], np.stack(perms)]


# What identifies a run's results in its partial-results file: every setting that changes them.
# Not the tasks or variants: each (variant, task) is trained from its own seeds on its own data whatever
# else the run trains, so a run of other tasks keeps the ones it shares.
KEY_FIELDS = ("train", "test", "epochs", "seeds", "regimes", "pretrain", "batch_size", "lr", "warmup")


def spec_key(spec):
    return json.dumps({k: spec.get(k) for k in KEY_FIELDS}, sort_keys=True)


def _same_key(stored, key):
    try:  # keys written before the tasks left KEY_FIELDS still match
        return spec_key(json.loads(stored)) == key
    except (TypeError, ValueError):
        return False


def partial_path(spec):
    """The file each finished (variant, task) appends its runs to, so that an interrupted run continues
    where it stopped (`python -m reproduce learning` again); None for runs that keep no file."""
    if spec.get("partial"):
        return spec["partial"]
    return str(common.RESULTS / "learning_partial.jsonl") if spec.get("rollouts") else None


def partial_runs(path, key):
    """The runs stored in `path` under `key` (none without the file)."""
    if not path or not os.path.exists(path):
        return []
    runs = []
    with open(path) as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:  # a line cut short by the interruption
                continue
            if _same_key(entry.pop("key", None), key):
                runs.append(entry)
    return runs


def worker(spec):
    """Trains spec["variants"] on spec["tasks"] with spec["seeds"] seeds; prints one RESULT line per run
    and, with spec["rollouts"], saves rollouts of the seed-0 models of the ROLLOUT_TASKS."""
    if spec.get("threads"):  # before TensorFlow starts its thread pools
        import tensorflow as tf  # this worker runs on TensorFlow (BACKEND)

        tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(spec["threads"])
    import keras
    import numpy as np

    from vidtr_keras.data import procedural

    data = {}
    for task in spec["tasks"]:
        train = procedural.ProceduralDataset(task, "train", spec["train"], seed=0, frames=FRAMES, size=SIZE).arrays()
        test = procedural.ProceduralDataset(task, "test", spec["test"], seed=0, frames=FRAMES, size=SIZE).arrays()
        data[task] = (train, test)
    seeds = list(range(spec["seeds"]))
    regimes = spec.get("regimes", [SCRATCH])
    partial, key = partial_path(spec), spec_key(spec)
    done = {(r["variant"], r["task"], r.get("regime", SCRATCH), r["seed"]) for r in partial_runs(partial, key)}
    # Rollouts of the models in the paper's regime (pretrained) where the run has it.
    shown = PRETRAINED if PRETRAINED in regimes else SCRATCH
    rollouts = {}
    for variant in spec["variants"]:
        model = None
        members = members_of(variant, seeds, regimes)
        for task in spec["tasks"]:
            if all((variant, task, regime, seed) in done for regime, seed in members):
                continue  # finished by an interrupted run of the same spec
            (x, y), (xt, yt) = data[task]
            fresh = build_stack(variant, members, spec.get("vit"))
            if model is None:
                model, optimizer = fresh, keras.optimizers.AdamW(learning_rate_schedule(spec))
                loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                model.compile(optimizer, [loss] * len(members), jit_compile=False)  # XLA's CPU compile costs minutes
            else:
                model.set_weights(fresh.get_weights())
                for v in optimizer.variables:  # step count and moments, never the learning rate
                    if "learning_rate" not in v.path:
                        v.assign(np.zeros(v.shape, v.dtype))
            keras.utils.set_random_seed(len(seeds))
            start = time.perf_counter()
            model.fit(
                x, [y] * len(members), batch_size=spec["batch_size"], epochs=spec["epochs"], verbose=0, shuffle=True
            )
            seconds = time.perf_counter() - start
            outputs = _as_list(model.predict(xt, batch_size=spec["batch_size"], verbose=0))
            shuffled = _as_list(model.predict(shuffled_frames(xt), batch_size=spec["batch_size"], verbose=0))
            train_outputs = _as_list(model.predict(x[:256], batch_size=spec["batch_size"], verbose=0))
            finished = []
            for (regime, seed), logits, shuffled_logits, train_logits in zip(members, outputs, shuffled, train_outputs):
                finished.append(
                    {
                        "variant": variant,
                        "regime": regime,
                        "task": task,
                        "seed": seed,
                        "top1": float(np.mean(np.argmax(logits, -1) == yt)),
                        "shuffled_top1": float(np.mean(np.argmax(shuffled_logits, -1) == yt)),
                        "train_top1": float(np.mean(np.argmax(train_logits, -1) == y[:256])),
                        "seconds": seconds / len(members),
                    }
                )
            if partial:  # one write of whole lines: the other worker appends to the same file
                with open(partial, "a") as f:
                    f.write("".join(json.dumps(dict(run, key=key)) + "\n" for run in finished))
            for run in finished:
                print("RESULT " + json.dumps(run), flush=True)
            if spec.get("rollouts") and task in ROLLOUT_TASKS and VARIANTS[variant] is not None:
                member = model.get_layer(member_name(shown, 0)).layers[-1]
                rollouts[(variant, task)] = _rollouts(member, xt[:2], yt[:2])
    if rollouts:
        np.savez(spec["rollouts"], **{f"{v}|{t}|{k}": a for (v, t), r in rollouts.items() for k, a in r.items()})


def _as_list(outputs):
    return outputs if isinstance(outputs, (list, tuple)) else [outputs]


def _rollouts(model, clips, labels):
    """Per-frame spatial maps and temporal importance of two test clips (vidtr_keras.apps.explain)."""
    import numpy as np

    try:
        from vidtr_keras.apps.explain import attention_rollout
    except ImportError:  # the explain module is optional here
        return {}
    out = {"labels": np.asarray(labels)}
    spatial, temporal = [], []
    for clip in clips:
        r = attention_rollout(model, clip)
        spatial.append(np.asarray(r.relevance, np.float32))
        temporal.append(np.asarray(r.frame_importance, np.float32))
    out["spatial"] = np.stack(spatial)
    out["temporal"] = np.stack(temporal)
    return out


def shares_of(spec):
    """spec split into spec["workers"] worker specs of about equal cost (variants dealt out by their
    measured step time, dearest first), each with its own rollout file."""
    workers = max(1, min(int(spec.get("workers", 1)), len(spec["variants"])))
    if workers == 1:
        return [spec]
    loads, shares = [0.0] * workers, [[] for _ in range(workers)]
    regimes = spec.get("regimes", [SCRATCH])

    def cost(v):  # a stack's step cost grows with its members: the Conv3D has one regime
        return STEP_COST.get(v, 1.0) * len(members_of(v, [0], regimes))

    for v in sorted(spec["variants"], key=lambda v: -cost(v)):
        i = loads.index(min(loads))
        loads[i] += cost(v)
        shares[i].append(v)
    out = []
    for i, variants in enumerate(shares):
        share = dict(spec, variants=[v for v in spec["variants"] if v in variants])
        if spec.get("rollouts"):
            share["rollouts"] = f"{spec['rollouts']}.{i}.npz"
        out.append(share)
    return out


def workers_text(spec):
    workers = len(shares_of(spec))
    threads = spec.get("threads")
    each = f", {threads} thread{'s' if threads != 1 else ''} each" if threads else ""
    return f"{workers} worker process{'es' if workers > 1 else ''} at once{each}"


def run_workers(ctx, spec, total):
    """Runs the training in spec["workers"] worker processes at once (each with spec["threads"] threads)
    and returns their runs; merges their rollout files into spec["rollouts"]."""
    from vidtr_keras.backends.env import child_env
    from vidtr_keras.complexity.runner import run_children

    bar = ctx.task(f"learning: {total} training runs [{BACKEND}]", total)
    shares = shares_of(spec)
    runs = []

    def on_result(run):
        runs.append(run)
        ctx.advance(
            bar,
            f"learning [{BACKEND}] {run['variant']} ({run.get('regime', SCRATCH)}) / {run['task']} seed {run['seed']}: "
            f"top-1 {run['top1']:.2f} ({run['seconds']:.0f}s)",
        )

    commands = [[common.python_executable(), "-m", "reproduce.learning.worker", json.dumps(share)] for share in shares]
    run_children(
        commands,
        env=child_env(BACKEND),
        cwd=common.ROOT,
        timeout=TRAIN_TIMEOUT_S,
        on_result=on_result,
        names=[f"learning worker {i + 1}/{len(shares)} ({', '.join(s['variants'])})" for i, s in enumerate(shares)],
    )
    if len(shares) > 1 and spec.get("rollouts"):
        import numpy as np

        merged = {}
        for share in shares:
            if os.path.exists(share["rollouts"]):
                with np.load(share["rollouts"]) as f:
                    merged.update({k: f[k] for k in f.files})
                os.remove(share["rollouts"])
        if merged:
            np.savez(spec["rollouts"], **merged)
    return runs


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) != 1:
        sys.exit(
            "usage: python -m reproduce.learning.worker '<spec json>'  (started by `python -m reproduce learning`)"
        )
    worker(json.loads(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
