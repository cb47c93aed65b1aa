"""VidTrVideoClassifier: a task model in the keras-hub mould that takes raw video frames.

    classifier = vidtr_keras.VidTrVideoClassifier.from_preset("runs/demo")   # a `vidtr train` run
    classifier.predict(frames)              # uint8 (frames, height, width, 3), any size -> logits
    classifier.predict_top_k(frames, k=5)   # [[(class name, probability), ...]]
    classifier.save_to_preset("my_preset")  # config.json, model.weights.h5, classes.txt, metadata.json

A run directory, a preset directory, a `.keras` file (e.g. a converted official checkpoint from
`vidtr convert`) and a preset name are the same thing to `from_preset`.
"""

import json
import os

import keras
import numpy as np

from vidtr_keras.layers.preprocessing import VidTrPreprocessor
from vidtr_keras.models.classifier import VidTrClassifier

PRESET_CONFIG_FILE = "config.json"
PRESET_WEIGHTS_FILE = "model.weights.h5"
PRESET_METADATA_FILE = "metadata.json"
CLASSES_FILE = "classes.txt"  # the run directory's name for the same file (`vidtr_keras.run_dir`)


def _default_preprocessor(backbone, num_frames=None):
    size = tuple(backbone.image_size)
    if size[0] != size[1]:
        raise ValueError(
            f"The backbone's frames are {size[0]}x{size[1]}; the default preprocessor makes square crops. "
            "Pass `preprocessor=VidTrPreprocessor(...)` (or None) explicitly."
        )
    return VidTrPreprocessor(crop_size=size[0], num_frames=num_frames or backbone.num_frames, name="preprocessor")


