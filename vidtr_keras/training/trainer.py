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
from vidtr_keras.training.config import resumed_config
from vidtr_keras.training.distribute import distribution_for
from vidtr_keras.training.mixing import SoftTargetBatches
from vidtr_keras.training.sharding import initialize_multi_host


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
        config = resumed_config(config, stored["config"])
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

    initialize_multi_host()  # several processes: one JAX cluster (before anything touches a device)
    distribution = distribution_for(config)
    if not distribution.is_writer:  # another process writes the checkpoints and the log
        log, verbose = None, 0
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
    with distribution.scope():  # built, compiled and fitted inside it; on PyTorch it leaves the process group
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
            use_multiprocessing=config.loader == "processes",
        )
        train_data = vdata.VideoClipDataset(train_list.records, config.root, training=True, flip=config.flip, **common)
        val_data = vdata.VideoClipDataset(val_list.records, val_root, training=False, **common) if val_list else None
        if recipe.soft_targets(config):  # float targets: one-hot (smoothing) or mixed
            train_data = SoftTargetBatches(train_data, config.mixup, config.cutmix, seed=config.seed)
            val_data = SoftTargetBatches(val_data) if val_data is not None else None
        train_data, val_data = distribution.shard(train_data), distribution.shard(val_data)
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
        distribution.prepare(model, config.seed)

        os.makedirs(output, exist_ok=True)
        if log is not None:
            log(
                f"training {config.model} on {len(train_list)} videos "
                f"({len(train_data)} steps of {config.batch_size}), "
                f"{geometry.describe()}, {classes} classes{' (multi-label)' if multi_label else ''}; epochs "
                f"{start_epoch + 1}..{config.epochs}; {_describe_recipe(config)}; "
                f"backend {keras.backend.backend()}"
                + (f", {distribution.describe()}" if distribution.describe() else "")
                + f"; {'; '.join(notes)}",
            )
        checkpoint = EpochCheckpoint(
            output, config, [train_data, val_data], history, schedule, log, names, write=distribution.is_writer
        )
        if history and distribution.is_writer:
            write_log(os.path.join(output, LOG_FILE), history)
        train_data.set_epoch(start_epoch)
        # JAX on CPU: Threefry dropout bits lowered as straight-line code (the same bits; less memory).
        if tune_backend()["fast_jax_cpu_rng"] and log is not None:
            log("JAX on CPU: dropout random bits lowered as straight-line code (same bits, less memory)")
        threads = intra_op_threads(config.threads, _batch_macs(model, geometry, config.batch_size))
        if log is not None and threads is not None:
            log(f"PyTorch intra-op threads: {threads} (threads={config.threads!r})")
        with torch_threads(threads):
            steps = [*distribution.callbacks_before, checkpoint, *distribution.callbacks_after, *callbacks]
            _fit(model, train_data, val_data, config, start_epoch, steps, verbose)
    return {
        "output": output,
        "epochs": config.epochs,
        "history": checkpoint.history,
        "model": model,
        "config": config,
        "failures": dict(train_data.failures),
        "threads": threads,
        "writer": distribution.is_writer,
    }


def _recipe_model(model, config, from_preset, notes):
    """The loaded model with the recipe's backbone changes: stochastic depth on a saved model (a preset is
    built with it), the dropout rate, and a frozen backbone for a linear probe."""
    if config.drop_path is not None and not from_preset:
        current = getattr(getattr(model, "backbone", None), "drop_path_rate", 0.0)
        if config.drop_path != current:
            model = recipe.rebuild_backbone(model, drop_path_rate=config.drop_path)
            notes.append(f"drop_path_rate {current} -> {config.drop_path}")
    if config.dropout is not None:
        backbone = getattr(model, "backbone", None)
        current = (getattr(backbone, "dropout", None), getattr(backbone, "attention_dropout", None))
        current += (getattr(model, "dropout", None),)
        if any(rate != config.dropout for rate in current):
            model = recipe.with_dropout(model, config.dropout)
            notes.append(f"dropout (backbone, attention, before the classifier) {current} -> {config.dropout}")
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
    if config.dropout is not None:
        extras.append(f"dropout {config.dropout}")
    if config.freeze_backbone:
        extras.append("frozen backbone")
    return text + "".join(f", {e}" for e in extras)


def _fit(model, train_data, val_data, config, start_epoch, callbacks, verbose):
    if train_data.workers > 1 or (train_data.workers > 0 and train_data.use_multiprocessing):  # Keras' enqueuer
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
