"""Sliding-window predictions over a whole video in one decoding pass (`vidtr_keras.data.windows`,
`vidtr_keras.apps.timeline`, `vidtr predict --timeline/--plot`)."""

import json

import keras
import numpy as np
import pytest

from vidtr_keras import build_model
from vidtr_keras.apps import timeline
from vidtr_keras.apps.timeline import predict_timeline, smooth_curves
from vidtr_keras.data import VideoReader, transforms
from vidtr_keras.data import windows as data_windows
from vidtr_keras.data.sampling import ClipGeometry
from vidtr_keras.data.synthetic import synthetic_frames, write_video
from vidtr_keras.data.windows import SlidingWindows

from helpers import to_numpy

FPS = 25.0


def colour_video(path, first, second, switch, height=24, width=32):
    """A lossless video of 2 x `switch` frames: colour `first`, then from frame `switch` on `second`."""
    frames = np.zeros((2 * switch, height, width, 3), np.uint8)
    frames[:switch] = first
    frames[switch:] = second
    return write_video(path, frames, fps=FPS)


def red_blue_model(clip_len=4, size=16):
    """A classifier whose answer we control: logits (10 (R - B), 10 (B - R)) of the clip's mean
    normalised colour, so class 0 = mostly red, class 1 = mostly blue."""
    model = keras.Sequential(
        [keras.Input((clip_len, size, size, 3)), keras.layers.GlobalAveragePooling3D(), keras.layers.Dense(2)]
    )
    kernel = np.array([[10.0, -10.0], [0.0, 0.0], [-10.0, 10.0]], np.float32)
    model.layers[-1].set_weights([kernel, np.zeros(2, np.float32)])
    return model


RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("timeline") / "long.avi"
    return write_video(path, synthetic_frames(61, 32, 40), fps=FPS)


def test_the_streaming_reader_yields_each_frame_once_in_order(long_video):
    reader = VideoReader(long_video)
    every = reader.read_all()
    got = list(VideoReader(long_video).stream())
    assert [i for i, _ in got] == list(range(61))
    np.testing.assert_array_equal(np.stack([f for _, f in got]), every)
    kept = VideoReader(long_video)
    some = list(kept.stream(keep=lambda i: i % 7 == 3))
    assert [i for i, _ in some] == list(range(3, 61, 7)) and kept.num_frames == 61 and kept.count_is_exact
    np.testing.assert_array_equal(some[2][1], every[17])
    stream = VideoReader(long_video).stream()
    next(stream)
    stream.close()  # stopping early releases the decoder without error


@pytest.mark.parametrize("stride, num_crops", [(3, 3), (8, 1), (5, 1), (1, 1)])
def test_streamed_windows_equal_the_clips_read_by_index(long_video, stride, num_crops):
    windows = SlidingWindows(long_video, clip_len=4, rate=3, crop_size=24, stride=stride, num_crops=num_crops)
    reader = VideoReader(long_video)
    got = list(windows)
    assert [w.start for w in got] == list(range(0, 61 - (4 - 1) * 3, stride))  # every clip frame exists
    for w in got:
        assert w.indices.tolist() == [w.start + 3 * j for j in range(4)] and not w.short
        expected = transforms.view_crops(reader.read(w.indices), 24, num_crops, normalized=False)
        np.testing.assert_array_equal(w.clip, expected)
    assert windows.num_frames == 61 and windows.short is False
    # bounded memory: never more than one window's span of frames held, however long the video
    assert windows.peak_buffered <= (4 - 1) * 3 + 1


def test_a_video_shorter_than_a_window_gives_one_padded_window(tmp_path):
    path = write_video(tmp_path / "short.avi", synthetic_frames(10, 32, 40), fps=FPS)
    (window,) = list(SlidingWindows(path, clip_len=4, rate=4, crop_size=32))
    assert window.short and window.start == 0
    assert window.indices.tolist() == [0, 4, 8, 8]  # the official test loader's padding
    np.testing.assert_array_equal(window.clip[0], VideoReader(path).read([0, 4, 8, 8])[:, :, 4:36])


def test_progress_reaches_the_decoded_frame_count(long_video):
    calls = []
    list(SlidingWindows(long_video, 4, 3, 24, stride=6, progress=lambda d, t: calls.append((d, t)), progress_every=16))
    assert calls[-1] == (61, 61)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len(calls) == 61 // 16 + 1


@pytest.mark.parametrize("stride", [4, 6])
def test_a_class_change_halfway_is_found_within_one_stride(tmp_path, stride):
    switch = 100  # 4 s at 25 fps
    path = colour_video(tmp_path / "change.avi", RED, BLUE, switch)
    model = red_blue_model()
    result = predict_timeline(
        model,
        path,
        ClipGeometry(clip_len=4, rate=2, crop_size=16),
        stride=stride,
        class_names=["red", "blue"],
        verbose=1,  # a keras Progbar of the decoded frames
    )
    segments = result.segments()
    assert [s["name"] for s in segments] == ["red", "blue"]
    change = switch / FPS
    assert abs(segments[1]["start_time"] - change) <= stride / FPS
    assert segments[0]["start_time"] == 0 and segments[1]["end_time"] == pytest.approx(200 / FPS)
    # every window entirely before the switch says red, entirely after it says blue
    ends = result.starts + (4 - 1) * 2
    top = np.argmax(result.scores, axis=1)
    assert (top[ends < switch] == 0).all() and (top[result.starts >= switch] == 1).all()


