"""Prediction and evaluation end to end on tiny models and synthetic videos: `vidtr make-demo-data`
writes lists the official loader reads, `vidtr predict` averages 30 views (10 windows x 3 crops) of one
video, `vidtr evaluate` reports clip- and video-level accuracy (mAP for multi-label data) and every video
that failed, and the metrics themselves (`apps.evaluation`).
"""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidtr_keras import build_model, data
from vidtr_keras.apps import evaluation
from vidtr_keras.data.sampling import ClipGeometry

from helpers import GLUONMM, to_numpy, vidtr


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# --------------------------------------------------------------------------------------------------
# make-demo-data, predict, evaluate


def test_make_demo_data_writes_lists_the_official_loader_reads(demo):
    names = data.read_class_names(demo / "classes.txt")
    assert names == ["moving_right", "moving_down", "moving_left", "moving_up"]
    train = data.read_annotations(demo / "train.txt", class_names=names)
    val = data.read_annotations(demo / "val.txt", class_names=names)
    assert (len(train), len(val), train.problems, val.problems) == (8, 4, [], [])
    for record in train.records + val.records:
        reader = data.VideoReader(record.resolve(demo), exact_count=True)
        assert reader.num_frames == record.num_frames and 20 <= reader.num_frames <= 32
    test = data.read_annotations(demo / "test.csv", class_names=names)
    assert [r.path for r in test.records][-2:] == ["videos/short.avi", "videos/corrupt.avi"]


def test_predict_prints_the_top_classes_averaged_over_30_views(demo, tmp_path, capsys):
    # 8 frames (the clip length comes from the model); vidtr_tiny rather than cvidtr_tiny, whose first
    # call costs ~10 s of XLA compilation on JAX
    model = build_model("vidtr_tiny", num_classes=4, num_frames=8)
    model.save(tmp_path / "c.keras")
    video = demo / "videos" / "moving_left_00.avi"
    out = tmp_path / "p.json"
    args = ["predict", video, "--model", tmp_path / "c.keras", "--labels", demo / "classes.txt", "--rate", "2"]
    assert vidtr(*args, "--json", out) == 0
    printed = capsys.readouterr().out
    assert "top-4 of 4 classes" in printed and "30 views (10 windows x 3 crops)" in printed
    result = json.loads(out.read_text())
    views = data.load_views(video, clip_len=8, rate=2, crop_size=32)
    expected = softmax(to_numpy(model.predict(views.views, batch_size=6, verbose=0)).astype("float64")).mean(axis=0)
    assert [t["class"] for t in result["top"]] == np.argsort(-expected, kind="stable").tolist()
    np.testing.assert_allclose([t["probability"] for t in result["top"]], np.sort(expected)[::-1], atol=1e-5)
    assert result["top"][0]["name"] in printed and result["views"] == 30
    assert vidtr("predict", demo / "none.avi", "--model", "vidtr_tiny") == 2
    assert "No video at" in capsys.readouterr().out
    assert vidtr("predict", video, "--model", "vidtr_huge") == 2
    assert "Unknown model 'vidtr_huge'" in capsys.readouterr().out
    assert vidtr("predict", demo / "videos" / "corrupt.avi", "--model", "vidtr_tiny") == 2
    assert "Cannot decode video" in capsys.readouterr().out
    official = GLUONMM / "vidtr_split_t8.npz"  # an official checkpoint of another configuration
    assert vidtr("predict", video, "--model", "vidtr_tiny", "--weights", official) == 2
    assert "Checkpoint does not match the model (--weights" in capsys.readouterr().out


