"""Remat on JAX on the CPU: the XLA setting that keeps jax.checkpoint's barriers (`vidtr_keras.backends.xla_cpu`).

XLA's CPU compiler removes optimization barriers (its `cse_barrier_expander` pass) and then merges
the recomputation of a rematerialised block with the forward pass. Importing vidtr_keras disables
that one pass through XLA_FLAGS, keeping whatever the user set; a remat model warns when the setting
is missing (once per process: specified in a fresh process in backends/test_backends.py). The effect on the
compiled step's memory is specified in models/test_remat.py.
"""

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidtr_keras.backends import xla_cpu

from helpers import BACKEND

PASS = xla_cpu.REMAT_PASS
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(lambda n: n != PASS)
other_flags = st.lists(
    st.sampled_from(["--xla_dump_to=/tmp/x", "--xla_backend_optimization_level=0", "--xla_cpu_use_thunk_runtime=true"]),
    max_size=3,
)


@given(user_passes=st.lists(names, max_size=4), others=other_flags, disable_first=st.booleans())
def test_the_pass_is_added_and_every_user_setting_kept(user_passes, others, disable_first):
    disable = [f"--xla_disable_hlo_passes={','.join(user_passes)}"] if user_passes else []
    flags = " ".join(disable + others if disable_first else others + disable)
    kept = xla_cpu.with_remat_kept(flags)
    assert xla_cpu.disabled_passes(kept) == user_passes + [PASS]
    assert kept.count("--xla_disable_hlo_passes") == 1
    for flag in others:
        assert flag in kept.split()
    assert xla_cpu.with_remat_kept(kept) == kept  # idempotent


def test_explicit_cases():
    assert xla_cpu.with_remat_kept("") == f"--xla_disable_hlo_passes={PASS}"
    assert xla_cpu.with_remat_kept(None) == f"--xla_disable_hlo_passes={PASS}"
    # XLA reads the last occurrence of a repeated flag: that one is extended.
    flags = "--xla_disable_hlo_passes=a --xla_disable_hlo_passes=b,c"
    assert xla_cpu.disabled_passes(flags) == ["b", "c"]
    assert xla_cpu.with_remat_kept(flags) == f"--xla_disable_hlo_passes=a --xla_disable_hlo_passes=b,c,{PASS}"
    assert xla_cpu.remat_kept({"XLA_FLAGS": f"--xla_disable_hlo_passes=x,{PASS}"})
    assert not xla_cpu.remat_kept({"XLA_FLAGS": "--xla_dump_to=/tmp"})
    assert not xla_cpu.remat_kept({})


def test_only_jax_on_the_cpu_gets_the_setting():
    env = {"XLA_FLAGS": "--xla_dump_to=/tmp/d", "JAX_PLATFORMS": "cpu"}
    for backend in ("tensorflow", "torch", "numpy"):
        assert not xla_cpu.keep_remat_on_cpu(backend, env)
        assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/d"
    assert xla_cpu.keep_remat_on_cpu("jax", env)
    assert env["XLA_FLAGS"] == f"--xla_dump_to=/tmp/d --xla_disable_hlo_passes={PASS}"


def test_an_accelerator_jax_is_left_alone():
    plugins = ("json",)  # any installed module stands in for an accelerator plugin
    env = {}
    assert not xla_cpu.cpu_only_jax(env, plugins)
    assert not xla_cpu.keep_remat_on_cpu("jax", env, plugins) and "XLA_FLAGS" not in env
    env = {"JAX_PLATFORMS": "cpu"}  # unless JAX is told to use the CPU only
    assert xla_cpu.keep_remat_on_cpu("jax", env, plugins) and xla_cpu.remat_kept(env)


def test_importing_vidtr_keras_set_it_on_jax():
    if BACKEND != "jax":
        assert not xla_cpu.keep_remat_on_cpu(BACKEND, {})
        pytest.skip(f"the setting is for JAX only; on {BACKEND} nothing is set (checked above)")
    assert xla_cpu.remat_kept(), os.environ.get("XLA_FLAGS")


def test_a_remat_block_is_warned_about_when_the_setting_is_missing():
    if BACKEND != "jax":
        assert xla_cpu.remat_undone_message({}) is None
        pytest.skip("the warning is about XLA:CPU, which runs only the JAX backend here")
    message = xla_cpu.remat_undone_message({"XLA_FLAGS": "--xla_backend_optimization_level=0"})
    assert "remat=True on JAX on the CPU saves no memory" in message
    assert f"XLA_FLAGS=--xla_disable_hlo_passes={PASS}" in message
    assert xla_cpu.remat_undone_message({"XLA_FLAGS": f"--xla_disable_hlo_passes={PASS}"}) is None
