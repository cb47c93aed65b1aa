"""Image pretraining without a download: a timm-structured ViT trained on formula-driven fractal images
(FractalDB, Kataoka et al., ACCV 2020), written as a timm checkpoint that `vidtr inflate` reads like an
ImageNet one (the VidTr paper, section 4, starts every model from an image ViT).

`pretrain_images(PretrainConfig(...))`: the fractal classes of `vidtr_keras.data.fractals`, the image
ViT of `vidtr_keras.models.image_vit`, AdamW with a linear warm-up and a cosine decay (Keras' own
`AdamW` and `CosineDecay`; DeiT's and timm's ViT recipe, with weight decay off for biases, LayerNorms,
the class token and the position embedding, as timm's `no_weight_decay` does), the cross-entropy on the
class token's logits; then `OUTPUT` (`.safetensors` or `.npz`, timm names) and `OUTPUT.json` (the
config and the final accuracies: on the training images and on held-out images, new renders of the same
classes).

Example:
>>> result = pretrain_images(PretrainConfig("vit.npz", classes=8, images_per_class=16, epochs=2, warmup_epochs=1))
>>> result.path, round(result.val_accuracy, 2)
('vit.npz', ...)
"""

import dataclasses
import json
import math
import os

import keras

from vidtr_keras.backends.torch_cpu import intra_op_threads, torch_threads
from vidtr_keras.convert.vit_export import SUFFIXES, from_image_vit, save_timm, to_timm
from vidtr_keras.data.fractals import FILL_THRESHOLD, FractalDataset
from vidtr_keras.models.image_vit import build_image_vit
from vidtr_keras.training.config import threads_from_text
from vidtr_keras.version import __version__

# Parameters that timm's ViT keeps out of weight decay (`no_weight_decay`: pos_embed, cls_token; and
# every 1-D parameter: biases, LayerNorm scales and offsets). Matched against Keras variable names.
NO_WEIGHT_DECAY = ("bias", "gamma", "beta", "class_token", "position_embedding")


def _setting(default=dataclasses.MISSING, *, help, **cli):
    """A `PretrainConfig` field: its default and `help` (and optionally `flag`, `choices`, `parse`), from
    which `vidtr pretrain-images` builds its flags (`cli/args.add_dataclass_args`, as `vidtr train` does)."""
    return dataclasses.field(default=default, metadata={"help": help, **cli})


@dataclasses.dataclass
class PretrainConfig:
    """Everything that decides a pretraining run; the ViT's defaults are the tiny VidTr presets' transformer
    (width 32, 3 blocks, 4 heads, MLP 64, 8 px patches, 32 px images), so the checkpoint inflates into
    `vidtr_tiny`, `vanilla_tiny` and `cvidtr_tiny` as it is. Each field's help says what it does.

    A run is repeatable on one backend: `seed` fixes the fractal classes, the images, the initialisation
    and the batch order.
    """

    output: str = _setting(help="the checkpoint: .safetensors or .npz (timm names); OUTPUT.json records the run")
    width: int = _setting(32, help="ViT width (hidden_dim)")
    depth: int = _setting(3, help="ViT blocks (num_layers)")
    heads: int = _setting(4, help="attention heads")
    mlp_dim: int = _setting(64, help="MLP width (timm's ViTs: 4 x width)")
    patch: int = _setting(8, help="patch side in px")
    image_size: int = _setting(32, help="image side in px (a multiple of `patch`)")
    classes: int = _setting(100, help="fractal classes (random iterated function systems)")
    images_per_class: int = _setting(100, help="training images per class")
    val_images_per_class: int = _setting(10, help="held-out images per class (new renders of the same classes)")
    epochs: int = _setting(20, help="training epochs")
    batch_size: int = _setting(64, help="images per step")
    lr: float = _setting(1e-3, help="AdamW peak learning rate")
    weight_decay: float = _setting(0.05, help="AdamW decoupled weight decay (not on biases, norms and tokens)")
    warmup_epochs: float = _setting(2.0, help="linear warm-up from 0 to `lr`, in epochs")
    min_lr: float = _setting(1e-5, help="learning rate at the end of the cosine decay")
    mlp_activation: str = _setting(
        "gelu", help="MLP activation: gelu as timm's ViT, or relu as the released VidTr code", choices=("gelu", "relu")
    )
    fill_threshold: float = _setting(FILL_THRESHOLD, help="FractalDB's filling-rate filter of the classes")
    seed: int = _setting(0, help="fractal classes, images, initialisation and order")
    threads: object = _setting(
        "auto",
        help="PyTorch intra-op CPU threads: auto (1 for a small model), a number, or 'default'",
        parse=threads_from_text,
    )

    def __post_init__(self):
        if not os.fspath(self.output).endswith(SUFFIXES):
            raise ValueError(f"`output` must end in {' or '.join(SUFFIXES)}, got {self.output!r}.")
        for name in ("width", "depth", "heads", "mlp_dim", "patch", "image_size", "classes", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}.")
        if self.image_size % self.patch:
            raise ValueError(f"`image_size` ({self.image_size}) must be a multiple of `patch` ({self.patch}).")
        if self.width % self.heads:
            raise ValueError(f"`heads` ({self.heads}) must divide `width` ({self.width}).")
        if self.classes < 2:
            raise ValueError(f"`classes` must be at least 2, got {self.classes}.")
        if self.images_per_class < 1 or self.val_images_per_class < 0:
            raise ValueError("`images_per_class` must be positive and `val_images_per_class` not negative.")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"`warmup_epochs` must be in [0, `epochs`={self.epochs}), got {self.warmup_epochs}.")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.min_lr <= self.lr:
            raise ValueError(
                f"need `lr` > 0, `weight_decay` >= 0 and 0 <= `min_lr` <= `lr`; got {self.lr}, "
                f"{self.weight_decay}, {self.min_lr}."
            )


