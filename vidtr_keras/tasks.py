"""Real videos in, answers out: `predict`, `evaluate` and `train` on video files, and the `vidtr`
sub-commands that run them (`add_data_commands`).

    vidtr predict VIDEO --model M [--weights W] [--labels classes.txt] [--views 10x3]
    vidtr evaluate --model M --annotations list.txt --root DIR [--views 10x3] [--report out.json]
    vidtr train --model M --train train.txt --val val.txt --root DIR --output RUN [--epochs 50] [--resume]
    vidtr make-demo-data DIR

A model (`--model`) is a preset name (`vidtr presets`), a `.keras` file, or a `vidtr train` output
directory (its last checkpoint). `--weights` loads a `.weights.h5` file (e.g. from `vidtr convert` or
`vidtr inflate`) or an official checkpoint (`.pth`/`.npz`) into it; when the list has another number
of classes than the weights, the classifier is replaced by a new one (fine-tuning).

Evaluation follows the paper's protocol (PAPER.md 1.5): per video, 10 windows uniformly spaced x 3
crops = 30 views, softmax averaged over the views (sigmoid for multi-label lists). It reports top-1 /
top-5 at clip level (every view scored on its own) and at video level (the averaged scores), mAP for
multi-label lists, and every video it could not use (unparsable line, label outside the class list,
missing or undecodable file) with the list file and line; it never skips one silently.

Training follows the released recipe by default: SGD with momentum 0.9 and L2 weight decay 1e-5 added
to the gradient (as `torch.optim.SGD` does; `CoupledSGD`), lr 0.01, x0.1 after epochs 25 and 40 of 50;
for a shorter run the milestones keep their place in it (50 % and 80 % of the epochs, rounded to the
nearest epoch: 10 epochs -> 5 and 8). A checkpoint is written after every epoch (the model with its
optimizer state, plus the random-generator states, then a pointer file, each written to a temporary
file and renamed), so `--resume` continues a killed run exactly: same weights, optimizer state, data
order and augmentation as if it had never stopped.
"""

import csv
import dataclasses
import json
import math
import os
import time

import keras
import numpy as np
from keras import ops

from vidtr_keras import data as vdata
from vidtr_keras.data.annotations import AnnotationProblem

RELEASED_EPOCHS = 50
RELEASED_MILESTONES = (25, 40)
CHECKPOINT_FILE = "checkpoint.json"
LOG_FILE = "log.csv"
CLASSES_FILE = "classes.txt"
WINDOW_FRAMES = 64  # released configs: 8x8, 16x4, 32x2 all span 64 frames


def _console(quiet=False):
    from rich.console import Console

    return Console(quiet=quiet)


# --------------------------------------------------------------------------------------------------
# Models


def _num_classes_in_weights_file(path):
    """Width of the classifier stored in a `.weights.h5` file of a `VidTrClassifier` (its one top-level
    Dense layer, `layers/dense/vars/0` of shape (d, classes)), or None."""
    import h5py

    with h5py.File(path, "r") as f:
        layers = f.get("layers")
        if layers is None:
            return None
        kernels = [
            layers[name]["vars"]["0"]
            for name in layers
            if name.startswith("dense") and "vars" in layers[name] and "0" in layers[name]["vars"]
        ]
        if len(kernels) == 1 and kernels[0].ndim == 2:
            return int(kernels[0].shape[1])
    return None


def replace_head(model, num_classes):
    """`model` with a new, randomly initialised classifier of `num_classes` (same backbone) when its
    width differs; the model itself otherwise."""
    from vidtr_keras.models import VidTrClassifier

    if num_classes is None or getattr(model, "num_classes", None) == int(num_classes):
        return model
    if not isinstance(model, VidTrClassifier):
        raise ValueError(
            f"The model has {model.output_shape[-1]} outputs, the data {num_classes} classes, and it is not a "
            "VidTrClassifier whose classifier could be replaced."
        )
    return VidTrClassifier(model.backbone, int(num_classes), dropout=model.dropout, name=model.name)


def _checkpoint_dir_model(path):
    with open(os.path.join(path, CHECKPOINT_FILE)) as f:
        pointer = json.load(f)
    return os.path.join(path, pointer["model"])


