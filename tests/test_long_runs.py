"""Long runs: the step counter saturates at 2**31 - 1 and nothing breaks.

A state whose counters are set to 2**31 - 2 keeps working for 10 more
updates: counters stop at 2**31 - 1 (never wrap to negative), schedules hold
their final value, and no NaN appears. Schedules take steps beyond int32 as
Python ints and NumPy int64 arrays (x64 int64 arrays: tests/x64/).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsched as js
from optimizer_registry import OPTIMIZERS as REGISTRY

INT32_MAX = 2**31 - 1
FINAL_LR = 1e-3  # every schedule below ends at 1e-3 (and stays there)


def _final_schedules():
    return {
        "cosine": js.cosine_decay(0.1, 1000, alpha=0.01),
        "warmup+cosine": js.warmup(js.cosine_decay(0.1, 1000, alpha=0.01), 100),
        "wsd": js.warmup_stable_decay(0.1, 10, 100, 1000, end_value=1e-3),
        "piecewise": js.piecewise_constant([100, 1000], [0.1, 0.01, 1e-3]),
        "polynomial": js.polynomial_decay(0.1, 1000, end_learning_rate=1e-3),
        "one_cycle": js.one_cycle(0.1, 1000, div_factor=10.0, final_div_factor=10.0),
    }


def _optimizers():
    sched = _final_schedules()
    built = {name: REGISTRY[registered].ours(sched[schedule], None) for name, registered, schedule
             in [("sgd", "sgd", "cosine"), ("momentum", "momentum_nesterov", "piecewise"),
                 ("adagrad", "adagrad", "polynomial"), ("rmsprop", "rmsprop_centered", "wsd"),
                 ("adam", "adam", "warmup+cosine"), ("adamw", "adamw", "one_cycle")]}
    return {
        **built,
        "optax.adam": optax.chain(js.scale_by_adam(), js.scale_by_learning_rate(sched["cosine"])),
        "skip(adam+plateau)": js.skip_nonfinite(js.chain(
            js.adam(sched["cosine"]), js.reduce_on_plateau(patience=0, accumulation_size=2))),
    }


def _set_counters(state, value):
    """Every step counter (`count`) of the state set to `value`."""
    names = ("count",)

    def one(path, leaf):
        last = path[-1]
        if getattr(last, "name", None) in names:
            return jnp.full_like(leaf, value)
        return leaf

    return jax.tree_util.tree_map_with_path(one, state)


def _counters(state):
    return [int(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]
            if getattr(path[-1], "name", None) == "count"]


@pytest.mark.parametrize("name", list(_optimizers()))
def test_state_at_int32_max_keeps_working(name):
    opt = _optimizers()[name]
    params = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array(0.5)}
    state = _set_counters(opt.init(params), INT32_MAX - 1)

    @jax.jit
    def step(params, state, i):
        grads = jax.tree.map(lambda p: jnp.sin(p + i), params)
        updates, state = opt.update(grads, state, params, value=jnp.sum(params["w"] ** 2))
        return optax.apply_updates(params, updates), state, updates

    for i in range(10):
        params, state, updates = step(params, state, jnp.float32(i))
        assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves((params, updates)))
        assert all(np.abs(np.asarray(u)).max() > 0 for u in jax.tree.leaves(updates))
    # (the plateau's `best` is +inf only until its first decision)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state))
    counters = _counters(state)
    assert counters and all(c == INT32_MAX for c in counters)
    hp = js.hyperparams(state)
    assert float(hp["learning_rate"]) == pytest.approx(FINAL_LR, rel=1e-5)


def test_skip_counters_saturate():
    opt = js.skip_nonfinite(js.sgd(0.1))
    state = opt.init(jnp.zeros(2))
    state = state._replace(total_skips=jnp.int32(INT32_MAX - 1),
                           consecutive_skips=jnp.int32(INT32_MAX - 1))
    update = jax.jit(opt.update)
    for _ in range(5):
        u, state = update(jnp.array([jnp.inf, 1.0]), state)
        assert np.asarray(u).tolist() == [0.0, 0.0]
    assert int(state.total_skips) == INT32_MAX and int(state.consecutive_skips) == INT32_MAX


@pytest.mark.parametrize("name", list(_final_schedules()))
def test_schedule_holds_final_value_beyond_int32(name):
    s = _final_schedules()[name]
    at_max = float(s(INT32_MAX))
    assert at_max == pytest.approx(FINAL_LR, rel=1e-5)
    for step in [2**31, 2**32 + 7, 2**40, 10**15, 2**62]:
        assert float(s(step)) == at_max, step  # a Python int, never wrapped to negative
    steps = np.array([INT32_MAX, 2**31, 2**40, 2**62], np.int64)
    np.testing.assert_array_equal(np.asarray(jax.vmap(s)(jnp.asarray(
        np.asarray(steps, np.float64), jnp.float32))), at_max)
    np.testing.assert_array_equal(np.asarray(s(steps)), at_max)  # a NumPy int64 array


def test_large_steps_inside_a_schedule_are_exact_where_it_matters():
    # Boundaries past int32 work with Python-int steps (as floats without x64).
    s = js.piecewise_constant([2**33], [1.0, 0.5])
    assert float(s(2**32)) == 1.0 and float(s(2**34)) == 0.5
    c = js.cosine_decay(1.0, 2**40)
    assert float(c(2**39)) == pytest.approx(0.5, abs=1e-6)
