"""`train`: trains or fine-tunes a model on annotation lists, resumable.

Training follows the released recipe by default: SGD with momentum 0.9 and L2 weight decay 1e-5 added
to the gradient (as `torch.optim.SGD` does; `CoupledSGD`), lr 0.01, x0.1 after epochs 25 and 40 of 50;
for a shorter run the milestones keep their place in it (50 % and 80 % of the epochs, rounded to the
nearest epoch: 10 epochs -> 5 and 8). The fine-tuning recipe of today's video transformers is a set of
settings away (`optimizer` adamw, `schedule` cosine with `warmup_epochs`, `label_smoothing`, `mixup`,
`cutmix`, `drop_path`, `layer_decay`, `freeze_backbone`; see `vidtr_keras.training.recipe`). A checkpoint
is written after every epoch (a run directory, see `vidtr_keras.models.preset_dir`), with the settings, so
`resume=True` continues a killed run exactly: same weights, optimizer state, data order, augmentation
and mixing as if it had never stopped.
"""

import dataclasses
import os

import keras
import numpy as np

from vidtr_keras import data as vdata
from vidtr_keras.backends import tune_backend
from vidtr_keras.backends.torch_cpu import intra_op_threads, torch_threads
from vidtr_keras.data.annotations import AnnotationProblem
from vidtr_keras.data.sampling import clip_geometry
from vidtr_keras.models import preset_dir
from vidtr_keras.models.loading import load_model
from vidtr_keras.models.presets import preset_names
from vidtr_keras.training import recipe
from vidtr_keras.training.callbacks import LOG_FILE, EpochCheckpoint, restore_rng_states, write_log
from vidtr_keras.training.mixing import SoftTargetBatches
from vidtr_keras.training.schedules import RELEASED_EPOCHS

_RESUME_KEYS = (
    "train",
    "val",
    "root",
    "val_root",
    "labels",
    "num_classes",
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "milestones",
    "gamma",
    "optimizer",
    "schedule",
    "warmup_epochs",
    "min_lr",
    "label_smoothing",
    "mixup",
    "cutmix",
    "layer_decay",
    "drop_path",
    "freeze_backbone",
    "seed",
    "clip_len",
    "rate",
    "crop_size",
    "short_side",
    "remat",
    "mixed_precision",
    "flip",
)


def _setting(default=dataclasses.MISSING, *, help, **cli):
    """A `TrainConfig` field and how to set it from text: `help` (parameters named in backticks), and
    optionally `flag` (its name on a command line when it is not the field's, e.g. `--no-flip` for a
    switch that is on by default; None: no flag), `choices`, `parse` (text -> value, raising ValueError
    that names the parameter). `vidtr train` builds its flags from these, so each default lives here only."""
    return dataclasses.field(default=default, metadata={"help": help, **cli})


def threads_from_text(text):
    """`threads` as written on a command line: auto, default (None: the backend's own) or a number."""
    if text in ("auto", "default"):
        return None if text == "default" else text
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"`threads` must be auto, default or a positive number, got {text!r}")
    return int(text)