def load_model(spec, weights=None, num_classes=None):
    """A model from a preset name, a `.keras` file or a `vidtr train` output directory.

    Args:
        spec: the model (see the module docstring).
        weights: optional `.weights.h5` or official `.pth`/`.pt`/`.npz` checkpoint to load into it.
        num_classes: the classes the caller needs; the classifier is replaced when the model or the
            weights have another number (the report says so).

    Returns:
        (model, notes) with notes a list of strings describing what was loaded.

    Raises:
        FileNotFoundError: a file that does not exist; ValueError: an unknown preset or a checkpoint
        that does not fit.
    """
    from vidtr_keras.models import build_model, preset_names

    notes = []
    spec = os.fspath(spec)
    if os.path.isdir(spec):
        if not os.path.exists(os.path.join(spec, CHECKPOINT_FILE)):
            raise FileNotFoundError(f"{spec!r} is a directory without a {CHECKPOINT_FILE} (not a `vidtr train` output).")
        spec = _checkpoint_dir_model(spec)
        notes.append(f"last checkpoint {spec}")
    if spec.endswith(".keras"):
        if not os.path.exists(spec):
            raise FileNotFoundError(f"No model file at {spec!r}.")
        import vidtr_keras  # noqa: F401 - registers the serialisable classes

        model = keras.saving.load_model(spec, compile=False)
        if not notes:
            notes.append(f"model {spec}")
    elif spec in preset_names():
        model = None  # built below, once the weights' width is known
    elif os.path.exists(spec):
        raise ValueError(f"--model {spec!r}: expected a preset name, a .keras file or a `vidtr train` directory.")
    else:
        raise ValueError(f"Unknown model {spec!r}: not a file, and not a preset ({', '.join(preset_names())}).")

    if weights is not None:
        weights = os.fspath(weights)
        if not os.path.exists(weights):
            raise FileNotFoundError(f"No weights file at {weights!r}.")
        if weights.endswith(".weights.h5"):
            stored = _num_classes_in_weights_file(weights)
            if model is None:
                model = build_model(spec, num_classes=stored or num_classes)
            try:
                model.load_weights(weights)
            except ValueError as err:
                raise ValueError(f"The weights {weights!r} do not fit {spec}: {err}") from err
            notes.append(f"weights {weights}" + (f" ({stored} classes)" if stored else ""))
        elif weights.endswith((".pth", ".pt", ".npz")):
            from vidtr_keras.convert import gluonmm

            state_dict = gluonmm.load_checkpoint(weights)
            stored = int(state_dict["fc.weight"].shape[0]) if "fc.weight" in state_dict else None
            if model is None:
                model = build_model(spec, num_classes=stored or num_classes)
            elif stored is not None:
                model = replace_head(model, stored)
            gluonmm.load_state_dict(model, state_dict, context=f"--weights {weights}")
            notes.append(f"official checkpoint {weights}" + (f" ({stored} classes)" if stored else ""))
        else:
            raise ValueError(f"--weights {weights!r}: expected a .weights.h5, .pth, .pt or .npz file.")
    if model is None:
        model = build_model(spec, num_classes=num_classes)
        notes.append(f"preset {spec} (randomly initialised)")
    if num_classes is not None and getattr(model, "num_classes", None) not in (None, int(num_classes)):
        notes.append(f"classifier replaced: {model.num_classes} -> {num_classes} classes (new, untrained)")
        model = replace_head(model, num_classes)
    return model, notes


@dataclasses.dataclass
class ClipGeometry:
    """What a clip for the model looks like: `clip_len` frames every `rate` frames, `crop_size` px."""

    clip_len: int
    rate: int
    crop_size: int

    def describe(self):
        return f"{self.clip_len}x{self.rate} frames at {self.crop_size}x{self.crop_size} px"


def clip_geometry(model, clip_len=None, rate=None, crop_size=None):
    """The model's clip geometry; `rate` defaults to 64 // clip_len (the released 8x8, 16x4, 32x2)."""
    backbone = getattr(model, "backbone", None)
    if clip_len is None:
        clip_len = getattr(backbone, "num_frames", None) or model.input_shape[1]
    if crop_size is None:
        size = getattr(backbone, "image_size", None) or model.input_shape[2:4]
        size = (size, size) if isinstance(size, int) else tuple(size)
        if size[0] is None or size[0] != size[1]:
            raise ValueError(f"The model's frames are {size}; give --crop-size for a square crop.")
        crop_size = size[0]
    if rate is None:
        rate = max(1, WINDOW_FRAMES // int(clip_len))
    return ClipGeometry(int(clip_len), int(rate), int(crop_size))


def parse_views(text):
    """'10x3' -> (10, 3): windows x crops (crops 1 or 3)."""
    try:
        clips, crops = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"--views must look like 10x3 (windows x crops), got {text!r}.") from None
    if clips < 1 or crops not in (1, 3):
        raise ValueError(f"--views {text}: need at least one window and 1 or 3 crops.")
    return clips, crops


def _scores(logits, multi_label):
    logits = np.asarray(logits, np.float64)
    if multi_label:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def predict_views(model, views, batch_size=6, multi_label=False):
    """Scores (num_views, classes) of a stack of views, in batches of `batch_size` (the last one
    padded, so every call has the same shape: one compilation)."""
    views = np.asarray(views, np.float32)
    batch_size = max(1, min(int(batch_size), len(views)))
    out = []
    for start in range(0, len(views), batch_size):
        chunk = views[start : start + batch_size]
        real = len(chunk)
        if real < batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - real,) + chunk.shape[1:], chunk.dtype)])
        logits = ops.convert_to_numpy(model.predict_on_batch(chunk))
        out.append(np.asarray(logits)[:real])
    return _scores(np.concatenate(out), multi_label)


# --------------------------------------------------------------------------------------------------
# Metrics


def top_k_hits(scores, labels, k):
    """1.0 where one of the true labels (a tuple per row) is among the k highest scores."""
    k = min(int(k), scores.shape[-1])
    top = np.argsort(-scores, axis=-1, kind="stable")[:, :k]
    return np.array([float(any(label in row for label in labs)) for row, labs in zip(top, labels)])


def average_precision(scores, positives):
    """Non-interpolated AP of one class: the mean precision at the rank of every positive."""
    order = np.argsort(-scores, kind="stable")
    hits = positives[order].astype(np.float64)
    if hits.sum() == 0:
        return None
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def mean_average_precision(scores, labels, num_classes):
    """mAP over the classes with at least one positive; (mAP, number of classes counted)."""
    targets = np.zeros((len(labels), num_classes), bool)
    for row, labs in enumerate(labels):
        targets[row, list(labs)] = True
    aps = [average_precision(scores[:, c], targets[:, c]) for c in range(num_classes)]
    aps = [ap for ap in aps if ap is not None]
    return (float(np.mean(aps)) if aps else None), len(aps)


# --------------------------------------------------------------------------------------------------
# Predict


def predict_video(model, path, geometry=None, num_clips=10, num_crops=3, batch_size=6, half_tick=False, multi_label=False):
    """Scores of one video, averaged over its views: (scores (classes,), ClipViews)."""
    geometry = geometry or clip_geometry(model)
    views = vdata.load_views(
        path, geometry.clip_len, geometry.rate, geometry.crop_size, num_clips, num_crops, half_tick
    )
    scores = predict_views(model, views.views, batch_size, multi_label)
    return scores.mean(axis=0), views


