"""`python -m reproduce` and `python -m benchmarks`: `all` is exactly the paper's tables, every script
has a duration estimate, a table script writes its results file with the machine header, and the
before/after benchmark refuses clearly to run outside a git clone.

The scripts live beside the package in a source checkout (not in the wheel); these specs skip where
they are not importable."""

import pytest

reproduce_main = pytest.importorskip("reproduce.__main__", reason="reproduce/ is only in a source checkout")

PAPER_TABLES = ["table1", "table2", "table3", "table4a", "table4b", "table4c", "table4e", "table4f", "scaling"]


def test_reproduce_all_is_exactly_the_paper_tables():
    assert list(reproduce_main.PAPER_TABLES) == PAPER_TABLES
    assert set(reproduce_main.NAMED_RUNS) == {"crosscheck", "learning", "benchmark", "walkthrough", "data"}
    assert set(reproduce_main.SCRIPTS) == set(PAPER_TABLES) | set(reproduce_main.NAMED_RUNS)


def test_development_benchmarks_are_not_reproduce_scripts():
    benchmarks_main = pytest.importorskip("benchmarks.__main__")
    assert set(benchmarks_main.BENCHMARKS) == {
        "before",
        "fused_attention",
        "inference_profile",
        "jax_profile",
        "official",
    }
    assert not set(benchmarks_main.BENCHMARKS) & set(reproduce_main.SCRIPTS)


def test_every_script_has_a_duration_estimate_and_all_sums_them():
    assert set(reproduce_main.DURATIONS) == set(reproduce_main.SCRIPTS)
    each, total = reproduce_main.estimate(PAPER_TABLES)
    assert list(each) == PAPER_TABLES and total == sum(reproduce_main.DURATIONS[n][0] for n in PAPER_TABLES)
    quick_each, quick_total = reproduce_main.estimate(PAPER_TABLES, quick=True)
    assert quick_total <= total


class _Progress:
    """The part of rich's Progress a script uses, without a display."""

    def add_task(self, description, total=None):
        return 0

    def update(self, task, **fields):
        pass

    def advance(self, task, advance=1):
        pass


class _Console:
    def log(self, *args):
        pass


def test_a_table_script_writes_its_results_with_the_machine_header(tmp_path, monkeypatch):
    from reproduce import common, table1

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    path = table1.run(common.Context(_Progress(), _Console(), quick=True))
    text = path.read_text()
    assert path == tmp_path / "table1.md" and (tmp_path / "table1.csv").exists()
    assert "- machine: " in text and "- versions: " in text and "written by `python -m reproduce table1`" in text
    assert "vidtr_s" in text


def test_before_and_after_fails_clearly_outside_a_git_clone(tmp_path, monkeypatch):
    from reproduce import common

    before = pytest.importorskip("benchmarks.before")
    monkeypatch.setattr(common, "ROOT", tmp_path)  # an unpacked copy: no .git
    with pytest.raises(before.NotAGitClone, match="(not a git checkout|git is not installed)"):
        before.resolve_ref(before.DEFAULT_REF)


def test_a_report_written_again_from_stored_figures_keeps_the_measuring_machine(tmp_path, monkeypatch):
    from reproduce import common

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    measured = dict(common.machine_info(), cpu="Some Other CPU", cores=64, ram_gib=512.0, date="2026-01-02 03:04 UTC")
    common.write("figures", "Figures", ["a"], [[1.5]], info=measured)
    assert common.read_header_info(tmp_path / "figures.md") == measured
    common.write("figures", "Figures", ["a"], [[1.5]])  # measured here and now: this machine's header
    assert common.read_header_info(tmp_path / "figures.md")["cpu"] == common.machine_info()["cpu"]
    assert common.read_header_info(tmp_path / "missing.md") is None


def test_the_benchmark_report_judges_pytorch_against_the_official_run(tmp_path, monkeypatch):
    from reproduce import common
    from reproduce.benchmark import targets

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    assert "not measured" in targets._against_official()[0]
    columns = ["preset", "mode", "official s", "ours s", "ours / official (wall)", "official CPU s", "ours CPU s"]
    columns += ["ours / official (CPU)", "torch threads", "load avg (1 min)", "error"]
    rows = [
        ["vidtr_s", "inference", 2.0, 1.5, 0.75, 4.0, 3.0, 0.75, 2, "1.0-1.2", ""],
        ["cvidtr_s", "train", 3.0, 3.3, 1.1, 6.0, 6.6, 1.1, 2, "1.0-1.2", ""],
        ["vanilla_s", "train", None, None, None, None, None, None, None, None, "exit 1"],
    ]
    measured = dict(common.machine_info(), cpu="Some CPU", date="2026-01-02 03:04 UTC")
    common.write("official", "Official", columns, rows, info=measured)
    lines = targets._against_official()
    assert len(lines) == 3
    assert "vidtr_s inference: **met**" in lines[0] and "x0.75 wall" in lines[0] and "Some CPU" in lines[0]
    assert "cvidtr_s train: **not met**" in lines[1] and "x1.10 wall" in lines[1]
    assert "vanilla_s train: no figure (exit 1)" in lines[2]


def test_a_paired_official_process_gives_one_figure_per_model():
    official = pytest.importorskip("benchmarks.official")
    both = {
        "which": "paired",
        "preset": "vidtr_s",
        "mode": "inference",
        "threads": 2,
        "loadavg": 1.0,
        "figures": {"ours": {"seconds": 1.0, "cpu_seconds": 2.0}, "official": {"seconds": 1.5, "cpu_seconds": 3.0}},
    }
    split = {r["which"]: r for r in official._split_paired(both)}
    assert set(split) == {"ours", "official"}
    assert split["ours"]["seconds"] == 1.0 and split["official"]["cpu_seconds"] == 3.0
    assert all(r["preset"] == "vidtr_s" and r["threads"] == 2 and "figures" not in r for r in split.values())
    failed = official._split_paired({"which": "paired", "preset": "vidtr_s", "mode": "train", "error": "exit 1"})
    assert [r["which"] for r in failed] == ["ours", "official"] and all(r["error"] == "exit 1" for r in failed)
