"""`vidtr_keras.complexity.benchmark`: one timed run reports FLOPs, throughput and the machine's peak
consistently with each other (ratios and equalities only: no wall-clock checks)."""

import pytest

from helpers import BACKEND


def test_benchmark_reports_flops_and_peak_consistently():
    from vidtr_keras.complexity.benchmark import benchmark
    from vidtr_keras.complexity.flops import flops

    result = benchmark("vidtr_tiny", mode="inference", image_size=32, runs=2, warmup=1)
    assert result["backend"] == BACKEND and result["frames"] == 4 and len(result["runs_s"]) == 2
    assert result["gflop"] == pytest.approx(flops("vidtr_tiny", image_size=32, convention="full").flops / 1e9)
    assert result["gflops"] == pytest.approx(result["gflop"] / result["seconds"])
    assert result["percent_of_peak"] == pytest.approx(100 * result["gflops"] / result["peak_gflops"])
    assert result["peak_gflops"] == max(result["peak_gflops_before_after"]) > 0
    assert result["peak_rss"] > 0 and result["baseline_rss"] > 0
    assert len(result["loadavg"]) == 3
    with pytest.raises(ValueError, match="mode"):
        benchmark("vidtr_tiny", mode="fit")
