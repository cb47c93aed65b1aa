"""The pretrained regime's image ViT: one made by `vidtr pretrain-images` (fractal images, no download) to
fit the learning run's model, run as a user runs it, in a child process on PyTorch; kept in results/ and
reused while its settings are unchanged (its .json record says how it was made and what it reached)."""

import json
import time

from reproduce import common

PRETRAIN_BACKEND = "torch"  # the backend the shipped checkpoint was made on; any backend writes the same format
PRETRAIN_TIMEOUT_S = 3600


def vit_path(quick):
    return common.RESULTS / ("learning_vit_quick.npz" if quick else "learning_vit.npz")


def _flags(settings):
    out = []
    for key, value in settings.items():
        out += [f"--{key.replace('_', '-')}", str(value)]
    return out


def ensure_vit(settings, path, console=None):
    """`path` (a timm-named .npz) pretrained with `settings` (PretrainConfig fields); trains it when it is
    missing or was made with other settings. Returns (record dict, minutes spent here)."""
    record_path = path.with_name(path.name + ".json")
    if path.exists() and record_path.exists():
        record = json.loads(record_path.read_text())
        if all(record["config"].get(k) == v for k, v in settings.items()):
            return record, 0.0
    from vidtr_keras.backends.env import child_env
    from vidtr_keras.complexity.runner import run_child

    if console is not None:
        console.print(f"pretraining the image ViT ({PRETRAIN_BACKEND}): {path.name}")
    command = [common.python_executable(), "-m", "vidtr_keras.cli", "pretrain-images", str(path)]
    command += _flags(settings) + ["--verbose", "2"]
    start = time.perf_counter()
    run_child(
        command,
        env=child_env(PRETRAIN_BACKEND),
        cwd=common.ROOT,
        timeout=PRETRAIN_TIMEOUT_S,
        name="vidtr pretrain-images (the learning run's image ViT)",
    )
    minutes = (time.perf_counter() - start) / 60
    return json.loads(record_path.read_text()), minutes


def vit_text(record, path, minutes=None):
    """One paragraph: how the pretrained regime's ViT was made and what it reached."""
    c = record["config"]
    took = f", {minutes:.1f} min in this run" if minutes else ""
    return (
        f"The image ViT (`{path.name}`, made by `vidtr pretrain-images` on {record['backend']}{took}): width "
        f"{c['width']}, {c['depth']} blocks, {c['heads']} heads, MLP {c['mlp_dim']} ({c['mlp_activation']}), "
        f"{c['patch']} px patches on {c['image_size']} px images, {record['parameters']:,} parameters with its "
        f"head; {c['classes']} fractal classes x {c['images_per_class']} images, {c['epochs']} epochs, seed "
        f"{c['seed']}; top-1 {record['train_accuracy']:.3f} on its training images and "
        f"{record['val_accuracy']:.3f} on {c['classes'] * c['val_images_per_class']:,} held-out renders of the "
        f"same classes (chance {1 / c['classes']:.2f}). The shipped `vidtr_keras:tiny_fractal_vit` does not fit "
        "the learning run's model (8 px patches on 32 px images, 3 blocks, GELU), so the run pretrains this one "
        "with the same command and recipe; the learning model's own size stays that of the from-scratch runs."
    )