@dataclasses.dataclass
class TrainConfig:
    """Everything `train` needs; stored in the checkpoint so ``resume`` needs only the output directory.

    Each field's metadata says what it does (`help`) and how it is written as a command-line flag (see
    `_setting`); the defaults are those of the released recipe.
    """

    output: str = _setting(help="run directory: checkpoints, log.csv")
    model: str = _setting(None, help="preset name, .keras file or `vidtr train` output directory")
    train: str = _setting(None, help="training list")
    val: str = _setting(None, help="validation list (one centre-cropped clip per video)")
    root: str = _setting(None, help="directory the lists' paths are relative to")
    val_root: str = _setting(None, help="root of the validation videos (default: `root`)")
    weights: str = _setting(None, help=".weights.h5 or official .pth/.npz checkpoint to load into the model")
    labels: str = _setting(None, help="class-names file; sets the number of classes")
    num_classes: int = _setting(None, help="classes (default: `labels`, else the model's)")
    epochs: int = _setting(RELEASED_EPOCHS, help="training epochs")
    batch_size: int = _setting(8, help="clips per training step")
    optimizer: str = _setting(
        "sgd",
        help="sgd: the released recipe, SGD with momentum and L2 in the gradient; adamw: Keras' AdamW with decoupled "
        "weight decay, the fine-tuning recipe of VideoMAE and timm",
        choices=recipe.OPTIMIZERS,
    )
    lr: float = _setting(None, help="peak learning rate (default 0.01 for sgd, 1e-3 for adamw)")
    momentum: float = _setting(0.9, help="SGD momentum")
    weight_decay: float = _setting(
        None,
        help="weight decay. sgd: L2 added to the gradient of every weight, torch SGD style (default 1e-5); adamw: "
        "decoupled, w -= lr x `weight_decay` x w, not on biases, norms, position embedding and class tokens, torch "
        "AdamW / timm style (default 0.05)",
    )
    schedule: str = _setting(
        "step",
        help="step: the lr x `gamma` at `milestones` (released); cosine: linear warm-up over `warmup_epochs`, then "
        "a half cosine down to `min_lr`, updated every step",
        choices=recipe.SCHEDULES,
    )
    milestones: list[int] = _setting(
        None,
        help="step schedule: epochs where the lr is multiplied by `gamma` (default 25 40 of 50, scaled for shorter "
        "runs)",
    )
    gamma: float = _setting(0.1, help="step schedule: learning-rate factor at each milestone")
    warmup_epochs: int = _setting(0, help="cosine schedule: epochs of linear warm-up from 0 to `lr`")
    min_lr: float = _setting(0.0, help="cosine schedule: the learning rate it ends at")
    label_smoothing: float = _setting(
        0.0, help="label smoothing e in [0, 1): targets (1 - e) y + e / classes (multi-label: + e / 2); 0.1 is usual"
    )
    mixup: float = _setting(
        0.0,
        help="mixup alpha a: blend every batch with itself reversed by lam ~ Beta(a, a) per batch; 0 is off, 0.8 "
        "VideoMAE's",
    )
    cutmix: float = _setting(
        0.0,
        help="cutmix alpha: paste a box (the same in every frame) from the reversed batch, its area ~ Beta(a, a); "
        "with `mixup` too, half the batches each; 0 is off, 1.0 VideoMAE's",
    )
    layer_decay: float = _setting(
        None,
        help="layer-wise lr decay D in (0, 1] for pretrained weights (BEiT, timm; 0.75 in VideoMAE): block i of L "
        "learns at D^(L-i) x lr, the embedding at D^(L+1) x lr, the head at lr (default: none)",
    )
    drop_path: float = _setting(
        None,
        help="stochastic depth in [0, 1) (timm's drop_path_rate, 0.1 in VideoMAE): the last encoder block's "
        "probability of dropping its residual branches in training, rising linearly from 0 over the blocks; default: "
        "the model's own (0 for a preset)",
    )
    freeze_backbone: bool = _setting(
        False,
        help="linear probe: freeze the backbone (and turn its dropout off) and train only the classifier on the "
        "class token",
    )
    seed: int = _setting(0, help="makes the run repeatable (data order, augmentation, init)")
    clip_len: int = _setting(None, help="frames per clip (default: the model's)", flag=None)
    rate: int = _setting(None, help="frame sampling rate (default: 64 // clip length, e.g. 8 for 8 frames)")
    crop_size: int = _setting(None, help="crop side in px (default: the model's image size)")
    short_side: int = _setting(None, help="training resize (default 256/224 x crop size)")
    workers: int = _setting(1, help="data-loading threads")
    distribute: str = _setting(
        None,
        help="data-parallel: split every batch over all devices (JAX, keras.distribution.DataParallel)",
        choices=("none", "data-parallel"),
    )
    jit_compile: str = _setting(
        "auto", help="compile the training step (auto: Keras' choice)", choices=("auto", "on", "off")
    )
    # One thread for a small model: its ops are too small to split, and a parallel region then only
    # waits for a second core that another process may hold (see `intra_op_threads`).
    threads: object = _setting(
        "auto",
        help="PyTorch intra-op CPU threads: auto (1 for a small model such as the tiny presets, whose ops are "
        "too small to split; torch's default otherwise), a number, or 'default'",
        parse=threads_from_text,
    )
    check_videos: bool = _setting(
        True,
        help="only check that the videos exist before training, without opening each one",
        flag="--no-check-videos",
    )
    multi_label: bool = _setting(
        None, help="binary cross-entropy on multi-hot targets (default: when a list has several labels per video)"
    )
    # Memory and speed; they apply to a model built from a preset (a saved model keeps its own).
    remat: bool = _setting(
        False,
        help="rematerialise every encoder block in the backward pass: less activation memory, about "
        "one more forward pass of compute",
    )
    mixed_precision: bool = _setting(
        False, help="bfloat16 compute with float32 weights (keras 'mixed_bfloat16' policy)"
    )
    # The released augmentation; off for data whose labels change under a mirror image.
    flip: bool = _setting(
        True,
        help="no random horizontal flips (for classes that a mirror image changes, e.g. moving left/right)",
        flag="--no-flip",
    )


