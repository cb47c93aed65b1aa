"""The training recipe of a `TrainConfig`: its schedule, optimiser, loss and metrics, and the backbone changes
(stochastic depth, a frozen backbone) made to the model before training.

Two recipes share the settings: the released one by default (SGD with momentum, L2 in the gradient, step
decay; `CoupledSGD`, `EpochStepDecay`), and the one video transformers are fine-tuned with today (VideoMAE's
and timm's: AdamW with decoupled weight decay, linear warm-up then cosine decay per step, label smoothing,
mixup / cutmix, stochastic depth, layer-wise learning-rate decay; `--optimizer adamw --schedule cosine ...`).
"""

import keras

from vidtr_keras.training.optimizers import CoupledSGD, LayerDecayAdamW
from vidtr_keras.training.schedules import EpochStepDecay, WarmupCosineDecay, scaled_milestones

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine")
# The defaults that depend on the optimiser: the released recipe's for SGD; for AdamW Keras' own
# learning rate and VideoMAE's fine-tuning weight decay.
DEFAULT_LR = {"sgd": 0.01, "adamw": 1e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 1e-5, "adamw": 0.05}


def check_recipe(config):
    """Clear errors, naming the setting, for recipe settings that are out of range or do not combine."""
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"`optimizer` must be one of {', '.join(OPTIMIZERS)}; got {config.optimizer!r}.")
    if config.schedule not in SCHEDULES:
        raise ValueError(f"`schedule` must be one of {', '.join(SCHEDULES)}; got {config.schedule!r}.")
    for key in ("lr", "weight_decay", "min_lr", "mixup", "cutmix"):
        value = getattr(config, key)
        if value is not None and value < 0:
            raise ValueError(f"`{key}` must be >= 0, got {value}.")
    if not 0.0 <= config.label_smoothing < 1.0:
        raise ValueError(f"`label_smoothing` must be in [0, 1), got {config.label_smoothing}.")
    if config.layer_decay is not None and not 0.0 < config.layer_decay <= 1.0:
        raise ValueError(f"`layer_decay` must be in (0, 1], got {config.layer_decay}.")
    if config.drop_path is not None and not 0.0 <= config.drop_path < 1.0:
        raise ValueError(f"`drop_path` must be in [0, 1), got {config.drop_path}.")
    if config.warmup_epochs < 0:
        raise ValueError(f"`warmup_epochs` must be >= 0, got {config.warmup_epochs}.")
    if config.schedule == "step":
        if config.warmup_epochs:
            raise ValueError("`warmup_epochs` belongs to the cosine schedule; add `schedule` cosine.")
        if config.min_lr:
            raise ValueError("`min_lr` is the end of the cosine schedule; add `schedule` cosine.")
    else:
        if config.warmup_epochs >= config.epochs:
            raise ValueError(
                f"`warmup_epochs` {config.warmup_epochs} must be fewer than the `epochs` ({config.epochs})."
            )
        if config.milestones is not None:
            raise ValueError("`milestones` belong to the step schedule; the cosine schedule has none.")
        lr = config.lr if config.lr is not None else DEFAULT_LR[config.optimizer]
        if config.min_lr > lr:
            raise ValueError(f"`min_lr` {config.min_lr} is above the `lr` {lr}.")
    if config.freeze_backbone and config.layer_decay is not None:
        raise ValueError(
            "`layer_decay` scales the backbone's learning rates; with `freeze_backbone` only the head trains."
        )
    if config.dropout is not None and not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1), got {config.dropout}.")
    if config.freeze_backbone and config.drop_path:
        raise ValueError(
            "`drop_path` drops blocks of a backbone in training; with `freeze_backbone` it does not train."
        )


def resolve_defaults(config):
    """Fills the settings whose default depends on the optimiser (`lr`, `weight_decay`), in place."""
    if config.lr is None:
        config.lr = DEFAULT_LR[config.optimizer]
    if config.weight_decay is None:
        config.weight_decay = DEFAULT_WEIGHT_DECAY[config.optimizer]
    return config


def make_schedule(config, steps_per_epoch):
    """The learning-rate schedule of the run (fills `config.milestones` for the step schedule)."""
    if config.schedule == "cosine":
        return WarmupCosineDecay(
            config.lr,
            total_steps=config.epochs * steps_per_epoch,
            warmup_steps=config.warmup_epochs * steps_per_epoch,
            min_learning_rate=config.min_lr,
            steps_per_epoch=steps_per_epoch,
        )
    config.milestones = scaled_milestones(config.epochs, config.milestones)
    return EpochStepDecay(config.lr, config.milestones, steps_per_epoch, config.gamma)


