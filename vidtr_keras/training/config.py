"""`TrainConfig`: every setting of `train`, stored in the run directory so that `resume` needs only the
output directory. Each field's metadata says what it does and how it is written as a command-line flag,
so `vidtr train`'s flags and their defaults come from here alone.
"""

import dataclasses

from vidtr_keras.training import recipe
from vidtr_keras.training.schedules import RELEASED_EPOCHS
from vidtr_keras.training.sharding import mesh_from_text

RESUME_KEYS = (
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
    "dropout",
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
    dropout: float = _setting(
        None,
        help="dropout in [0, 1) in the backbone (attention weights, attention and MLP outputs) and before the "
        "classifier (timm's --drop; VideoMAE fine-tunes with 0); default: the model's own (a preset: 0.1, and 0.5 "
        "before the classifier, as the paper)",
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
    workers: int = _setting(1, help="data-loading workers (threads, or processes with `loader` processes)")
    loader: str = _setting(
        "threads",
        help="how the `workers` load batches: threads, or processes (Keras' PyDataset multiprocessing; decoding "
        "and augmentation scale with processes where threads stop; the same batches either way)",
        choices=("threads", "processes"),
    )
    distribute: str = _setting(
        None,
        help="data-parallel: split every batch over all devices, gradients averaged, the same data order (JAX "
        "keras.distribution.DataParallel; TensorFlow tf.distribute.MirroredStrategy; PyTorch one torchrun process "
        "per device; docs/distributed.md); model-parallel: also split the encoder's attention and MLP weights over "
        "the model axis of `mesh` (JAX, keras.distribution.ModelParallel)",
        choices=("none", "data-parallel", "model-parallel"),
    )
    mesh: str = _setting(
        None,
        help="model-parallel device mesh DATAxMODEL, e.g. 1x2: the batch split over DATA devices, the weights over "
        "MODEL; DATA x MODEL = the device count (default: 1xDEVICES)",
        parse=mesh_from_text,
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


def resumed_config(config, stored):
    """The stored config, with a clear error for a setting given now that differs from it."""
    merged = dict(stored)
    given = dataclasses.asdict(config)
    defaults = dataclasses.asdict(TrainConfig(output=config.output))
    changed = []
    for key in RESUME_KEYS:
        value = given[key]
        if value is not None and value != defaults[key] and value != stored.get(key):
            changed.append(f"`{key}` {value!r} (the run used {stored.get(key)!r})")
    if changed:
        raise ValueError(
            "`resume` continues the run in "
            f"{config.output!r} with its own settings; these differ: " + "; ".join(changed)
        )
    for key in ("workers", "loader", "distribute", "mesh", "jit_compile", "threads"):  # how to run: may change
        merged[key] = given[key]
    merged["output"] = config.output
    return TrainConfig(**merged)