def _read_names(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


@keras.saving.register_keras_serializable(package="vidtr_keras")
class VidTrVideoClassifier(VidTrClassifier):
    """A `VidTrClassifier` with a preprocessor and class names: raw frames in, classes out.

    The model itself maps normalised clips (batch, frames, height, width, 3) to logits, exactly as
    `VidTrClassifier` (so `model(clips)`, `export_model` and weight files are unchanged). `predict`,
    `predict_top_k`, `fit` and `evaluate` additionally accept raw RGB frames, uint8, of any size: each
    video goes through `preprocessor` (short-side resize, centre crop, ImageNet normalisation, and
    `num_frames` evenly spaced frames) first. Set `preprocessor=None` to feed prepared clips.

    Args:
        backbone: a `VidTrBackbone`.
        num_classes: number of classes.
        preprocessor: a `VidTrPreprocessor`, None for none; by default the centre view of the test
            protocol for the backbone's `image_size` and `num_frames`.
        class_names: optional list of `num_classes` names.
        dropout: dropout before the classifier.

    Example:
    >>> classifier = VidTrVideoClassifier.from_preset("vidtr_tiny", num_classes=3)
    >>> classifier.predict(np.zeros((12, 48, 64, 3), "uint8")).shape
    (1, 3)
    """

    def __init__(
        self, backbone, num_classes, preprocessor="default", class_names=None, dropout=0.5, dtype=None, **kwargs
    ):
        super().__init__(backbone, num_classes, dropout=dropout, dtype=dtype, **kwargs)
        if isinstance(preprocessor, str) and preprocessor == "default":
            preprocessor = _default_preprocessor(backbone)
        elif isinstance(preprocessor, dict):
            preprocessor = keras.saving.deserialize_keras_object(preprocessor)
        if preprocessor is not None and not callable(preprocessor):
            raise ValueError(f"preprocessor must be a VidTrPreprocessor, None or 'default'; got {preprocessor!r}.")
        self.preprocessor = preprocessor
        if class_names is not None:
            class_names = [str(n) for n in class_names]
            if len(class_names) != self.num_classes:
                raise ValueError(
                    f"class_names has {len(class_names)} names for a classifier of {self.num_classes} classes."
                )
        self.class_names = class_names

    # ----------------------------------------------------------------------------------------------
    # Raw frames in

    def preprocess(self, videos):
        """Raw videos -> one float32 array of clips (n, frames, crop, crop, 3).

        Args:
            videos: one video (frames, height, width, 3), a batch (n, frames, height, width, 3), or a
                list of videos that may differ in size and length.
        """
        if isinstance(videos, (list, tuple)):
            if not videos:
                raise ValueError("No video to preprocess (an empty list).")
            items = [np.asarray(v) for v in videos]
        else:
            array = np.asarray(keras.ops.convert_to_numpy(videos))
            if array.ndim == 4:
                items = [array]
            elif array.ndim == 5:
                items = list(array)
            else:
                raise ValueError(
                    f"{self.name} expects a video (frames, height, width, 3), a batch of videos (n, frames, "
                    f"height, width, 3) or a list of videos; got shape {array.shape}."
                )
        if self.preprocessor is None:
            return np.stack(items).astype("float32")
        clips = []
        for i, item in enumerate(items):
            if item.ndim != 4:
                raise ValueError(f"Video {i} has shape {item.shape}; expected (frames, height, width, 3).")
            clips.append(np.asarray(keras.ops.convert_to_numpy(self.preprocessor(item))))
        return np.stack(clips)

    def _prepared(self, x):
        if x is None or self.preprocessor is None:
            return x
        if isinstance(x, (list, tuple)) or isinstance(x, np.ndarray) or keras.ops.is_tensor(x):
            return self.preprocess(x)
        return x  # a dataset / PyDataset / generator: its batches are taken as prepared clips

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Logits (n, num_classes) of raw videos (see `preprocess`); one video gives n = 1."""
        return super().predict(
            self._prepared(x), batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks
        )

    def predict_top_k(self, x, k=5, batch_size=None, verbose=0):
        """The `k` most probable classes of each video: a list (one per video) of (name, probability)."""
        logits = self.predict(x, batch_size=batch_size, verbose=verbose)
        probs = np.asarray(keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1)))
        k = min(int(k), self.num_classes)
        names = self.class_names or [f"class_{i}" for i in range(self.num_classes)]
        out = []
        for row in probs:
            order = np.argsort(-row, kind="stable")[:k]
            out.append([(names[i], float(row[i])) for i in order])
        return out

    def fit(self, x=None, y=None, **kwargs):
        """`keras.Model.fit` on raw videos (arrays or lists of them) or on a dataset of prepared clips.

        Compiles with `compile()`'s defaults first when the model was not compiled.
        """
        if not self.compiled:
            self.compile()
        if isinstance(kwargs.get("validation_data"), tuple):
            vx, *rest = kwargs["validation_data"]
            kwargs["validation_data"] = (self._prepared(vx), *rest)
        return super().fit(self._prepared(x), y, **kwargs)

    def evaluate(self, x=None, y=None, **kwargs):
        """`keras.Model.evaluate` on raw videos or on a dataset of prepared clips."""
        if not self.compiled:
            self.compile()
        return super().evaluate(self._prepared(x), y, **kwargs)

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """`keras.Model.compile` with keras-hub's classifier defaults for "auto": Adam(5e-5),
        sparse categorical cross-entropy on logits and accuracy."""
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(5e-5)
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    # ----------------------------------------------------------------------------------------------
    # Presets

    def save_to_preset(self, preset_dir):
        """Writes a preset directory that `from_preset` loads on any backend.

        Files: `config.json` (the model's Keras config: backbone, classifier, preprocessor, class
        names), `model.weights.h5`, `classes.txt` (when the model has class names) and
        `metadata.json` (versions, backend, parameter count).
        """
        preset_dir = os.fspath(preset_dir)
        os.makedirs(preset_dir, exist_ok=True)
        config = keras.saving.serialize_keras_object(self)
        with open(os.path.join(preset_dir, PRESET_CONFIG_FILE), "w") as f:
            json.dump(config, f, indent=2)
        self.save_weights(os.path.join(preset_dir, PRESET_WEIGHTS_FILE))
        if self.class_names:
            with open(os.path.join(preset_dir, CLASSES_FILE), "w") as f:
                f.writelines(f"{n}\n" for n in self.class_names)
        import vidtr_keras

        metadata = {
            "vidtr_keras_version": vidtr_keras.__version__,
            "keras_version": keras.__version__,
            "saved_with_backend": keras.backend.backend(),
            "parameter_count": int(self.count_params()),
            "num_classes": self.num_classes,
        }
        with open(os.path.join(preset_dir, PRESET_METADATA_FILE), "w") as f:
            json.dump(metadata, f, indent=2)
        return preset_dir

    @classmethod
    def from_preset(cls, preset, weights=None, num_classes=None, class_names=None, preprocessor="default"):
        """A classifier from a preset directory, a `vidtr train` run directory, a `.keras` file or a
        preset name.

        Args:
            preset: a directory written by `save_to_preset`; a run directory (its last checkpoint and
                `classes.txt`); a `.keras` model file (e.g. `vidtr convert` of an official checkpoint);
                or a preset name (`vidtr_keras.preset_names()`, randomly initialised unless `weights`).
            weights: with a preset name, a `.weights.h5` file or an official `.pth`/`.npz` checkpoint.
            num_classes: replace the classifier by a new one of this width when it differs.
            class_names: class names (they set `num_classes`); by default the stored ones.
            preprocessor: "default" (the stored one, else the test-time centre view), a
                `VidTrPreprocessor`, or None.
        """
        import vidtr_keras  # noqa: F401 - registers the serialisable classes
        from vidtr_keras.models.presets import preset_names

        source = os.fspath(preset)
        if class_names is not None:
            class_names = [str(n) for n in class_names]
            if num_classes is not None and num_classes != len(class_names):
                raise ValueError(f"num_classes={num_classes} but class_names has {len(class_names)} names.")
            num_classes = len(class_names)
        stored_names = None
        stored_preprocessor = None
        if os.path.isdir(source) and os.path.exists(os.path.join(source, PRESET_CONFIG_FILE)):
            if weights is not None:
                raise ValueError(
                    f"{source!r} is a preset directory with its own weights; `weights` is for preset names."
                )
            with open(os.path.join(source, PRESET_CONFIG_FILE)) as f:
                config = json.load(f)
            model = keras.saving.deserialize_keras_object(config)
            weights_path = os.path.join(source, PRESET_WEIGHTS_FILE)
            if not os.path.exists(weights_path):
                raise FileNotFoundError(f"The preset {source!r} has no {PRESET_WEIGHTS_FILE}.")
            model.load_weights(weights_path)
        elif os.path.isdir(source) or source.endswith(".keras") or source in preset_names():
            from vidtr_keras import run_dir
            from vidtr_keras.apps import predict as inference

            if os.path.isdir(source) and not run_dir.is_run_dir(source):
                raise FileNotFoundError(
                    f"{source!r} is neither a preset directory (no {PRESET_CONFIG_FILE}) nor a `vidtr train` run "
                    f"directory (no {run_dir.CHECKPOINT_FILE})."
                )
            if weights is not None and source not in preset_names():
                raise ValueError(f"`weights` goes with a preset name; {source!r} holds its own weights.")
            model, _ = inference.load_model(source, weights=weights)
            if os.path.isdir(source):
                names_file = run_dir.class_names_file(source)
                stored_names = _read_names(names_file) if names_file else None
                pointer = run_dir.read_checkpoint(source)
                train_config = pointer.get("config", {})
                if train_config.get("crop_size") or train_config.get("clip_len"):
                    stored_preprocessor = dict(
                        crop_size=train_config.get("crop_size") or model.backbone.image_size[0],
                        num_frames=train_config.get("clip_len") or model.backbone.num_frames,
                    )
        elif os.path.exists(source):
            raise ValueError(
                f"{source!r}: expected a preset directory, a `vidtr train` run directory, a .keras file or a "
                "preset name."
            )
        else:
            raise ValueError(
                f"Unknown preset {source!r}: not a directory or file, and not a preset name "
                f"({', '.join(preset_names())})."
            )
        return cls._wrap(model, stored_names, stored_preprocessor, num_classes, class_names, preprocessor)

    @classmethod
    def _wrap(cls, model, stored_names, stored_preprocessor, num_classes, class_names, preprocessor):
        if not isinstance(model, VidTrClassifier):
            raise ValueError(f"Expected a VidTrClassifier model, got {type(model).__name__}.")
        if isinstance(model, cls):
            stored_names = stored_names or model.class_names
            stored_preprocessor = model.preprocessor
        if stored_names is not None and len(stored_names) != model.num_classes:
            stored_names = None  # a classes.txt that does not describe this classifier
        if isinstance(preprocessor, str) and preprocessor == "default":
            if isinstance(stored_preprocessor, dict):
                preprocessor = VidTrPreprocessor(**stored_preprocessor, name="preprocessor")
            elif stored_preprocessor is not None or isinstance(model, cls):
                preprocessor = stored_preprocessor
        width = model.num_classes if num_classes is None else int(num_classes)
        names = class_names if class_names is not None else (stored_names if width == model.num_classes else None)
        task = cls(
            model.backbone, width, preprocessor=preprocessor, class_names=names, dropout=model.dropout, name=model.name
        )
        if width == model.num_classes:
            task.get_layer("head").set_weights(model.get_layer("head").get_weights())
        return task

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "preprocessor": None
                if self.preprocessor is None
                else keras.saving.serialize_keras_object(self.preprocessor),
                "class_names": self.class_names,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)


__all__ = ["VidTrVideoClassifier"]