def _class_name(names, index):
    return names[index] if names is not None and index < len(names) else str(index)


def _labels_for(model_spec, labels):
    if labels:
        return vdata.read_class_names(labels)
    if model_spec and os.path.isdir(model_spec) and os.path.exists(os.path.join(model_spec, CLASSES_FILE)):
        return vdata.read_class_names(os.path.join(model_spec, CLASSES_FILE))
    return None


def _stored_rate(model_spec):
    if model_spec and os.path.isdir(model_spec) and os.path.exists(os.path.join(model_spec, CHECKPOINT_FILE)):
        with open(os.path.join(model_spec, CHECKPOINT_FILE)) as f:
            return json.load(f)["config"].get("rate")
    return None


def cmd_predict(args):
    """`vidtr predict`: top-k classes of one video, scores averaged over its views."""
    from rich.table import Table

    console = _console()
    if not os.path.exists(args.video):
        raise FileNotFoundError(f"No video at {args.video!r}.")
    names = _labels_for(args.model, args.labels)
    num_clips, num_crops = parse_views(args.views)
    with console.status(f"loading {args.model}"):
        model, notes = load_model(args.model, args.weights, num_classes=None)
    if names is not None and len(names) != model.output_shape[-1]:
        raise ValueError(f"--labels {args.labels!r} names {len(names)} classes; the model has {model.output_shape[-1]}.")
    geometry = clip_geometry(model, rate=args.rate or _stored_rate(args.model), crop_size=args.crop_size)
    with console.status(f"decoding {num_clips}x{num_crops} views of {args.video}"):
        scores, views = predict_video(
            model, args.video, geometry, num_clips, num_crops, args.batch_size, args.centered_windows, args.multi_label
        )
    top = np.argsort(-scores, kind="stable")[: args.top_k]
    table = Table(title=f"{os.path.basename(args.video)}: top-{len(top)} of {len(scores)} classes")
    table.add_column("rank")
    table.add_column("class")
    table.add_column("probability", justify="right")
    for rank, index in enumerate(top, 1):
        table.add_row(str(rank), f"{_class_name(names, int(index))} ({int(index)})", f"{scores[index]:.4f}")
    console.print(table)
    short = " (shorter than one window: padded with its last frame)" if views.short else ""
    console.print(
        f"{views.num_frames} frames{short}; {len(views.views)} views ({num_clips} windows x {num_crops} crops) of "
        f"{geometry.describe()}, {'sigmoid' if args.multi_label else 'softmax'} averaged; "
        f"{'; '.join(notes)}; backend {keras.backend.backend()}",
        highlight=False,
    )
    if args.json:
        result = {
            "video": args.video,
            "num_frames": int(views.num_frames),
            "short": bool(views.short),
            "views": len(views.views),
            "top": [{"class": int(i), "name": _class_name(names, int(i)), "probability": float(scores[i])} for i in top],
        }
        _write_json(args.json, result)
    return 0


# --------------------------------------------------------------------------------------------------
# Evaluate


def _write_json(path, obj):
    tmp = f"{path}.tmp"
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def evaluate(
    model,
    annotations,
    root=None,
    geometry=None,
    num_clips=10,
    num_crops=3,
    batch_size=6,
    workers=1,
    half_tick=False,
    multi_label=None,
    progress=None,
):
    """Multi-view evaluation of `model` on an annotation list; returns the report (a dict).

    Args:
        model: a classifier returning logits on (batch, T, H, W, 3) clips.
        annotations: an `AnnotationList` (its problems are reported, its records evaluated).
        root: directory the list's paths are relative to.
        geometry: `ClipGeometry` (default: the model's, see `clip_geometry`).
        num_clips, num_crops: views per video (10 x 3 in the paper).
        batch_size: views per forward pass.
        workers: decoding threads.
        half_tick: mmaction-style centred test windows instead of the released loader's.
        multi_label: sigmoid scores and mAP (default: when a record has several labels).
        progress: optional callable(done, total, path) called after every video.

    Returns:
        dict with `videos_listed`, `videos_read`, `videos_failed`, `failed` (each unusable video or
        line with file, line, path and the reason), `short_videos`, `clip_level` and `video_level`
        top-1/top-5 (and mAP for multi-label lists) and per-video `predictions`.
    """
    geometry = geometry or clip_geometry(model)
    multi_label = annotations.multi_label if multi_label is None else bool(multi_label)
    classes = int(model.output_shape[-1])
    failed = [dict(p.to_dict(), stage="annotation") for p in annotations.problems]
    records = []
    for record in annotations.records:
        if max(record.labels) >= classes:
            failed.append(
                dict(
                    AnnotationProblem(record.source, record.line, f"label {max(record.labels)} is outside the model's {classes} classes", record.path).to_dict(),
                    stage="annotation",
                )
            )
        else:
            records.append(record)
    clip_scores, clip_labels, video_scores, video_labels, predictions, short = [], [], [], [], [], []
    done = 0
    for record, views, error in vdata.iter_views(
        records, root, geometry.clip_len, geometry.rate, geometry.crop_size, num_clips, num_crops, half_tick, workers
    ):
        done += 1
        if views is None:
            failed.append(dict(AnnotationProblem(record.source, record.line, error, record.path).to_dict(), stage="decode"))
        else:
            scores = predict_views(model, views.views, batch_size, multi_label)
            clip_scores.append(scores)
            clip_labels.extend([record.labels] * len(scores))
            mean = scores.mean(axis=0)
            video_scores.append(mean)
            video_labels.append(record.labels)
            if views.short:
                short.append({"path": record.path, "line": record.line, "num_frames": int(views.num_frames)})
            top = np.argsort(-mean, kind="stable")[:5]
            predictions.append(
                {
                    "path": record.path,
                    "labels": list(record.labels),
                    "num_frames": int(views.num_frames),
                    "top5": [[int(i), round(float(mean[i]), 6)] for i in top],
                }
            )
        if progress is not None:
            progress(done, len(records), record.path)

    report = {
        "backend": keras.backend.backend(),
        "annotations": annotations.source,
        "root": root,
        "clip_len": geometry.clip_len,
        "rate": geometry.rate,
        "crop_size": geometry.crop_size,
        "views": {"clips": num_clips, "crops": num_crops, "window_starts": "half-tick" if half_tick else "official"},
        "scores": "sigmoid" if multi_label else "softmax",
        "multi_label": multi_label,
        "videos_listed": len(annotations.records) + len(annotations.problems),
        "videos_read": len(video_scores),
        "videos_failed": len(failed),
        "failed": failed,
        "short_videos": short,
    }
    if video_scores:
        clip_scores = np.concatenate(clip_scores)
        video_scores = np.stack(video_scores)
        report["clip_level"] = {
            "top1": float(top_k_hits(clip_scores, clip_labels, 1).mean()),
            "top5": float(top_k_hits(clip_scores, clip_labels, 5).mean()),
            "views": int(len(clip_scores)),
        }
        report["video_level"] = {
            "top1": float(top_k_hits(video_scores, video_labels, 1).mean()),
            "top5": float(top_k_hits(video_scores, video_labels, 5).mean()),
            "videos": int(len(video_scores)),
        }
        if multi_label:
            report["clip_level"]["mAP"], _ = mean_average_precision(clip_scores, clip_labels, classes)
            report["video_level"]["mAP"], counted = mean_average_precision(video_scores, video_labels, classes)
            report["video_level"]["mAP_classes"] = counted
    else:
        report["clip_level"] = report["video_level"] = None
    report["predictions"] = predictions
    return report


