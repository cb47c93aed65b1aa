"""The Keras-native classifier on raw frames: `VidTrPreprocessor` agrees with the evaluation transforms
of `vidtr_keras.data.transforms`; `VidTrVideoClassifier` predicts on raw uint8 videos of any size and
length, fits, and loads the same way from a preset directory, a `vidtr train` run directory, a
converted official checkpoint (.keras) and a preset name.
"""

import json

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidtr_keras import VidTrPreprocessor, VidTrVideoClassifier, build_model, cli
from vidtr_keras.convert import gluonmm
from vidtr_keras.data import transforms
from vidtr_keras.models import preset_dir

from helpers import load_fixture, to_numpy

# OpenCV interpolates uint8 frames in fixed point, Keras in float: a resized pixel may differ by one
# grey level, i.e. 1 / 255 / std in normalised units.
ONE_LEVEL = 1.0 / 255.0 / min(transforms.IMAGENET_STD) + 1e-5


def frames(count, height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(count, height, width, 3), dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# VidTrPreprocessor vs data/transforms


@pytest.mark.parametrize(
    "height, width, crop, short",
    [
        (48, 64, 32, None),  # landscape, downscaled
        (64, 48, 32, None),  # portrait
        (37, 53, 32, None),  # odd sizes, long side truncated
        (20, 25, 32, None),  # upscaled
        (240, 320, 224, None),  # the paper's crop from a 4:3 video
        (100, 77, 32, 37),  # val_transform-style short side larger than the crop
    ],
)
def test_preprocessor_matches_the_evaluation_transform(height, width, crop, short):
    clip = frames(3, height, width)
    expected = transforms.normalize(transforms.center_crop(transforms.resize_short_side(clip, short or crop), crop))
    got = to_numpy(VidTrPreprocessor(crop_size=crop, short_side=short)(clip))
    assert got.shape == expected.shape == (3, crop, crop, 3)
    diff = np.abs(got - expected)
    assert diff.max() <= ONE_LEVEL
    assert diff.mean() < 0.2 * ONE_LEVEL  # most pixels agree exactly


def test_preprocessor_is_exact_without_a_resize():
    """Frames whose short side is already the size: crop and normalisation only, bit-for-bit."""
    clip = frames(2, 32, 47)
    expected = transforms.view_crops(clip, 32, num_crops=1)[0]
    np.testing.assert_allclose(to_numpy(VidTrPreprocessor(32)(clip)), expected, atol=1e-6, rtol=0)


def test_preprocessor_matches_val_transform():
    clip = frames(2, 50, 70, seed=1)
    short = transforms.default_short_side(28)
    got = to_numpy(VidTrPreprocessor(28, short_side=short)(clip))
    assert np.abs(got - transforms.val_transform(clip, 28)).max() <= ONE_LEVEL


@given(
    height=st.integers(8, 70),
    width=st.integers(8, 70),
    crop=st.sampled_from([8, 16, 24]),
    count=st.integers(1, 3),
)
def test_preprocessor_any_frame_size(height, width, crop, count):
    clip = frames(count, height, width, seed=height * 71 + width)
    pre = VidTrPreprocessor(crop)
    got = to_numpy(pre(clip))
    expected = transforms.view_crops(clip, crop, num_crops=1)[0]
    assert got.shape == (count, crop, crop, 3) == pre.compute_output_shape(clip.shape)
    assert np.abs(got - expected).max() <= ONE_LEVEL


def test_preprocessor_batches_and_frame_counts():
    clip = frames(10, 30, 40, seed=2)
    pre = VidTrPreprocessor(24, num_frames=4)
    sub = to_numpy(pre(clip))
    # the centre of each of 4 equal segments of 10 frames: 1, 3, 6, 8
    np.testing.assert_array_equal(sub, to_numpy(VidTrPreprocessor(24)(clip[[1, 3, 6, 8]])))
    padded = to_numpy(pre(clip[:3]))  # 3 frames -> the last one repeated
    np.testing.assert_array_equal(padded[3], padded[2])
    batch = to_numpy(pre(np.stack([clip, clip[::-1]])))
    assert batch.shape == (2, 4, 24, 24, 3)
    np.testing.assert_array_equal(batch[0], sub)


def test_preprocessor_config_round_trip_and_errors():
    pre = VidTrPreprocessor(24, short_side=30, num_frames=6, name="pre")
    again = VidTrPreprocessor.from_config(pre.get_config())
    assert again.get_config() == pre.get_config()
    clip = frames(6, 33, 41)
    np.testing.assert_array_equal(to_numpy(again(clip)), to_numpy(pre(clip)))
    with pytest.raises(ValueError, match="3 channels"):
        pre(np.zeros((4, 32, 32, 1), "uint8"))
    with pytest.raises(ValueError, match="rank 3"):
        pre(np.zeros((32, 32, 3), "uint8"))
    with pytest.raises(ValueError, match="short_side=20 is smaller than crop_size=24"):
        VidTrPreprocessor(24, short_side=20)


# --------------------------------------------------------------------------------------------------
# VidTrVideoClassifier: predict on raw frames, fit


@pytest.fixture(scope="module")
def classifier():
    keras.utils.set_random_seed(7)
    return VidTrVideoClassifier.from_preset("vidtr_tiny", num_classes=3, class_names=["run", "jump", "swim"])


def test_predict_on_raw_uint8_videos_of_odd_sizes(classifier):
    videos = [frames(13, 37, 53, seed=1), frames(4, 90, 41, seed=2), frames(2, 31, 31, seed=3)]
    logits = classifier.predict(videos, verbose=0)
    assert logits.shape == (3, 3)
    clips = np.stack([to_numpy(classifier.preprocessor(v)) for v in videos])
    assert clips.shape == (3, 4, 32, 32, 3)  # 4 frames of 32 px: the preset's clip
    np.testing.assert_allclose(logits, to_numpy(classifier(clips, training=False)), atol=1e-5, rtol=0)
    # one video, and a batch of same-size videos, give the same rows
    np.testing.assert_allclose(classifier.predict(videos[0], verbose=0), logits[:1], atol=1e-5, rtol=0)
    batch = np.stack([videos[0], videos[0][::-1]])
    assert classifier.predict(batch, verbose=0).shape == (2, 3)
    top = classifier.predict_top_k(videos, k=2)
    assert [len(t) for t in top] == [2, 2, 2]
    assert all(name in ("run", "jump", "swim") for row in top for name, _ in row)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    assert top[1][0] == ("run jump swim".split()[int(np.argmax(probs[1]))], pytest.approx(float(probs[1].max())))


def test_predict_rejects_what_is_not_a_video(classifier):
    with pytest.raises(ValueError, match="expects a video"):
        classifier.predict(np.zeros((32, 32, 3), "uint8"))
    with pytest.raises(ValueError, match="3 channels"):
        classifier.predict(np.zeros((4, 32, 32, 4), "uint8"))


def test_short_fit_on_raw_frames_learns():
    keras.utils.set_random_seed(3)
    model = VidTrVideoClassifier(build_model("vidtr_tiny", num_classes=2, num_layers=1).backbone, 2)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    rng = np.random.default_rng(0)
    dark = rng.integers(0, 60, size=(4, 6, 40, 36, 3), dtype=np.uint8)
    bright = rng.integers(190, 256, size=(4, 6, 40, 36, 3), dtype=np.uint8)
    x = np.concatenate([dark, bright])
    y = np.array([0] * 4 + [1] * 4)
    before = [to_numpy(w).copy() for w in model.trainable_weights]
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 5 and np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert any(np.abs(to_numpy(w) - b).max() > 0 for w, b in zip(model.trainable_weights, before))
    assert model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] == 1.0


