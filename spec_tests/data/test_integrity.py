"""`vidtr check-videos` and `vidtr_keras.data.integrity`: every kind of broken file, made for real."""

import json
import struct

import numpy as np
import pytest

from vidtr_keras.cli import main
from vidtr_keras.data.integrity import (
    STATUSES,
    check_videos,
    collect_videos,
    judge,
    move_bad,
)
from vidtr_keras.data.synthetic import synthetic_frames, write_video

FRAMES = 40


def _damage(src, dst, how):
    data = bytearray(src.read_bytes())
    middle = len(data) // 2
    if how == "truncate":
        data = data[:middle]
    elif how == "flip":  # a few bytes overwritten in the middle: frames still decode, with errors
        data[middle : middle + 8] = b"\xff" * 8 if src.suffix == ".mp4" else b"\x00" * 8
    dst.write_bytes(bytes(data))
    return dst


def _understate_avi_count(src, dst, frames):
    """An AVI whose header states `frames` frames (the stream and main headers both patched)."""
    data = bytearray(src.read_bytes())
    strh, avih = data.find(b"strh"), data.find(b"avih")
    data[strh + 8 + 32 : strh + 8 + 36] = struct.pack("<I", frames)  # AVIStreamHeader.dwLength
    data[avih + 8 + 16 : avih + 8 + 20] = struct.pack("<I", frames)  # MainAVIHeader.dwTotalFrames
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    good = {}
    for ext in (".avi", ".mkv", ".mp4"):
        good[ext] = root / f"good{ext}"
        write_video(good[ext], synthetic_frames(FRAMES, 32, 40))
    write_video(root / "short.avi", synthetic_frames(10, 32, 40))
    made = {
        "good.avi": good[".avi"],
        "good.mkv": good[".mkv"],
        "good.mp4": good[".mp4"],
        "cut.mp4": _damage(good[".mp4"], root / "cut.mp4", "truncate"),
        "cut.mkv": _damage(good[".mkv"], root / "cut.mkv", "truncate"),
        "flipped.avi": _damage(good[".avi"], root / "flipped.avi", "flip"),
        "flipped.mp4": _damage(good[".mp4"], root / "flipped.mp4", "flip"),
        "understated.avi": _understate_avi_count(good[".avi"], root / "understated.avi", FRAMES // 2),
        "short.avi": root / "short.avi",
    }
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.avi").write_text("this is a text file, not a video\n" * 20)
    made["empty.mp4"], made["notes.avi"] = root / "empty.mp4", root / "notes.avi"
    return root, made


EXPECTED = {
    "good.avi": "ok",
    "good.mkv": "ok",
    "good.mp4": "ok",
    "cut.mp4": "unreadable",  # mp4 keeps its index (moov) at the end: cut, it cannot be opened
    "cut.mkv": "truncated",
    "flipped.avi": "corrupt",  # FFV1 slice CRC mismatch
    "flipped.mp4": "corrupt",  # MPEG-4 part 2 macroblock errors
    "understated.avi": "count_mismatch",
    "short.avi": "too_short",
    "empty.mp4": "unreadable",
    "notes.avi": "unreadable",
}


def test_every_broken_file_gets_its_status_in_worker_processes(videos):
    _, made = videos
    names = sorted(made)
    report = check_videos([made[n] for n in names], min_frames=16, workers=2)
    got = {n: r["status"] for n, r in zip(names, report.results)}
    assert got == {n: EXPECTED[n] for n in names}
    by_name = dict(zip(names, report.results))
    assert by_name["cut.mkv"]["decoded_frames"] < FRAMES == by_name["cut.mkv"]["header_frames"]
    assert "of the 40 frames its header states decode" in by_name["cut.mkv"]["problems"][0]
    assert "CRC mismatch" in by_name["flipped.avi"]["problems"][0]
    assert by_name["flipped.avi"]["decoded_frames"] == FRAMES  # every frame came out, damaged
    assert "moov atom not found" in by_name["cut.mp4"]["problems"][0]
    assert by_name["understated.avi"]["problems"] == [f"{FRAMES} frames decode; its header states {FRAMES // 2}"]
    assert by_name["short.avi"]["problems"] == ["10 frames, fewer than the 16 one clip window needs"]
    assert by_name["empty.mp4"]["problems"] == ["empty file (0 bytes)"]
    assert by_name["good.avi"]["problems"] == [] and by_name["good.avi"]["decoded_frames"] == FRAMES
    assert not report.ok and len(report.failed) == 8
    json.dumps(report.to_dict())  # JSON-able


def test_in_process_decoding_finds_the_same_counts_without_decoder_messages(videos):
    _, made = videos
    names = ["good.avi", "cut.mkv", "understated.avi", "short.avi", "notes.avi"]
    report = check_videos([made[n] for n in names], min_frames=16, workers=0)
    assert [r["status"] for r in report.results] == [EXPECTED[n] for n in names]
    assert report.results[0]["messages"] is None  # not captured in this process


def test_judge_orders_statuses_and_lists_every_problem():
    probe = {"error": None, "decoded_frames": 5, "header_frames": 8, "messages": ["slice CRC mismatch"]}
    status, problems = judge(probe, min_frames=16, listed_frames=9)
    assert status == "truncated" and len(problems) == 3  # truncated, list count, too short
    assert judge({**probe, "header_frames": 5, "messages": []}, min_frames=4, listed_frames=5) == ("ok", [])
    assert judge({**probe, "header_frames": 6, "messages": []}, min_frames=0, count_tolerance=1) == ("ok", [])
    assert judge({"error": "missing", "decoded_frames": 0, "header_frames": None, "messages": None})[0] == "missing"
    assert STATUSES[-1] == "ok"


def test_lists_folders_and_list_counts(videos, tmp_path):
    root, made = videos
    listing = tmp_path / "list.txt"
    listing.write_text(f"good.avi {FRAMES} 0\ngood.mkv {FRAMES + 3} 1\n# comment\n\nnothere.avi 10 0\n")
    entries = collect_videos(listing, root=root)
    assert [e.path for e in entries] == ["good.avi", "good.mkv", "nothere.avi"]
    assert [e.listed_frames for e in entries] == [FRAMES, FRAMES + 3, 10] and entries[0].where == f"{listing}:1"
    report = check_videos(entries, min_frames=0, workers=1)
    assert [r["status"] for r in report.results] == ["ok", "count_mismatch", "missing"]
    assert report.results[1]["problems"] == [f"{FRAMES} frames decode; the list states {FRAMES + 3}"]
    csv = tmp_path / "list.csv"
    csv.write_text(f"path,label\n{root / 'good.mp4'},walk\n")
    assert [e.file for e in collect_videos(csv)] == [str(root / "good.mp4")]
    found = [e.path for e in collect_videos(root)]
    assert found == sorted(made) or set(found) == set(made)
    with pytest.raises(FileNotFoundError, match="No video, list or folder"):
        collect_videos(tmp_path / "none")
    (tmp_path / "blank.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="names no video"):
        collect_videos(tmp_path / "blank.txt")
    with pytest.raises(ValueError, match="`workers` must be >= 0"):
        check_videos(entries, workers=-1)


def test_cli_table_json_exit_code_and_quarantine(videos, tmp_path, capsys):
    _, made = videos
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    for name in ("good.avi", "flipped.avi", "short.avi"):
        (folder / name).write_bytes(made[name].read_bytes())
    (folder / "sub" / "empty.mp4").write_bytes(b"")
    report_path, quarantine = tmp_path / "report.json", tmp_path / "bad"
    code = main(
        [
            "check-videos",
            str(folder),
            "--clip-len",
            "4",
            "--rate",
            "4",
            "--json",
            str(report_path),
            "--move-bad",
            str(quarantine),
            "--workers",
            "2",
        ]
    )
    assert code == 1
    printed = capsys.readouterr().out
    assert "3 of 4 video(s) failed" in printed and "corrupt" in printed and "too_short" in printed
    report = json.loads(report_path.read_text())
    assert report["summary"] == {
        "videos": 4,
        "failed": 3,
        "by_status": {"unreadable": 1, "corrupt": 1, "too_short": 1, "ok": 1},
    }
    assert report["settings"]["min_frames"] == 16
    moved = {r["path"]: r.get("moved_to") for r in report["videos"]}
    assert moved["good.avi"] is None and (folder / "good.avi").exists()
    for name in ("flipped.avi", "short.avi", "sub/empty.mp4"):
        assert moved[name] == str(quarantine / name) and (quarantine / name).exists() and not (folder / name).exists()
    # what is left is clean: exit code 0
    assert main(["check-videos", str(folder), "--min-frames", "16", "--quiet"]) == 0
    assert main(["check-videos", str(folder), "--clip-len", "4"]) == 2
    assert "Give both --clip-len and --rate" in capsys.readouterr().out


def test_move_bad_never_overwrites(videos, tmp_path):
    _, made = videos
    bad = tmp_path / "notes.avi"
    bad.write_bytes(made["notes.avi"].read_bytes())
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "notes.avi").write_text("already here")
    report = check_videos([bad], workers=0)
    assert move_bad(report, tmp_path / "q") == [(str(bad), str(tmp_path / "q" / "notes_1.avi"))]
    assert (tmp_path / "q" / "notes.avi").read_text() == "already here"
    assert np.array_equal(
        np.frombuffer((tmp_path / "q" / "notes_1.avi").read_bytes(), np.uint8),
        np.frombuffer(made["notes.avi"].read_bytes(), np.uint8),
    )


FAKE_WORKER = """
import json, os, sys, time
for path in json.loads(sys.stdin.read()):
    if "crash" in path:
        os.abort()
    if "hang" in path:
        time.sleep(60)
    print(json.dumps({"path": path, "bytes": 1000, "opened": True, "header_frames": 20, "decoded_frames": 20,
                      "fps": 25.0, "width": 8, "height": 8, "error": None, "messages": [], "seconds": 0.0}), flush=True)
"""


def test_a_decoder_that_crashes_or_hangs_is_charged_to_its_file(tmp_path, monkeypatch):
    from vidtr_keras.data import integrity

    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER)
    monkeypatch.setattr(integrity, "_worker_command", lambda: [integrity.sys.executable, str(script)])
    paths = ["a.mp4", "crash.mp4", "b.mp4", "hang.mp4", "c.mp4"]
    report = check_videos(paths, min_frames=0, workers=1, timeout=2.0, chunk_size=5)
    assert [r["status"] for r in report.results] == ["ok", "unreadable", "ok", "unreadable", "ok"]
    assert "the decoder crashed on it (signal 6" in report.results[1]["problems"][0]
    assert "decoding took longer than 2 s" in report.results[3]["problems"][0]