def cmd_evaluate(args):
    """`vidtr evaluate`: multi-view accuracy on an annotation list, with a report of every failure."""
    from rich.markup import escape
    from rich.progress import Progress
    from rich.table import Table

    console = _console(args.quiet)
    num_clips, num_crops = parse_views(args.views)
    names = _labels_for(args.model, args.labels)
    with console.status(f"loading {args.model}"):
        model, notes = load_model(args.model, args.weights, num_classes=len(names) if names else None)
    classes = int(model.output_shape[-1])
    annotations = vdata.read_annotations(args.annotations, class_names=names, num_classes=classes, fmt=args.format)
    if args.root is not None and not os.path.isdir(args.root):
        raise FileNotFoundError(f"--root {args.root!r} is not a directory.")
    geometry = clip_geometry(model, rate=args.rate or _stored_rate(args.model), crop_size=args.crop_size)
    console.print(
        f"evaluating {len(annotations.records)} videos of {args.annotations} ({num_clips}x{num_crops} views of "
        f"{geometry.describe()}); {'; '.join(notes)}",
        highlight=False,
    )
    with Progress(console=console, disable=args.quiet) as bar:
        task = bar.add_task("videos", total=len(annotations.records))
        report = evaluate(
            model,
            annotations,
            args.root,
            geometry,
            num_clips,
            num_crops,
            args.batch_size,
            args.workers,
            args.centered_windows,
            True if args.multi_label else None,
            progress=lambda done, total, path: bar.update(task, completed=done),
        )
    report["model"] = args.model
    report["weights"] = args.weights
    if args.report:
        _write_json(args.report, report)
    table = Table(title=f"{args.annotations}: {report['videos_read']} videos read, {report['videos_failed']} failed")
    for col in ("level", "top-1", "top-5") + (("mAP",) if report["multi_label"] else ()):
        table.add_column(col)
    for level, key, unit in (("clip (every view)", "clip_level", "views"), ("video (views averaged)", "video_level", "videos")):
        row = report[key]
        if row is None:
            continue
        cells = [f"{level}, {row[unit]} {unit}", f"{100 * row['top1']:.2f}", f"{100 * row['top5']:.2f}"]
        if report["multi_label"]:
            cells.append("-" if row.get("mAP") is None else f"{100 * row['mAP']:.2f}")
        table.add_row(*cells)
    console.print(table)
    for item in report["failed"]:
        console.print(f"[yellow]skipped[/yellow] {escape(item['file'])}:{item['line']}: {escape(item['problem'])}", highlight=False)
    if report["short_videos"]:
        console.print(
            f"{len(report['short_videos'])} video(s) shorter than one {geometry.clip_len}x{geometry.rate}-frame window "
            "(clips padded with the last frame): " + ", ".join(s["path"] for s in report["short_videos"][:10]),
            highlight=False,
        )
    if args.report:
        console.print(f"report written to {args.report}", highlight=False)
    if report["videos_read"] == 0:
        raise ValueError(f"No video of {args.annotations!r} could be evaluated ({report['videos_failed']} failed).")
    return 0


# --------------------------------------------------------------------------------------------------
# Training


