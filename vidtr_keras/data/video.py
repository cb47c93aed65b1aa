"""Reading frames by index from video files (mp4, avi, mkv, webm, ...) with OpenCV.

The contract: frame `i` is the `i`-th frame that sequential decoding from the start of the stream
yields, as decord (the official loader's library) returns it. OpenCV's frame seeking
(`CAP_PROP_POS_FRAMES`) maps a frame number to a time stamp with the container's frame rate, which is
not the decoded index for every file (variable frame rates, gaps, edit lists), so `VideoReader.read`
only seeks where the file has been checked:

- without seeking it decodes front to back from where its decoder stands (grab without retrieve for
  the frames it does not keep; only kept frames are converted to RGB);
- the first sequential read of a file of more than `2 * seek_gap` frames (stated) that has more than
  one key frame decodes on to the end once and records every frame's time stamp, then seeks back to
  two frames it kept and compares time stamp and pixels with the sequential decode. When they agree,
  later reads (by any reader of that file in the process) jump over gaps of at least `seek_gap` frames
  by seeking when a key frame lies in the gap (OpenCV seeks to the key frame before the target and
  decodes forward), and check the time stamp of every frame they keep against the recorded one; on
  any disagreement the file is marked not seekable and the read is done again sequentially. A wrong
  frame is never returned. Where the key frames are is read from the container's packets without
  decoding (OpenCV's raw stream mode); it only decides whether a seek saves work.
- the reader keeps its decoder open between calls: the frame decoded to check the file when the
  reader was made is the first frame of the first read, and a later read that starts at or after the
  decoder's position continues from there.

The frame count comes from the container when it states one and is corrected when the stream ends
sooner (`VideoReader.num_frames` is then the number actually decoded).

Example:
>>> reader = VideoReader("clip.mp4")
>>> frames = reader.read([0, 8, 16])  # (3, height, width, 3) uint8, RGB
>>> for index, frame in reader.stream(keep=lambda i: i % 8 == 0):  # one pass, one frame in memory
...     pass

`VideoReader.stream` is the long-video path: one decoding pass, front to back, holding one frame at a
time (`vidtr_keras.apps.timeline` and `vidtr_keras.apps.features` slide their windows over it).
"""

import collections
import os
import threading

import numpy as np

# Files smaller than this hold no decodable frame in any container we know; the official loader skips
# them too ("avoid hanging issue"), and some OpenCV builds hang on truncated headers.
MIN_VIDEO_BYTES = 64
# A read seeks only over a gap of at least this many frames (and only when a key frame lies in it):
# OpenCV's seek (cap_ffmpeg_impl.hpp, CvCapture_FFMPEG::seek) lands on the key frame at or before
# target - SEEK_BACK and decodes forward from there, so a short gap gains little.
SEEK_GAP = 32
SEEK_BACK = 16
# Seek tables (every frame's time stamp) of this many files are kept per process, most recent first.
MAX_SEEK_TABLES = 256


class VideoDecodeError(ValueError):
    """A video that cannot be opened or holds no decodable frame; the message names the file."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"Cannot decode video {self.path!r}: {reason}")


class TruncatedVideoError(VideoDecodeError):
    """The stream ended before a requested frame; `frames_decoded` frames exist."""

    def __init__(self, path, frames_decoded, wanted):
        self.frames_decoded = int(frames_decoded)
        super().__init__(path, f"the stream ends after {frames_decoded} frames (frame {wanted} requested)")


def _cv2():
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Reading videos needs OpenCV: pip install opencv-python-headless (a dependency of vidtr-keras)."
        ) from err
    return cv2


class _SeekMismatch(Exception):
    """A frame reached by seeking is not the frame sequential decoding gives at that index."""


class SeekTable:
    """The time stamp (ms, as OpenCV reports it) of every frame of a file in decoding order, recorded
    by one sequential pass; a seek lands on frame i when the frame it yields carries stamp i."""

    def __init__(self, timestamps, key_frames=None):
        self.timestamps = np.asarray(timestamps, np.float64)
        # packet indices of the key frames (None: unknown); only used to decide whether to seek
        self.key_frames = None if key_frames is None else np.asarray(key_frames, np.int64)
        gaps = np.diff(self.timestamps)
        # Stamps that do not increase strictly cannot tell frames apart: no seeking in such a file.
        self.usable = self.timestamps.size > 1 and bool((gaps > 0).all())
        self.tolerance = float(gaps.min()) / 4 if self.usable else 0.0

    @property
    def num_frames(self):
        return int(self.timestamps.size)

    def saves_work(self, position, target):
        """Whether seeking from `position` to `target` starts decoding after `position` (a key frame
        lies between them); True when the key frames are unknown."""
        if self.key_frames is None:
            return True
        before = self.key_frames[self.key_frames <= max(0, target - SEEK_BACK)]
        return before.size > 0 and int(before[-1]) > position

    def matches(self, index, stamp):
        return 0 <= index < self.timestamps.size and abs(stamp - self.timestamps[index]) <= self.tolerance


_TABLES = collections.OrderedDict()  # file key -> SeekTable (seeking checked) or False (not seekable)
_TABLES_LOCK = threading.Lock()


def _key_frames(path):
    """Indices of the packets flagged as key frames, read in OpenCV's raw stream mode (demuxing, no
    decoding); None when the backend has no raw mode."""
    cv2 = _cv2()
    flag = getattr(cv2, "CAP_PROP_LRF_HAS_KEY_FRAME", None)
    cap = cv2.VideoCapture(path)
    try:
        if flag is None or not cap.isOpened() or not cap.set(cv2.CAP_PROP_FORMAT, -1):
            return None
        keys, index = [], 0
        while cap.grab():
            if cap.get(flag):
                keys.append(index)
            index += 1
        return keys
    finally:
        cap.release()


def _file_key(path):
    stat = os.stat(path)
    return (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)


def _cached_table(key):
    with _TABLES_LOCK:
        if key in _TABLES:
            _TABLES.move_to_end(key)
        return _TABLES.get(key)


def _store_table(key, table):
    with _TABLES_LOCK:
        _TABLES[key] = table
        _TABLES.move_to_end(key)
        while len(_TABLES) > MAX_SEEK_TABLES:
            _TABLES.popitem(last=False)


def clear_seek_tables():
    """Forgets every file's seek table (the next long read of each file records it again)."""
    with _TABLES_LOCK:
        _TABLES.clear()