def _resumed_config(config, stored):
    """The stored config, with a clear error for a setting given now that differs from it."""
    merged = dict(stored)
    given = dataclasses.asdict(config)
    defaults = dataclasses.asdict(TrainConfig(output=config.output))
    changed = []
    for key in _RESUME_KEYS:
        value = given[key]
        if value is not None and value != defaults[key] and value != stored.get(key):
            changed.append(f"`{key}` {value!r} (the run used {stored.get(key)!r})")
    if changed:
        raise ValueError(
            "`resume` continues the run in "
            f"{config.output!r} with its own settings; these differ: " + "; ".join(changed)
        )
    for key in ("workers", "distribute", "jit_compile", "threads"):  # how to run, not what: may change
        merged[key] = given[key]
    merged["output"] = config.output
    return TrainConfig(**merged)


def _probe_videos(records, root, limit=None):
    """Problems of the videos that cannot be opened (header + first frame)."""
    problems = []
    for record in records[:limit]:
        path = record.resolve(root)
        try:
            vdata.VideoReader(path)
        except (FileNotFoundError, vdata.VideoDecodeError) as err:
            problems.append(AnnotationProblem(record.source, record.line, str(err), record.path))
    return problems


def _read_training_list(path, root, names, num_classes, check_videos, what):
    if path is None:
        return None
    annotations = vdata.read_annotations(path, class_names=names, num_classes=num_classes)
    if root is not None and not os.path.isdir(root):
        raise FileNotFoundError(f"`root` {root!r} is not a directory.")
    if check_videos:
        annotations.problems.extend(_probe_videos(annotations.records, root))
    else:
        annotations.check_files(root)
    annotations.raise_if_problems(what)
    return annotations


def _distribution(name, batch_size):
    if name in (None, "none"):
        return None
    if name != "data-parallel":
        raise ValueError(f"`distribute` must be 'data-parallel' or 'none', got {name!r}.")
    if keras.backend.backend() != "jax":
        raise ValueError(
            f"`distribute` data-parallel needs the JAX backend (keras.distribution.DataParallel); this run uses "
            f"{keras.backend.backend()!r}. Set KERAS_BACKEND=jax."
        )
    devices = keras.distribution.list_devices()
    if batch_size % len(devices):
        raise ValueError(f"`batch_size` {batch_size} does not split evenly over {len(devices)} devices ({devices}).")
    return keras.distribution.DataParallel(devices=devices)


def _jit(value):
    if value in (None, "auto"):
        return "auto"
    if value in (True, "on", "true"):
        if keras.backend.backend() == "torch":
            raise ValueError(
                "`jit_compile` on (torch.compile) is not supported with the torch backend: compiling the Keras "
                "training step does not finish in practical time on a CPU, even for vidtr_tiny; use auto (eager, "
                "with `threads` auto for small models)."
            )
        return True
    return False


def _batch_macs(model, geometry, batch_size):
    """Forward-pass multiply-adds of one training batch, for `threads='auto'` (None: not countable)."""
    # Lazily, a plug-in listed in the layering spec: the analytic FLOP model sits above training.
    from vidtr_keras.complexity.flops import flops

    try:
        report = flops(model, frames=geometry.clip_len, image_size=geometry.crop_size)
    except (TypeError, ValueError, AttributeError, KeyError):
        return None  # not a VidTr model: no analytic count
    return report.macs * batch_size