@keras.saving.register_keras_serializable(package="vidtr_keras")
class CoupledSGD(keras.optimizers.Optimizer):
    """SGD with momentum and L2 weight decay added to the gradient, as `torch.optim.SGD` does (the
    optimiser of the released training, PAPER.md 1.5):

        g = grad + l2_weight_decay * w;   buf = momentum * buf + g;   w = w - lr * buf

    Keras' `SGD(weight_decay=...)` decays the weights separately (decoupled) and keeps its velocity
    scaled by the learning rate, which differs after every learning-rate step.

    Args:
        learning_rate: float or schedule.
        momentum: momentum factor (0.9).
        l2_weight_decay: L2 coefficient (1e-5), applied to every trainable variable.
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, l2_weight_decay=1e-5, name="coupled_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}.")
        if float(l2_weight_decay) < 0:
            raise ValueError(f"l2_weight_decay must be >= 0, got {l2_weight_decay}.")
        self.momentum = float(momentum)
        self.l2_weight_decay = float(l2_weight_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = [self.add_variable_from_reference(v, name="momentum") for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.l2_weight_decay:
            gradient = ops.add(gradient, ops.multiply(ops.cast(self.l2_weight_decay, variable.dtype), variable))
        if self.momentum:
            buf = self.momentums[self._get_variable_index(variable)]
            self.assign(buf, ops.add(ops.multiply(ops.cast(self.momentum, variable.dtype), buf), gradient))
            gradient = buf
        self.assign_sub(variable, ops.multiply(learning_rate, gradient))

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "l2_weight_decay": self.l2_weight_decay})
        return config


@keras.saving.register_keras_serializable(package="vidtr_keras")
class EpochStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr = initial x gamma ** (milestones reached), milestones in epochs, counted in steps
    (torch's MultiStepLR stepped once per epoch: epoch e uses gamma ** #{m <= e}).

    Args:
        initial_learning_rate: lr of the first epoch.
        milestones: epochs (0-based) from which the lr is multiplied by `gamma` once more.
        steps_per_epoch: optimizer steps in an epoch.
        gamma: the factor (0.1).
    """

    def __init__(self, initial_learning_rate, milestones, steps_per_epoch, gamma=0.1):
        self.initial_learning_rate = float(initial_learning_rate)
        self.milestones = [int(m) for m in milestones]
        self.steps_per_epoch = int(steps_per_epoch)
        self.gamma = float(gamma)

    def __call__(self, step):
        epoch = ops.floor_divide(ops.cast(step, "int32"), self.steps_per_epoch)
        reached = ops.zeros((), "float32")
        for milestone in self.milestones:
            reached = reached + ops.cast(ops.greater_equal(epoch, milestone), "float32")
        return self.initial_learning_rate * ops.power(ops.cast(self.gamma, "float32"), reached)

    def at_epoch(self, epoch):
        return self.initial_learning_rate * self.gamma ** sum(epoch >= m for m in self.milestones)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "milestones": self.milestones,
            "steps_per_epoch": self.steps_per_epoch,
            "gamma": self.gamma,
        }


def scaled_milestones(epochs, milestones=None):
    """The epochs after which the lr drops: `milestones` if given; otherwise the released 25 and 40
    of 50 epochs, kept at the same fraction of a shorter run (round(m x epochs / 50), at least 1)."""
    if milestones is not None:
        return sorted(int(m) for m in milestones)
    if epochs >= RELEASED_EPOCHS:
        return list(RELEASED_MILESTONES)
    return [max(1, int(math.floor(m * epochs / RELEASED_EPOCHS + 0.5))) for m in RELEASED_MILESTONES]


# Settings a resumed run must share with the run it continues (they decide the data and the updates).
_RESUME_KEYS = (
    "train", "val", "root", "val_root", "labels", "num_classes", "epochs", "batch_size", "lr", "momentum",
    "weight_decay", "milestones", "gamma", "seed", "clip_len", "rate", "crop_size", "short_side",
)


@dataclasses.dataclass
class TrainConfig:
    """Everything `train` needs; stored in the checkpoint so `--resume` needs only the output dir."""

    output: str
    model: str = None
    train: str = None
    val: str = None
    root: str = None
    val_root: str = None
    weights: str = None
    labels: str = None
    num_classes: int = None
    epochs: int = RELEASED_EPOCHS
    batch_size: int = 8
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-5
    milestones: list = None
    gamma: float = 0.1
    seed: int = 0
    clip_len: int = None
    rate: int = None
    crop_size: int = None
    short_side: int = None
    workers: int = 1
    distribute: str = None
    jit_compile: str = "auto"
    check_videos: bool = True
    multi_label: bool = None


def _rng_states(model):
    """The states of the model's random generators (dropout seeds on TensorFlow and JAX)."""
    states = {
        f"seed_{i}": np.asarray(ops.convert_to_numpy(v))
        for i, v in enumerate(v for v in model.variables if "seed_generator_state" in v.path)
    }
    return states


def _restore_rng_states(model, states):
    seeds = [v for v in model.variables if "seed_generator_state" in v.path]
    stored = sorted((k for k in states if k.startswith("seed_")), key=lambda k: int(k.split("_")[1]))
    if len(stored) != len(seeds):
        raise ValueError(f"The checkpoint holds {len(stored)} random-generator states, the model has {len(seeds)}.")
    for variable, key in zip(seeds, stored):
        variable.assign(states[key].astype(variable.dtype))


def _seed_torch_for_epoch(seed, epoch):
    """Torch's dropout draws from torch's global generator, which Keras' torch data loader also draws
    from (a different number of times in a resumed run); seeding it from (seed, epoch) at the start of
    every epoch makes the epoch's dropout masks independent of what came before."""
    import torch

    torch.manual_seed(int(np.random.default_rng([int(seed) % 2**63, 3, int(epoch)]).integers(2**62)))


def _atomic_save_model(model, path):
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".tmp-{name}")
    model.save(tmp)
    os.replace(tmp, path)


def _atomic_savez(path, arrays):
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _write_log(path, history):
    columns = []
    for row in history:
        columns.extend(c for c in row if c not in columns)
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, path)


