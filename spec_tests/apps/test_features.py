"""Backbone features out of videos (`vidtr_keras.apps.features`, `vidtr features`)."""

import keras
import numpy as np
import pytest

from vidtr_keras import VidTrBackbone, VidTrClassifier, build_model
from vidtr_keras.apps.features import (
    FeatureExtractor,
    extract_features,
    video_features,
    window_features,
)
from vidtr_keras.cli import main
from vidtr_keras.data import VideoReader, load_views, transforms
from vidtr_keras.data.sampling import ClipGeometry
from vidtr_keras.data.synthetic import synthetic_frames, write_video

from helpers import to_numpy

GEOMETRY = ClipGeometry(clip_len=4, rate=2, crop_size=32)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("features") / "v.avi", synthetic_frames(30, 32, 40))


# A two-layer C-VidTr (std-topK pooling drops 2 of 4 frames in layer 0, joint attention in layer 1):
# the single-class-token layout with pooling, cheaper to compile than the cvidtr_tiny preset.
SMALL_CVIDTR = {
    "num_frames": 4,
    "image_size": 32,
    "patch_size": (1, 8, 8),
    "hidden_dim": 32,
    "num_layers": 2,
    "num_heads": 4,
    "mlp_dim": 64,
    "attention": "temporal_spatial",
    "pool_layers": (0,),
    "frames_dropped": (2,),
}


@pytest.mark.parametrize("preset, kept", [("vidtr_tiny", 4), ("small_cvidtr", 2)])
def test_modes_are_the_backbones_own_outputs(preset, kept):
    if preset == "small_cvidtr":
        backbone = VidTrBackbone(**SMALL_CVIDTR)
        model = VidTrClassifier(backbone, num_classes=3)
    else:
        model = build_model(preset, num_classes=3)
        backbone = model.backbone
    frames = 4
    clips = np.random.default_rng(0).standard_normal((2, frames, 32, 32, 3)).astype("float32")
    cls = FeatureExtractor(model, "class_token")(clips)
    extractor = FeatureExtractor(model, "tokens")
    tokens = extractor(clips)
    mean = FeatureExtractor(backbone, "mean")(clips)  # a bare backbone works too
    np.testing.assert_allclose(cls, to_numpy(backbone.predict_on_batch(clips)), atol=1e-5)
    assert cls.shape == (2, 32) and mean.shape == (2, 32) and tokens.shape == (2, kept, 4, 4, 32)
    final = extractor.sequence(clips)  # the backbone's own sequence: its readout gives the class token
    if final.ndim == 4:  # class-token grid (batch, frames + 1, patches + 1, d): row and column 0 are class tokens
        assert final.shape == (2, kept + 1, 17, 32)
        np.testing.assert_allclose(final[:, 0, 0], cls, atol=1e-5)
        np.testing.assert_allclose(tokens, final[:, 1:, 1:].reshape(2, kept, 4, 4, 32), atol=1e-6)
    else:  # one class token first, then frames x patches, row-major over (frame, h, w)
        assert final.shape == (2, 1 + kept * 16, 32)
        np.testing.assert_allclose(final[:, 0], cls, atol=1e-5)
        np.testing.assert_allclose(tokens[:, 1, 2, 3], final[:, 1 + 1 * 16 + 2 * 4 + 3], atol=1e-6)
    np.testing.assert_allclose(mean, tokens.mean(axis=(1, 2, 3)), atol=1e-5)


def test_view_pooling_is_the_mean_of_the_per_view_features(video):
    model = build_model("vidtr_tiny", num_classes=3)
    per_view = video_features(model, video, GEOMETRY, num_clips=2, num_crops=3, pool="none")
    pooled = video_features(model, video, GEOMETRY, num_clips=2, num_crops=3, pool="mean")
    assert per_view.shape == (2, 3, 32) and pooled.shape == (32,)
    np.testing.assert_allclose(pooled, per_view.mean(axis=(0, 1)), atol=1e-6)
    views = load_views(video, 4, 2, 32, num_clips=2, num_crops=3).views  # the evaluation protocol's views
    expected = to_numpy(model.backbone.predict_on_batch(views)).reshape(2, 3, 32)
    np.testing.assert_allclose(per_view, expected, atol=1e-5)
    tokens = video_features(model, video, GEOMETRY, mode="tokens", num_clips=2, num_crops=1)
    assert tokens.shape == (4, 4, 4, 32)


def test_window_features_stream_the_video(video):
    model = build_model("vidtr_tiny", num_classes=3)
    result = window_features(model, video, GEOMETRY, mode="mean", stride=5, num_crops=1, batch_size=2)
    assert result.starts.tolist() == [0, 5, 10, 15, 20]  # 20 + (4 - 1) x 2 = 26 < 30 frames
    reader = VideoReader(video)
    clips = np.stack([transforms.view_crops(reader.read(s + 2 * np.arange(4)), 32, 1)[0] for s in result.starts])
    expected = FeatureExtractor(model, "mean")(clips)
    np.testing.assert_allclose(result.features, expected, atol=1e-5)
    np.testing.assert_allclose(result.start_times, result.starts / 25.0)
    assert result.num_frames == 30 and not result.short


def test_extract_features_records_failures_and_cli_writes_npz(video, tmp_path, capsys):
    model = build_model("vidtr_tiny", num_classes=3, num_frames=4)
    model.save(tmp_path / "m.keras")
    bad = tmp_path / "bad.avi"
    bad.write_text("not a video\n" * 20)
    result = extract_features(model, [video, str(bad)], GEOMETRY, num_clips=2, num_crops=1)
    assert result.features.shape == (1, 32) and result.paths == [video] and result.video_index.tolist() == [0]
    assert result.failures[0][0] == str(bad) and "Cannot decode video" in result.failures[0][1]

    listing = tmp_path / "list.txt"
    listing.write_text(f"{video} 30 0\n{bad} 20 1\n")
    out = tmp_path / "f.npz"
    code = main(
        [
            "features",
            str(listing),
            "--model",
            str(tmp_path / "m.keras"),
            "--rate",
            "2",
            "--views",
            "2x1",
            "--output",
            str(out),
        ]
    )
    assert code == 1  # a video failed: reported, the others written
    printed = capsys.readouterr().out
    assert "failed:" in printed and "features (1, 32)" in printed
    with np.load(out) as saved:
        np.testing.assert_allclose(saved["features"], result.features, atol=1e-5)
        assert saved["paths"].tolist() == [video] and saved["failed_paths"].tolist() == [str(bad)]
        assert str(saved["setting_mode"]) == "class_token"

    code = main(
        [
            "features",
            video,
            "--model",
            str(tmp_path / "m.keras"),
            "--rate",
            "2",
            "--stride",
            "10",
            "--mode",
            "tokens",
            "--output",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    with np.load(out) as saved:
        assert saved["features"].shape == (3, 4, 4, 4, 32) and saved["start_frame"].tolist() == [0, 10, 20]
        assert saved["video_index"].tolist() == [0, 0, 0]

    assert main(["features", video, "--model", str(tmp_path / "m.keras"), "--output", str(tmp_path / "f.txt")]) == 2
    assert "--output must end in .npz" in capsys.readouterr().out


def test_a_model_without_a_vidtr_backbone_is_refused():
    model = keras.Sequential([keras.Input((4, 8, 8, 3)), keras.layers.GlobalAveragePooling3D()])
    with pytest.raises(ValueError, match="Features come from a VidTrBackbone"):
        FeatureExtractor(model)
    with pytest.raises(ValueError, match="`mode` must be one of"):
        FeatureExtractor(build_model("vanilla_tiny", num_classes=2), mode="cls")
