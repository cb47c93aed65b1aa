"""`vidtr_keras.data.throughput`: the data path's clips/s, on two tiny videos written here."""

import numpy as np
import pytest

from vidtr_keras.data import synthetic, throughput


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("throughput")
    for k, name in enumerate(("a.avi", "sub/b.mkv")):
        synthetic.write_synthetic_video(root / name, 40, 32, 40, seed=k)
    (root / "list.txt").write_text("a.avi 40 0\nsub/b.mkv 40 1\n")
    (root / "bad.txt").write_text("a.avi 0\n")
    return root


def test_videos_come_from_a_folder_a_list_or_one_file(folder):
    found = throughput.video_paths(folder)
    assert [p.split("/")[-1] for p in found] == ["a.avi", "b.mkv"]
    assert throughput.video_paths(folder / "list.txt", root=folder) == [
        str(folder / "a.avi"),
        str(folder / "sub/b.mkv"),
    ]
    assert throughput.video_paths(folder / "a.avi") == [str(folder / "a.avi")]
    with pytest.raises(ValueError, match="bad.txt.*line 1: expected 'path num_frames label'"):
        throughput.video_paths(folder / "bad.txt")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        throughput.video_paths(folder / "nowhere")


@pytest.mark.parametrize("workers", [1, 2])
def test_training_clips_and_test_views_are_counted_and_timed(folder, workers):
    paths = throughput.video_paths(folder)
    seen = []
    train = throughput.data_throughput(
        paths,
        "train",
        workers=workers,
        items=3,
        clip_len=4,
        rate=2,
        crop_size=16,
        on_progress=lambda d, t: seen.append((d, t)),
    )
    assert (train["clips"], train["items"], train["workers"]) == (3, 3, workers) and seen[-1] == (3, 3)
    assert train["clips_per_s"] > 0 and train["decode_s"] > 0 and train["transform_s"] > 0
    assert len(train["loadavg"]) == 3
    assert train["first_reads_s"] > 0  # each file read once before the timed clips
    assert throughput.data_throughput(paths, "train", items=1, crop_size=16, warm=False)["first_reads_s"] == 0.0
    views = throughput.data_throughput(paths, "views", workers=workers, clip_len=4, rate=2, crop_size=16, num_clips=5)
    assert views["items"] == 2 and views["clips"] == 2 * 5 * 3
    assert np.isclose(views["clips_per_s"], 15 * views["videos_per_s"])


def test_bad_arguments_name_the_parameter(folder):
    paths = throughput.video_paths(folder)
    with pytest.raises(ValueError, match="mode"):
        throughput.data_throughput(paths, "test")
    with pytest.raises(ValueError, match="workers"):
        throughput.data_throughput(paths, workers=0)
    with pytest.raises(ValueError, match="items"):
        throughput.data_throughput(paths, items=0)
