"""The README walk-through and `python -m reproduce walkthrough` run the same commands: the script's
`COMMANDS` equal the README block's `vidtr` lines (continuations joined, comments dropped), so the
measured curve in results/walkthrough.md is the curve of what the README tells a user to run."""

import pathlib
import re
import shlex

import pytest

walkthrough = pytest.importorskip("reproduce.walkthrough", reason="reproduce/ is only in a source checkout")

ROOT = pathlib.Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def readme_commands():
    """The `vidtr` lines of the README's bash block that inflates the shipped ViT."""
    blocks = [b for b in FENCE.findall((ROOT / "README.md").read_text()) if "vidtr inflate" in b]
    assert len(blocks) == 1, "the README has one walk-through block (the one with `vidtr inflate`)"
    joined = re.sub(r"\\\n\s*", " ", blocks[0])
    return [" ".join(line.split()) for line in joined.splitlines() if line.strip().startswith("vidtr ")]


def test_the_script_runs_exactly_the_readme_commands():
    assert readme_commands() == [" ".join(c.split()) for c in walkthrough.COMMANDS]


def test_each_command_becomes_a_child_running_the_cli_with_the_same_arguments():
    for command in walkthrough.COMMANDS:
        args = walkthrough.argv(command)
        assert args[1:3] == ["-m", "vidtr_keras.cli"] and args[3:] == shlex.split(command)[1:]
    with pytest.raises(ValueError, match="not a vidtr command"):
        walkthrough.argv("python train.py")


def test_both_regimes_train_with_the_same_recipe_and_only_the_model_differs():
    trains = [shlex.split(c) for c in walkthrough.COMMANDS if c.startswith("vidtr train")]
    outputs = [t[t.index("--output") + 1] for t in trains]
    assert sorted(o.split("/")[-1] for o in outputs) == sorted(walkthrough.REGIMES)

    def recipe(words):
        pairs = dict(zip(words[2::2], words[3::2]))
        return {k: v for k, v in pairs.items() if k not in ("--model", "--output")}

    assert recipe(trains[0]) == recipe(trains[1])


def test_summary_finds_the_first_epoch_at_the_target_and_the_best_within_the_budget(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("epoch,lr,val_accuracy,seconds\n1,0.1,0.25,100\n2,0.1,0.95,150\n3,0.1,0.85,100\n4,0.1,0.90,100\n")
    curve = walkthrough.read_log(log)
    assert curve == [(1, 100.0, 0.25), (2, 250.0, 0.95), (3, 350.0, 0.85), (4, 450.0, 0.90)]
    s = walkthrough.summary(curve, budget=300, target=0.9)
    assert (s["epoch_at_target"], s["seconds_at_target"], s["best_within_budget"], s["final"]) == (2, 250.0, 0.95, 0.90)
    assert walkthrough.summary(curve, budget=50, target=0.99)["best_within_budget"] is None
