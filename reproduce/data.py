"""The data path in clips/s: our `VideoReader` against the reader before issue 23, plain sequential
OpenCV and (when installed) decord, one clip at a time in one process; then the whole loader
(`vidtr_keras.data.throughput`: sampling, decoding, transform) per number of threads.

Videos are written here with OpenCV from the real H.264 sample (Big Buck Bunny,
spec_tests/fixtures/video/README.md) resized to 340x256, the usual Kinetics short side, played back and
forth: four 10 s clips at 25 fps (Kinetics-like) and one 5-minute video, MPEG-4 part 2 (mp4v; this
OpenCV build cannot write H.264), plus the H.264 sample itself (1280x720, 5.3 s). Every reader gets the
same windows (the official training sampling, 8 frames every 8, from a fixed seed); on the long video
the windows end in its last quarter, the case where decoding from frame 0 costs the most. The frames
each reader returns are compared with the reader before issue 23 (frame i = the i-th decoded frame).
"""

import os
import statistics
import tempfile
import time

import numpy as np

from reproduce import common

CLIP_LEN, RATE, CROP = 8, 8, 224
SIZE = (340, 256)  # width, height
FPS = 25.0
BASELINE = "VideoReader before issue 23"


class BaselineReader:
    """`vidtr_keras.data.video.VideoReader.read` as it was before issue 23 (git e8b4c33), kept here as
    the measured baseline: open the file and decode its first frame, then open it again and decode from
    frame 0 to the last wanted frame, retrieving and converting the wanted ones."""

    def __init__(self, path):
        import cv2

        self.path = path
        cap = cv2.VideoCapture(path)
        self.num_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, _ = cap.read()
        cap.release()
        assert ok, path

    def read(self, indices):
        import cv2

        wanted = np.unique(indices)
        found, cap, position, next_wanted = {}, cv2.VideoCapture(self.path), 0, 0
        while position <= wanted[-1]:
            if not cap.grab():
                raise RuntimeError(f"{self.path}: the stream ends after {position} frames")
            if position == wanted[next_wanted]:
                found[position] = cv2.cvtColor(cap.retrieve()[1], cv2.COLOR_BGR2RGB)
                next_wanted += 1
            position += 1
        cap.release()
        return np.stack([found[int(i)] for i in indices])


def _ours(path, indices):
    from vidtr_keras.data.video import VideoReader

    return VideoReader(path).read(indices)


def _baseline(path, indices):
    return BaselineReader(path).read(indices)


def _opencv(path, indices):
    """Plain OpenCV: one capture, grab every frame up to the last wanted one, retrieve the wanted ones."""
    import cv2

    wanted, found, cap = {int(i) for i in indices}, {}, cv2.VideoCapture(path)
    for position in range(int(max(indices)) + 1):
        cap.grab()
        if position in wanted:
            found[position] = cv2.cvtColor(cap.retrieve()[1], cv2.COLOR_BGR2RGB)
    cap.release()
    return np.stack([found[int(i)] for i in indices])


def _decord(path, indices):
    import decord

    return decord.VideoReader(path).get_batch([int(i) for i in indices]).asnumpy()


def _readers():
    readers = [(BASELINE, _baseline), ("VideoReader (now)", _ours), ("plain OpenCV, sequential", _opencv)]
    try:
        import decord  # noqa: F401  (optional: measured only where it is installed, never a dependency)

        readers.append(("decord get_batch (optional)", _decord))
    except ImportError:
        pass
    return readers


def _source_frames():
    import cv2

    from vidtr_keras.data.video import VideoReader

    real = str(common.ROOT / "spec_tests" / "fixtures" / "video" / "bigbuckbunny.mp4")
    frames = VideoReader(real, seek_gap=None).read_all()
    small = np.stack([cv2.resize(f, SIZE, interpolation=cv2.INTER_AREA) for f in frames])
    return real, np.concatenate([small, small[::-1][1:-1]])  # back and forth: no jump at the loop


