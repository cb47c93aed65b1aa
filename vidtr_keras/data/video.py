"""Reading frames by index from video files (mp4, avi, mkv, webm, ...) with OpenCV.

OpenCV's frame seeking (`CAP_PROP_POS_FRAMES`) is not frame-exact for every codec and container, so
`VideoReader.read` decodes sequentially from the first frame and keeps the frames it was asked for:
frame `i` is always the `i`-th decoded frame, as decord (the official loader's library) returns it.
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

import os

import numpy as np

# Files smaller than this hold no decodable frame in any container we know; the official loader skips
# them too ("avoid hanging issue"), and some OpenCV builds hang on truncated headers.
MIN_VIDEO_BYTES = 64


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


class VideoReader:
    """Frames of one video file by index, as RGB uint8 arrays.

    Args:
        path: the video file.
        exact_count: count the frames by decoding the whole stream instead of trusting the
            container's frame count (slower; containers such as webm often state none).

    Attributes:
        num_frames: frames in the video (container count, or exact after `count_frames()`, or
            corrected to what could be decoded after a read that ran past the end).
        height, width: frame size in pixels.
        fps: frames per second stated by the container (0 when unknown).

    Raises:
        FileNotFoundError: the file does not exist.
        VideoDecodeError: it exists but holds no decodable frame (empty, corrupt, not a video).
    """

    def __init__(self, path, exact_count=False):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"No video at {self.path!r}.")
        if os.path.isdir(self.path):
            raise VideoDecodeError(self.path, "it is a directory")
        size = os.path.getsize(self.path)
        if size < MIN_VIDEO_BYTES:
            raise VideoDecodeError(self.path, f"the file is {size} bytes long" + (" (empty)" if size == 0 else ""))
        cv2 = _cv2()
        cap = self._open()
        try:
            stated = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            ok, frame = cap.read()
            if not ok or frame is None:
                raise VideoDecodeError(self.path, "no frame could be decoded (corrupt, empty or not a video)")
            self.height, self.width = int(frame.shape[0]), int(frame.shape[1])
        finally:
            cap.release()
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

    def count_frames(self):
        """Decodes the whole stream once and sets `num_frames` to the exact count."""
        cap = self._open()
        count = 0
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

    def read(self, indices):
        """Frames `indices` (any order, repeats allowed) as a (len(indices), H, W, 3) RGB uint8 array.

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
        wanted = np.unique(indices)
        last = int(wanted[-1])
        found = {}
        cap = self._open()
        try:
            position, next_wanted = 0, 0
            while position <= last:
                if not cap.grab():
                    self.num_frames = position
                    self.count_is_exact = True
                    if position == 0:
                        raise VideoDecodeError(self.path, "no frame could be decoded")
                    raise TruncatedVideoError(self.path, position, last)
                if position == wanted[next_wanted]:
                    ok, frame = cap.retrieve()
                    if not ok or frame is None:
                        raise VideoDecodeError(self.path, f"frame {position} could not be decoded")
                    if frame.shape[:2] != (self.height, self.width):
                        raise VideoDecodeError(
                            self.path,
                            f"frame {position} is {frame.shape[1]}x{frame.shape[0]}, the first was "
                            f"{self.width}x{self.height}",
                        )
                    found[position] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                    next_wanted += 1
                position += 1
        finally:
            cap.release()
        return np.stack([found[int(i)] for i in indices])

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
        cap = self._open()
        position = 0
        try:
            while cap.grab():
                if keep is None or keep(position):
                    ok, frame = cap.retrieve()
                    if not ok or frame is None:
                        raise VideoDecodeError(self.path, f"frame {position} could not be decoded")
                    if frame.shape[:2] != (self.height, self.width):
                        raise VideoDecodeError(
                            self.path,
                            f"frame {position} is {frame.shape[1]}x{frame.shape[0]}, the first was "
                            f"{self.width}x{self.height}",
                        )
                    yield position, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
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
        cap = self._open()
        frames = []
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
    "MIN_VIDEO_BYTES",
    "VIDEO_EXTENSIONS",
    "TruncatedVideoError",
    "VideoDecodeError",
    "VideoReader",
    "find_videos",
    "read_sampled",
]