# --------------------------------------------------------------------------------------------------
# save_to_preset / from_preset: preset directory, run directory, converted checkpoint, preset name


def test_preset_directory_round_trip(classifier, tmp_path):
    classifier.save_to_preset(tmp_path / "preset")
    files = sorted(p.name for p in (tmp_path / "preset").iterdir())
    assert files == ["classes.txt", "config.json", "metadata.json", "model.weights.h5"]
    assert (tmp_path / "preset" / "classes.txt").read_text().split() == ["run", "jump", "swim"]
    meta = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert meta["num_classes"] == 3 and meta["saved_with_backend"] == keras.backend.backend()
    loaded = VidTrVideoClassifier.from_preset(str(tmp_path / "preset"))
    assert loaded.class_names == ["run", "jump", "swim"]
    assert loaded.preprocessor.get_config() == classifier.preprocessor.get_config()
    video = frames(9, 45, 61, seed=5)
    np.testing.assert_array_equal(loaded.predict(video, verbose=0), classifier.predict(video, verbose=0))
    # and as a .keras file
    classifier.save(tmp_path / "c.keras")
    again = VidTrVideoClassifier.from_preset(str(tmp_path / "c.keras"))
    assert again.class_names == ["run", "jump", "swim"]
    np.testing.assert_array_equal(again.predict(video, verbose=0), classifier.predict(video, verbose=0))


