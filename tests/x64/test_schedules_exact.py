"""Schedules under x64: float64 values within 1e-12 of the reference.

Run in its own process by tests/test_schedules_x64.py (JAX_ENABLE_X64=1); the
normal test run does not collect this directory (tests/conftest.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsched as js
import reference as ref
from schedule_cases import (CASES, CASE_IDS, FAMILY_CASES, assert_close_to_scale,
                                  check_case_values, check_restarts, padded_call, restart_list)

if not jax.config.jax_enable_x64:  # fail loudly rather than test float32 twice
    raise RuntimeError("tests/x64 must run with JAX_ENABLE_X64=1 "
                       "(use tests/test_schedules_x64.py)")


def test_x64_is_on():
    assert jax.config.jax_enable_x64
    assert jnp.zeros(()).dtype == jnp.float64
    assert js.cosine_decay(0.1, 10)(3).dtype == jnp.float64


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_matches_reference_x64(case):
    check_case_values(case, 1e-12)  # every step in [0, 3T], log-spaced to 2**31-1, marks


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_int64_steps_beyond_int32_x64(case):
    """Under x64 steps beyond int32 stay exact int64 integers."""
    steps = np.asarray([2**31, 2**31 + 1, 2**33 + 3, 2**40, 2**40 + 1, 10**12], np.int64)
    got = padded_call(case.make(), steps)
    assert_close_to_scale(got, case.expected(steps), case.scale, 1e-12, case.id)


# t_mul 1.1 with first_decay_steps 10 or 100 puts a period start at
# 21 + 8.9e-16 (210 + 8.9e-15): the exact rational start of the binary t_mul is
# not representable in float64, so those knife edges are left out.
@pytest.mark.parametrize("first,t_mul", [(f, m) for m in (1.0, 1.5, 2.0, 3.0) for f in (1, 7, 100)]
                         + [(1, 1.1), (7, 1.1), (13, 1.1)])
def test_every_restart_below_2_31_x64(first, t_mul):
    n = check_restarts(first, t_mul, restart_list(first, t_mul, 2**31), 1e-12)
    assert n >= 15


def test_restarts_beyond_int32_x64():
    s = js.cosine_decay_restarts(1.0, 1, 2.0)
    b = np.asarray([2**40 - 2, 2**40 - 1, 2**40], np.int64)  # 2**40 - 1 starts period 40
    got = np.asarray(s(jnp.asarray(b)))
    want = [ref.cosine_decay_restarts(1.0, 1, 2.0, 1.0, 0.0, int(t)) for t in b]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert got[1] == 1.0


@pytest.mark.parametrize("step", [
    5, 5.0, np.int64(5), jnp.asarray(5, jnp.int32), jnp.asarray(5, jnp.int64),
    jnp.asarray(5, jnp.uint8), jnp.asarray(5.0, jnp.float32), jnp.asarray(5.0, jnp.bfloat16),
    jnp.asarray(5.0, jnp.float16), jnp.asarray([5, 6], jnp.int64)],
    ids=["int", "float", "np-int64", "int32", "int64", "uint8", "float32", "bfloat16", "float16",
         "int64-array"])
def test_float64_for_every_step_dtype(step):
    for case in FAMILY_CASES:
        got = case.make()(step)
        assert got.dtype == jnp.float64, (case.id, got.dtype)
        assert np.isfinite(np.asarray(got)).all()
        want = case.ref(5)
        assert float(np.ravel(np.asarray(got))[0]) == pytest.approx(want, abs=1e-12 * case.scale)


def test_bfloat16_hyperparameters_compute_in_float64():
    s = js.cosine_decay(jnp.asarray(1.0, jnp.bfloat16), 1000, jnp.asarray(0.5, jnp.bfloat16))
    got = s(jnp.arange(1000))
    assert got.dtype == jnp.float64
    want = [ref.cosine_decay(1.0, 1000, 0.5, t) for t in range(1000)]
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-12)


def test_noise_std_x64():
    lr, d, var = 0.1, 10**6, 0.25
    steps = np.arange(4000)
    s = js.noisy_linear_cosine_decay(lr, d, var, 0.55, num_periods=0.0, seed=11)
    got = padded_call(s, steps)
    assert got.dtype == np.float64
    noiseless = np.array([ref.noiseless_linear_cosine(lr, d, 0.0, 0.0, 0.001, int(t))
                          for t in steps])
    std = np.array([ref.noisy_linear_cosine_decay_std(var, 0.55, d, int(t)) for t in steps])
    z = (got - noiseless) / lr / std
    assert abs(z.mean()) < 0.1 and 0.9 < z.std() < 1.1