def test_evaluate_reports_clip_and_video_accuracy_and_every_failure(demo, tmp_path, capsys):
    model = build_model("vidtr_tiny", num_classes=4)
    model.save(tmp_path / "m.keras")
    listing = tmp_path / "list.txt"
    root = str(demo)
    listing.write_text((demo / "test.txt").read_text() + "videos/moving_up_00.avi 30\nvideos/moving_up_00.avi 30 9\n")
    report_path = tmp_path / "out" / "report.json"
    code = vidtr(
        "evaluate",
        "--model",
        tmp_path / "m.keras",
        "--annotations",
        listing,
        "--root",
        root,
        "--labels",
        demo / "classes.txt",
        "--rate",
        "2",
        "--report",
        report_path,
        "--workers",
        "2",
        "--batch-size",
        "15",
    )
    assert code == 0
    printed = capsys.readouterr().out
    report = json.loads(report_path.read_text())
    assert (report["videos_listed"], report["videos_read"], report["videos_failed"]) == (8, 5, 3)
    failed = {(f["line"], f["stage"]): f["problem"] for f in report["failed"]}
    assert set(failed) == {(6, "decode"), (7, "annotation"), (8, "annotation")}
    assert "corrupt.avi" in failed[6, "decode"] and "found 2 field(s)" in failed[7, "annotation"]
    assert "label 9 is outside the class list (0 .. 3)" in failed[8, "annotation"]
    assert all(f["file"] == str(listing) for f in report["failed"])
    assert f"{listing}:6:" in printed.replace("\n", "") and "5 videos read, 3 failed" in printed
    assert report["short_videos"] == [{"path": "videos/short.avi", "line": 5, "num_frames": 4}]
    assert report["clip_level"]["views"] == 150 and report["video_level"]["videos"] == 5
    assert report["views"] == {"clips": 10, "crops": 3, "window_starts": "official"}
    # video level = the averaged softmax of the 30 views; check one video against the model itself
    first = report["predictions"][0]
    views = data.load_views(demo / first["path"], clip_len=4, rate=2, crop_size=32)
    mean = softmax(to_numpy(model.predict(views.views, verbose=0)).astype("float64")).mean(axis=0)
    np.testing.assert_allclose([p for _, p in first["top5"]], np.sort(mean)[::-1], atol=1e-5)
    top1 = np.mean([p["top5"][0][0] in p["labels"] for p in report["predictions"]])
    assert report["video_level"]["top1"] == pytest.approx(top1)
    assert report["video_level"]["top5"] == 1.0  # 4 classes: always in the top 5


def test_multi_label_evaluation_gives_map(demo):
    model = build_model("vidtr_tiny", num_classes=4)
    listing = data.AnnotationList(
        "multi.txt",
        [
            data.VideoRecord("videos/moving_right_00.avi", (0, 2), None, "multi.txt", 1),
            data.VideoRecord("videos/moving_down_00.avi", (1,), None, "multi.txt", 2),
            data.VideoRecord("videos/moving_left_00.avi", (2, 3), None, "multi.txt", 3),
        ],
        [],
    )
    report = evaluation.evaluate(model, listing, demo, ClipGeometry(4, 2, 32), num_clips=2, num_crops=1)
    assert report["multi_label"] and report["scores"] == "sigmoid"
    scores = np.zeros((3, 4))
    for row, prediction in enumerate(report["predictions"]):
        for index, value in prediction["top5"]:
            scores[row, index] = value
    expected, counted = evaluation.mean_average_precision(scores, [(0, 2), (1,), (2, 3)], 4)
    assert report["video_level"]["mAP"] == pytest.approx(expected, abs=1e-5) and counted == 4
    assert 0 < report["clip_level"]["mAP"] <= 1


def test_average_precision_and_top_k():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert evaluation.average_precision(scores, np.array([1, 0, 1, 0])) == pytest.approx((1 + 2 / 3) / 2)
    assert evaluation.average_precision(scores, np.array([0, 0, 0, 0])) is None
    table = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]])
    assert evaluation.top_k_hits(table, [(2,), (0,)], 1).tolist() == [0.0, 1.0]
    assert evaluation.top_k_hits(table, [(2,), (2, 1)], 2).tolist() == [1.0, 1.0]


@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=30, unique_by=lambda t: t[0]))
def test_average_precision_is_the_mean_precision_at_each_positive(rows):
    scores = np.array([s for s, _ in rows])
    positives = np.array([p for _, p in rows])
    got = evaluation.average_precision(scores, positives)
    if not positives.any():
        assert got is None  # AP is undefined without a positive; mAP leaves such classes out
    else:
        precisions = [positives[scores >= s].mean() for s in scores[positives]]
        assert got == pytest.approx(np.mean(precisions))
