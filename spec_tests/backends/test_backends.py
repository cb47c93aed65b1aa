"""The backend workarounds' entry points: the switches of `vidtr_keras.config`, the defaults importing
vidtr_keras applies and the variable that turns them off, the environment of child processes, and
TensorFlow's C++ start-up lines kept off the first screen of a `vidtr` command.

Import-time behaviour is observed in fresh processes (an import happens once per process)."""

import json
import os
import subprocess
import sys

import pytest

from vidtr_keras import backends, config
from vidtr_keras.backends import env as backend_env

from helpers import BACKEND, REPO

SWITCHES = {
    "fused_attention": (
        config.enable_fused_attention,
        config.disable_fused_attention,
        config.reset_fused_attention,
        config.is_fused_attention_enabled,
    ),
    "gradient_fence": (
        config.enable_gradient_fence,
        config.disable_gradient_fence,
        config.reset_gradient_fence,
        config.is_gradient_fence_enabled,
    ),
}


def _run(code, **environ):
    """Runs `code` in a fresh Python on the current backend; (returncode, stdout and stderr together)."""
    env = {k: v for k, v in os.environ.items() if k not in environ or environ[k] is not None}
    env.update({k: v for k, v in environ.items() if v is not None})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", list(SWITCHES))
def test_every_switch_round_trips_and_starts_automatic(name):
    enable, disable, reset, is_enabled = SWITCHES[name]
    assert is_enabled() is None
    try:
        enable()
        assert is_enabled() is True
        disable()
        assert is_enabled() is False
        enable()
        assert is_enabled() is True
    finally:
        reset()
    assert is_enabled() is None


def test_the_switches_are_on_the_package_face():
    import vidtr_keras

    assert vidtr_keras.config is config
    for name in SWITCHES:
        for verb in ("enable_", "disable_", "reset_", "is_"):
            attribute = f"{verb}{name}" if verb != "is_" else f"is_{name}_enabled"
            assert callable(getattr(vidtr_keras.config, attribute))


def test_the_opt_out_variable_leaves_the_environment_alone():
    # XLA_FLAGS would be extended on a CPU-only JAX and TF_ENABLE_ONEDNN_OPTS set everywhere; with the
    # variable set, importing vidtr_keras (and building a model) changes neither.
    code = (
        "import os, json, vidtr_keras\n"
        "vidtr_keras.build_model('vidtr_tiny', num_classes=2)\n"
        "print('ENV ' + json.dumps([os.environ.get('XLA_FLAGS'), os.environ.get('TF_ENABLE_ONEDNN_OPTS')]))\n"
    )
    code_rc, out = _run(
        code,
        VIDTR_KERAS_NO_BACKEND_DEFAULTS="1",
        XLA_FLAGS="--xla_backend_optimization_level=0",
        TF_ENABLE_ONEDNN_OPTS=None,
        JAX_PLATFORMS="cpu" if BACKEND == "jax" else None,
    )
    assert code_rc == 0, out
    line = [ln for ln in out.splitlines() if ln.startswith("ENV ")][-1]
    assert json.loads(line[4:]) == ["--xla_backend_optimization_level=0", None]


def test_without_the_variable_the_defaults_are_applied():
    environ = {"XLA_FLAGS": "--xla_dump_to=/tmp/d", "JAX_PLATFORMS": "cpu"}
    applied = backends.apply_defaults("jax", environ)
    assert applied == {"TF_ENABLE_ONEDNN_OPTS": "1", "xla_remat_flag": True}
    assert environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert environ["XLA_FLAGS"] == "--xla_dump_to=/tmp/d --xla_disable_hlo_passes=cse_barrier_expander"
    environ = {"TF_ENABLE_ONEDNN_OPTS": "0"}  # the user's own setting wins
    assert backends.apply_defaults("torch", environ) == {"TF_ENABLE_ONEDNN_OPTS": "0", "xla_remat_flag": False}
    assert environ == {"TF_ENABLE_ONEDNN_OPTS": "0"}
    for value, enabled in (("1", False), ("true", False), ("0", True), ("", True)):
        assert backends.defaults_enabled({backends.NO_DEFAULTS_VARIABLE: value}) is enabled
    assert backends.defaults_enabled({})