def _write(path, source, num_frames, offset):
    """Frames offset, offset + 1, ... of `source` (cycled), as mp4v; frame by frame (a 5-minute video
    would not fit in memory as one array)."""
    import cv2

    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    try:
        for i in range(num_frames):
            writer.write(cv2.cvtColor(source[(i + offset) % len(source)], cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def _windows(num_frames, count, seed, late=False):
    from vidtr_keras.data import sampling

    rng = np.random.default_rng(seed)
    windows = []
    while len(windows) < count:
        indices = sampling.train_clip_indices(num_frames, CLIP_LEN, RATE, rng)
        if not late or indices[-1] >= num_frames * 3 // 4:
            windows.append(indices)
    return windows


def _compare(ctx, case, paths, windows, readers):
    """Times every reader on the same (path, window) list, interleaved clip by clip."""
    times = {name: [] for name, _ in readers}
    identical = {name: True for name, _ in readers}
    bar = ctx.task(f"data: {case}", len(windows))
    for path, indices in zip(paths, windows):
        reference = None
        for name, read in readers:
            t0 = time.perf_counter()
            frames = read(path, indices)
            times[name].append(time.perf_counter() - t0)
            if reference is None:
                reference = frames
            else:
                identical[name] = identical[name] and np.array_equal(frames, reference)
        ctx.advance(bar)
    base = statistics.median(times[BASELINE])
    rows = []
    for name, _ in readers:
        median = statistics.median(times[name])
        rows.append([case, name, 1.0 / median, median, base / median, len(windows), "yes" if identical[name] else "NO"])
    return rows


def run(ctx):
    from vidtr_keras.data.prepare import prepare_videos
    from vidtr_keras.data.throughput import data_throughput
    from vidtr_keras.data.video import VideoReader, clear_seek_tables

    quick = ctx.quick
    load_before = os.getloadavg()
    readers = _readers()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vidtr-data-") as folder:
        gen = ctx.task("data: writing the videos", 6)
        real, source = _source_frames()
        ctx.advance(gen)
        kinetics = []
        for k in range(4):
            kinetics.append(_write(os.path.join(folder, f"kinetics_like_{k}.mp4"), source, int(10 * FPS), 60 * k))
            ctx.advance(gen)
        long_frames = int((2 if quick else 5) * 60 * FPS)
        long_path = _write(os.path.join(folder, "long.mp4"), source, long_frames, 0)
        ctx.advance(gen)

        rows = []
        clear_seek_tables()
        first_reads = []
        for k, path in enumerate(kinetics):  # the first read of each file records its seek table
            t0 = time.perf_counter()
            VideoReader(path).read(_windows(int(10 * FPS), 1, seed=10 + k)[0])
            first_reads.append(time.perf_counter() - t0)
        n = 8 if quick else 24
        windows = _windows(int(10 * FPS), n, seed=0)
        rows += _compare(ctx, "10 s 340x256 mp4v, random window", [kinetics[i % 4] for i in range(n)], windows, readers)
        n = 6 if quick else 16
        rows += _compare(ctx, "5.3 s 1280x720 H.264 (real), random window", [real] * n, _windows(132, n, 1), readers)

        # `vidtr prepare-videos`: the H.264 sample re-encoded once at the training short side (256),
        # then the same windows read from the original and from the prepared file, interleaved.
        prepared_rows = []
        source_dir, prepared_dir = os.path.join(folder, "original"), os.path.join(folder, "prepared")
        os.makedirs(source_dir)
        os.symlink(real, os.path.join(source_dir, os.path.basename(real)))
        t0 = time.perf_counter()
        report = prepare_videos(source_dir, prepared_dir, short_side=256, workers=1)
        prepare_s = time.perf_counter() - t0
        prepared = os.path.join(prepared_dir, report.output_path(report.results[0]["path"]))
        if not report.ok:
            raise RuntimeError(f"prepare-videos failed on the H.264 sample: {report.failed}")
        out = report.results[0]
        n = 6 if quick else 16
        times = {"original": [], "prepared": []}
        for indices in _windows(132, n, 4):
            for name, path in (("original", real), ("prepared", prepared)):
                t0 = time.perf_counter()
                _ours(path, indices)
                times[name].append(time.perf_counter() - t0)
        original_s = statistics.median(times["original"])
        for name, size in (("original", out["size_in"]), ("prepared", out["size_out"])):
            median = statistics.median(times[name])
            prepared_rows.append(
                [
                    f"{name}: {'x'.join(str(v) for v in size[::-1])} {'H.264' if name == 'original' else 'mp4v'}",
                    1.0 / median,
                    median,
                    original_s / median,
                    out["bytes_in"] if name == "original" else out["bytes_out"],
                    prepare_s if name == "prepared" else None,
                    out["frames_in"] if name == "original" else out["frames_out"],
                ]
            )

        real_seekable = VideoReader(real).seekable
        first_indices = _windows(long_frames, 1, seed=2, late=True)[0]
        t0 = time.perf_counter()
        VideoReader(long_path).read(first_indices)  # decodes to the end once: records and checks the table
        first_read = time.perf_counter() - t0
        seekable = VideoReader(long_path).seekable
        n = 3 if quick else 5
        minutes = long_frames / FPS / 60
        rows += _compare(
            ctx,
            f"{minutes:g} min 340x256 mp4v, random window in the last quarter",
            [long_path] * n,
            _windows(long_frames, n, seed=3, late=True),
            readers,
        )

        loader_rows = []
        bar = ctx.task("data: loader threads", 6)
        for mode, paths, items in (
            ("train", kinetics, 8 if quick else 24),
            ("views", kinetics, 4),
        ):
            for workers in (1, 2):
                r = data_throughput(paths, mode=mode, workers=workers, items=items, clip_len=CLIP_LEN, rate=RATE)
                what = "training clips (transform included)" if mode == "train" else "10x3 test views"
                loader_rows.append(
                    ["10 s 340x256 mp4v", what, workers, r["clips_per_s"], r["decode_s"] * 1e3, r["transform_s"] * 1e3]
                )
                ctx.advance(bar)
        for workers in (1, 2):
            r = data_throughput([long_path], mode="views", workers=workers, items=1 if workers == 1 else 2)
            loader_rows.append(
                [
                    f"{minutes:g} min 340x256 mp4v",
                    "10x3 test views",
                    workers,
                    r["clips_per_s"],
                    r["decode_s"] * 1e3,
                    r["transform_s"] * 1e3,
                ]
            )
            ctx.advance(bar)
    load_after = os.getloadavg()
    spent = time.perf_counter() - started

    loader_table = common.markdown_table(
        ["videos", "what", "threads", "clips/s", "decode ms/clip", "transform ms/clip"], loader_rows
    )
    prepared_table = common.markdown_table(
        ["file", "clips/s (ours)", "s per clip (median)", "x the original", "bytes", "prepare s", "frames"],
        prepared_rows,
    )
    installed = ", ".join(name for name, _ in readers)
    notes = [
        f"One clip = {CLIP_LEN} frames every {RATE} (VidTr-S), the official training sampling (random window); "
        "clips/s = 1 / the median time of reading one clip's frames, a new reader per clip (what the training loader "
        "does), one process, one thread. `x before` is the median time of the reader before issue 23 over this "
        "reader's, on the same windows, measured interleaved clip by clip in one run. `identical` compares every "
        f"clip's frames with that reader's (frame i = the i-th decoded frame). Readers measured: {installed}.",
        "Our reader's rows are its reads after the first read of each file (the training loader's second epoch "
        "on): the first read of a file decodes it to the end once, recording every frame's time stamp, and "
        "checks two seeks against the sequential decode (here "
        f"{statistics.mean(first_reads):.2f} s per 10 s file, {first_read:.2f} s for the long video; seeking "
        f"found {'exact' if seekable else 'NOT exact'} in the long video). Later reads seek to the key frame "
        "before the window when one lies in the gap (OpenCV's mp4v puts one every 12 frames; x264's default "
        "is every 250, so on such H.264 files a seek saves less) and check every frame's time stamp. The H.264 "
        f"sample has a single key frame: no table is recorded for it (seekable: {real_seekable}) and its reads "
        "decode from frame 0, the gain there is the decoder kept open after the reader checked the file.",
        f"Load average (1, 5, 15 min) before the run {' / '.join(f'{v:.1f}' for v in load_before)}, after "
        f"{' / '.join(f'{v:.1f}' for v in load_after)}: other jobs shared the cores, so the ratios measured in "
        f"one run are the figures to read, not the absolute clips/s. The run took {spent:.0f} s"
        f"{' (--quick: a 2-minute long video, fewer clips)' if quick else ''}.",
        "## The whole loader per number of threads\n\n"
        "`vidtr_keras.data.throughput.data_throughput` (what `vidtr benchmark --data` prints): the training sampling "
        "+ decoding + the training transform (short side 256, random rescale, crop 224, flip, normalisation) per "
        "clip, and the 30 test views of a video decoded in one pass and cropped; thread pools like `vidtr train "
        "--workers`; decode and transform times are per clip, summed over threads.",
    ]
    prepared_intro = (
        "## Prepared once: `vidtr prepare-videos --short-side 256`\n\n"
        "The H.264 sample converted by `vidtr_keras.data.prepare.prepare_videos` (one worker; `prepare s` includes "
        "its check that the output decodes to the same frame count), then the same random training windows read "
        "from the original and from the prepared file with our reader, interleaved clip by clip. Every frame is "
        "kept (frame i stays frame i), resized so that the short side is 256, the size the training transform "
        "resizes to anyway."
    )
    return common.write(
        "data",
        "The data path: clips/s of our reader and loader",
        ["case", "reader", "clips/s", "s per clip (median)", "x before", "clips", "identical"],
        rows,
        notes=notes,
        extra_markdown=[loader_table, prepared_intro, prepared_table],
    )


if __name__ == "__main__":
    with common.session() as ctx:
        print(run(ctx))
