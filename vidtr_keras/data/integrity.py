"""Finding the videos that would break or silently degrade a run, before the run (`vidtr check-videos`).

`check_videos` decodes every frame of every video in worker processes and gives each file one status,
the first of these that applies (a file can have several problems; all are listed):

- `missing`: no such file;
- `unreadable`: empty, not a video, or no frame decodes (also: the decoder crashed or hung on it);
- `truncated`: fewer frames decode than the container's header states (a cut download or copy);
- `corrupt`: the decoder reported errors while decoding (damaged bytes: FFV1 slice CRC mismatches,
  MPEG-4 "ac-tex damaged", ...), even if every frame came out;
- `count_mismatch`: more frames decode than the header states, or another count than the
  annotation list states (`path num_frames label` lists); samplers that trust those counts pick
  the wrong frames;
- `too_short`: fewer frames than one clip window needs (`min_frames`, clip_len x rate: 64 for every
  released model); its clips repeat frames;
- `ok`.

Decoding runs in separate processes: decoders crash or hang on damaged files (the official loader
skips files under a few bytes for that reason), and a worker process confines that to the file that
caused it, which is then reported as unreadable. The workers run this file as a script, so they
import only the standard library and OpenCV, not Keras, and they capture the FFmpeg decoder's error
messages (OpenCV prints them when `OPENCV_FFMPEG_DEBUG` is set), which is how damaged bytes that
still decode into frames are found. `workers=0` decodes in this process instead (no decoder
messages, no crash protection).

This module imports only the standard library at module level (see above); the rest of the package
is imported inside the functions the parent process calls.

Example:
>>> report = check_videos(collect_videos("videos/"), min_frames=64, workers=2)
>>> report.failed  # [{'path': 'videos/cut.mp4', 'status': 'truncated', 'problems': [...], ...}]
>>> move_bad(report, "quarantine/")
"""

import concurrent.futures
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

STATUSES = ("missing", "unreadable", "truncated", "corrupt", "count_mismatch", "too_short", "ok")
LIST_EXTENSIONS = (".txt", ".csv", ".lst", ".list")
DEFAULT_MIN_FRAMES = 64  # the window of every released model: 8 x 8, 16 x 4, 32 x 2 frames
MIN_VIDEO_BYTES = 64  # as `video.MIN_VIDEO_BYTES` (not imported: the workers import no package module)
_LOG_PREFIX = "[OPENCV:FFMPEG:"
_MAX_MESSAGES = 8


# --------------------------------------------------------------------------------------------------
# Decoding one file (runs in the worker processes)


def probe_video(path, capture_messages=False):
    """Decodes every frame of one file; a JSON-able dict of what happened (no judgement yet).

    Keys: path, bytes, opened, header_frames (None when the container states none), decoded_frames,
    fps, width, height, error (why nothing decoded, else None), messages (the decoder's error
    messages, None when not captured), seconds.
    """
    start = time.perf_counter()
    result = {
        "path": path,
        "bytes": None,
        "opened": False,
        "header_frames": None,
        "decoded_frames": 0,
        "fps": None,
        "width": None,
        "height": None,
        "error": None,
        "messages": [] if capture_messages else None,
        "seconds": 0.0,
    }
    if not os.path.exists(path):
        result["error"] = "missing"
        return result
    if os.path.isdir(path):
        result["error"] = "it is a directory"
        return result
    result["bytes"] = size = os.path.getsize(path)
    if size < MIN_VIDEO_BYTES:
        result["error"] = "empty file (0 bytes)" if size == 0 else f"{size} bytes: too small to hold a frame"
        return result
    if not capture_messages:
        _decode(path, result)
    else:  # FFmpeg's messages go through OpenCV's logger to stdout / stderr: catch them in a file
        with tempfile.TemporaryFile() as log:
            sys.stdout.flush()
            sys.stderr.flush()
            saved = os.dup(1), os.dup(2)
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                _decode(path, result)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
            log.seek(0)
            text = log.read().decode("utf-8", errors="replace")
        messages = []
        for line in text.splitlines():
            line = line.strip()
            if line.startswith(_LOG_PREFIX):
                line = line.split("]", 1)[1].strip()
            if line and line not in messages and len(messages) < _MAX_MESSAGES:
                messages.append(line)
        result["messages"] = messages
    result["seconds"] = round(time.perf_counter() - start, 4)
    return result


def _decode(path, result):
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            result["error"] = "OpenCV cannot open it (not a video, or its header is damaged)"
            return
        result["opened"] = True
        stated = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        result["header_frames"] = stated if stated > 0 else None
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        result["fps"] = fps if fps > 0 else None
        result["width"] = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None
        result["height"] = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None
        count = 0
        while cap.grab():  # grab() decodes (only the colour conversion of retrieve() is skipped)
            count += 1
        result["decoded_frames"] = count
        if count == 0:
            result["error"] = "no frame decodes"
    finally:
        cap.release()