@dataclasses.dataclass
class PretrainResult:
    """What a run wrote and reached: the checkpoint, the record, the final accuracies, the history."""

    path: str
    record_path: str
    train_accuracy: float
    val_accuracy: float
    parameters: int
    history: dict


def learning_rate_schedule(config, steps_per_epoch):
    """Linear warm-up from 0 to `lr` over `warmup_epochs`, then a cosine decay to `min_lr` at the last step."""
    total = int(config.epochs * steps_per_epoch)
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(1, total - warmup),
        alpha=config.min_lr / config.lr,
        warmup_target=config.lr,
        warmup_steps=warmup,
    )


def _batch_macs(config):
    """Forward multiply-adds of one batch (patch embedding, projections, MLP, attention), for threads='auto'."""
    d, n = config.width, (config.image_size // config.patch) ** 2 + 1
    per_block = n * (4 * d * d + 2 * d * config.mlp_dim) + 2 * n * n * d
    return config.batch_size * ((n - 1) * config.patch**2 * 3 * d + config.depth * per_block)


def pretrain_images(config, callbacks=(), verbose=1):
    """Trains the image ViT of `config` on fractal images and writes its timm checkpoint and record.

    Args:
        config: a `PretrainConfig`.
        callbacks: extra Keras callbacks.
        verbose: Keras progress bar mode (0 silent, 1 bar, 2 one line per epoch).

    Returns:
        a `PretrainResult`.
    """
    keras.utils.set_random_seed(config.seed)
    common = dict(
        num_classes=config.classes,
        image_size=config.image_size,
        batch_size=config.batch_size,
        seed=config.seed,
        fill_threshold=config.fill_threshold,
    )
    train = FractalDataset(images_per_class=config.images_per_class, split="train", **common)
    val = None
    if config.val_images_per_class:
        val = FractalDataset(images_per_class=config.val_images_per_class, split="val", **common)
    model = build_image_vit(
        config.classes,
        image_size=config.image_size,
        patch_size=config.patch,
        hidden_dim=config.width,
        num_layers=config.depth,
        num_heads=config.heads,
        mlp_dim=config.mlp_dim,
        mlp_activation=config.mlp_activation,
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=learning_rate_schedule(config, len(train)), weight_decay=config.weight_decay
    )
    optimizer.exclude_from_weight_decay(var_names=list(NO_WEIGHT_DECAY))
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    with torch_threads(intra_op_threads(config.threads, _batch_macs(config))):
        history = model.fit(
            train, validation_data=val, epochs=config.epochs, callbacks=list(callbacks), verbose=verbose
        )
    history = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    train_accuracy = history["accuracy"][-1]
    val_accuracy = history["val_accuracy"][-1] if val is not None else math.nan

    vit = from_image_vit(model, source=f"fractal-pretrained ViT {os.path.basename(config.output)!r}")
    head = model.get_layer("head")
    state = to_timm(vit, head=(keras.ops.convert_to_numpy(head.kernel), keras.ops.convert_to_numpy(head.bias)))
    record = {
        "what": "timm-structured ViT pretrained on FractalDB-style fractal images by vidtr pretrain-images",
        "config": dataclasses.asdict(config),
        "train_accuracy": train_accuracy,
        "val_accuracy": val_accuracy,
        "val_images": "held-out renders (split 'val') of the same fractal classes",
        "parameters": int(model.count_params()),
        "backend": keras.backend.backend(),
        "vidtr_keras": __version__,
        "keras": keras.version(),
        "history": history,
    }
    save_timm(config.output, state, metadata={"format": "pt", "vidtr_keras": __version__})
    record_path = os.fspath(config.output) + ".json"
    with open(record_path, "w") as f:
        json.dump(record, f, indent=1)
    return PretrainResult(
        os.fspath(config.output), record_path, train_accuracy, val_accuracy, record["parameters"], history
    )


__all__ = ["NO_WEIGHT_DECAY", "PretrainConfig", "PretrainResult", "learning_rate_schedule", "pretrain_images"]