def test_run_directory_of_vidtr_train(tmp_path):
    """A real `vidtr train` run directory (1 epoch on generated videos) loads with its class names and
    its clip length, and gives the logits of its last checkpoint."""
    demo = tmp_path / "demo"
    assert (
        cli.main(
            [
                "make-demo-data",
                str(demo),
                "--classes",
                "2",
                "--videos-per-class",
                "2",
                "--val-per-class",
                "0",
                "--frames",
                "16",
                "20",
            ]
        )
        == 0
    )
    run = tmp_path / "run"
    build_model("vidtr_tiny", num_classes=2, num_layers=1, image_size=16).save(tmp_path / "start.keras")
    code = cli.main(
        [
            "train",
            "--model",
            str(tmp_path / "start.keras"),
            "--train",
            str(demo / "train.txt"),
            "--root",
            str(demo),
            "--labels",
            str(demo / "classes.txt"),
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--rate",
            "2",
            "--output",
            str(run),
            "--verbose",
            "0",
            "--quiet",
            "--no-check-videos",
            # the default compiled step: no other spec builds this 1-layer 16-px model, so eager JAX would
            # compile each of its operations for this test alone
        ]
    )
    assert code == 0
    loaded = VidTrVideoClassifier.from_preset(str(run))
    names = (demo / "classes.txt").read_text().split()
    assert loaded.class_names == names and loaded.num_classes == 2
    pointer = json.loads((run / "checkpoint.json").read_text())
    assert loaded.preprocessor.num_frames == pointer["config"]["clip_len"]
    assert loaded.preprocessor.crop_size == pointer["config"]["crop_size"]
    checkpoint = preset_dir.load_preset(run / pointer["checkpoint"])  # the last epoch, a preset directory
    video = frames(8, 20, 26, seed=6)
    clip = to_numpy(loaded.preprocessor(video))[None]
    np.testing.assert_allclose(
        loaded.predict(video, verbose=0), to_numpy(checkpoint(clip, training=False)), atol=1e-5, rtol=0
    )


def test_converted_official_checkpoint(tmp_path):
    """`vidtr convert` output (.keras) of an official checkpoint (the vanilla fixture): same official logits."""
    config, state_dict, clip, logits = load_fixture("vanilla_t4")
    gluonmm.from_state_dict(state_dict, config).save(tmp_path / "official.keras")
    loaded = VidTrVideoClassifier.from_preset(str(tmp_path / "official.keras"))
    assert loaded.preprocessor.crop_size == 56 and loaded.preprocessor.num_frames == 4
    loaded.preprocessor = None  # the fixture's clips are already normalised
    got = loaded.predict(np.transpose(clip, (0, 2, 3, 4, 1)), verbose=0)
    assert np.abs(got - logits).max() < 1e-4


def test_preset_name_with_and_without_weights(tmp_path):
    fresh = VidTrVideoClassifier.from_preset("vanilla_tiny")
    assert fresh.num_classes == 10 and fresh.class_names is None
    assert fresh.predict_top_k(frames(4, 32, 32), k=1)[0][0][0].startswith("class_")
    trained = build_model("vanilla_tiny", num_classes=4)
    trained.save_weights(tmp_path / "w.weights.h5")
    loaded = VidTrVideoClassifier.from_preset("vanilla_tiny", weights=str(tmp_path / "w.weights.h5"))
    assert loaded.num_classes == 4
    clip = np.random.default_rng(1).normal(size=(1, 4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(to_numpy(loaded(clip)), to_numpy(trained(clip)), atol=1e-6, rtol=0)
    # a new classifier for other classes keeps the backbone
    other = VidTrVideoClassifier.from_preset(
        "vanilla_tiny", weights=str(tmp_path / "w.weights.h5"), class_names=["a", "b"]
    )
    assert other.num_classes == 2 and other.class_names == ["a", "b"]
    np.testing.assert_array_equal(to_numpy(other.backbone(clip)), to_numpy(loaded.backbone(clip)))


def test_from_preset_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown model 'vidtr_xxl'.*vidtr_tiny"):
        VidTrVideoClassifier.from_preset("vidtr_xxl")
    with pytest.raises(FileNotFoundError, match="neither a preset directory"):
        VidTrVideoClassifier.from_preset(str(tmp_path))
    with pytest.raises(ValueError, match="class_names has 2 names for a classifier of 3 classes"):
        VidTrVideoClassifier(build_model("vidtr_tiny", num_classes=3).backbone, 3, class_names=["a", "b"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="none of: a preset directory"):
        VidTrVideoClassifier.from_preset(str(tmp_path / "notes.txt"))
