"""Re-encoding a video collection once at the training resolution (`vidtr prepare-videos`).

Training decodes every frame up to the last one a clip needs, and then resizes it to the training short
side (256 for a 224 crop); a collection stored at 720p or 1080p decodes many times the pixels it uses, on
every epoch. `prepare_videos` decodes each video once, resizes every frame so that its short side is
`short_side` (aspect kept, never enlarged), and writes it again:

- every decoded frame is written, at the input's frame rate, so "frame i" (the i-th decoded frame, the
  contract of `VideoReader`) and the frame counts of annotation lists stay valid; the output is decoded
  again and its frame count checked against the input's decoded count (a mismatch is reported);
- the folder structure is kept: `SRC/a/b.mp4` -> `DST/a/b.avi` (the extension is the codec's);
- the default codec is MPEG-4 part 2 in MP4 (`mp4v`): OpenCV's pip wheels write it (they have no H.264
  encoder), and measured on the real H.264 fixture (spec_tests/fixtures/video) brought to a 256 short side
  it decodes faster than Motion JPEG (`mjpg`, .avi) at a quarter of its size, with one decoding thread (a
  loader decodes in several workers at once) and with FFmpeg's default threads; OpenCV's FFmpeg writer
  puts a key frame every 12 frames, so a reader that seeks to a late window decodes at most 11 frames
  before it. `mjpg` makes every frame a key frame; `ffv1` (.mkv) is lossless, large and slow to decode;
- each file is converted in one of `workers` worker processes that run this file as a script (only the standard library,
  NumPy and OpenCV imported, as `integrity.py`'s workers): a decoder that crashes or hangs on a damaged
  file takes only that file down, and it is reported; nothing is skipped silently;
- an output is written under a temporary name and renamed when complete, so `skip_existing` can resume
  an interrupted preparation;
- annotation lists (official `path num_frames label` lines, `path,label` CSV) can be rewritten for the
  prepared files: the path's extension changes to the codec's; lines of broken videos are left out and
  reported.

Example:
>>> report = prepare_videos("kinetics/", "kinetics_256/", short_side=256, workers=4)
>>> report.failed  # [{'path': 'val/broken.mp4', 'status': 'unreadable', ...}]
>>> rewrite_list("kinetics/train.txt", "kinetics_256/train.txt", report)
"""

import dataclasses
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time

# codec name -> (FourCC, extension)
CODECS = {"mjpg": ("MJPG", ".avi"), "mp4v": ("mp4v", ".mp4"), "ffv1": ("FFV1", ".mkv")}
DEFAULT_CODEC = "mp4v"
STATUSES = ("missing", "unreadable", "write_failed", "count_mismatch", "existing", "ok")
BROKEN = ("missing", "unreadable", "write_failed", "count_mismatch")
DEFAULT_FPS = 30.0  # written when the container states no frame rate (the report says so)
MIN_VIDEO_BYTES = 64  # as `video.MIN_VIDEO_BYTES` (not imported: the workers import no package module)
_TMP = ".preparing"


def output_size(height, width, short_side):
    """(height, width) of a frame of `height` x `width` with its short side brought to `short_side`
    (never enlarged), the long side rounded to an even number (4:2:0 codecs need even sizes)."""
    short, long_ = min(height, width), max(height, width)
    if short <= short_side:
        new_short, new_long = short, long_
    else:
        new_short, new_long = short_side, long_ * short_side / short
    new_short = int(new_short) - int(new_short) % 2
    new_long = max(2, int(round(new_long / 2)) * 2)
    return (new_short, new_long) if height <= width else (new_long, new_short)


# --------------------------------------------------------------------------------------------------
# One file (runs in the worker processes)


