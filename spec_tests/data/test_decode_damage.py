"""Decoding physically damaged files, made in the test: a file cut in the middle and a file with bytes
overwritten in the middle, in two containers (AVI/FFV1 with its index at the front, MP4 with its index
at the end). What `VideoReader` does with each is pinned here; `vidtr check-videos`
(data/test_integrity.py) finds the damage that decoding alone does not report.
"""

import pathlib

import numpy as np
import pytest

from vidtr_keras import data
from vidtr_keras.data.synthetic import synthetic_frames, write_video

FRAMES = 40


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged")
    frames = synthetic_frames(FRAMES, 32, 40, seed=3)
    out = {}
    for ext in (".avi", ".mp4"):
        good = pathlib.Path(write_video(str(root / f"good{ext}"), frames))
        raw = good.read_bytes()
        middle = len(raw) // 2
        (root / f"cut{ext}").write_bytes(raw[:middle])
        flipped = bytearray(raw)
        flipped[middle : middle + 8] = b"\xff" * 8 if ext == ".mp4" else b"\x00" * 8
        (root / f"flipped{ext}").write_bytes(bytes(flipped))
        out.update({f"good{ext}": good, f"cut{ext}": root / f"cut{ext}", f"flipped{ext}": root / f"flipped{ext}"})
    return out


def test_a_file_cut_in_the_middle_raises_truncated_naming_the_file_and_keeps_what_came_before(damaged):
    reader = data.VideoReader(str(damaged["cut.avi"]))  # the header still promises every frame
    assert reader.num_frames == FRAMES
    with pytest.raises(data.TruncatedVideoError, match="cut.avi.*stream ends after") as err:
        reader.read(list(range(FRAMES)))
    kept = err.value.frames_decoded
    assert 0 < kept < FRAMES
    assert data.VideoReader(str(damaged["cut.avi"]), exact_count=True).num_frames == kept
    before = data.VideoReader(str(damaged["good.avi"])).read(list(range(kept)))
    np.testing.assert_array_equal(data.VideoReader(str(damaged["cut.avi"])).read(list(range(kept))), before)


def test_an_mp4_cut_before_its_index_cannot_be_opened(damaged):
    with pytest.raises(data.VideoDecodeError, match="cut.mp4"):
        data.VideoReader(str(damaged["cut.mp4"]))


@pytest.mark.parametrize("ext", [".avi", ".mp4"])
def test_bytes_overwritten_mid_file_decode_every_frame_with_damage_after_the_hit(damaged, ext):
    """The decoder conceals the damage: every frame comes out, the first ones exactly as in the intact
    file, some later ones different. Decoding alone does not flag this (check-videos does)."""
    good = data.VideoReader(str(damaged[f"good{ext}"])).read(list(range(FRAMES)))
    reader = data.VideoReader(str(damaged[f"flipped{ext}"]), exact_count=True)
    assert reader.num_frames == FRAMES
    got = reader.read(list(range(FRAMES)))
    assert got.shape == good.shape
    np.testing.assert_array_equal(got[:2], good[:2])
    assert (got != good).any(axis=(1, 2, 3)).sum() >= 1