class VideoReader:
    """Frames of one video file by index, as RGB uint8 arrays.

    Args:
        path: the video file.
        exact_count: count the frames by decoding the whole stream instead of trusting the
            container's frame count (slower; containers such as webm often state none).
        seek_gap: a read seeks over gaps of at least this many frames in a file whose seeking has
            been checked (see the module docstring); None never seeks (purely sequential decoding).

    Attributes:
        num_frames: frames in the video (container count, or exact after `count_frames()`, or
            corrected to what could be decoded after a read that ran past the end).
        height, width: frame size in pixels.
        fps: frames per second stated by the container (0 when unknown).

    The reader holds an open decoder between calls; `close()` (or a `with` block) releases it early.

    Raises:
        FileNotFoundError: the file does not exist.
        VideoDecodeError: it exists but holds no decodable frame (empty, corrupt, not a video).
    """

    def __init__(self, path, exact_count=False, seek_gap=SEEK_GAP):
        self.path = os.fspath(path)
        self._cap = None
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"No video at {self.path!r}.")
        if os.path.isdir(self.path):
            raise VideoDecodeError(self.path, "it is a directory")
        size = os.path.getsize(self.path)
        if size < MIN_VIDEO_BYTES:
            raise VideoDecodeError(self.path, f"the file is {size} bytes long" + (" (empty)" if size == 0 else ""))
        if seek_gap is not None and int(seek_gap) < 1:
            raise ValueError(f"seek_gap must be >= 1 or None, got {seek_gap!r}.")
        self.seek_gap = None if seek_gap is None else int(seek_gap)
        self._lock = threading.Lock()
        self._key = _file_key(self.path)
        cv2 = _cv2()
        cap = self._open()
        try:
            stated = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            ok, frame = cap.read()
            if not ok or frame is None:
                raise VideoDecodeError(self.path, "no frame could be decoded (corrupt, empty or not a video)")
            first_stamp = float(cap.get(cv2.CAP_PROP_POS_MSEC))
        except BaseException:
            cap.release()
            raise
        self.height, self.width = int(frame.shape[0]), int(frame.shape[1])
        # The decoder stays open after the first frame: the first read starts from it.
        self._cap, self._position, self._first, self._first_stamp = cap, 1, frame, first_stamp
        self._stated = stated
        self.count_is_exact = False
        self.num_frames = stated if stated > 0 else None
        if exact_count or self.num_frames is None:
            self.count_frames()

    def _open(self):
        cv2 = _cv2()
        cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            cap.release()
            raise VideoDecodeError(self.path, "OpenCV cannot open it (corrupt, empty or not a video)")
        return cap

    def _take(self, start):
        """(decoder, position of its next frame, frame 0 when position is 1 and it is held) for a pass
        that starts at frame `start`: the held decoder when it has not passed `start`, else a new one."""
        with self._lock:
            cap, position, first = self._cap, getattr(self, "_position", 0), getattr(self, "_first", None)
            self._cap, self._first = None, None
        if cap is not None and first is not None and position == 1:
            return cap, 1, first  # frame 0 is at hand, the decoder is on frame 1
        if cap is not None and position <= start:
            return cap, position, None
        if cap is not None:
            cap.release()
        return self._open(), 0, None

    def _keep(self, cap, position):
        with self._lock:
            held, self._cap, self._position = self._cap, cap, position
        if held is not None:
            held.release()

    def close(self):
        """Releases the decoder the reader holds (a later call opens the file again)."""
        with self._lock:
            cap, self._cap, self._first = self._cap, None, None
        if cap is not None:
            cap.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()

    @property
    def seekable(self):
        """True when seeking in this file has been checked exact, False when the reader does not seek
        in it (found inexact, or a single key frame), None when not known yet (no long read of the file
        in this process)."""
        table = _cached_table(self._key)
        return None if table is None else bool(table)

    def count_frames(self):
        """Decodes the whole stream once and sets `num_frames` to the exact count."""
        cap, count, _ = self._take(0)
        try:
            while cap.grab():
                count += 1
        finally:
            cap.release()
        if count == 0:
            raise VideoDecodeError(self.path, "no frame could be decoded")
        self.num_frames = count
        self.count_is_exact = True
        return count

    def _truncated(self, position, last):
        self.num_frames = position
        self.count_is_exact = True
        if position == 0:
            raise VideoDecodeError(self.path, "no frame could be decoded")
        raise TruncatedVideoError(self.path, position, last)

    def _retrieve(self, cap, position):
        ok, frame = cap.retrieve()
        if not ok or frame is None:
            raise VideoDecodeError(self.path, f"frame {position} could not be decoded")
        if frame.shape[:2] != (self.height, self.width):
            raise VideoDecodeError(
                self.path,
                f"frame {position} is {frame.shape[1]}x{frame.shape[0]}, the first was {self.width}x{self.height}",
            )
        return frame

    def read(self, indices):
        """Frames `indices` (any order, repeats allowed) as a (len(indices), H, W, 3) RGB uint8 array,
        decoded in one pass over the union of the indices.

        Raises:
            TruncatedVideoError: the stream ended before the largest index (`num_frames` is then
                corrected to the frames that exist, so the caller can re-sample).
            VideoDecodeError: a frame in the middle of the stream could not be decoded.
        """
        cv2 = _cv2()
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size == 0:
            return np.zeros((0, self.height, self.width, 3), np.uint8)
        if indices.min() < 0:
            raise ValueError(f"Negative frame index {int(indices.min())} for {self.path!r}.")
        wanted = [int(i) for i in np.unique(indices)]
        table = _cached_table(self._key) if self.seek_gap is not None else None
        if table and wanted[-1] >= table.num_frames:  # what decoding to the end would find
            self._truncated(table.num_frames, wanted[-1])
        try:
            found = self._decode(wanted, table or None)
        except _SeekMismatch:
            _store_table(self._key, False)
            found = self._decode(wanted, None)
        return np.stack([cv2.cvtColor(found[int(i)], cv2.COLOR_BGR2RGB) for i in indices])

    def _decode(self, wanted, table):
        """{index: BGR frame} for the sorted `wanted` indices; seeks only with a checked `table`."""
        cv2 = _cv2()
        cap, position, first = self._take(wanted[0])
        record, keys = None, None
        if (
            table is None
            and self.seek_gap is not None
            and position <= 1
            and self._stated > 2 * self.seek_gap
            and _cached_table(self._key) is None
        ):
            keys = _key_frames(self.path)
            if keys is not None and len(keys) < 2:  # one key frame: every seek decodes from the start
                _store_table(self._key, False)
            else:
                record = [self._first_stamp] if position == 1 else []
            # frames kept to check seeking against once the table is recorded
            checks = {self._stated // 2: None, self._stated * 3 // 4: None}
        found = {}
        try:
            if first is not None and wanted[0] == 0:
                found[0] = first
            for target in wanted:
                if target in found:
                    continue
                if table is not None and target - position >= self.seek_gap and table.saves_work(position, target):
                    if not cap.set(cv2.CAP_PROP_POS_FRAMES, target):
                        raise _SeekMismatch()
                    position = target
                while position <= target:
                    if not cap.grab():
                        if table is not None:  # the table says the frame exists
                            raise _SeekMismatch()
                        self._truncated(position, wanted[-1])
                    if record is not None:
                        record.append(float(cap.get(cv2.CAP_PROP_POS_MSEC)))
                        if position in checks:
                            checks[position] = self._retrieve(cap, position).copy()
                    position += 1
                if table is not None and not table.matches(target, float(cap.get(cv2.CAP_PROP_POS_MSEC))):
                    raise _SeekMismatch()
                found[target] = self._retrieve(cap, target)
            if record is not None:
                position = self._record_table(cap, position, record, checks, keys)
        except BaseException:
            cap.release()
            raise
        if position is None:  # the decoder stands somewhere unknown: the next read opens the file again
            cap.release()
        else:
            self._keep(cap, position)
        return found

    def _record_table(self, cap, position, record, checks, keys):
        """Decodes on to the end recording time stamps, checks seeking against the frames kept in
        `checks` and stores the file's table (or False). Returns the decoder's position (None when a
        failed check left it unknown)."""
        cv2 = _cv2()
        while cap.grab():
            record.append(float(cap.get(cv2.CAP_PROP_POS_MSEC)))
            if position in checks:
                checks[position] = self._retrieve(cap, position).copy()
            position += 1
        table = SeekTable(record, keys)
        verified = table.usable and all(frame is not None for frame in checks.values())
        for index, frame in checks.items():
            if not verified:
                break
            verified = (
                bool(cap.set(cv2.CAP_PROP_POS_FRAMES, index))
                and cap.grab()
                and table.matches(index, float(cap.get(cv2.CAP_PROP_POS_MSEC)))
                and np.array_equal(self._retrieve(cap, index), frame)
            )
            position = index + 1
        _store_table(self._key, table if verified else False)
        return position if verified else None

    def stream(self, keep=None):
        """Decodes the video once, front to back, yielding `(index, frame)` for every frame that
        `keep(index)` accepts (all frames when `keep` is None), as RGB uint8 (H, W, 3).

        Only the frame being yielded is held, so memory does not grow with the video's length (the
        frames `keep` rejects are decoded but never converted or copied). When the stream ends,
        `num_frames` becomes the number of frames decoded (`count_is_exact`). Stopping the generator
        early releases the decoder.

        Raises:
            VideoDecodeError: no frame could be decoded, a frame could not be retrieved, or a frame
                has another size than the first.
        """
        cv2 = _cv2()
        cap, position, first = self._take(0)
        try:
            if first is not None and (keep is None or keep(0)):
                yield 0, cv2.cvtColor(first, cv2.COLOR_BGR2RGB)
            while cap.grab():
                if keep is None or keep(position):
                    yield position, cv2.cvtColor(self._retrieve(cap, position), cv2.COLOR_BGR2RGB)
                position += 1
        finally:
            cap.release()
        if position == 0:
            raise VideoDecodeError(self.path, "no frame could be decoded")
        self.num_frames = position
        self.count_is_exact = True

    def read_all(self):
        """Every frame, (num_frames, H, W, 3) RGB uint8 (also makes `num_frames` exact)."""
        cv2 = _cv2()
        cap, position, first = self._take(0)
        frames = [] if first is None else [cv2.cvtColor(first, cv2.COLOR_BGR2RGB)]
        try:
            while True:
                ok, frame = cap.read()
                if not ok or frame is None:
                    break
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        finally:
            cap.release()
        if not frames:
            raise VideoDecodeError(self.path, "no frame could be decoded")
        self.num_frames = len(frames)
        self.count_is_exact = True
        return np.stack(frames)

    def __repr__(self):
        exact = "" if self.count_is_exact else " (container count)"
        size = f"{self.width}x{self.height}"
        return f"VideoReader({self.path!r}: {self.num_frames} frames{exact}, {size}, {self.fps:g} fps)"


def read_sampled(reader, sampler):
    """Frames chosen by `sampler(num_frames)` (an index array of any shape), re-sampled once with the
    true frame count when the container over-stated it. Returns (frames of shape indices.shape + (H, W, 3),
    the indices used)."""
    indices = np.asarray(sampler(reader.num_frames))
    try:
        frames = reader.read(indices.reshape(-1))
    except TruncatedVideoError:
        indices = np.asarray(sampler(reader.num_frames))  # num_frames is now what exists
        frames = reader.read(indices.reshape(-1))
    return frames.reshape(indices.shape + frames.shape[1:]), indices


VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts")


def find_videos(folder):
    """Files under `folder` (recursively, sorted) whose extension is a video container's."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"No folder at {folder!r}.")
    found = []
    for directory, subdirs, files in os.walk(folder):
        subdirs.sort()
        found.extend(os.path.join(directory, f) for f in sorted(files) if f.lower().endswith(VIDEO_EXTENSIONS))
    return found


__all__ = [
    "MAX_SEEK_TABLES",
    "MIN_VIDEO_BYTES",
    "SEEK_GAP",
    "SeekTable",
    "VIDEO_EXTENSIONS",
    "TruncatedVideoError",
    "VideoDecodeError",
    "VideoReader",
    "clear_seek_tables",
    "find_videos",
    "read_sampled",
]