class EpochCheckpoint(keras.callbacks.Callback):
    """Sets the data epoch, then after every epoch writes the checkpoint and the CSV log.

    Files in `output`: `epoch_NNN.keras` (model + optimizer), `epoch_NNN.rng.npz` (random-generator
    states), `checkpoint.json` (the pointer: epoch, file names, config, history, failures; written
    last, so a run killed at any moment leaves a consistent checkpoint), `log.csv` (one row per
    epoch, rewritten from the history). Older epoch files are removed once the pointer moves on.
    """

    def __init__(self, output, config, datasets, history, schedule, console=None):
        super().__init__()
        self.output = output
        self.config = config
        self.datasets = datasets
        self.history = list(history)
        self.schedule = schedule
        self.console = console
        self._started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.time()
        for dataset in self.datasets:
            if dataset is not None and dataset.training:
                dataset.set_epoch(epoch)
        if keras.backend.backend() == "torch":
            _seed_torch_for_epoch(self.config.seed, epoch)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        failures = {}
        for dataset in self.datasets:
            if dataset is not None:
                failures.update(dataset.failures)
        row = {"epoch": epoch + 1, "lr": float(f"{self.schedule.at_epoch(epoch):.6g}")}
        row.update({k: float(v) for k, v in logs.items() if k != "learning_rate"})
        row["seconds"] = round(time.time() - (self._started or time.time()), 3)
        row["videos_failed"] = len(failures)
        self.history.append(row)
        stem = f"epoch_{epoch + 1:03d}"
        _atomic_save_model(self.model, os.path.join(self.output, f"{stem}.keras"))
        _atomic_savez(os.path.join(self.output, f"{stem}.rng.npz"), _rng_states(self.model))
        pointer = {
            "epoch": epoch + 1,
            "model": f"{stem}.keras",
            "rng": f"{stem}.rng.npz",
            "backend": keras.backend.backend(),
            "config": dataclasses.asdict(self.config),
            "history": self.history,
            "failures": failures,
        }
        _write_json(os.path.join(self.output, CHECKPOINT_FILE), pointer)
        _write_log(os.path.join(self.output, LOG_FILE), self.history)
        for name in os.listdir(self.output):
            if name.startswith("epoch_") and not name.startswith(stem):
                os.remove(os.path.join(self.output, name))
        if self.console is not None and failures:
            self.console.print(f"[yellow]{len(failures)} video(s) could not be decoded and were replaced[/yellow]: "
                               + ", ".join(sorted(failures)[:5]))


def _read_checkpoint(output):
    path = os.path.join(output, CHECKPOINT_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _resumed_config(config, stored):
    """The stored config, with a clear error for a setting given now that differs from it."""
    merged = dict(stored)
    given = dataclasses.asdict(config)
    defaults = dataclasses.asdict(TrainConfig(output=config.output))
    changed = []
    for key in _RESUME_KEYS:
        value = given[key]
        if value is not None and value != defaults[key] and value != stored.get(key):
            changed.append(f"--{key.replace('_', '-')} {value!r} (the run used {stored.get(key)!r})")
    if changed:
        raise ValueError(
            "--resume continues the run in "
            f"{config.output!r} with its own settings; these differ: " + "; ".join(changed)
        )
    for key in ("workers", "distribute", "jit_compile"):  # how to run, not what: may change
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
        raise FileNotFoundError(f"--root {root!r} is not a directory.")
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
        raise ValueError(f"--distribute must be 'data-parallel' or 'none', got {name!r}.")
    if keras.backend.backend() != "jax":
        raise ValueError(
            f"--distribute data-parallel needs the JAX backend (keras.distribution.DataParallel); this run uses "
            f"{keras.backend.backend()!r}. Set KERAS_BACKEND=jax."
        )
    devices = keras.distribution.list_devices()
    if batch_size % len(devices):
        raise ValueError(f"--batch-size {batch_size} does not split evenly over {len(devices)} devices ({devices}).")
    return keras.distribution.DataParallel(devices=devices)


def _jit(value):
    if value in (None, "auto"):
        return "auto"
    if value in (True, "on", "true"):
        if keras.backend.backend() == "torch":
            raise ValueError("--jit-compile on is not supported with the torch backend here (it is very slow); use auto.")
        return True
    return False


def train(config, callbacks=(), verbose=1, resume=False, overwrite=False, console=None):
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
    console = console or _console(quiet=verbose == 0)
    output = config.output
    if not output:
        raise ValueError("train needs an output directory (--output).")
    stored = _read_checkpoint(output)
    if resume:
        if stored is None:
            raise FileNotFoundError(f"--resume: no checkpoint in {output!r} ({CHECKPOINT_FILE} not found).")
        config = _resumed_config(config, stored["config"])
        start_epoch = int(stored["epoch"])
        history = stored["history"]
    else:
        if stored is not None and not overwrite:
            raise ValueError(
                f"{output!r} already holds a checkpoint (epoch {stored['epoch']}); pass --resume to continue it "
                "or --overwrite to start again."
            )
        for key in ("model", "train"):
            if getattr(config, key) is None:
                raise ValueError(f"train needs --{key}.")
        start_epoch, history = 0, []
    if config.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {config.epochs}.")
    if start_epoch >= config.epochs:
        raise ValueError(f"The run in {output!r} already finished its {config.epochs} epochs.")

    distribution = _distribution(config.distribute, config.batch_size)
    jit_compile = _jit(config.jit_compile)
    names = vdata.read_class_names(config.labels) if config.labels else None
    if names is not None and config.num_classes is not None and config.num_classes != len(names):
        raise ValueError(f"--num-classes {config.num_classes} but --labels names {len(names)} classes.")
    num_classes = len(names) if names is not None else config.num_classes

    # Every problem of the lists and videos is found before the first step.
    train_list = _read_training_list(config.train, config.root, names, num_classes, config.check_videos, "training list")
    val_root = config.val_root or config.root
    val_list = _read_training_list(config.val, val_root, names, num_classes, config.check_videos, "validation list")

    keras.utils.set_random_seed(config.seed)
    scope = distribution.scope() if distribution is not None else _null_scope()
    with scope:
        if resume:
            import vidtr_keras  # noqa: F401 - registers the serialisable classes

            model = keras.saving.load_model(os.path.join(output, stored["model"]))
            with np.load(os.path.join(output, stored["rng"])) as states:
                _restore_rng_states(model, dict(states))
            notes = [f"resumed from {stored['model']} (epoch {start_epoch} of {config.epochs})"]
        else:  # without --labels / --num-classes the model keeps its width; labels are checked below
            model, notes = load_model(config.model, config.weights, num_classes=num_classes)
        classes = int(model.output_shape[-1])
        bad = [r for r in train_list.records + (val_list.records if val_list else []) if max(r.labels) >= classes]
        if bad:
            raise ValueError(
                f"{len(bad)} label(s) outside the model's {classes} classes, e.g. {bad[0].where}: label {max(bad[0].labels)}"
                " (give --labels or --num-classes for a new classifier)."
            )
        multi_label = config.multi_label
        if multi_label is None:
            multi_label = train_list.multi_label or bool(val_list and val_list.multi_label)
        geometry = clip_geometry(model, config.clip_len, config.rate, config.crop_size)
        config.clip_len, config.rate, config.crop_size = geometry.clip_len, geometry.rate, geometry.crop_size
        config.num_classes, config.multi_label = classes, multi_label

        common = dict(
            clip_len=geometry.clip_len, rate=geometry.rate, crop_size=geometry.crop_size, batch_size=config.batch_size,
            num_classes=classes, multi_label=multi_label, seed=config.seed, short_side=config.short_side,
            workers=config.workers,
        )
        train_data = vdata.VideoClipDataset(train_list.records, config.root, training=True, **common)
        val_data = vdata.VideoClipDataset(val_list.records, val_root, training=False, **common) if val_list else None
        milestones = scaled_milestones(config.epochs, config.milestones)
        config.milestones = milestones
        schedule = EpochStepDecay(config.lr, milestones, len(train_data), config.gamma)
        if not resume:
            if multi_label:
                loss, metrics = keras.losses.BinaryCrossentropy(from_logits=True), []
            else:
                loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
                if classes > 5:
                    metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"))
            model.compile(
                optimizer=CoupledSGD(schedule, momentum=config.momentum, l2_weight_decay=config.weight_decay),
                loss=loss,
                metrics=metrics,
                jit_compile=jit_compile,
            )
        else:
            model.jit_compile = jit_compile if jit_compile != "auto" else model.jit_compile

        os.makedirs(output, exist_ok=True)
        if names is not None:
            with open(os.path.join(output, CLASSES_FILE), "w") as f:
                f.writelines(f"{n}\n" for n in names)
        console.print(
            f"training {config.model} on {len(train_list)} videos ({len(train_data)} steps of {config.batch_size}), "
            f"{geometry.describe()}, {classes} classes{' (multi-label)' if multi_label else ''}; epochs "
            f"{start_epoch + 1}..{config.epochs}; lr {config.lr}, x{config.gamma} after epochs {milestones}; "
            f"backend {keras.backend.backend()}"
            + (f", data-parallel over {len(distribution.device_mesh.devices.ravel())} devices" if distribution else "")
            + f"; {'; '.join(notes)}",
            highlight=False,
        )
        checkpoint = EpochCheckpoint(output, config, [train_data, val_data], history, schedule, console)
        if history:
            _write_log(os.path.join(output, LOG_FILE), history)
        train_data.set_epoch(start_epoch)
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
            callbacks=[checkpoint, *callbacks],
            verbose=verbose,
        )
    return {
        "output": output,
        "epochs": config.epochs,
        "history": checkpoint.history,
        "model": model,
        "config": config,
        "failures": dict(train_data.failures),
    }


