"""VidTrVideoClassifier: a task model in the keras-hub mould that takes raw video frames.

    classifier = vidtr_keras.VidTrVideoClassifier.from_preset("runs/demo")   # a `vidtr train` run
    classifier.predict(frames)              # uint8 (frames, height, width, 3), any size -> logits
    classifier.predict_top_k(frames, k=5)   # [[(class name, probability), ...]]
    classifier.save_to_preset("my_preset")  # config.json, model.weights.h5, classes.txt, metadata.json

`from_preset` takes every spec `vidtr_keras.models.loading.load_model` does: a preset directory, a run
directory, a `.keras` file, an official checkpoint or a preset name.
"""

import keras
import numpy as np

from vidtr_keras.layers.preprocessing import VidTrPreprocessor
from vidtr_keras.models import preset_dir as _preset_format
from vidtr_keras.models.classifier import VidTrClassifier
from vidtr_keras.models.loading import load_model


def _default_preprocessor(backbone, num_frames=None):
    size = tuple(backbone.image_size)
    if size[0] != size[1]:
        raise ValueError(
            f"The backbone's frames are {size[0]}x{size[1]}; the default preprocessor makes square crops. "
            "Pass `preprocessor=VidTrPreprocessor(...)` (or None) explicitly."
        )
    return VidTrPreprocessor(crop_size=size[0], num_frames=num_frames or backbone.num_frames, name="preprocessor")


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

        Files (`vidtr_keras.models.preset_dir`): `config.json` (the model's Keras config: backbone,
        classifier, preprocessor, class names), `model.weights.h5`, `classes.txt` (when the model has
        class names) and `metadata.json` (versions, backend, parameter count).
        """
        return _preset_format.save_preset(self, preset_dir)

    @classmethod
    def from_preset(cls, preset, weights=None, num_classes=None, class_names=None, preprocessor="default"):
        """A classifier from any model spec: a preset directory, a `vidtr train` run directory, a
        `.keras` file, an official checkpoint or a preset name (`vidtr_keras.models.loading.load_model`).

        Args:
            preset: the spec. A run directory gives its last checkpoint, its class names and the clip
                (frames, crop) it was trained on; a preset name is randomly initialised unless `weights`.
            weights: a `.weights.h5` file or an official `.pth`/`.npz` checkpoint to load into it.
            num_classes: replace the classifier by a new one of this width when it differs.
            class_names: class names (they set `num_classes`); by default the stored ones.
            preprocessor: "default" (the stored one, else the test-time centre view), a
                `VidTrPreprocessor`, or None.
        """
        if class_names is not None:
            class_names = [str(n) for n in class_names]
            if num_classes is not None and num_classes != len(class_names):
                raise ValueError(f"num_classes={num_classes} but class_names has {len(class_names)} names.")
            num_classes = len(class_names)
        loaded = load_model(preset, weights=weights)
        stored_preprocessor = None
        clip = loaded.clip or {}
        if clip.get("crop_size") or clip.get("clip_len"):
            stored_preprocessor = dict(
                crop_size=clip.get("crop_size") or loaded.model.backbone.image_size[0],
                num_frames=clip.get("clip_len") or loaded.model.backbone.num_frames,
            )
        return cls._wrap(loaded.model, loaded.class_names, stored_preprocessor, num_classes, class_names, preprocessor)

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
