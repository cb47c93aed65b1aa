"""The process environment of the backends: TensorFlow's oneDNN variable, its start-up log lines, and the
environment of child processes.

oneDNN. TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, when it is imported. Its oneDNN kernels are off by
default on some x86 CPUs (AVX2 without AVX-512), where a Conv3D training step is then orders of magnitude
slower; `tensorflow_defaults()` turns them on unless the user set the variable, and `child_env()` gives
child processes (measurements, workers) the same default. The measurements of results/benchmark.md ran
with it.

Start-up lines. Importing TensorFlow writes C++ log lines to the process's standard error before a
program can print anything: absl's "All log messages before absl::InitializeLog()" notice, the oneDNN
notice and the CPU-feature guard's list of instructions. The oneDNN notice ignores
`TF_CPP_MIN_LOG_LEVEL` (TensorFlow logs it through absl before its own level applies), so no variable
hides it. `quiet_tensorflow_startup()` holds standard error (file descriptor 2) while Keras loads the
backend and writes back everything except the log lines below the level `TF_CPP_MIN_LOG_LEVEL` asks
for (default 1: informational lines hidden, warnings and errors kept). Importing vidtr_keras does this
(`vidtr_keras.backends.apply_defaults`), so the first screen of every `vidtr` command is its own.
"""

import contextlib
import os
import re
import sys
import tempfile

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# Child processes are measurements and workers whose output is read line by line: TensorFlow's C++
# logging is off there unless the caller says otherwise.
CHILD_LOG_LEVEL = "3"
# The level hidden lines are filtered at when TF_CPP_MIN_LOG_LEVEL is not set: informational lines.
DEFAULT_STARTUP_LEVEL = 1

# absl's log line prefix: severity letter, MMDD, time, thread id, file:line]
_ABSL_RECORD = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ [^\]\s]+:\d+\] ")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
# Lines that start a record of their own rather than continue a hidden absl line (a Python warning or
# traceback written while the backend loaded).
_OWN_RECORD = re.compile(r"^(Traceback |\S.*:\d+: \w*(Warning|Error)\b|WARNING:)")


def tensorflow_defaults(environ=None):
    """Sets `TF_ENABLE_ONEDNN_OPTS=1` in `environ` (os.environ) unless it is set; returns the value in force.

    Takes effect only before TensorFlow is imported.
    """
    environ = os.environ if environ is None else environ
    return environ.setdefault(ONEDNN_VARIABLE, "1")


def child_env(backend=None, environ=None, **extra):
    """The environment for a child process: a copy of `environ` (os.environ) with the backend variables.

    `TF_ENABLE_ONEDNN_OPTS=1` unless set; the child's output is read line by line, so
    `TF_CPP_MIN_LOG_LEVEL=3` (TensorFlow's C++ logging off) and `PYTHONUNBUFFERED=1` (each line as it is
    printed); `KERAS_BACKEND=backend` when given; then `extra` (values turned into strings), which wins
    over all of them.

    >>> env = child_env("jax", environ={"TF_ENABLE_ONEDNN_OPTS": "0"}, OMP_NUM_THREADS=1)
    >>> env["KERAS_BACKEND"], env["TF_ENABLE_ONEDNN_OPTS"], env["TF_CPP_MIN_LOG_LEVEL"], env["OMP_NUM_THREADS"]
    ('jax', '0', '3', '1')
    """
    env = dict(os.environ if environ is None else environ)
    tensorflow_defaults(env)
    env[LOG_LEVEL_VARIABLE] = CHILD_LOG_LEVEL
    env["PYTHONUNBUFFERED"] = "1"
    if backend is not None:
        env["KERAS_BACKEND"] = str(backend)
    env.update({key: str(value) for key, value in extra.items()})
    return env


def startup_level(environ=None):
    """The lowest severity kept (0 info, 1 warning, 2 error, 3 fatal) by `TF_CPP_MIN_LOG_LEVEL` or the default."""
    environ = os.environ if environ is None else environ
    try:
        return max(0, min(3, int(environ.get(LOG_LEVEL_VARIABLE, DEFAULT_STARTUP_LEVEL))))
    except ValueError:
        return DEFAULT_STARTUP_LEVEL


def filter_startup_lines(lines, level=DEFAULT_STARTUP_LEVEL):
    """The lines of standard error to keep: absl log lines below `level` (with their continuation lines)
    go, and absl's preamble with them when no log line is left to explain; everything else is kept.

    >>> kept = filter_startup_lines([
    ...     "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    ...     "I0000 00:00:1796.5   9476 cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...",
    ...     "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow ...",
    ...     "W0000 00:00:1796.6   9476 alloc.cc:12] Allocation exceeds 10% of free system memory.",
    ...     "script.py:3: UserWarning: something else",
    ... ])
    >>> [line[:20] for line in kept]
    ['WARNING: All log mes', 'W0000 00:00:1796.6  ', 'script.py:3: UserWar']
    """
    kept, hiding = [], False
    for line in lines:
        text = line.rstrip("\r\n")
        record = _ABSL_RECORD.match(text)
        if record:
            hiding = _SEVERITY[record.group(1)] < level
        elif text == _ABSL_PREAMBLE or _OWN_RECORD.match(text):
            hiding = False
        if not hiding:
            kept.append(line)
    if not any(_ABSL_RECORD.match(line) for line in kept):
        kept = [line for line in kept if line.rstrip("\r\n") != _ABSL_PREAMBLE]
    return kept


@contextlib.contextmanager
def quiet_tensorflow_startup(environ=None):
    """Holds standard error (file descriptor 2) for the `with` block, then writes back what
    `filter_startup_lines` keeps at the level of `TF_CPP_MIN_LOG_LEVEL` (default: informational lines go).

    Wrap the import that loads TensorFlow (`import keras` on its backend). Where standard error is not a
    file descriptor that can be duplicated, the block runs unchanged.
    """
    level = startup_level(environ)
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode("utf-8", errors="replace").splitlines(keepends=True)
            text = "".join(filter_startup_lines(lines, level))
            if text:
                os.write(2, text.encode("utf-8"))