class _null_scope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def cmd_train(args):
    """`vidtr train`: the released recipe, a checkpoint per epoch, `--resume`, a CSV log."""
    config = TrainConfig(
        output=args.output,
        model=args.model,
        train=args.train,
        val=args.val,
        root=args.root,
        val_root=args.val_root,
        weights=args.weights,
        labels=args.labels,
        num_classes=args.num_classes,
        epochs=args.epochs if args.epochs is not None else RELEASED_EPOCHS,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        milestones=args.milestones,
        gamma=args.gamma,
        seed=args.seed,
        clip_len=None,
        rate=args.rate,
        crop_size=args.crop_size,
        short_side=args.short_side,
        workers=args.workers,
        distribute=args.distribute,
        jit_compile=args.jit_compile,
        check_videos=not args.no_check_videos,
        multi_label=True if args.multi_label else None,
    )
    console = _console(args.quiet)
    result = train(config, verbose=0 if args.quiet else args.verbose, resume=args.resume, overwrite=args.overwrite, console=console)
    last = result["history"][-1] if result["history"] else {}
    console.print(
        f"done: {result['epochs']} epochs; last epoch "
        + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if isinstance(v, float) and k not in ("seconds",))
        + f"; checkpoint and {LOG_FILE} in {result['output']}",
        highlight=False,
    )
    return 0


# --------------------------------------------------------------------------------------------------
# Demo data


def cmd_make_demo_data(args):
    """`vidtr make-demo-data DIR`: a tiny dataset of synthetic videos in the official list format."""
    from vidtr_keras.data.synthetic import make_demo_dataset

    height, width = (int(v) for v in args.size.lower().split("x")) if "x" in args.size else (int(args.size),) * 2
    written = make_demo_dataset(
        args.directory,
        num_classes=args.classes,
        videos_per_class=args.videos_per_class,
        frames=tuple(args.frames),
        height=height,
        width=width,
        extension=args.extension,
        val_per_class=args.val_per_class,
        seed=args.seed,
    )
    console = _console()
    console.print(
        f"wrote {args.classes * args.videos_per_class + 2} videos ({height}x{width} px, {args.frames[0]}-{args.frames[1]} "
        f"frames, {args.extension}) under {written['root']}:\n  "
        + "\n  ".join(f"{k}: {v}" for k, v in written.items() if k != "root")
        + "\n(test.txt adds a corrupt file and a 4-frame video to the validation videos, to see them reported)",
        highlight=False,
    )
    return 0