def train(config, callbacks=(), verbose=1, resume=False, overwrite=False, log=None):
    """Trains (or resumes training of) a model on annotation lists; returns a summary dict.

    Args:
        config: a `TrainConfig` (`model`, `train`, `root` and `output` at least, unless resuming).
        callbacks: extra Keras callbacks.
        verbose: Keras progress bar mode (0 silent, 1 bar, 2 one line per epoch).
        resume: continue the run in `config.output` from its last checkpoint.
        overwrite: start afresh in an output directory that holds a checkpoint.

    Raises:
        ValueError / FileNotFoundError before the first step for a bad list (every problem listed
        with file and line), a missing video, a model that does not fit, or bad settings.
    """
    output = config.output
    if not output:
        raise ValueError("train needs an output directory (`output`).")
    stored = preset_dir.read_run_pointer(output)
    if resume:
        if stored is None:
            raise FileNotFoundError(f"`resume`: no checkpoint in {output!r} ({preset_dir.RUN_POINTER_FILE} not found).")
        config = _resumed_config(config, stored["config"])
        start_epoch = int(stored["epoch"])
        history = stored["history"]
    else:
        if stored is not None and not overwrite:
            raise ValueError(
                f"{output!r} already holds a checkpoint (epoch {stored['epoch']}); pass `resume=True` to continue it "
                "or `overwrite=True` to start again."
            )
        for key in ("model", "train"):
            if getattr(config, key) is None:
                raise ValueError(f"train needs `{key}`.")
        start_epoch, history = 0, []
    if config.epochs < 1:
        raise ValueError(f"`epochs` must be >= 1, got {config.epochs}.")
    if start_epoch >= config.epochs:
        raise ValueError(f"The run in {output!r} already finished its {config.epochs} epochs.")
    recipe.check_recipe(config)
    recipe.resolve_defaults(config)

    distribution = _distribution(config.distribute, config.batch_size)
    jit_compile = _jit(config.jit_compile)
    names = vdata.read_class_names(config.labels) if config.labels else None
    if names is not None and config.num_classes is not None and config.num_classes != len(names):
        raise ValueError(f"`num_classes` {config.num_classes} but `labels` names {len(names)} classes.")
    num_classes = len(names) if names is not None else config.num_classes

    # Every problem of the lists and videos is found before the first step.
    train_list = _read_training_list(
        config.train, config.root, names, num_classes, config.check_videos, "training list"
    )
    val_root = config.val_root or config.root
    val_list = _read_training_list(config.val, val_root, names, num_classes, config.check_videos, "validation list")

    keras.utils.set_random_seed(config.seed)
    scope = distribution.scope() if distribution is not None else _null_scope()
    with scope:
        if resume:
            model = load_model(output, compile=True).model  # the last checkpoint, with its optimizer state
            with np.load(os.path.join(output, stored["rng"])) as states:
                restore_rng_states(model, dict(states))
            notes = [f"resumed from {stored['checkpoint']} (epoch {start_epoch} of {config.epochs})"]
        else:  # without labels / num_classes the model keeps its width; labels are checked below
            overrides = {}
            if config.remat:
                overrides["remat"] = True
            if config.mixed_precision:
                overrides["dtype"] = "mixed_bfloat16"
            from_preset = config.model in preset_names() and not os.path.exists(config.model)
            if config.drop_path and from_preset:
                overrides["drop_path_rate"] = config.drop_path
            loaded = load_model(config.model, config.weights, num_classes=num_classes, overrides=overrides)
            model, notes = loaded.model, loaded.notes
            model = _recipe_model(model, config, from_preset, notes)
        classes = int(model.output_shape[-1])
        bad = [r for r in train_list.records + (val_list.records if val_list else []) if max(r.labels) >= classes]
        if bad:
            raise ValueError(
                f"{len(bad)} label(s) outside the model's {classes} classes, "
                f"e.g. {bad[0].where}: label {max(bad[0].labels)}"
                " (give `labels` or `num_classes` for a new classifier)."
            )
        multi_label = config.multi_label
        if multi_label is None:
            multi_label = train_list.multi_label or bool(val_list and val_list.multi_label)
        geometry = clip_geometry(model, config.clip_len, config.rate, config.crop_size)
        config.clip_len, config.rate, config.crop_size = geometry.clip_len, geometry.rate, geometry.crop_size
        config.num_classes, config.multi_label = classes, multi_label

        common = dict(
            clip_len=geometry.clip_len,
            rate=geometry.rate,
            crop_size=geometry.crop_size,
            batch_size=config.batch_size,
            num_classes=classes,
            multi_label=multi_label,
            seed=config.seed,
            short_side=config.short_side,
            workers=config.workers,
        )
        train_data = vdata.VideoClipDataset(train_list.records, config.root, training=True, flip=config.flip, **common)
        val_data = vdata.VideoClipDataset(val_list.records, val_root, training=False, **common) if val_list else None
        if recipe.soft_targets(config):  # float targets: one-hot (smoothing) or mixed
            train_data = SoftTargetBatches(train_data, config.mixup, config.cutmix, seed=config.seed)
            val_data = SoftTargetBatches(val_data) if val_data is not None else None
        schedule = recipe.make_schedule(config, len(train_data))
        if not resume:
            loss, metrics = recipe.loss_and_metrics(config, multi_label, classes)
            model.compile(
                optimizer=recipe.make_optimizer(config, schedule, model),
                loss=loss,
                metrics=metrics,
                jit_compile=jit_compile,
            )
        else:
            model.jit_compile = jit_compile if jit_compile != "auto" else model.jit_compile

        os.makedirs(output, exist_ok=True)
        if log is not None:
            log(
                f"training {config.model} on {len(train_list)} videos "
                f"({len(train_data)} steps of {config.batch_size}), "
                f"{geometry.describe()}, {classes} classes{' (multi-label)' if multi_label else ''}; epochs "
                f"{start_epoch + 1}..{config.epochs}; {_describe_recipe(config)}; "
                f"backend {keras.backend.backend()}"
                + (
                    f", data-parallel over {len(distribution.device_mesh.devices.ravel())} devices"
                    if distribution
                    else ""
                )
                + f"; {'; '.join(notes)}",
            )
        checkpoint = EpochCheckpoint(output, config, [train_data, val_data], history, schedule, log, names)
        if history:
            write_log(os.path.join(output, LOG_FILE), history)
        train_data.set_epoch(start_epoch)
        # JAX on CPU: Threefry dropout bits lowered as straight-line code (the same bits; less memory).
        if tune_backend()["fast_jax_cpu_rng"] and log is not None:
            log("JAX on CPU: dropout random bits lowered as straight-line code (same bits, less memory)")
        threads = intra_op_threads(config.threads, _batch_macs(model, geometry, config.batch_size))
        if log is not None and threads is not None:
            log(f"PyTorch intra-op threads: {threads} (threads={config.threads!r})")
        with torch_threads(threads):
            _fit(model, train_data, val_data, config, start_epoch, [checkpoint, *callbacks], verbose)
    return {
        "output": output,
        "epochs": config.epochs,
        "history": checkpoint.history,
        "model": model,
        "config": config,
        "failures": dict(train_data.failures),
        "threads": threads,
    }


