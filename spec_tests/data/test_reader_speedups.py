"""`VideoReader`'s shortcuts keep its contract: frame i is the i-th frame of a plain sequential OpenCV
decode of the same file, whether the reader continued from where its decoder stood, seeked over a
gap in a file whose seeking it had checked, or found a seek landing elsewhere and decoded again from
the start. Files: FFV1 in .avi and .mkv (lossless, with the frame index drawn into every frame),
MJPG .avi, MPEG-4 (mp4v) .mp4, all written here by OpenCV, and the real H.264 sample (Big Buck
Bunny, spec_tests/fixtures/video/README.md). A small `seek_gap` makes these short files "long".
"""

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidtr_keras.data import sampling, synthetic, video

from helpers import FIXTURES

FRAMES, H, W, GAP = 90, 32, 40, 8
FILES = {"a.avi": "FFV1", "b.mkv": "FFV1", "c.avi": "MJPG", "d.mp4": "mp4v"}
REAL = "bigbuckbunny.mp4"


def sequential(path):
    """A digest of every frame of a plain front-to-back OpenCV decode (RGB), in order."""
    import cv2

    cap, digests = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        digests.append(digest(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
    cap.release()
    return digests


def digest(frame):
    return hashlib.sha1(np.ascontiguousarray(frame).tobytes()).hexdigest()


def check(got, frames, indices):
    """`got` holds, in order, the frames of the sequential decode at `indices`."""
    assert got.shape[0] == len(indices) and got.dtype == np.uint8
    assert [digest(f) for f in got] == [frames[i] for i in indices]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("seek")
    paths = {
        name: synthetic.write_synthetic_video(root / name, FRAMES, H, W, seed=5, fourcc=fcc)
        for name, fcc in FILES.items()
    }
    paths[REAL] = str(FIXTURES / "video" / REAL)
    return {name: (str(path), sequential(path)) for name, path in paths.items()}


@pytest.fixture(autouse=True)
def fresh_tables():
    video.clear_seek_tables()
    yield
    video.clear_seek_tables()


class CountingCv2:
    """cv2 whose VideoCapture counts its grab calls: how many frames a read decoded. (A wrapper: a
    Python subclass of cv2.VideoCapture crashes when it is freed.)"""

    def __init__(self):
        import cv2

        self.cv2, self.grabs = cv2, 0

    def VideoCapture(self, path):
        outer, capture = self, self.cv2.VideoCapture(path)

        class Counted:
            def grab(self):
                outer.grabs += 1
                return capture.grab()

            def __getattr__(self, name):
                return getattr(capture, name)

        return Counted()

    def __getattr__(self, name):
        return getattr(self.cv2, name)


def test_the_synthetic_files_are_what_they_say(files):
    for name, fourcc in FILES.items():
        path, frames = files[name]
        assert len(frames) == FRAMES
        if fourcc == "FFV1":  # lossless: the frame codes read back from a plain OpenCV decode
            everything = video.VideoReader(path, seek_gap=None).read(range(FRAMES))
            assert [synthetic.decode_frame_index(f) for f in everything] == list(range(FRAMES))


@pytest.mark.parametrize("name", list(FILES))
@settings(max_examples=5, deadline=None)
@given(reads=st.lists(st.lists(st.integers(0, 10**6), min_size=1, max_size=6), min_size=1, max_size=3))
def test_reads_equal_the_sequential_decode_whatever_path_they_take(files, name, reads):
    path, frames = files[name]
    reader = video.VideoReader(path, seek_gap=GAP)
    late = [len(frames) - 3, len(frames) - 1]
    check(reader.read(late), frames, late)  # a late window: records the table (first time), then seeks
    assert reader.seekable  # OpenCV's seeking is exact in these files: the seek path is what is tested
    for indices in reads:  # any order, repeats, continuing or seeking from wherever the decoder stands
        indices = [i % len(frames) for i in indices]
        check(reader.read(indices), frames, indices)
    window = list(range(len(frames) - 2 * GAP, len(frames), 2))
    check(video.VideoReader(path, seek_gap=GAP).read(window), frames, window)  # a new reader, same table


def test_the_real_h264_file_read_by_windows_and_views(files):
    path, frames = files[REAL]
    reader = video.VideoReader(path, seek_gap=GAP)
    for indices in ([120, 124, 128, 131], [68, 60, 84, 68]):
        check(reader.read(indices), frames, indices)
        # its only key frame is frame 0 (a seek would decode from there): no table, no seeking
        assert reader.seekable is False
    views = sampling.view_clip_indices(len(frames), 4, 8, 10).ravel().tolist()  # 10 windows in one pass
    check(video.VideoReader(path, seek_gap=GAP).read(views), frames, views)


def test_a_checked_file_is_read_by_seeking_past_the_prefix(files, monkeypatch):
    path, frames = files["d.mp4"]
    counting = CountingCv2()
    monkeypatch.setattr(video, "_cv2", lambda: counting)
    video.VideoReader(path, seek_gap=GAP).read([5])  # records the table: decodes the whole file once
    assert counting.grabs >= FRAMES - 1
    counting.grabs = 0
    target = FRAMES - 4
    check(video.VideoReader(path, seek_gap=GAP).read([target]), frames, [target])
    # mp4v puts a key frame every 12 frames: the seek decodes from one before the target, not from 0
    assert counting.grabs < target // 2
    counting.grabs = 0
    check(video.VideoReader(path, seek_gap=None).read([target]), frames, [target])
    assert counting.grabs >= target  # seek_gap=None: purely sequential


def test_a_seek_that_lands_elsewhere_is_caught_and_the_read_done_sequentially(files):
    path, frames = files["a.avi"]
    video.VideoReader(path, seek_gap=GAP).read([1])
    key = video._file_key(path)
    table = video._TABLES[key]
    # What a file whose time stamps do not follow its frame numbers looks like to the reader: the
    # frame a seek reaches carries another stamp than the one recorded for that index.
    video._TABLES[key] = video.SeekTable(table.timestamps + (table.timestamps[1] - table.timestamps[0]))
    reader = video.VideoReader(path, seek_gap=GAP)
    picks = [70, 20, FRAMES - 1]
    check(reader.read(picks), frames, picks)
    assert reader.seekable is False and video._TABLES[key] is False
    check(reader.read([80, 3]), frames, [80, 3])  # sequential from now on


def test_stamps_that_do_not_tell_frames_apart_forbid_seeking():
    assert video.SeekTable([0.0, 40.0, 80.0]).usable
    assert not video.SeekTable([0.0, 40.0, 40.0, 80.0]).usable
    assert not video.SeekTable([0.0, 80.0, 40.0]).usable
    assert not video.SeekTable([0.0]).usable
    table = video.SeekTable([0.0, 40.0, 80.0])
    assert table.matches(1, 41.0) and not table.matches(1, 80.0) and not table.matches(3, 120.0)


def test_a_seek_is_taken_only_when_a_key_frame_lies_in_the_gap():
    table = video.SeekTable(np.arange(100) * 40.0, key_frames=[0, 12, 24, 36])
    assert table.saves_work(0, 40)  # lands on 24 (the key frame at or before 40 - 16)
    assert not table.saves_work(13, 30)  # would land on 12: behind the decoder
    assert not table.saves_work(5, 10)  # would land on 0
    assert video.SeekTable(np.arange(100) * 40.0).saves_work(13, 30)  # key frames unknown: seek, then check


def test_a_short_file_is_never_probed_and_a_count_past_the_end_is_still_truncated(files, tmp_path):
    path, frames = files["b.mkv"]
    reader = video.VideoReader(path, seek_gap=FRAMES // 2)  # 90 frames: too few to record a table
    check(reader.read([FRAMES - 1, 0]), frames, [FRAMES - 1, 0])
    assert reader.seekable is None
    checked = video.VideoReader(path, seek_gap=GAP)
    checked.read([2])
    assert checked.seekable
    with pytest.raises(video.TruncatedVideoError, match=f"after {FRAMES} frames"):
        checked.read([3, FRAMES + 5])  # the table knows where the stream ends
    assert checked.num_frames == FRAMES and checked.count_is_exact


def test_bad_seek_gap_is_refused(files):
    with pytest.raises(ValueError, match="seek_gap"):
        video.VideoReader(files["a.avi"][0], seek_gap=0)


def test_stream_and_read_all_start_with_the_frame_the_reader_decoded_first(files):
    path, frames = files["c.avi"]
    with video.VideoReader(path) as reader:
        check(reader.read_all(), frames, range(FRAMES))
    reader = video.VideoReader(path)
    streamed = [(i, f) for i, f in reader.stream(keep=lambda i: i % 30 == 0)]
    assert [i for i, _ in streamed] == [0, 30, 60]
    check(np.stack([f for _, f in streamed]), frames, [0, 30, 60])
    assert reader.num_frames == FRAMES