# --------------------------------------------------------------------------------------------------
# CLI registration


def _add_model_args(p):
    p.add_argument("--model", required=False, help="preset name, .keras file or `vidtr train` output directory")
    p.add_argument("--weights", default=None, help=".weights.h5 or official .pth/.npz checkpoint to load into the model")
    p.add_argument("--rate", type=int, default=None, help="frame sampling rate (default: 64 // clip length, e.g. 8 for 8 frames)")
    p.add_argument("--crop-size", type=int, default=None, help="crop side in px (default: the model's image size)")


def _add_view_args(p):
    p.add_argument("--views", default="10x3", help="windows x crops per video (default 10x3 = 30 views)")
    p.add_argument("--centered-windows", action="store_true",
                   help="shift the windows by half a tick (mmaction style) instead of the released loader's starts")
    p.add_argument("--batch-size", type=int, default=6, help="views per forward pass")
    p.add_argument("--multi-label", action="store_true", help="sigmoid scores (and mAP) instead of softmax")


def add_data_commands(subparsers):
    """Registers `predict`, `evaluate`, `train` and `make-demo-data` on an argparse sub-parser set;
    the handlers are `args.func` and raise ValueError / FileNotFoundError / ImportError for the CLI
    to print."""
    p = subparsers.add_parser("predict", help="top-5 classes of one video (scores averaged over 10x3 views)")
    p.add_argument("video")
    _add_model_args(p)
    _add_view_args(p)
    p.add_argument("--labels", default=None, help="class-names file (one name per line)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", default=None, help="also write the result to this JSON file")
    p.set_defaults(func=_requires_model(cmd_predict))

    p = subparsers.add_parser("evaluate", help="multi-view top-1/top-5 (and mAP) on an annotation list, with a report")
    _add_model_args(p)
    _add_view_args(p)
    p.add_argument("--annotations", required=True, help="list file: 'path num_frames label' lines or path,label CSV")
    p.add_argument("--root", default=None, help="directory the list's paths are relative to")
    p.add_argument("--labels", default=None, help="class-names file (labels may then be names)")
    p.add_argument("--format", choices=("auto", "official", "csv"), default="auto")
    p.add_argument("--workers", type=int, default=2, help="decoding threads")
    p.add_argument("--report", default=None, help="write the full report (metrics, failures, predictions) as JSON")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_requires_model(cmd_evaluate))

    p = subparsers.add_parser("train", help="train / fine-tune on annotation lists (released recipe), resumable")
    _add_model_args(p)
    p.add_argument("--train", default=None, help="training list")
    p.add_argument("--val", default=None, help="validation list (one centre-cropped clip per video)")
    p.add_argument("--root", default=None, help="directory the lists' paths are relative to")
    p.add_argument("--val-root", default=None, help="root of the validation videos (default: --root)")
    p.add_argument("--labels", default=None, help="class-names file; sets the number of classes")
    p.add_argument("--num-classes", type=int, default=None, help="classes (default: --labels, else the model's)")
    p.add_argument("--output", required=True, help="run directory: checkpoints, log.csv")
    p.add_argument("--epochs", type=int, default=None, help=f"default {RELEASED_EPOCHS}")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-5, help="L2 added to the gradient (torch SGD style)")
    p.add_argument("--milestones", type=int, nargs="+", default=None,
                   help="epochs where the lr is multiplied by --gamma (default 25 40 of 50, scaled for shorter runs)")
    p.add_argument("--gamma", type=float, default=0.1)
    p.add_argument("--short-side", type=int, default=None, help="training resize (default 256/224 x crop size)")
    p.add_argument("--seed", type=int, default=0, help="makes the run repeatable (data order, augmentation, init)")
    p.add_argument("--workers", type=int, default=1, help="data-loading threads")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --output from its last checkpoint, with that run's settings (only "
                        "--workers, --distribute and --jit-compile may change; another value is an error)")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an --output that holds a checkpoint")
    p.add_argument("--distribute", choices=("none", "data-parallel"), default=None,
                   help="data-parallel: split every batch over all devices (JAX, keras.distribution.DataParallel)")
    p.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--multi-label", action="store_true", help="binary cross-entropy on multi-hot targets")
    p.add_argument("--no-check-videos", action="store_true",
                   help="only check that the videos exist before training, without opening each one")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1, help="Keras progress: 0 none, 1 bar, 2 per epoch")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("make-demo-data", help="write a tiny dataset of synthetic videos (lists, class names)")
    p.add_argument("directory")
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--videos-per-class", type=int, default=6)
    p.add_argument("--frames", type=int, nargs=2, default=(24, 40), metavar=("MIN", "MAX"))
    p.add_argument("--size", default="32x40", help="HEIGHTxWIDTH in px")
    p.add_argument("--extension", default=".avi", choices=(".avi", ".mkv", ".mp4", ".webm"))
    p.add_argument("--val-per-class", type=int, default=2, help="videos of each class in val.txt (the rest: train.txt)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_make_demo_data)
    return subparsers


def _requires_model(handler):
    def run(args):
        if not args.model:
            raise ValueError(f"vidtr {handler.__name__[4:]} needs --model (a preset, a .keras file or a run directory).")
        return handler(args)

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


__all__ = [
    "ClipGeometry",
    "CoupledSGD",
    "EpochCheckpoint",
    "EpochStepDecay",
    "TrainConfig",
    "add_data_commands",
    "average_precision",
    "clip_geometry",
    "cmd_evaluate",
    "cmd_make_demo_data",
    "cmd_predict",
    "cmd_train",
    "evaluate",
    "load_model",
    "mean_average_precision",
    "parse_views",
    "predict_video",
    "predict_views",
    "replace_head",
    "scaled_milestones",
    "top_k_hits",
    "train",
]
