"""Backend speed settings (`vidtr_keras.backends.tune_backend`): they change how a backend computes, never
what it computes."""

import keras
import numpy as np
import pytest

from vidtr_keras.backends import tune_backend
from vidtr_keras.backends.jax_rng import fast_jax_cpu_rng


def _draws():
    import jax

    key = jax.random.key(3)
    bits, uniform = jax.jit(lambda k: (jax.random.bits(k, (300, 37)), jax.random.uniform(k, (5, 99))))(key)
    mask = keras.random.dropout(keras.ops.ones((3, 40, 70)), 0.1, seed=keras.random.SeedGenerator(7))
    return np.asarray(bits), np.asarray(uniform), keras.ops.convert_to_numpy(mask)


def test_other_backends_are_left_alone():
    if keras.backend.backend() == "jax":
        pytest.skip("the JAX setting is tested below")
    assert fast_jax_cpu_rng() is False
    assert tune_backend() == {"fast_jax_cpu_rng": False}


def test_jax_fast_rng_lowers_threefry_without_a_loop_and_draws_the_same_bits():
    if keras.backend.backend() != "jax":
        pytest.skip("a JAX-only setting")
    import jax

    if jax.default_backend() != "cpu":
        pytest.skip("the setting concerns the CPU lowering")
    before = _draws()
    assert fast_jax_cpu_rng() is True
    after = _draws()
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)
    # The mask is a real dropout mask: about 10% zeros, the rest scaled by 1 / 0.9.
    mask = after[2]
    assert 0.05 < np.mean(mask == 0) < 0.15
    np.testing.assert_allclose(mask[mask != 0], 1 / 0.9, rtol=1e-6)
    # Lowered as straight-line code: no loop left in the compiled random-bit generation.
    hlo = jax.jit(lambda k: jax.random.bits(k, (64,))).lower(jax.random.key(0)).compile().as_text()
    assert "while" not in hlo
    assert tune_backend()["fast_jax_cpu_rng"] is True  # idempotent
