"""VidTrClassifier: a VidTrBackbone plus dropout and a linear classifier (logits)."""

import keras

from vidtr_keras.models.backbone import check_clips


@keras.saving.register_keras_serializable(package="vidtr_keras")
class VidTrClassifier(keras.Model):
    """Backbone -> Dropout(`dropout`, 0.5 in the paper) -> Dense(`num_classes`), returning logits.

    Args:
        backbone: a `VidTrBackbone`.
        num_classes: number of classes (400 for Kinetics-400).
        dropout: dropout before the classifier.

    Example:
    >>> model = VidTrClassifier(VidTrBackbone(**tiny_config), num_classes=10)
    >>> model(clips)  # (batch, 10) logits
    """

    def __init__(self, backbone, num_classes, dropout=0.5, dtype=None, **kwargs):
        if int(num_classes) <= 0:
            raise ValueError(f"num_classes must be positive, got {num_classes}.")
        # === Functional Model ===
        clips = keras.Input(shape=backbone.input_shape[1:], name="clips")
        x = backbone(clips)
        x = keras.layers.Dropout(dropout, dtype=dtype, name="head_dropout")(x)
        logits = keras.layers.Dense(num_classes, dtype=dtype, name="head")(x)
        super().__init__(inputs=clips, outputs=logits, dtype=dtype, **kwargs)
        # === Config ===
        self.backbone = backbone
        self.num_classes = int(num_classes)
        self.dropout = float(dropout)

    def __call__(self, inputs, *args, **kwargs):
        check_clips(inputs, self.backbone.num_channels, self.name)
        return super().__call__(inputs, *args, **kwargs)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "dropout": self.dropout,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