def _worker_main():
    """`python integrity.py --worker`: a JSON list of paths on stdin, one JSON result per line out."""
    os.environ["OPENCV_FFMPEG_DEBUG"] = "1"
    os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "16"  # AV_LOG_ERROR: errors only, not warnings
    out = os.fdopen(os.dup(1), "w")
    paths = json.loads(sys.stdin.read())
    for path in paths:
        out.write(json.dumps(probe_video(path, capture_messages=True)) + "\n")
        out.flush()
    return 0


# --------------------------------------------------------------------------------------------------
# The parent: worker processes, judgement, report


def _crashed(path, reason):
    result = dict.fromkeys(("bytes", "header_frames", "fps", "width", "height", "messages", "seconds"))
    result.update(path=path, opened=False, decoded_frames=0, error=reason)
    if os.path.isfile(path):
        result["bytes"] = os.path.getsize(path)
    return result


def _worker_command():
    """The command line of a worker process: this file run as a script (no package import)."""
    return [sys.executable, os.path.abspath(__file__), "--worker"]


def _run_chunk(paths, timeout):
    """Probes of `paths` in one worker process; a crash or hang is charged to the file being decoded
    and the files after it get a new worker."""
    results = []
    while len(results) < len(paths):
        todo = paths[len(results) :]
        proc = subprocess.Popen(
            _worker_command(),
            # Unbuffered: the decoder's messages reach the worker's capture file before it is read
            # (with a buffered worker they were lost and damaged bytes went unreported).
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        reason = None
        try:
            out, err = proc.communicate(json.dumps(todo), timeout=timeout * len(todo))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            reason = f"decoding took longer than {timeout:g} s (the decoder hangs on it?)"
        done = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        results.extend(done)
        if len(done) < len(todo):
            if reason is None:
                code = proc.returncode
                how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                tail = err.strip().splitlines()[-1:] if err else []
                reason = f"the decoder crashed on it ({how}{': ' + tail[0] if tail else ''})"
            results.append(_crashed(todo[len(done)], reason))
    return results


@dataclasses.dataclass
class VideoEntry:
    """A file to check: its path as given, the file to open, and the frame count a list states."""

    path: str
    file: str
    listed_frames: int = None
    where: str = None


def collect_videos(source, root=None):
    """The videos named by `source`: a folder (its video files, recursively), a list file (`.txt`,
    `.csv`, `.lst`: official `path num_frames label` lines, `path,label` CSV or one path per line;
    paths relative to `root`, default the list's folder) or one video file. Returns `VideoEntry`s.

    Raises:
        FileNotFoundError: `source` does not exist; ValueError: a list that names no video.
    """
    from vidtr_keras.data.video import find_videos

    source = os.fspath(source)
    if os.path.isdir(source):
        return [VideoEntry(os.path.relpath(p, source), p) for p in find_videos(source)]
    if not os.path.exists(source):
        raise FileNotFoundError(f"No video, list or folder at {source!r}.")
    if not source.lower().endswith(LIST_EXTENSIONS):
        return [VideoEntry(source, source)]
    root = os.path.dirname(os.path.abspath(source)) if root is None else os.fspath(root)
    entries = []
    is_csv = source.lower().endswith(".csv")
    with open(source, encoding="utf-8", newline="") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if is_csv:
                import csv

                fields = next(csv.reader([line]))
                if number == 1 and fields and fields[0].strip().lower() == "path":
                    continue
                path, listed = fields[0].strip(), None
            else:
                fields = line.split()
                path = fields[0]
                listed = int(fields[1]) if len(fields) >= 3 and fields[1].isdigit() else None
            file = path if os.path.isabs(path) else os.path.join(root, path)
            entries.append(VideoEntry(path, file, listed, f"{source}:{number}"))
    if not entries:
        raise ValueError(f"The list {source!r} names no video.")
    return entries


def judge(probe, min_frames=DEFAULT_MIN_FRAMES, listed_frames=None, count_tolerance=0):
    """(status, problems) of one probe (see the module docstring for the statuses)."""
    if probe["error"] == "missing":
        return "missing", ["no such file"]
    if probe["error"] is not None:
        detail = "; ".join(probe["messages"] or [])
        return "unreadable", [probe["error"] + (f" (decoder: {detail})" if detail else "")]
    found = []
    decoded, header = probe["decoded_frames"], probe["header_frames"]
    messages = probe["messages"] or []
    decoder = f" (decoder: {'; '.join(messages)})" if messages else ""
    if header is not None and decoded < header - count_tolerance:
        found.append(("truncated", f"{decoded} of the {header} frames its header states decode{decoder}"))
    elif messages:
        found.append(("corrupt", f"the decoder reported errors: {'; '.join(messages)}"))
    if header is not None and decoded > header + count_tolerance:
        found.append(("count_mismatch", f"{decoded} frames decode; its header states {header}"))
    if listed_frames is not None and abs(decoded - listed_frames) > count_tolerance:
        found.append(("count_mismatch", f"{decoded} frames decode; the list states {listed_frames}"))
    if min_frames and decoded < min_frames:
        found.append(("too_short", f"{decoded} frames, fewer than the {min_frames} one clip window needs"))
    if not found:
        return "ok", []
    status = min((s for s, _ in found), key=STATUSES.index)
    return status, [text for _, text in found]


@dataclasses.dataclass
class CheckReport:
    """What `check_videos` found.

    Attributes:
        results: one dict per video, in input order: path (as given), file, status, problems, and the
            probe's numbers (bytes, header_frames, decoded_frames, listed_frames, fps, width, height,
            messages, seconds), plus `moved_to` after `move_bad`.
        settings: min_frames, count_tolerance, workers.
    """

    results: list
    settings: dict

    @property
    def failed(self):
        return [r for r in self.results if r["status"] != "ok"]

    @property
    def ok(self):
        return not self.failed

    def counts(self):
        """{status: number of videos} for every status that occurs, in `STATUSES` order."""
        counts = dict.fromkeys(STATUSES, 0)
        for r in self.results:
            counts[r["status"]] += 1
        return {s: n for s, n in counts.items() if n}

    def to_dict(self):
        return {
            "summary": {"videos": len(self.results), "failed": len(self.failed), "by_status": self.counts()},
            "settings": self.settings,
            "videos": self.results,
        }


def check_videos(
    entries,
    min_frames=DEFAULT_MIN_FRAMES,
    count_tolerance=0,
    workers=2,
    timeout=120.0,
    chunk_size=None,
    progress=None,
):
    """Decodes every video and judges it (see the module docstring).

    Args:
        entries: `VideoEntry`s (`collect_videos`) or paths.
        min_frames: a video with fewer frames is `too_short` (clip_len x rate; 0 turns it off).
        count_tolerance: frame-count differences up to this are not reported.
        workers: worker processes (0: decode in this process, without decoder messages).
        timeout: seconds one video may take before its decoder counts as hung (a worker process
            gets `timeout` x its videos; when it runs out, the video it was decoding is charged).
        chunk_size: videos per worker process (default: an even share, at most 16).
        progress: optional callable `progress(videos_done, videos_total)`.

    Returns:
        a `CheckReport`.
    """
    entries = [e if isinstance(e, VideoEntry) else VideoEntry(os.fspath(e), os.fspath(e)) for e in entries]
    if int(workers) < 0:
        raise ValueError(f"`workers` must be >= 0, got {workers}.")
    if int(min_frames) < 0 or int(count_tolerance) < 0:
        raise ValueError(f"`min_frames` and `count_tolerance` must be >= 0, got {min_frames}, {count_tolerance}.")
    if float(timeout) <= 0:
        raise ValueError(f"`timeout` must be positive, got {timeout}.")
    files = [e.file for e in entries]
    probes = {}
    total = len(files)
    if workers == 0:
        for i, file in enumerate(files):
            probes[i] = probe_video(file)
            if progress is not None:
                progress(i + 1, total)
    elif files:
        size = chunk_size or max(1, min(16, -(-total // (4 * int(workers)))))
        chunks = [list(range(i, min(i + size, total))) for i in range(0, total, size)]
        done = 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=int(workers)) as pool:
            futures = {pool.submit(_run_chunk, [files[i] for i in chunk], float(timeout)): chunk for chunk in chunks}
            for future in concurrent.futures.as_completed(futures):
                for i, probe in zip(futures[future], future.result()):
                    probes[i] = probe
                done += len(futures[future])
                if progress is not None:
                    progress(done, total)
    results = []
    for i, entry in enumerate(entries):
        probe = probes[i]
        status, problems = judge(probe, int(min_frames), entry.listed_frames, int(count_tolerance))
        result = {"path": entry.path, "file": entry.file, "status": status, "problems": problems}
        if entry.where:
            result["line"] = entry.where
        result["listed_frames"] = entry.listed_frames
        result.update({k: v for k, v in probe.items() if k not in ("path", "error", "opened")})
        results.append(result)
    settings = {"min_frames": int(min_frames), "count_tolerance": int(count_tolerance), "workers": int(workers)}
    return CheckReport(results, settings)


def move_bad(report, directory):
    """Moves every failed video that exists into `directory`, keeping its path as given when that is
    relative (else its file name), never overwriting (a suffix `_1`, `_2`, ... is added); sets
    `moved_to` in its result. Returns [(from, to)]."""
    directory = os.fspath(directory)
    moved = []
    for result in report.failed:
        source = result["file"]
        if result["status"] == "missing" or not os.path.isfile(source):
            continue
        relative = result["path"]
        if os.path.isabs(relative) or relative.startswith(".."):
            relative = os.path.basename(source)
        target = os.path.join(directory, relative)
        stem, extension = os.path.splitext(target)
        n = 0
        while os.path.exists(target):
            n += 1
            target = f"{stem}_{n}{extension}"
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        shutil.move(source, target)
        result["moved_to"] = target
        moved.append((source, target))
    return moved


__all__ = [
    "DEFAULT_MIN_FRAMES",
    "STATUSES",
    "CheckReport",
    "VideoEntry",
    "check_videos",
    "collect_videos",
    "judge",
    "move_bad",
    "probe_video",
]


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    sys.exit(_worker_main())
