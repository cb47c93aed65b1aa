"""`vidtr benchmark --data`: the data path's table from a folder of videos (no model, no backend work)."""

from vidtr_keras.cli import main
from vidtr_keras.data import synthetic


def test_benchmark_data_prints_clips_per_second_per_thread_count(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one table row a line, whatever the terminal
    for k in range(2):
        synthetic.write_synthetic_video(tmp_path / f"v{k}.avi", 40, 32, 40, seed=k)
    code = main(
        ["benchmark", "--data", str(tmp_path), "--items", "2", "--videos", "1", "--workers", "1,2"]
        + ["--frames", "4", "--rate", "2", "--image-size", "16"]
    )
    assert code in (0, None)
    out = capsys.readouterr().out
    flat = " ".join(out.split())  # rich wraps lines to the console width (the tmp path's length varies)
    assert "2 video(s)" in flat and "clips 4x2, 16 px" in flat and "load average" in flat
    rows = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    # one row per thread count
    assert sum(r.startswith("training") for r in rows) == 2 and sum(r.startswith("test views") for r in rows) == 2
    assert "the first read of every file took" in flat


def test_benchmark_needs_a_preset_or_data(capsys):
    assert main(["benchmark"]) == 2
    assert "needs a PRESET" in capsys.readouterr().out


def test_benchmark_data_refuses_bad_thread_counts(tmp_path, capsys):
    synthetic.write_synthetic_video(tmp_path / "v.avi", 20, 32, 40)
    assert main(["benchmark", "--data", str(tmp_path), "--workers", "0"]) == 2
    assert "--workers takes thread counts >= 1" in capsys.readouterr().out
