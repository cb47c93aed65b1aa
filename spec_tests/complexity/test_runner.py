"""`vidtr_keras.complexity.runner`: the one child-process runner of the measurements and reproduce scripts.

Specs: a deadline kills a child that never finishes and says which child and what it printed last; a
child that writes far more to stderr than a pipe holds does not block; PROGRESS and RESULT lines reach
their callbacks and RESULT values come back parsed; a failing child's error quotes its last line; several
children run at once. The children are plain Python one-liners (no backend needed)."""

import sys
import time

import pytest

from vidtr_keras.complexity.runner import ChildError, ChildTimeout, run_child, run_children


def _python(code):
    return [sys.executable, "-c", code]


def test_deadline_kills_a_sleeping_child_with_a_clear_error():
    code = "import time; print('about to sleep', flush=True); time.sleep(60)"
    start = time.monotonic()
    with pytest.raises(ChildTimeout, match=r"sleeper ran past its 2 s deadline and was killed.*about to sleep"):
        run_child(_python(code), timeout=2, name="sleeper")
    assert time.monotonic() - start < 20  # killed at the deadline, not after the child's 60 s


def test_deadline_also_kills_what_the_child_started():
    # The grandchild holds the pipe open; killing only the child would leave the reader waiting for it.
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(60)'])"
    start = time.monotonic()
    with pytest.raises(ChildTimeout):
        run_child(_python(code), timeout=2)
    assert time.monotonic() - start < 20


def test_a_child_writing_lots_to_stderr_does_not_block():
    # 4 MiB on stderr before any stdout: far more than a pipe buffer (64 KiB on Linux).
    code = (
        "import sys, json\n"
        "for i in range(4096): sys.stderr.write('x' * 1023 + '\\n')\n"
        "print('RESULT ' + json.dumps({'done': True}), flush=True)\n"
    )
    run = run_child(_python(code), timeout=60)
    assert run.result == {"done": True}
    assert run.returncode == 0


def test_progress_and_result_lines_reach_their_callbacks_and_results_are_parsed():
    code = (
        "import json\n"
        "print('PROGRESS step 1/2', flush=True)\n"
        "print('a log line')\n"
        "print('RESULT ' + json.dumps({'label': 'a', 'value': 1.5}), flush=True)\n"
        "print('PROGRESS step 2/2', flush=True)\n"
        "print('RESULT ' + json.dumps({'label': 'b', 'value': [1, 2]}), flush=True)\n"
    )
    progress, seen = [], []
    run = run_child(_python(code), timeout=60, on_progress=progress.append, on_result=seen.append)
    assert progress == ["step 1/2", "step 2/2"]
    assert seen == run.results == [{"label": "a", "value": 1.5}, {"label": "b", "value": [1, 2]}]
    assert run.result == {"label": "b", "value": [1, 2]}
    assert run.last_line == "a log line"


def test_a_failing_child_raises_with_its_last_output_line():
    code = "raise ValueError('the reason it failed')"
    with pytest.raises(ChildError, match=r"worker failed \(exit 1\): ValueError: the reason it failed") as info:
        run_child(_python(code), timeout=60, name="worker")
    assert info.value.returncode == 1
    run = run_child(_python(code), timeout=60, check=False)
    assert run.returncode == 1 and run.result is None


def test_children_run_at_the_same_time(tmp_path):
    # Each child marks that it started, then waits for the other's mark: run one after the other, the
    # first would wait forever (the deadline would end it).
    def child(me, other):
        return _python(
            "import json, os, time\n"
            f"open({str(tmp_path / me)!r}, 'w').close()\n"
            f"while not os.path.exists({str(tmp_path / other)!r}): time.sleep(0.05)\n"
            f"print('RESULT ' + json.dumps({{'child': {me!r}}}))\n"
        )

    runs = run_children([child("a", "b"), child("b", "a")], timeout=60)
    assert [r.result for r in runs] == [{"child": "a"}, {"child": "b"}]