def make_optimizer(config, schedule, model):
    """`CoupledSGD` (the released recipe) or `LayerDecayAdamW`, with the layer decay over the model's
    encoder blocks when `layer_decay` is set."""
    num_layers = None
    if config.layer_decay is not None:
        backbone = getattr(model, "backbone", None)
        num_layers = getattr(backbone, "num_layers", None)
        if num_layers is None:
            raise ValueError("`layer_decay` needs a VidTr model (a backbone with encoder blocks).")
    if config.optimizer == "adamw":
        return LayerDecayAdamW(
            schedule, weight_decay=config.weight_decay, layer_decay=config.layer_decay, num_layers=num_layers
        )
    if config.layer_decay is None:  # the released recipe, exactly
        return CoupledSGD(schedule, momentum=config.momentum, l2_weight_decay=config.weight_decay)
    return CoupledSGD(
        schedule,
        momentum=config.momentum,
        l2_weight_decay=config.weight_decay,
        layer_decay=config.layer_decay,
        num_layers=num_layers,
    )


def soft_targets(config):
    """Whether the targets are float vectors (one-hot or mixed) rather than class indices."""
    return bool(config.label_smoothing or config.mixup or config.cutmix)


def loss_and_metrics(config, multi_label, classes):
    """The loss and metrics: cross-entropy on class indices (the released recipe), on soft targets (label
    smoothing, mixup, cutmix; Keras applies the smoothing, y (1 - e) + e / classes), or binary cross-entropy on
    multi-hot targets (smoothing y (1 - e) + e / 2). With mixed targets, accuracy counts the larger share."""
    smoothing = float(config.label_smoothing)
    if multi_label:
        if smoothing:
            return keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=smoothing), []
        return keras.losses.BinaryCrossentropy(from_logits=True), []
    if soft_targets(config):
        loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        if classes > 5:
            metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5"))
        return loss, metrics
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if classes > 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"))
    return loss, metrics


def rebuild_backbone(model, trainable=None, head_dropout=None, **backbone_config):
    """`model` rebuilt from its config with these backbone settings (e.g. `drop_path_rate=0.1`), its
    weights copied; `trainable=False` freezes the backbone; `head_dropout` sets the dropout before the
    classifier."""
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        raise ValueError(f"The model {model.name!r} has no `backbone` to change ({sorted(backbone_config)}).")
    config = keras.saving.serialize_keras_object(model)
    stored = config["config"]["backbone"]["config"]
    unknown = sorted(k for k in backbone_config if k not in stored and k not in _backbone_arguments(backbone))
    if unknown:
        raise ValueError(f"The backbone of {model.name!r} has no setting {unknown}.")
    stored.update(backbone_config)
    if head_dropout is not None:
        if "dropout" not in config["config"]:
            raise ValueError(f"The model {model.name!r} has no dropout before its classifier to change.")
        config["config"]["dropout"] = float(head_dropout)
    if trainable is not None:
        stored["trainable"] = bool(trainable)
    rebuilt = keras.saving.deserialize_keras_object(config)
    values = {v.path: v for v in model.weights}  # by path: freezing changes the order of the weights
    if sorted(values) != sorted(v.path for v in rebuilt.weights):
        raise ValueError(f"The model {model.name!r} rebuilt with {sorted(backbone_config)} has other weights.")
    for variable in rebuilt.weights:
        variable.assign(values[variable.path])
    if trainable is not None:
        rebuilt.backbone.trainable = bool(trainable)
    return rebuilt


def _backbone_arguments(backbone):
    import inspect

    return set(inspect.signature(type(backbone).__init__).parameters) - {"self", "kwargs"}


def with_dropout(model, rate):
    """`model` with dropout `rate` everywhere it has dropout: the backbone's attention weights and its
    attention and MLP outputs, and the dropout before the classifier (one rate, as timm's `--drop`)."""
    return rebuild_backbone(model, head_dropout=rate, dropout=float(rate), attention_dropout=float(rate))


def frozen_backbone(model):
    """A linear probe: the model with its backbone frozen (not trainable) and deterministic (its dropout,
    attention dropout and stochastic depth off, so the features are those of the frozen network); the
    classifier (head dropout + dense layer on the class token) is the only part that trains."""
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        raise ValueError(f"`freeze_backbone`: the model {model.name!r} has no `backbone` to freeze.")
    changes = {"dropout": 0.0, "attention_dropout": 0.0}
    if "drop_path_rate" in _backbone_arguments(backbone):
        changes["drop_path_rate"] = 0.0
    return rebuild_backbone(model, trainable=False, **changes)
