"""Long runs under x64 (run with JAX_ENABLE_X64=1, in its own process).

Schedules take int64 array steps beyond int32 exactly; an optimizer state at
count 2**31 - 2 keeps working (its int32 counter saturates; the schedules
compute in float64). Expected values: tests/reference.py (float64, exact
rational phase arithmetic).
"""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsched as js

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import reference as ref  # noqa: E402

INT32_MAX = 2**31 - 1
BIG = [2**31 - 1, 2**31, 2**32 + 3, 2**33 - 1, 2**33, 2**33 + 1, 2**40, 2**52 + 1]


def test_x64_is_on():
    assert jax.config.jax_enable_x64, "tests/x64 must run with JAX_ENABLE_X64=1"
    assert js.cosine_decay(0.1, 10)(jnp.asarray(3, jnp.int64)).dtype == jnp.float64


CASES = [
    (lambda: js.piecewise_constant([2**33], [1.0, 0.5]),
     lambda t: ref.piecewise_constant([2**33], [1.0, 0.5], t)),
    (lambda: js.cosine_decay(1.0, 2**40, alpha=0.1),
     lambda t: ref.cosine_decay(1.0, 2**40, 0.1, t)),
    (lambda: js.exponential_decay(1.0, 2**33, 0.5, staircase=True),
     lambda t: ref.exponential_decay(1.0, 2**33, 0.5, True, t)),
    (lambda: js.warmup(js.constant(1.0), 2**33),
     lambda t: ref.warmup(lambda s: 1.0, 2**33, 0.0, t)),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_int64_steps_beyond_int32(case):
    make, expected = CASES[case]
    s = make()
    steps = jnp.asarray(BIG, jnp.int64)
    got = np.asarray(jax.jit(jax.vmap(s))(steps))
    want = np.array([expected(t) for t in BIG])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    for t, w in zip(BIG, want):  # as Python ints too
        assert float(s(t)) == pytest.approx(w, rel=1e-12, abs=1e-15)


def test_boundary_past_int32_is_exact():
    s = js.piecewise_constant([2**33], [1.0, 0.5])
    got = np.asarray(s(jnp.asarray([2**33, 2**33 + 1], jnp.int64)))
    assert got.tolist() == [1.0, 0.5]  # TF: the boundary step itself is still the first value


def test_state_at_int32_max_keeps_working_under_x64():
    sched = js.warmup(js.cosine_decay(0.1, 1000, alpha=0.01), 10)
    opt = js.skip_nonfinite(js.chain(js.adamw(sched), js.reduce_on_plateau(patience=0)))
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    state = opt.init(params)
    state = jax.tree_util.tree_map_with_path(
        lambda p, x: jnp.full_like(x, INT32_MAX - 1) if getattr(p[-1], "name", "") == "count"
        else x, state)

    @jax.jit
    def step(params, state):
        grads = jax.tree.map(jnp.sin, params)
        updates, state = opt.update(grads, state, params, value=jnp.sum(params["w"] ** 2))
        return optax.apply_updates(params, updates), state

    for _ in range(10):
        params, state = step(params, state)
    counts = [int(x) for p, x in jax.tree_util.tree_flatten_with_path(state)[0]
              if getattr(p[-1], "name", "") == "count"]
    assert counts and all(c == INT32_MAX for c in counts)
    assert all(x.dtype == jnp.int32 for p, x in jax.tree_util.tree_flatten_with_path(state)[0]
               if getattr(p[-1], "name", "") == "count")
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves((params, state)))
    lr = js.hyperparams(state)["learning_rate"]
    assert lr.dtype == jnp.float64 and float(lr) == pytest.approx(1e-3, rel=1e-12)