def test_timeline_scores_are_the_models_scores_of_the_windows(long_video, tmp_path):
    model = build_model("vidtr_tiny", num_classes=5)
    geometry = ClipGeometry(clip_len=4, rate=3, crop_size=32)
    result = predict_timeline(model, long_video, geometry, stride=10, num_crops=3, batch_size=2, smooth=3)
    reader = VideoReader(long_video)
    assert result.starts.tolist() == [0, 10, 20, 30, 40, 50]  # 50 + 3 x 3 = 59 < 61 frames
    views = np.concatenate([transforms.view_crops(reader.read(s + 3 * np.arange(4)), 32, 3) for s in result.starts])
    assert len(views) == 18  # 6 windows x 3 crops, run as the timeline does: 2 windows (6 views) a batch
    logits = np.concatenate([to_numpy(model.predict_on_batch(v)) for v in np.split(views, 3)]).astype("float64")
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(result.scores, probs.reshape(6, 3, 5).mean(1), atol=1e-5)
    np.testing.assert_allclose(result.smoothed, smooth_curves(result.scores, 3))
    summary = json.loads(json.dumps(result.to_dict(top_k=3, curve_limit=None)))
    assert len(summary["windows"]) == len(result.starts) and len(summary["windows"][0]["top"]) == 3
    assert summary["windows"][1]["start_time"] == pytest.approx(10 / FPS) and summary["fps_known"]
    assert len(summary["curves"]["classes"]) == 5 and len(summary["curves"]["time"]) == len(result.starts)
    png = result.plot(tmp_path / "t.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_smoothing_is_a_centred_moving_average():
    scores = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(smooth_curves(scores, 3)[:, 0], [0.5, 2 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(smooth_curves(scores, 1), scores)
    with pytest.raises(ValueError, match="odd"):
        smooth_curves(scores, 2)


def test_bad_settings_and_videos_are_named(long_video, tmp_path):
    with pytest.raises(ValueError, match="`stride` must be a positive integer"):
        SlidingWindows(long_video, 4, 3, 24, stride=0)
    with pytest.raises(ValueError, match="`num_crops` must be 1 or 3"):
        SlidingWindows(long_video, 4, 3, 24, num_crops=2)
    with pytest.raises(FileNotFoundError, match="No video at"):
        SlidingWindows(tmp_path / "none.avi", 4, 3, 24)
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"not a video " * 100)
    with pytest.raises(ValueError, match="Cannot decode video"):
        list(SlidingWindows(bad, 4, 3, 24))
    with pytest.raises(ValueError, match="`smooth` must be a positive odd"):
        predict_timeline(red_blue_model(), long_video, ClipGeometry(4, 3, 16), smooth=4)
    with pytest.raises(ValueError, match="`class_names` has 3 names; the model has 2 classes"):
        predict_timeline(red_blue_model(), long_video, ClipGeometry(4, 3, 16), class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="`fps` must be positive"):
        predict_timeline(red_blue_model(), long_video, ClipGeometry(4, 3, 16), fps=0)


def test_cli_predict_timeline_writes_json_and_plot(tmp_path, capsys):
    from vidtr_keras.cli import main

    path = colour_video(tmp_path / "change.avi", RED, BLUE, 60)
    model_path = tmp_path / "rb.keras"
    red_blue_model().save(model_path)
    labels = tmp_path / "classes.txt"
    labels.write_text("red\nblue\n")
    out, png = tmp_path / "t.json", tmp_path / "t.png"
    code = main(
        [
            "predict",
            str(path),
            "--model",
            str(model_path),
            "--rate",
            "2",
            "--labels",
            str(labels),
            "--timeline",
            str(out),
            "--plot",
            str(png),
            "--stride",
            "4",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "red" in printed and "blue" in printed
    result = json.loads(out.read_text())
    assert [s["name"] for s in result["segments"]] == ["red", "blue"]
    assert abs(result["segments"][1]["start_time"] - 60 / FPS) <= 4 / FPS
    assert result["stride"] == 4 and result["rate"] == 2 and result["clip_len"] == 4
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["predict", str(path), "--model", str(model_path), "--timeline", str(out), "--stride", "0"]) == 2
    assert "--stride must be a positive integer" in capsys.readouterr().out
    args = [
        "predict",
        str(path),
        "--model",
        str(model_path),
        "--timeline",
        str(out),
        "--json",
        str(tmp_path / "p.json"),
    ]
    assert main(args) == 2
    assert "with --timeline the timeline JSON has every window" in capsys.readouterr().out


def test_module_exports():
    assert set(timeline.__all__) >= {"Timeline", "predict_timeline", "smooth_curves"}
    assert set(data_windows.__all__) >= {"SlidingWindows", "Window", "window_batches"}
