"""The one way this project runs a measuring child process.

A measurement that needs a fresh process (another Keras backend, a clean peak-memory counter, another
checkout of the code) runs as a child that speaks a two-line protocol on its standard output:

- `PROGRESS <text>`: what it is doing now, passed to `on_progress` (e.g. a progress bar's text);
- `RESULT <json>`: a result, parsed and passed to `on_result`; a child may print several (one per
  measured model, one per training run) and they are all kept, in order.

Every other line (log lines, warnings, tracebacks) is kept only as the child's last output lines, which
errors quote. The child's stderr goes into the same pipe as its stdout and one reader thread per child
drains it line by line, so a child that writes a lot to stderr can never block on a full pipe.
A deadline (`timeout`) is real: when it passes the child (its whole process group) is killed and
`ChildTimeout` says which child, after how long, and what it printed last.

    run = run_child([sys.executable, "-m", "some.worker", "{...}"], env=child_env(backend="jax"), timeout=600)
    run.result  # the last RESULT line's value
"""

import collections
import dataclasses
import json
import os
import queue
import signal
import subprocess
import threading
import time

PROGRESS = "PROGRESS "
RESULT = "RESULT "
_TAIL = 20  # output lines kept for errors
_POLL_S = 0.5  # how often the deadline is checked while a child is silent


def exit_text(returncode):
    """A process's exit status in words: "exit 1", "killed by SIGKILL (out of memory?)"."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}" + (" (out of memory?)" if returncode == -signal.SIGKILL else "")
    return f"exit {returncode}"


class ChildError(RuntimeError):
    """A child process that ended with a non-zero exit status.

    Attributes:
        name: what the child was (as given to `run_child`).
        returncode: its exit status (negative: the signal that killed it).
        last_line: the last line it printed that was neither PROGRESS nor RESULT ("" if none).
        tail: its last output lines (up to 20).
    """

    def __init__(self, name, returncode, last_line, tail=()):
        self.name, self.returncode, self.last_line, self.tail = name, returncode, last_line, list(tail)
        super().__init__(f"{name} failed ({exit_text(returncode)}): {last_line or 'it printed nothing'}")


class ChildTimeout(TimeoutError):
    """A child process that ran past its deadline and was killed.

    Attributes: `name`, `timeout` (seconds), `last_line`, `tail` (as in `ChildError`).
    """

    def __init__(self, name, timeout, last_line, tail=()):
        self.name, self.timeout, self.last_line, self.tail = name, timeout, last_line, list(tail)
        said = f"its last output line: {last_line}" if last_line else "it printed nothing"
        super().__init__(f"{name} ran past its {timeout:g} s deadline and was killed; {said}")


@dataclasses.dataclass
class ChildRun:
    """What a finished child left: every RESULT value, its exit status and its last output lines."""

    name: str
    results: list
    returncode: int
    last_line: str
    tail: list
    seconds: float

    @property
    def result(self):
        """The last RESULT line's value (None if it printed none)."""
        return self.results[-1] if self.results else None


def _kill(proc):
    """Kills the child and everything it started (its own process group), then reaps it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (AttributeError, OSError):  # no process groups (Windows), or it is already gone
            proc.kill()
    proc.wait()


def _pump(index, proc, lines):
    for line in proc.stdout:
        lines.put((index, line.rstrip("\r\n")))
    lines.put((index, None))


def run_children(commands, env=None, cwd=None, timeout=None, on_progress=None, on_result=None, names=None, check=True):
    """Runs the commands as child processes at the same time and collects their output lines.

    Args:
        commands: one argument list per child.
        env: the children's environment (e.g. `vidtr_keras.backends.env.child_env(...)`; default this
            process's); `PYTHONUNBUFFERED=1` is added so that progress lines arrive as they are printed.
        cwd: the children's working directory.
        timeout: seconds until every child still running is killed (`ChildTimeout`); None: no deadline.
        on_progress: called with the text of each `PROGRESS` line.
        on_result: called with the value of each `RESULT` line as it arrives.
        names: what each child is, for errors (default: its command line).
        check: raise `ChildError` for the first child with a non-zero exit status; with False, the
            caller reads `ChildRun.returncode` itself.

    Returns:
        one `ChildRun` per command, in order.

    Raises:
        ChildTimeout: the deadline passed (all children killed).
        ChildError: with `check`, a child failed.
        ValueError: a `RESULT` line that is not JSON (all children killed).
    """
    env = dict(os.environ if env is None else env)
    env.setdefault("PYTHONUNBUFFERED", "1")
    names = list(names or [" ".join(map(str, c)) for c in commands])
    deadline = None if timeout is None else time.monotonic() + timeout
    start = time.monotonic()
    lines = queue.Queue()
    procs, results = [], [[] for _ in commands]
    tails = [collections.deque(maxlen=_TAIL) for _ in commands]
    try:
        for i, command in enumerate(commands):
            proc = subprocess.Popen(
                [str(c) for c in command],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # one pipe, drained below: a chatty stderr cannot block the child
                text=True,
                errors="replace",
                bufsize=1,
                start_new_session=True,  # its own process group, so a deadline kills what it started too
            )
            procs.append(proc)
            threading.Thread(target=_pump, args=(i, proc, lines), daemon=True).start()
        open_pipes = len(procs)
        while open_pipes:
            wait = _POLL_S if deadline is None else max(0.0, min(_POLL_S, deadline - time.monotonic()))
            try:
                i, line = lines.get(timeout=wait)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    late = next((j for j, p in enumerate(procs) if p.poll() is None), 0)
                    for proc in procs:
                        _kill(proc)
                    tail = tails[late]
                    raise ChildTimeout(names[late], timeout, tail[-1] if tail else "", tail) from None
                continue
            if line is None:
                open_pipes -= 1
            elif line.startswith(PROGRESS):
                if on_progress is not None:
                    on_progress(line[len(PROGRESS) :].strip())
            elif line.startswith(RESULT):
                try:
                    value = json.loads(line[len(RESULT) :])
                except json.JSONDecodeError as err:
                    raise ValueError(f"{names[i]} printed a RESULT line that is not JSON: {line[:200]!r}") from err
                results[i].append(value)
                if on_result is not None:
                    on_result(value)
            elif line.strip():
                tails[i].append(line.strip())
        for proc in procs:
            remaining = None if deadline is None else max(0.1, deadline - time.monotonic())
            try:
                proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:  # closed its output but did not exit
                _kill(proc)
                i = procs.index(proc)
                raise ChildTimeout(names[i], timeout, tails[i][-1] if tails[i] else "", tails[i]) from None
    except BaseException:  # a deadline, an interrupt, a failing callback: leave no child behind
        for proc in procs:
            _kill(proc)
        raise
    seconds = time.monotonic() - start
    runs = [
        ChildRun(names[i], results[i], p.returncode, tails[i][-1] if tails[i] else "", list(tails[i]), seconds)
        for i, p in enumerate(procs)
    ]
    if check:
        for run in runs:
            if run.returncode != 0:
                raise ChildError(run.name, run.returncode, run.last_line, run.tail)
    return runs


def run_child(command, env=None, cwd=None, timeout=None, on_progress=None, on_result=None, name=None, check=True):
    """Runs one child process (see `run_children` for the arguments) and returns its `ChildRun`."""
    (run,) = run_children(
        [command],
        env=env,
        cwd=cwd,
        timeout=timeout,
        on_progress=on_progress,
        on_result=on_result,
        names=None if name is None else [name],
        check=check,
    )
    return run