def _recipe_model(model, config, from_preset, notes):
    """The loaded model with the recipe's backbone changes: stochastic depth on a saved model (a preset is
    built with it), and a frozen backbone for a linear probe."""
    if config.drop_path is not None and not from_preset:
        current = getattr(getattr(model, "backbone", None), "drop_path_rate", 0.0)
        if config.drop_path != current:
            model = recipe.rebuild_backbone(model, drop_path_rate=config.drop_path)
            notes.append(f"drop_path_rate {current} -> {config.drop_path}")
    if config.freeze_backbone:
        model = recipe.frozen_backbone(model)
        trained = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
        notes.append(f"backbone frozen, its dropout off: a linear probe of {trained} parameters")
    return model


def _describe_recipe(config):
    if config.optimizer == "adamw":
        text = f"AdamW lr {config.lr}, weight decay {config.weight_decay} (decoupled)"
    else:
        text = f"SGD lr {config.lr}, momentum {config.momentum}, L2 {config.weight_decay}"
    if config.schedule == "cosine":
        text += f", {config.warmup_epochs} warm-up epochs then cosine to {config.min_lr}"
    else:
        text += f", x{config.gamma} after epochs {config.milestones}"
    extras = [
        f"{name} {value}"
        for name, value in (
            ("label smoothing", config.label_smoothing),
            ("mixup", config.mixup),
            ("cutmix", config.cutmix),
            ("layer decay", config.layer_decay),
            ("drop path", config.drop_path),
        )
        if value
    ]
    if config.freeze_backbone:
        extras.append("frozen backbone")
    return text + "".join(f", {e}" for e in extras)


def _fit(model, train_data, val_data, config, start_epoch, callbacks, verbose):
    if train_data.workers > 1:
        # Build the compiled loss and metrics on one batch now. Otherwise `fit` pulls a batch from
        # the worker queue to build them, and Keras then serves the batches prefetched meanwhile at
        # the start of the first epoch, out of order: a resumed run would not see the same data.
        model.test_on_batch(*train_data[0])
    model.fit(
        train_data,
        validation_data=val_data,
        epochs=config.epochs,
        initial_epoch=start_epoch,
        shuffle=False,  # the dataset shuffles, from the seed and the epoch
        callbacks=callbacks,
        verbose=verbose,
    )


class _null_scope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