def convert_video(source, output, short_side, codec=DEFAULT_CODEC):
    """Re-encodes one video (see the module docstring); a JSON-able dict of what happened.

    Keys: source, output, status (ok, missing, unreadable, write_failed, count_mismatch), error,
    frames_in (decoded), frames_out (decoded from the output), header_frames, fps, fps_stated,
    size_in and size_out ([height, width]), bytes_in, bytes_out, seconds.
    """
    import cv2

    start = time.perf_counter()
    result = {"source": source, "output": output, "status": "ok", "error": None, "frames_in": 0, "frames_out": None}
    result.update(dict.fromkeys(("header_frames", "fps", "fps_stated", "size_in", "size_out", "bytes_in")))
    result["bytes_out"] = None

    def fail(status, error):
        result.update(status=status, error=error, seconds=round(time.perf_counter() - start, 4))
        return result

    if not os.path.exists(source):
        return fail("missing", "no such file")
    result["bytes_in"] = size = os.path.getsize(source)
    if size < MIN_VIDEO_BYTES:
        return fail("unreadable", "empty file (0 bytes)" if size == 0 else f"{size} bytes: too small to hold a frame")
    fourcc, extension = CODECS[codec]
    if not output.lower().endswith(extension):
        raise ValueError(f"`output` must end with {extension} (the container of {codec}), got {output!r}.")
    temporary = output[: -len(extension)] + _TMP + extension
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    cap = cv2.VideoCapture(source)
    writer = None
    try:
        if not cap.isOpened():
            return fail("unreadable", "OpenCV cannot open it (not a video, or its header is damaged)")
        stated = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        result["header_frames"] = stated if stated > 0 else None
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        result["fps_stated"] = fps > 0
        result["fps"] = fps if fps > 0 else DEFAULT_FPS
        count = 0
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if writer is None:
                height, width = frame.shape[:2]
                new_h, new_w = output_size(height, width, short_side)
                result["size_in"], result["size_out"] = [height, width], [new_h, new_w]
                writer = cv2.VideoWriter(temporary, cv2.VideoWriter_fourcc(*fourcc), result["fps"], (new_w, new_h))
                if not writer.isOpened():
                    return fail("write_failed", f"OpenCV cannot write {codec} ({fourcc}) to {temporary!r}")
            if (new_h, new_w) != (height, width):
                # INTER_AREA: averaging over the source pixels, OpenCV's recommended filter for shrinking
                # (no aliasing); the training transform then resizes far less.
                frame = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA)
            writer.write(frame)
            count += 1
        result["frames_in"] = count
        if count == 0:
            return fail("unreadable", "no frame decodes")
    finally:
        cap.release()
        if writer is not None:
            writer.release()
        if result["status"] != "ok" and os.path.exists(temporary):
            os.remove(temporary)
    check = cv2.VideoCapture(temporary)
    written = 0
    try:
        while check.grab():
            written += 1
    finally:
        check.release()
    result["frames_out"] = written
    if written != count:
        os.remove(temporary)
        return fail("count_mismatch", f"{count} frames decoded from the input, {written} from its re-encoding")
    os.replace(temporary, output)
    result["bytes_out"] = os.path.getsize(output)
    result["seconds"] = round(time.perf_counter() - start, 4)
    return result


def _worker_main():
    """`python prepare.py --worker`: one JSON job per line on stdin, one JSON result per line out."""
    import cv2

    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would compete with them
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the decoder's messages (printed to stdout by some builds) must not mix with the results
    for line in sys.stdin:
        out.write(json.dumps(convert_video(**json.loads(line))) + "\n")
        out.flush()
    return 0


# --------------------------------------------------------------------------------------------------
# The parent: worker processes, report, lists


def _crashed(job, reason):
    result = {"source": job["source"], "output": job["output"], "status": "unreadable", "error": reason}
    result.update(dict.fromkeys(("frames_in", "frames_out", "header_frames", "fps", "fps_stated", "size_in")))
    result.update(dict.fromkeys(("size_out", "bytes_out", "seconds")))
    result["bytes_in"] = os.path.getsize(job["source"]) if os.path.isfile(job["source"]) else None
    extension = CODECS[job["codec"]][1]
    temporary = job["output"][: -len(extension)] + _TMP + extension
    if os.path.exists(temporary):
        os.remove(temporary)
    return result