def test_child_processes_get_the_backend_variables():
    env = backend_env.child_env("jax", environ={"PATH": "/bin", "TF_CPP_MIN_LOG_LEVEL": "0"}, OMP_NUM_THREADS=2)
    assert env["KERAS_BACKEND"] == "jax" and env["PATH"] == "/bin"
    assert env["TF_ENABLE_ONEDNN_OPTS"] == "1" and env["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert env["PYTHONUNBUFFERED"] == "1" and env["OMP_NUM_THREADS"] == "2"
    assert backend_env.child_env(environ={"TF_ENABLE_ONEDNN_OPTS": "0"})["TF_ENABLE_ONEDNN_OPTS"] == "0"
    assert "KERAS_BACKEND" not in backend_env.child_env(environ={})
    assert backend_env.child_env("torch", environ={}, TF_CPP_MIN_LOG_LEVEL=1)["TF_CPP_MIN_LOG_LEVEL"] == "1"


STARTUP = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1796237408.013889    9476 port.cc:153] oneDNN custom operations are on. You may see ...\n",
    "I0000 00:00:1796237408.075099    9476 cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...\n",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow ...\n",
]


def test_tensorflow_start_up_lines_are_filtered_by_level():
    warning = "W0000 00:00:1796237408.1    9476 cpu_allocator_impl.cc:83] Allocation exceeds 10% of memory.\n"
    python_warning = "/x/y.py:3: UserWarning: a warning of the program's own\n"
    lines = STARTUP + [warning, python_warning, "  warnings.warn(...)\n"]
    assert backend_env.filter_startup_lines(lines, level=1) == [STARTUP[0], warning] + lines[-2:]
    assert backend_env.filter_startup_lines(lines, level=0) == lines  # TF_CPP_MIN_LOG_LEVEL=0: everything
    assert backend_env.filter_startup_lines(lines, level=2) == lines[-2:]  # no absl line left: no preamble
    assert backend_env.filter_startup_lines(STARTUP, level=1) == []
    assert backend_env.startup_level({}) == 1 and backend_env.startup_level({"TF_CPP_MIN_LOG_LEVEL": "2"}) == 2


def test_the_first_screen_of_a_vidtr_command_has_no_tensorflow_log_lines():
    if BACKEND != "tensorflow":
        pytest.skip("TensorFlow writes the start-up lines; run on the TensorFlow backend")
    code = "import sys; from vidtr_keras.cli import main; sys.exit(main(['presets']))"
    rc, out = _run(code, TF_CPP_MIN_LOG_LEVEL=None, KERAS_BACKEND="tensorflow")
    assert rc == 0, out
    for notice in ("oneDNN", "cpu_feature_guard", "absl::InitializeLog"):
        assert notice not in out, out[:2000]
    assert "vidtr_s" in out  # the command's own output is there


def test_a_remat_block_without_the_xla_flag_warns_once_per_process():
    if BACKEND != "jax":
        pytest.skip("the warning is about XLA:CPU, which runs only the JAX backend here")
    code = (
        "import warnings, numpy as np\n"
        "warnings.simplefilter('always')\n"
        "from vidtr_keras.layers import VidTrEncoderBlock\n"
        "x = np.zeros((1, 2, 3, 8), 'float32')\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    VidTrEncoderBlock(2, 16, dropout=0.0, attention_dropout=0.0)(x, training=True)\n"
        "    for _ in range(2):\n"
        "        VidTrEncoderBlock(2, 16, dropout=0.0, attention_dropout=0.0, remat=True)(x, training=True)\n"
        "print('WARNINGS', sum('saves no memory' in str(w.message) for w in caught))\n"
    )
    # XLA_FLAGS without the remat flag; the suite's optimisation level (conftest.py) only makes the eager
    # operations compile faster
    flags = "--xla_backend_optimization_level=0"
    rc, out = _run(code, VIDTR_KERAS_NO_BACKEND_DEFAULTS="1", XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    assert rc == 0, out
    assert "WARNINGS 1" in out, out
