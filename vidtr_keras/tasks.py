"""Deprecated module, kept for one release: its contents moved.

- `load_model`, `replace_head`, `ClipGeometry`, `clip_geometry`, `parse_views`, `predict_views`,
  `predict_video` -> `vidtr_keras.apps.predict`;
- `evaluate`, `top_k_hits`, `average_precision`, `mean_average_precision` -> `vidtr_keras.apps.evaluation`;
- `train`, `TrainConfig`, `CoupledSGD`, `EpochStepDecay`, `EpochCheckpoint`, `scaled_milestones`
  -> `vidtr_keras.training`;
- the run-directory format (`CHECKPOINT_FILE`, ...) -> `vidtr_keras.run_dir`;
- the `vidtr` subcommands (`cmd_predict`, ..., `add_data_commands`) -> `vidtr_keras.cli.data`.
"""

from vidtr_keras.apps.evaluation import average_precision, evaluate, mean_average_precision, top_k_hits
from vidtr_keras.apps.predict import (
    WINDOW_FRAMES,
    ClipGeometry,
    clip_geometry,
    load_model,
    parse_views,
    predict_video,
    predict_views,
    replace_head,
)
from vidtr_keras.run_dir import CHECKPOINT_FILE, CLASSES_FILE, LOG_FILE
from vidtr_keras.training import (
    RELEASED_EPOCHS,
    RELEASED_MILESTONES,
    CoupledSGD,
    EpochCheckpoint,
    EpochStepDecay,
    TrainConfig,
    scaled_milestones,
    train,
)


def __getattr__(name):
    # The command-line handlers import rich; load them only when asked for.
    if name in ("cmd_predict", "cmd_evaluate", "cmd_train", "cmd_make_demo_data", "add_data_commands"):
        from vidtr_keras.cli import data as _cli_data

        return getattr(_cli_data, "register" if name == "add_data_commands" else name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CHECKPOINT_FILE",
    "CLASSES_FILE",
    "ClipGeometry",
    "CoupledSGD",
    "EpochCheckpoint",
    "EpochStepDecay",
    "LOG_FILE",
    "RELEASED_EPOCHS",
    "RELEASED_MILESTONES",
    "TrainConfig",
    "WINDOW_FRAMES",
    "average_precision",
    "clip_geometry",
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
