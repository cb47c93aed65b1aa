"""An image ViT (Dosovitskiy et al., ICLR 2021) with timm's `VisionTransformer` structure, for pretraining
the image model that VidTr inflates (the paper, section 4, starts every VidTr from an image ViT).

image (batch, H, W, C) -> Conv2D patch embedding -> [class token, patches] + position embedding ->
pre-LN blocks x += Attn(LN1(x)); x += MLP(LN2(x)) -> LayerNorm -> class token -> linear head.

It is timm's ViT, tensor for tensor (`vidtr_keras.convert.vit_export` writes it under timm's names):
the position embedding is added to the input tokens (VidTr adds it to the normalised input of its
first layer instead), the MLP uses the exact GELU and LayerNorms epsilon 1e-6 (timm's defaults), and the
blocks are VidTr's own `VidTrEncoderBlock` with joint attention and no position embedding, so the layer
that inflation writes into is the layer trained here (same fused [q | k | v] projection).

Example:
>>> model = build_image_vit(num_classes=10, image_size=32, patch_size=8, hidden_dim=32, num_layers=3,
...                         num_heads=4, mlp_dim=64)
>>> model(keras.ops.zeros((2, 32, 32, 3))).shape
(2, 10)
"""

import keras
from keras import ops

from vidtr_keras.layers.embedding import ClassTokenReadout
from vidtr_keras.layers.encoder import VidTrEncoderBlock


@keras.saving.register_keras_serializable(package="vidtr_keras")
class ViTTokens(keras.layers.Layer):
    """Prepends the class token to the patch tokens and adds the position embedding (timm's
    `cls_token` and `pos_embed`, both initialised with a normal of stddev 0.02).

    Args:
        num_patches: patch tokens per image.
        initializer_stddev: stddev of the initial class token and position embedding.

    Call arguments:
        patches: (batch, num_patches, d).

    Returns:
        (batch, 1 + num_patches, d).
    """

    def __init__(self, num_patches, initializer_stddev=0.02, **kwargs):
        super().__init__(**kwargs)
        self.num_patches = int(num_patches)
        self.initializer_stddev = float(initializer_stddev)

    def build(self, patches_shape):
        d = patches_shape[-1]
        init = keras.initializers.RandomNormal(stddev=self.initializer_stddev)
        self.class_token = self.add_weight(shape=(1, 1, d), initializer=init, name="class_token")
        self.position_embedding = self.add_weight(
            shape=(1, 1 + self.num_patches, d), initializer=init, name="position_embedding"
        )

    def call(self, patches):
        if patches.shape[1] is not None and patches.shape[1] != self.num_patches:
            raise ValueError(
                f"{self.name}: {patches.shape[1]} patches, but the position embedding holds {self.num_patches}; "
                "the image size must be the one the ViT was built for."
            )
        cls = ops.broadcast_to(ops.cast(self.class_token, patches.dtype), (ops.shape(patches)[0], 1, patches.shape[-1]))
        return ops.concatenate([cls, patches], axis=1) + ops.cast(self.position_embedding, patches.dtype)

    def compute_output_shape(self, patches_shape):
        return (patches_shape[0], 1 + self.num_patches, patches_shape[-1])

    def get_config(self):
        return {**super().get_config(), "num_patches": self.num_patches, "initializer_stddev": self.initializer_stddev}


def build_image_vit(
    num_classes,
    image_size=32,
    patch_size=8,
    hidden_dim=32,
    num_layers=3,
    num_heads=4,
    mlp_dim=64,
    num_channels=3,
    dropout=0.0,
    mlp_activation="gelu",
    layer_norm_epsilon=1e-6,
    name="image_vit",
):
    """A timm-structured image ViT classifier (see the module docstring) as a functional `keras.Model`.

    Args:
        num_classes: width of the linear head on the class token.
        image_size: side of the square images (a multiple of `patch_size`).
        patch_size: side of the square patches.
        hidden_dim, num_layers, num_heads, mlp_dim: transformer size (ViT-B: 768, 12, 12, 3072).
        num_channels: image channels.
        dropout: dropout in the blocks (timm's default 0).
        mlp_activation: "gelu" (timm's ViT) or any Keras activation name.
        layer_norm_epsilon: LayerNorm epsilon (1e-6, timm's ViT).
        name: the model's name.

    Layers (by name): `patch_embedding` (Conv2D), `tokens` (`ViTTokens`), `encoder_block_{i}`
    (`VidTrEncoderBlock`), `final_norm`, `head`.
    """
    image_size, patch_size = int(image_size), int(patch_size)
    for arg, value in (("num_classes", num_classes), ("hidden_dim", hidden_dim), ("num_layers", num_layers)):
        if int(value) < 1:
            raise ValueError(f"{arg} must be positive, got {value}.")
    if patch_size < 1 or image_size % patch_size:
        raise ValueError(f"image_size={image_size} must be a positive multiple of patch_size={patch_size}.")
    if int(num_heads) < 1 or int(hidden_dim) % int(num_heads):
        raise ValueError(f"num_heads={num_heads} must divide hidden_dim={hidden_dim}.")
    grid = image_size // patch_size
    images = keras.Input(shape=(image_size, image_size, int(num_channels)), name="images")
    x = keras.layers.Conv2D(int(hidden_dim), patch_size, strides=patch_size, name="patch_embedding")(images)
    x = keras.layers.Reshape((grid * grid, int(hidden_dim)), name="flatten_patches")(x)
    x = ViTTokens(grid * grid, name="tokens")(x)
    for i in range(int(num_layers)):
        x = VidTrEncoderBlock(
            int(num_heads),
            int(mlp_dim),
            attention="joint",
            mlp_activation=mlp_activation,
            dropout=dropout,
            attention_dropout=dropout,
            layer_norm_epsilon=layer_norm_epsilon,
            name=f"encoder_block_{i}",
        )(x)
    x = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="final_norm")(x)
    x = ClassTokenReadout("first", name="class_token_readout")(x)
    logits = keras.layers.Dense(int(num_classes), name="head")(x)
    return keras.Model(images, logits, name=name)


__all__ = ["ViTTokens", "build_image_vit"]
