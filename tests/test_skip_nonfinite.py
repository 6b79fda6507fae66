"""`skip_nonfinite`: a NaN/inf gradient leaves no trace in the optimizer."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsched as js


def _grads(n):
    rng = np.random.default_rng(1)
    return [{"w": jnp.asarray(rng.standard_normal((3, 2)), jnp.float32),
             "b": jnp.asarray(rng.standard_normal(2), jnp.float32)} for _ in range(n)]


def _run(opt, grads, params, step=None):
    step = step or jax.jit(lambda p, s, g: (lambda us: (optax.apply_updates(p, us[0]), us[1]))(
        opt.update(g, s, p)))
    state = opt.init(params)
    for g in grads:
        params, state = step(params, state, g)
    return params, state


def _bitwise_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(la, lb):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.atleast_1d(np.asarray(x)).view(np.uint8),
                                      np.atleast_1d(np.asarray(y)).view(np.uint8))


@pytest.mark.parametrize("make", [
    lambda: js.adam(js.warmup(js.cosine_decay(1e-2, 20), 5)),
    lambda: optax.adam(optax.cosine_decay_schedule(1e-2, 20)),
    lambda: js.chain(js.adam(1e-2), js.ema_params(0.9)),  # the average included
], ids=["js.adam+schedule", "optax.adam+schedule", "js.adam+ema_params"])
def test_inf_gradient_is_as_if_the_step_never_happened(make):
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    grads = _grads(12)
    bad = {"w": grads[0]["w"].at[1, 1].set(jnp.inf), "b": grads[0]["b"]}
    opt = js.skip_nonfinite(make())
    step = jax.jit(lambda p, s, g: (lambda us: (optax.apply_updates(p, us[0]), us[1]))(
        opt.update(g, s, p)))
    with_bad, s_bad = _run(opt, grads[:6] + [bad] + grads[6:], params, step)
    without, s_ok = _run(opt, grads, params, step)
    _bitwise_equal(with_bad, without)
    _bitwise_equal(s_bad.inner_state, s_ok.inner_state)  # moments and step count
    assert int(s_bad.total_skips) == 1 and int(s_ok.total_skips) == 0
    assert int(s_bad.count) == 13 and int(s_ok.count) == 12
    # and the moments moved at all: the run is not trivially equal
    assert not np.array_equal(np.asarray(with_bad["w"]), np.ones((3, 2)))


def test_skipped_update_is_zero_in_each_dtype():
    opt = js.skip_nonfinite(js.sgd(js.constant(0.1)))  # a schedule: the inner state counts
    g = {"a": jnp.array([1.0, math.nan], jnp.bfloat16), "b": jnp.ones(2, jnp.float32)}
    u, s = opt.update(g, opt.init(g))
    assert u["a"].dtype == jnp.bfloat16 and u["b"].dtype == jnp.float32
    assert np.asarray(u["b"]).tolist() == [0.0, 0.0]
    assert np.asarray(u["a"], float).tolist() == [0.0, 0.0]
    assert int(s.inner_state[0].count) == 0


def test_counts_total_and_consecutive():
    opt = js.skip_nonfinite(js.sgd(js.constant(1.0)))  # a schedule: the inner state counts
    s = opt.init(jnp.zeros(1))
    seen = []
    for v in [1.0, math.nan, math.inf, 2.0, -math.inf, 3.0]:
        u, s = opt.update(jnp.array([v]), s)
        seen.append((int(s.total_skips), int(s.consecutive_skips), float(u[0])))
    assert seen == [(0, 0, -1.0), (1, 1, 0.0), (2, 2, 0.0), (2, 0, -2.0), (3, 1, 0.0),
                    (3, 0, -3.0)]
    assert int(s.count) == 6 and int(s.inner_state[0].count) == 3


def test_max_consecutive_lets_the_failure_through():
    """After `max_consecutive` skips in a row, a non-finite update goes through (documented)."""
    # A schedule, so that the inner state counts its updates (at [1]).
    opt = js.skip_nonfinite(js.momentum(js.constant(1.0), 0.5), max_consecutive=2)
    s = opt.init(jnp.zeros(1))
    out = []
    for v in [1.0, math.nan, math.nan, math.nan, math.nan, 1.0, math.nan]:
        u, s = opt.update(jnp.array([v]), s)
        out.append((float(u[0]), int(s.total_skips), int(s.consecutive_skips),
                    int(s.inner_state[1].count)))
    nan = out[3][0]
    assert math.isnan(nan) and math.isnan(out[4][0]) and math.isnan(out[5][0])
    assert [o[1:] for o in out] == [
        (0, 0, 1),  # finite
        (1, 1, 1),  # skipped
        (2, 2, 1),  # skipped: the limit is reached
        (2, 2, 2),  # let through: the momentum buffer is now NaN, visibly
        (2, 2, 3),  # still let through while the run stays non-finite
        (2, 0, 4),  # a finite gradient resets the consecutive count
        (3, 1, 4),  # ... so the next non-finite one is skipped again
    ]
    assert out[0][0] == -1.0
    assert np.isnan(np.asarray(s.inner_state[0].trace)).all()


def test_max_consecutive_zero_never_skips():
    opt = js.skip_nonfinite(js.sgd(1.0), max_consecutive=0)
    u, s = opt.update(jnp.array([math.inf]), opt.init(jnp.zeros(1)))
    assert math.isinf(float(u[0])) and int(s.total_skips) == 0


def test_forwards_extra_args_and_skips_plateau_state():
    opt = js.skip_nonfinite(js.chain(js.sgd(1.0), js.reduce_on_plateau(factor=0.5, patience=0)))
    s = opt.init(jnp.zeros(1))
    _, s = opt.update(jnp.ones(1), s, value=1.0)
    before = s.inner_state
    _, s = opt.update(jnp.array([math.nan]), s, value=5.0)  # skipped: the metric is not seen
    _bitwise_equal(before, s.inner_state)
    u, s = opt.update(jnp.ones(1), s, value=1.0)
    assert float(u[0]) == -0.5


def test_one_nonfinite_leaf_skips_everything():
    opt = js.skip_nonfinite(js.sgd(1.0))
    g = {"a": jnp.ones(3), "b": jnp.array([1.0, math.nan]), "c": jnp.ones((2, 2))}
    u, _ = opt.update(g, opt.init(g))
    assert all(np.asarray(x).sum() == 0 for x in jax.tree.leaves(u))


def test_jit_vmap_and_stable_state():
    opt = js.skip_nonfinite(js.adam(1e-2), max_consecutive=3)
    params = jnp.zeros(2)
    s0 = opt.init(params)

    @jax.jit
    def step(s, g):
        _, new = opt.update(g, s, params)
        return jax.lax.cond(True, lambda: s, lambda: new)  # fails on any drift

    step(s0, jnp.ones(2))
    step(s0, jnp.array([jnp.nan, 1.0]))
    # vmapped over a batch of runs: each one decides on its own gradient
    gs = jnp.array([[1.0, 1.0], [jnp.inf, 1.0]])
    u, s = jax.vmap(lambda g: opt.update(g, s0, params))(gs)
    assert np.asarray(s.total_skips).tolist() == [0, 1]
    assert np.asarray(u[1]).tolist() == [0.0, 0.0] and np.all(np.asarray(u[0]) != 0)


@pytest.mark.parametrize("kw,exc,message", [
    (dict(inner=lambda g: g), TypeError,
     "`skip_nonfinite(inner=...)` must be an optax GradientTransformation, got function"),
    (dict(inner=js.sgd(0.1), max_consecutive=-1), ValueError,
     "`skip_nonfinite(max_consecutive=...)` must be >= 0, got -1."),
    (dict(inner=js.sgd(0.1), max_consecutive=2.5), TypeError,
     "`skip_nonfinite(max_consecutive=...)` must be an integer, got float 2.5."),
], ids=["inner", "negative", "float"])
def test_bad_arguments(kw, exc, message):
    with pytest.raises(exc) as info:
        js.skip_nonfinite(**kw)
    assert str(info.value).startswith(message)