def _start_worker():
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--worker"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _serve(jobs, timeout, done):
    """Takes (index, job) pairs from the queue `jobs` and converts them one at a time in a worker process,
    calling `done(index, result)`; a crash, or a file taking longer than `timeout` seconds, is charged to
    that file and the next one gets a new worker."""
    proc = None
    try:
        while True:
            try:
                index, job = jobs.get_nowait()
            except queue.Empty:
                return
            if proc is None:
                proc = _start_worker()
            proc.stdin.write(json.dumps(job) + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], timeout)
            line = proc.stdout.readline() if ready else ""
            if line:
                done(index, json.loads(line))
                continue
            if ready:  # end of output: the worker died on this file
                code = proc.wait()
                how = f"signal {-code}" if code < 0 else f"exit code {code}"
                reason = f"the decoder crashed on it ({how})"
            else:
                proc.kill()
                proc.wait()
                reason = f"converting took longer than {timeout:g} s (the decoder hangs on it?)"
            proc = None
            done(index, _crashed(job, reason))
    finally:
        if proc is not None:
            proc.stdin.close()
            proc.wait()


@dataclasses.dataclass
class PrepareReport:
    """What `prepare_videos` did.

    Attributes:
        results: one dict per video, in the order of the source folder: path (relative to the source),
            status (`STATUSES`), error, the input's and the output's frame counts, sizes and bytes.
        settings: source, destination, short_side, codec, workers.
    """

    results: list
    settings: dict

    @property
    def failed(self):
        return [r for r in self.results if r["status"] in BROKEN]

    @property
    def ok(self):
        return not self.failed

    def counts(self):
        """{status: number of videos} for every status that occurs, in `STATUSES` order."""
        counts = dict.fromkeys(STATUSES, 0)
        for r in self.results:
            counts[r["status"]] += 1
        return {s: n for s, n in counts.items() if n}

    def output_path(self, path):
        """The prepared file's path (relative, like `path`) for a source path relative to the source folder."""
        return os.path.splitext(path)[0] + CODECS[self.settings["codec"]][1]

    def to_dict(self):
        return {
            "summary": {"videos": len(self.results), "failed": len(self.failed), "by_status": self.counts()},
            "settings": self.settings,
            "videos": self.results,
        }


