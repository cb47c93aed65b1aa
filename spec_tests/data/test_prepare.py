"""`vidtr prepare-videos` / `vidtr_keras.data.prepare`: re-encoding at the training resolution keeps the aspect
and every frame (frame i of the output is frame i of the input, the counts equal), the folder structure and the
frame rate; broken files are reported and never written; worker processes give what the serial path gives; a
re-encoding that loses frames is caught; annotation lists are rewritten; the command's exit code and report.
"""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from vidtr_keras import cli
from vidtr_keras.data import VideoReader, prepare

from helpers import BACKEND

# prepare.py and its command use OpenCV and NumPy only, never Keras: one backend's suite checks them.
pytestmark = pytest.mark.skipif(BACKEND != "torch", reason="no Keras in vidtr_keras.data.prepare: checked on torch")

# name -> (FourCC, frames, height, width)
VIDEOS = {
    "a/wide.avi": ("MJPG", 9, 30, 40),
    "b/wide.mp4": ("mp4v", 7, 48, 64),
    "b/tall.mkv": ("FFV1", 5, 64, 36),
    "small.avi": ("MJPG", 4, 12, 16),  # short side below the target: kept as it is
}
SHORT = 24


def smooth_frames(count, height, width, seed):
    """Distinct smooth frames (JPEG keeps them close; each far from the others)."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (count, 3, 4, 3), dtype=np.uint8)
    return [cv2.resize(f, (width, height), interpolation=cv2.INTER_CUBIC) for f in low]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("source")
    for seed, (name, (fourcc, count, height, width)) in enumerate(VIDEOS.items()):
        os.makedirs(root / os.path.dirname(name), exist_ok=True)
        writer = cv2.VideoWriter(str(root / name), cv2.VideoWriter_fourcc(*fourcc), 12.0, (width, height))
        assert writer.isOpened(), f"this OpenCV cannot write {fourcc}"
        for frame in smooth_frames(count, height, width, seed):
            writer.write(frame)
        writer.release()
    (root / "broken.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (root / "empty.avi").write_bytes(b"")
    (root / "train.txt").write_text("a/wide.avi 9 0\nb/wide.mp4 7 1\nbroken.mp4 10 0\nb/tall.mkv 5 1\n")
    (root / "train.csv").write_text("path,label\na/wide.avi,0\nbroken.mp4,1\nb/tall.mkv,1\n")
    return root


@pytest.fixture(scope="module")
def serial(source, tmp_path_factory):
    destination = tmp_path_factory.mktemp("serial")
    return prepare.prepare_videos(source, destination, SHORT, workers=0), destination


def decoded(path):
    reader = VideoReader(str(path), exact_count=True)
    return reader.read(range(reader.num_frames)), reader


def test_every_frame_kept_at_the_short_side_with_the_aspect_and_the_folders(source, serial):
    report, destination = serial
    by_path = {r["path"]: r for r in report.results}
    assert set(by_path) == {*VIDEOS, "broken.mp4", "empty.avi"}
    for name, (_, count, height, width) in VIDEOS.items():
        result = by_path[name]
        assert result["status"] == "ok", result
        output = destination / (os.path.splitext(name)[0] + ".mp4")  # the default codec's container
        assert result["output"] == str(output) and output.is_file()
        frames_in, reader_in = decoded(source / name)
        frames_out, reader_out = decoded(output)
        assert result["frames_in"] == result["frames_out"] == count == len(frames_out)
        assert reader_out.fps == pytest.approx(12.0)
        out_h, out_w = frames_out.shape[1:3]
        if min(height, width) > SHORT:
            assert min(out_h, out_w) == SHORT
            assert out_w / out_h == pytest.approx(width / height, rel=0.05)  # the long side rounded to even
        else:
            assert (out_h, out_w) == (height, width)
        # frame i of the output is frame i of the input: the nearest of all resized input frames
        resized = np.stack([cv2.resize(f, (out_w, out_h), interpolation=cv2.INTER_AREA) for f in frames_in])
        for i, frame in enumerate(frames_out):
            errors = np.abs(resized.astype(np.float32) - frame).mean(axis=(1, 2, 3))
            assert int(np.argmin(errors)) == i and errors[i] < 8, (name, i, errors)
    assert not [f for _, _, files in os.walk(destination) for f in files if prepare._TMP in f]


def test_broken_files_are_reported_and_not_written(serial):
    report, destination = serial
    failed = {r["path"]: r for r in report.failed}
    assert set(failed) == {"broken.mp4", "empty.avi"}
    assert failed["broken.mp4"]["status"] == "unreadable" and "cannot open" in failed["broken.mp4"]["error"]
    assert failed["empty.avi"]["error"] == "empty file (0 bytes)"
    assert not (destination / "broken.mp4").exists() and not (destination / "empty.mp4").exists()
    assert report.counts() == {"unreadable": 2, "ok": 4} and not report.ok


def test_worker_processes_give_what_the_serial_path_gives(source, serial, tmp_path):
    want, serial_dir = serial
    steps = []
    got = prepare.prepare_videos(source, tmp_path, SHORT, workers=2, progress=lambda done, total: steps.append(done))
    keys = ("path", "status", "error", "frames_in", "frames_out", "size_in", "size_out", "bytes_out")
    assert [{k: r[k] for k in keys} for r in got.results] == [{k: r[k] for k in keys} for r in want.results]
    for name in VIDEOS:
        stem = os.path.splitext(name)[0] + ".mp4"
        assert (tmp_path / stem).read_bytes() == (serial_dir / stem).read_bytes()
    assert steps[-1] == len(got.results) and steps == sorted(steps)


def test_a_re_encoding_that_loses_a_frame_is_reported(source, tmp_path, monkeypatch):
    opencv_writer = cv2.VideoWriter

    class DroppingWriter:  # a writer that silently drops the last frame
        def __init__(self, *args):
            self.writer, self.frames = opencv_writer(*args), []

        def isOpened(self):  # noqa: N802 - OpenCV's name
            return self.writer.isOpened()

        def write(self, frame):
            self.frames.append(frame)

        def release(self):
            for frame in self.frames[:-1]:
                self.writer.write(frame)
            self.writer.release()

    monkeypatch.setattr(cv2, "VideoWriter", DroppingWriter)
    result = prepare.convert_video(str(source / "a/wide.avi"), str(tmp_path / "wide.mp4"), SHORT)
    assert result["status"] == "count_mismatch" and (result["frames_in"], result["frames_out"]) == (9, 8)
    assert "9 frames decoded from the input, 8 from its re-encoding" in result["error"]
    assert os.listdir(tmp_path) == []  # neither the output nor its temporary file
    with pytest.raises(ValueError, match=r"`output` must end with \.mp4"):
        prepare.convert_video(str(source / "a/wide.avi"), str(tmp_path / "wide.avi"), SHORT)


def test_a_real_h264_video_keeps_its_132_frames_in_order(tmp_path):
    """The real fixture (1280x720 H.264, 132 frames, spec_tests/fixtures/video/README.md) at a 32 px short side."""
    source = os.path.join(os.path.dirname(__file__), "..", "fixtures", "video", "bigbuckbunny.mp4")
    result = prepare.convert_video(source, str(tmp_path / "bbb.mp4"), 32)
    assert result["status"] == "ok" and result["frames_in"] == result["frames_out"] == result["header_frames"] == 132
    assert result["size_in"] == [720, 1280] and result["size_out"] == [32, 56] and result["fps"] == 25.0
    original, prepared = cv2.VideoCapture(source), cv2.VideoCapture(str(tmp_path / "bbb.mp4"))
    errors = []
    while True:  # one frame of each at a time: the 720p frames would not all fit in a small memory
        ok_in, frame_in = original.read()
        ok_out, frame_out = prepared.read()
        assert ok_in == ok_out
        if not ok_in:
            break
        want = cv2.resize(frame_in, (56, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
        errors.append(np.abs(want - frame_out).mean())
    assert len(errors) == 132 and max(errors) < 8, max(errors)
    # mp4v (the default): a key frame every 12 frames (the packets' key flags, read without decoding)
    packets = cv2.VideoCapture(str(tmp_path / "bbb.mp4"), cv2.CAP_FFMPEG, [cv2.CAP_PROP_FORMAT, -1])
    keys = []
    while packets.grab():
        keys.append(bool(packets.get(cv2.CAP_PROP_LRF_HAS_KEY_FRAME)))
    assert [i for i, key in enumerate(keys) if key] == list(range(0, 132, 12))


def test_the_command_rewrites_lists_and_its_exit_code_says_whether_files_broke(source, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich: the report's table without wrapped cells
    destination = tmp_path / "out"
    argv = ["prepare-videos", source, destination, "--short-side", SHORT, "--codec", "mjpg", "--workers", "1"]
    argv += ["--list", source / "train.txt", "--list", source / "train.csv", "--json", tmp_path / "report.json"]
    assert cli.main([str(a) for a in argv]) == 1
    out = capsys.readouterr().out
    assert "2 of 6 video(s) broken" in out and "broken.mp4" in out and "empty file (0 bytes)" in out
    assert "train.txt:3 broken.mp4" in out and "train.csv:3 broken.mp4" in out
    assert (destination / "train.txt").read_text() == "a/wide.avi 9 0\nb/wide.avi 7 1\nb/tall.avi 5 1\n"
    assert (destination / "train.csv").read_text() == "path,label\na/wide.avi,0\nb/tall.avi,1\n"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"]["by_status"] == {"unreadable": 2, "ok": 4} and len(report["lists_left_out"]) == 2
    assert VideoReader(str(destination / "b/tall.avi"), exact_count=True).num_frames == 5
    # a folder without broken files: exit code 0; an existing output is kept with --skip-existing
    good = tmp_path / "good"
    os.makedirs(good / "a")
    (good / "a/wide.avi").write_bytes((source / "a/wide.avi").read_bytes())
    argv = ["prepare-videos", good, destination, "--short-side", SHORT, "--codec", "mjpg", "--skip-existing"]
    assert cli.main([str(a) for a in argv + ["--all"]]) == 0
    assert "1 existing" in capsys.readouterr().out
    assert cli.main(["prepare-videos", str(good), str(good), "--short-side", "24"]) == 2
    assert "destination must differ" in capsys.readouterr().out.replace("\n", " ")
    (good / "a/wide.mkv").write_bytes((source / "a/wide.avi").read_bytes())
    assert cli.main(["prepare-videos", str(good), str(tmp_path / "clash"), "--short-side", "24"]) == 2
    assert "would both be written to" in capsys.readouterr().out.replace("\n", " ")


FAKE_WORKER = """
import json, os, sys, time
for line in sys.stdin:
    job = json.loads(line)
    if "crash" in os.path.basename(job["source"]):
        os._exit(3)
    if "hang" in os.path.basename(job["source"]):
        time.sleep(60)
    print(json.dumps({"source": job["source"], "output": job["output"], "status": "ok", "error": None}), flush=True)
"""


def test_a_decoder_that_crashes_or_hangs_is_charged_to_its_file(tmp_path, monkeypatch):
    source = tmp_path / "source"
    os.makedirs(source)
    for name in ("a_ok.avi", "b_crash.avi", "c_ok.avi", "d_hang.avi", "e_ok.avi"):
        (source / name).write_bytes(b"\0" * 100)
    started = []

    def fake_worker():
        started.append(1)
        command = [sys.executable, "-c", FAKE_WORKER]
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    monkeypatch.setattr(prepare, "_start_worker", fake_worker)
    report = prepare.prepare_videos(source, tmp_path / "out", SHORT, workers=1, timeout=1.0)
    status = {r["path"]: (r["status"], r["error"]) for r in report.results}
    assert status["b_crash.avi"] == ("unreadable", "the decoder crashed on it (exit code 3)")
    assert status["d_hang.avi"] == ("unreadable", "converting took longer than 1 s (the decoder hangs on it?)")
    assert [status[n][0] for n in ("a_ok.avi", "c_ok.avi", "e_ok.avi")] == ["ok"] * 3
    assert len(started) == 3  # a new worker after the crash and after the hang
