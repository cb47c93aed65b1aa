"""The convolutional baseline of the learning run: a small Conv3D classifier and its costs, counted by
hand the way `vidtr_keras.complexity` counts the transformers."""

from reproduce.learning.recipe import FRAMES, HEAD, SIZE


def conv3d_baseline(num_classes=HEAD, frames=FRAMES, size=SIZE, seed=0):
    """A small Keras Conv3D classifier (three 3x3x3 convolutions, 16-32-32 channels, global pooling)."""
    import keras

    init = keras.initializers.GlorotUniform(seed=seed)
    return keras.Sequential(
        [
            keras.Input((frames, size, size, 3)),
            keras.layers.Conv3D(16, 3, padding="same", activation="relu", kernel_initializer=init),
            keras.layers.MaxPooling3D((1, 2, 2)),
            keras.layers.Conv3D(32, 3, padding="same", activation="relu", kernel_initializer=init),
            keras.layers.MaxPooling3D((2, 2, 2)),
            keras.layers.Conv3D(32, 3, padding="same", activation="relu", kernel_initializer=init),
            keras.layers.GlobalAveragePooling3D(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(num_classes, kernel_initializer=init),
        ],
        name="conv3d",
    )


def conv3d_costs(frames=FRAMES, size=SIZE, batch_size=32, num_classes=HEAD):
    """Multiply-adds per clip and an analytic training-memory figure of `conv3d_baseline` (float32
    activations kept for the backward pass: every conv output and pooled map; parameters, gradients
    and two Adam slots)."""
    layers = [
        (frames, size, size, 3, 16),
        (frames, size // 2, size // 2, 16, 32),
        (frames // 2, size // 4, size // 4, 32, 32),
    ]
    macs = sum(t * h * w * 27 * cin * cout for t, h, w, cin, cout in layers) + 32 * num_classes
    params = sum(27 * cin * cout + cout for *_, cin, cout in layers) + 32 * num_classes + num_classes
    kept = sum(t * h * w * cout for t, h, w, _, cout in layers) * 2 + frames * size * size * 3
    return macs, params, (kept * batch_size + params * 4) * 4