def prepare_videos(
    source,
    destination,
    short_side,
    codec=DEFAULT_CODEC,
    workers=2,
    timeout=600.0,
    skip_existing=False,
    progress=None,
):
    """Re-encodes every video under the folder `source` into `destination` (module docstring).

    Args:
        source: a folder (its video files, recursively).
        destination: the output folder (created; the source's sub-folders are kept).
        short_side: the short side of the output frames in px (a frame already smaller keeps its size).
        codec: one of `CODECS` (default `mp4v`).
        workers: worker processes (0: convert in this process, without crash protection).
        timeout: seconds one file may take before its decoder counts as hung.
        skip_existing: keep outputs that already exist (a complete file: outputs are renamed into place
            only when written and checked) instead of converting their videos again.
        progress: optional callable `progress(videos_done, videos_total)`.

    Returns:
        a `PrepareReport`; videos that could not be converted are in `report.failed`.
    """
    from vidtr_keras.data.video import find_videos

    source, destination = os.fspath(source), os.fspath(destination)
    if codec not in CODECS:
        raise ValueError(f"`codec` must be one of {', '.join(CODECS)}, got {codec!r}.")
    if int(short_side) < 2:
        raise ValueError(f"`short_side` must be at least 2 px, got {short_side}.")
    if int(workers) < 0:
        raise ValueError(f"`workers` must be >= 0, got {workers}.")
    if float(timeout) <= 0:
        raise ValueError(f"`timeout` must be positive, got {timeout}.")
    if not os.path.isdir(source):
        raise FileNotFoundError(f"No folder at {source!r}.")
    if os.path.abspath(source) == os.path.abspath(destination):
        raise ValueError("The destination must differ from the source folder (outputs would replace inputs).")
    files = find_videos(source)
    if not files:
        raise ValueError(f"No video found in {source!r}.")
    paths = [os.path.relpath(f, source) for f in files]
    extension = CODECS[codec][1]
    outputs = [os.path.join(destination, os.path.splitext(p)[0] + extension) for p in paths]
    if len(set(outputs)) < len(outputs):
        seen, clash = {}, None
        for p, o in zip(paths, outputs):
            if o in seen:
                clash = (seen[o], p)
                break
            seen[o] = p
        raise ValueError(
            f"{clash[0]!r} and {clash[1]!r} would both be written to {os.path.splitext(clash[0])[0]}{extension}."
        )
    results = [None] * len(files)
    jobs = []
    for i, (file, output) in enumerate(zip(files, outputs)):
        if skip_existing and os.path.isfile(output):
            results[i] = {"source": file, "output": output, "status": "existing", "error": None}
        else:
            jobs.append((i, {"source": file, "output": output, "short_side": int(short_side), "codec": codec}))
    total, lock = len(files), threading.Lock()
    finished = [total - len(jobs)]

    def done(index, result):
        with lock:
            results[index] = result
            finished[0] += 1
            if progress is not None:
                progress(finished[0], total)

    if progress is not None:
        progress(finished[0], total)
    if int(workers) == 0:
        for i, job in jobs:
            done(i, convert_video(**job))
    elif jobs:
        pending = queue.Queue()
        for pair in jobs:
            pending.put(pair)
        threads = [
            threading.Thread(target=_serve, args=(pending, float(timeout), done), daemon=True)
            for _ in range(min(int(workers), len(jobs)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for path, result in zip(paths, results):
        result["path"] = path
    settings = {
        "source": source,
        "destination": destination,
        "short_side": int(short_side),
        "codec": codec,
        "workers": int(workers),
    }
    return PrepareReport([{"path": r.pop("path"), **r} for r in results], settings)


def rewrite_list(list_path, output_path, report, root=None):
    """Writes the annotation list `list_path` for the prepared videos to `output_path`: each line's path
    gets the codec's extension, everything else is kept as it is. Paths are relative to `root` (default:
    the list's folder), which must be the report's source folder or inside it; the written paths are
    relative to the destination folder (so the written list's default root is right when it is written
    there). Lines of videos the report has as broken, or does not have, are left out and returned.
    Returns {"written": number of videos listed, "left_out": [(line number, path, why)]}.
    """
    import csv
    import io

    list_path, output_path = os.fspath(list_path), os.fspath(output_path)
    root = os.path.dirname(os.path.abspath(list_path)) if root is None else os.fspath(root)
    source = os.path.abspath(report.settings["source"])
    by_path = {os.path.normpath(r["path"]): r for r in report.results}
    is_csv = list_path.lower().endswith(".csv")
    kept, left_out, written = [], [], 0
    with open(list_path, encoding="utf-8", newline="") as f:
        lines = f.read().splitlines()
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            kept.append(line)
            continue
        if is_csv:
            fields = next(csv.reader([text]))
            if number == 1 and fields and fields[0].strip().lower() == "path":
                kept.append(line)
                continue
            path = fields[0].strip()
        else:
            path = text.split()[0]
        file = path if os.path.isabs(path) else os.path.join(root, path)
        relative = os.path.relpath(os.path.abspath(file), source)
        result = by_path.get(os.path.normpath(relative))
        if result is None:
            left_out.append((number, path, "not a video of the prepared folder"))
            continue
        if result["status"] in BROKEN:
            left_out.append((number, path, f"{result['status']}: {result['error']}"))
            continue
        new_path = report.output_path(os.path.normpath(relative)).replace(os.sep, "/")
        if is_csv:
            fields[0] = new_path
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow(fields)
            kept.append(buffer.getvalue())
        else:
            rest = text.split(maxsplit=1)[1:]
            kept.append(" ".join([new_path, *rest]))
        written += 1
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    with open(output_path, "w", encoding="utf-8") as f:
        f.write("\n".join(kept) + ("\n" if kept else ""))
    return {"written": written, "left_out": left_out}


__all__ = [
    "CODECS",
    "DEFAULT_CODEC",
    "PrepareReport",
    "convert_video",
    "output_size",
    "prepare_videos",
    "rewrite_list",
]


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    sys.exit(_worker_main())
