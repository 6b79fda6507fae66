"""Gradient transformations: values, hyperparameter kinds, state, dtypes.

One registry, `TRANSFORMS`, lists every jaxsched transformation (several
configurations each); the structural tests (state type, `lax.cond` stability
across dtypes, saturating counter, zero gradients in half precision) run over
all of it. The value tests compare against docs/formulas.md written out in NumPy,
the float64 reference (`tests/reference.py`) and optax's equivalents.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pickle

import pytest

import jaxsched as js
import reference as ref
from optimizer_registry import OPTIMIZERS
from training import with_count

INT32_MAX = 2**31 - 1


class T(NamedTuple):
    """One transformation configuration: its factory and its state class."""

    make: Callable[[], optax.GradientTransformation]
    state: type


TRANSFORMS: dict[str, T] = {
    "clip": T(lambda: js.clip(0.5), js.ClipState),
    "clip_by_norm": T(lambda: js.clip_by_norm(0.5), js.ClipByNormState),
    "clip_by_global_norm": T(lambda: js.clip_by_global_norm(0.5), js.ClipByGlobalNormState),
    "scale": T(lambda: js.scale(-0.5), js.ScaleState),
    "scale_by_schedule": T(lambda: js.scale_by_schedule(js.cosine_decay(1.0, 10)),
                           js.ScaleByScheduleState),
    "scale_by_learning_rate": T(lambda: js.scale_by_learning_rate(js.cosine_decay(0.1, 10)),
                                js.ScaleByLearningRateState),
    "scale_by_adam": T(lambda: js.scale_by_adam(), js.ScaleByAdamState),
    "scale_by_adam_nesterov_mu32": T(
        lambda: js.scale_by_adam(0.8, 0.99, 1e-6, 1e-10, mu_dtype=jnp.float32, nesterov=True),
        js.ScaleByAdamState),
    "scale_by_adam_amsgrad": T(
        lambda: js.scale_by_adam(0.8, js.polynomial_decay(0.99, 10, 0.9), nesterov=True,
                                 amsgrad=True), js.ScaleByAdamAmsgradState),
    "scale_by_rms": T(lambda: js.scale_by_rms(), js.ScaleByRmsState),
    "scale_by_rms_centered": T(lambda: js.scale_by_rms(0.95, 1e-6, 0.5, centered=True),
                               js.ScaleByRmsState),
    "scale_by_adagrad": T(lambda: js.scale_by_adagrad(), js.ScaleByAdagradState),
    "trace": T(lambda: js.trace(0.9), js.TraceState),
    "trace_nesterov": T(lambda: js.trace(js.exponential_decay(0.9, 5, 0.5), nesterov=True),
                        js.TraceState),
    "ema": T(lambda: js.ema(0.9), js.EmaState),
    "ema_no_debias": T(lambda: js.ema(0.5, debias=False), js.EmaState),
    "add_decayed_weights": T(lambda: js.add_decayed_weights(0.1), js.AddDecayedWeightsState),
    "add_decayed_weights_mask": T(
        lambda: js.add_decayed_weights(0.1, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p)),
        js.AddDecayedWeightsState),
}

DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]


def params_like(dtype=jnp.float32, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {"w": jax.random.normal(k1, (3, 4)).astype(dtype),
            "b": jax.random.normal(k2, (4,)).astype(dtype)}


def grads_like(dtype=jnp.float32, seed=1):
    return params_like(dtype, seed)


def counts(state: Any) -> list:
    out = []
    if isinstance(state, tuple) and hasattr(state, "_fields") and "count" in state._fields:
        out.append(state.count)
    if isinstance(state, (tuple, list)):
        for s in state:
            out.extend(counts(s))
    return out


def run(tx, grads_seq, params, jit=False):
    """Apply `tx` to each gradient in turn; return the updates and the last state."""
    update = jax.jit(tx.update) if jit else tx.update
    state = tx.init(params)
    outs = []
    for g in grads_seq:
        u, state = update(g, state, params)
        outs.append(u)
    return outs, state


def np_tree(tree):
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


# ---------------------------------------------------------------- structure


@pytest.mark.parametrize("name", TRANSFORMS)
def test_is_gradient_transformation_with_named_state(name):
    case = TRANSFORMS[name]
    tx = case.make()
    assert isinstance(tx, optax.GradientTransformation)
    state = tx.init(params_like())
    # Of the class itself, or of its subclass holding the numbers (same name).
    assert isinstance(state, case.state) and type(state).__name__ == case.state.__name__
    assert case.state.__name__.endswith("State") and issubclass(case.state, tuple)
    # The count, where the transformation keeps one (test_count_is_kept_only_where_used).
    assert (isinstance(state.count, tuple) and state.count == ()) or (
        state.count.dtype == jnp.int32 and state.count.shape == ())
    u, new_state = tx.update(grads_like(), state, params_like())
    assert type(new_state) is type(state)  # the same structure after the update
    assert jax.tree.structure(u) == jax.tree.structure(grads_like())


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("name", TRANSFORMS)
def test_state_stable_and_dtypes(name, dtype):
    """State structure and dtypes survive update (the `lax.cond` check); updates
    come back in the gradients' dtype, moments in float32 or wider; zero
    gradients give no NaN in half precision."""
    tx = TRANSFORMS[name].make()
    p = params_like(dtype)
    state = tx.init(p)
    _, new_state = tx.update(grads_like(dtype), state, p)
    # Raises on any difference in structure, shape or dtype (incl. weak types).
    jax.lax.cond(True, lambda: state, lambda: new_state)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(new_state)):
        assert (a.dtype, a.shape, a.weak_type) == (b.dtype, b.shape, b.weak_type), name
    # Buffers: float32 for parameters narrower than float32, else the parameters' dtype.
    state_dtype = jnp.float32 if jnp.dtype(dtype).itemsize < 4 else dtype
    for field in ("nu", "mu", "trace", "ema", "sum_of_squares"):
        if hasattr(state, field):
            assert all(x.dtype == state_dtype for x in jax.tree.leaves(getattr(state, field)))
    # float32 gradients on low-precision parameters: float32 updates.
    u, _ = tx.update(grads_like(jnp.float32), state, p)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(u)), name
    zeros = jax.tree.map(jnp.zeros_like, p)
    out, state = run(tx, [zeros] * 3, p)
    for u in out:
        for x in jax.tree.leaves(u):
            assert x.dtype == dtype
            assert np.isfinite(np.asarray(x, np.float32)).all(), name
    assert all(np.isfinite(np.asarray(x, np.float32)).all() for x in jax.tree.leaves(state))


def test_mu_and_nu_dtype_override_the_moment_dtypes():
    p = params_like(jnp.float32)
    tx = js.scale_by_adam(mu_dtype=jnp.bfloat16, nu_dtype=jnp.float16)
    state = tx.init(p)
    u, state = tx.update(grads_like(jnp.float32), state)
    assert {x.dtype for x in jax.tree.leaves(state.mu)} == {jnp.dtype(jnp.bfloat16)}
    assert {x.dtype for x in jax.tree.leaves(state.nu)} == {jnp.dtype(jnp.float16)}
    assert {x.dtype for x in jax.tree.leaves(u)} == {jnp.dtype(jnp.float32)}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_counter_saturates(name):
    tx = TRANSFORMS[name].make()
    p = params_like()
    state = with_count(tx.init(p), INT32_MAX - 1)
    update = jax.jit(tx.update)
    for _ in range(5):
        u, state = update(grads_like(), state, p)
        assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(u)), name
        assert all(np.isfinite(np.asarray(x)).all()
                   for x in jax.tree.leaves(js.hyperparams(state))), name
    assert state.count.dtype == jnp.int32
    assert int(state.count) == INT32_MAX


def test_counter_saturates_in_chain_with_schedule():
    tx = js.chain(js.clip_by_global_norm(1.0), js.scale_by_adam(),
                  js.scale_by_learning_rate(js.cosine_decay(1e-3, 1000)))
    p = params_like()
    state = tx.init(p)
    state = tuple(s._replace(count=jnp.asarray(INT32_MAX - 1, jnp.int32)) for s in state)
    for _ in range(5):
        u, state = tx.update(grads_like(), state, p)
    assert [int(c) for c in counts(state)] == [INT32_MAX] * 3
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves((u, state)))
    # cosine_decay is at its floor (alpha = 0) far past decay_steps.
    assert float(js.hyperparams(state)["learning_rate"]) == 0.0


def test_chain_returns_optax_transformation_and_applies_in_order():
    tx = js.chain(js.clip(1.0), js.scale(-0.5))
    assert isinstance(tx, optax.GradientTransformation)
    u, state = tx.update(jnp.array([4.0, -0.5]), tx.init(None))
    np.testing.assert_array_equal(np.asarray(u), [-0.5, 0.25])
    assert isinstance(state[0], js.ClipState) and isinstance(state[1], js.ScaleState)
    # Extra keyword arguments reach transformations that take them.
    plateau = optax.contrib.reduce_on_plateau(patience=0)
    ours, theirs = js.chain(js.scale(2.0), plateau), optax.chain(optax.scale(2.0), plateau)
    s1, s2 = ours.init(jnp.ones(2)), theirs.init(jnp.ones(2))
    for value in [1.0, 2.0]:
        u1, s1 = ours.update(jnp.ones(2), s1, value=jnp.asarray(value))
        u2, s2 = theirs.update(jnp.ones(2), s2, value=jnp.asarray(value))
        np.testing.assert_array_equal(np.asarray(u1), np.asarray(u2))


# ---------------------------------------------------------------- values


def test_clip():
    tx = js.clip(1.5)
    g = {"a": jnp.array([-3.0, -1.0, 0.0, 1.49, 2.0])}
    u, _ = tx.update(g, tx.init(None))
    np.testing.assert_array_equal(np.asarray(u["a"]), np.clip(np.asarray(g["a"]), -1.5, 1.5))


def test_clip_by_norm_is_per_tensor():
    # tf.clip_by_norm: t * clip_norm / max(||t||, clip_norm), each array alone.
    g = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.3, 0.4]), "c": jnp.zeros(3)}
    u, _ = js.clip_by_norm(1.0).update(g, js.clip_by_norm(1.0).init(None))
    np.testing.assert_allclose(np.asarray(u["a"]), [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(u["b"]), np.asarray(g["b"]))
    np.testing.assert_array_equal(np.asarray(u["c"]), 0.0)
    g = grads_like()
    u, _ = js.clip_by_norm(0.5).update(g, js.clip_by_norm(0.5).init(None))
    for k in g:
        x = np.asarray(g[k], np.float64)
        np.testing.assert_allclose(np.asarray(u[k]), x * 0.5 / max(np.linalg.norm(x), 0.5),
                                   rtol=1e-6)


@pytest.mark.parametrize("max_norm", [0.1, 1.0, 100.0])
def test_clip_by_global_norm_records_pre_clip_norm(max_norm):
    g = grads_like()
    tx = js.clip_by_global_norm(max_norm)
    state = tx.init(g)
    assert set(js.hyperparams(state)) == {"max_norm"}
    assert set(js.measurements(state)) == {"global_norm"}
    u, state = tx.update(g, state)
    norm = np.sqrt(sum((np.asarray(x, np.float64) ** 2).sum() for x in jax.tree.leaves(g)))
    np.testing.assert_allclose(float(js.measurements(state)["global_norm"]), norm, rtol=1e-6)
    np.testing.assert_allclose(float(js.hyperparams(state)["max_norm"]), max_norm, rtol=1e-7)
    expected, _ = optax.clip_by_global_norm(max_norm).update(g, optax.EmptyState())
    for k in g:
        np.testing.assert_allclose(np.asarray(u[k]), np.asarray(g[k]) * max_norm /
                                   max(norm, max_norm), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(u[k]), np.asarray(expected[k]), rtol=1e-6)


def test_clip_by_global_norm_zero_gradient():
    g = jax.tree.map(jnp.zeros_like, grads_like())
    tx = js.clip_by_global_norm(1.0)
    u, state = tx.update(g, tx.init(g))
    assert float(js.measurements(state, "global_norm")) == 0.0
    assert all((np.asarray(x) == 0).all() for x in jax.tree.leaves(u))


def test_scale_and_learning_rate_sign():
    g = grads_like()
    for tx, factor in [(js.scale(-0.25), -0.25), (js.scale_by_learning_rate(0.25), -0.25),
                       (js.scale_by_learning_rate(0.25, flip_sign=False), 0.25)]:
        u, state = tx.update(g, tx.init(g))
        for k in g:
            np.testing.assert_array_equal(np.asarray(u[k]), np.asarray(g[k]) * np.float32(factor))
    assert float(js.hyperparams(state)["learning_rate"]) == 0.25


def test_scale_by_schedule_uses_schedule_of_update_count():
    sched = js.exponential_decay(1.0, 1, 0.5)  # 1, 1/2, 1/4, ... exactly
    tx = js.scale_by_schedule(sched)
    out, state = run(tx, [jnp.ones(2)] * 4, None)
    assert [float(u[0]) for u in out] == [1.0, 0.5, 0.25, 0.125]
    assert float(js.hyperparams(state)["step_size"]) == 0.125


def adam_reference(grads, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0):
    state, out = None, []
    for g in grads:
        u, state = ref.adam_step(g, state, b1, b2, eps, eps_root)
        out.append(u)
    return out


def random_grads(n, shape=(5, 3), seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    # Varying scale, sign and sparsity so that every moment term matters.
    g = rng.normal(size=(n,) + shape) * np.exp(rng.normal(size=(n, 1, 1)))
    g[rng.random(size=g.shape) < 0.1] = 0.0
    return g.astype(dtype)


def assert_close_seq(actual, expected, rtol=1e-5):
    actual = np.stack([np.asarray(a, np.float64) for a in actual])
    expected = np.stack([np.asarray(e, np.float64) for e in expected])
    np.testing.assert_allclose(actual, expected, rtol=rtol,
                               atol=rtol * np.abs(expected).max())


@pytest.mark.parametrize("hp", [dict(), dict(b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4),
                                dict(b1=0.0, b2=0.0, eps=1e-6)], ids=["default", "custom", "zero"])
def test_scale_by_adam_matches_reference(hp):
    g = random_grads(50)
    out, state = run(js.scale_by_adam(**hp), list(g), jnp.zeros(g.shape[1:]), jit=True)
    assert_close_seq(out, adam_reference(g, **hp))
    assert int(state.count) == 50


def test_scale_by_adam_nesterov_matches_optax():
    g = random_grads(50)
    out, _ = run(js.scale_by_adam(0.8, 0.99, nesterov=True), list(g), jnp.zeros(g.shape[1:]),
                 jit=True)
    expected, _ = run(optax.scale_by_adam(0.8, 0.99, nesterov=True), list(g),
                      jnp.zeros(g.shape[1:]), jit=True)
    assert_close_seq(out, expected)


@pytest.mark.parametrize("hp", [dict(), dict(decay=0.5, eps=1e-3, initial_scale=1.0),
                                dict(decay=0.95, eps=1e-6, centered=True),
                                dict(decay=0.9, eps=1e-6, initial_scale=0.5, centered=True)],
                         ids=["default", "initial_scale", "centered", "centered_initial"])
def test_scale_by_rms_matches_reference(hp):
    g = random_grads(50)
    out, _ = run(js.scale_by_rms(**hp), list(g), jnp.zeros(g.shape[1:]), jit=True)
    state, expected = None, []
    for x in g:
        u, state = ref.rmsprop_step(x, state, **hp)
        expected.append(u)
    assert_close_seq(out, expected)


@pytest.mark.parametrize("hp", [dict(), dict(initial_accumulator_value=0.0, eps=1e-10),
                                dict(initial_accumulator_value=1.0, eps=1e-3)])
def test_scale_by_adagrad_matches_reference(hp):
    g = random_grads(50)
    g[:3, 0, 0] = 0.0  # an element whose sum stays 0 for a while
    out, _ = run(js.scale_by_adagrad(**hp), list(g), jnp.zeros(g.shape[1:]), jit=True)
    state, expected = None, []
    for x in g:
        u, state = ref.adagrad_step(x, state, **hp)
        expected.append(u)
    assert_close_seq(out, expected)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("decay", [0.0, 0.5, 0.9])
def test_trace_matches_reference_and_optax(decay, nesterov):
    g = random_grads(50)
    out, _ = run(js.trace(decay, nesterov), list(g), jnp.zeros(g.shape[1:]), jit=True)
    state, expected = None, []
    for x in g:
        u, state = ref.momentum_step(x, state, decay, nesterov)
        expected.append(u)
    assert_close_seq(out, expected)
    theirs, _ = run(optax.trace(decay, nesterov), list(g), jnp.zeros(g.shape[1:]), jit=True)
    assert_close_seq(out, theirs)


@pytest.mark.parametrize("debias", [True, False])
def test_ema(debias):
    g = random_grads(30)
    decay = 0.8
    out, _ = run(js.ema(decay, debias), list(g), jnp.zeros(g.shape[1:]), jit=True)
    e, expected = np.zeros(g.shape[1:]), []
    for k, x in enumerate(g.astype(np.float64), start=1):
        e = decay * e + (1 - decay) * x
        expected.append(e / (1 - decay**k) if debias else e)
    assert_close_seq(out, expected)
    theirs, _ = run(optax.ema(decay, debias), list(g), jnp.zeros(g.shape[1:]), jit=True)
    assert_close_seq(out, theirs)


def test_ema_decay_one_does_not_divide_by_zero():
    out, _ = run(js.ema(1.0), [jnp.ones(2)] * 3, jnp.zeros(2))
    assert all(np.isfinite(np.asarray(u)).all() for u in out)


def test_add_decayed_weights():
    p, g = params_like(), grads_like()
    tx = js.add_decayed_weights(0.1)
    u, _ = tx.update(g, tx.init(p), p)
    for k in p:
        np.testing.assert_allclose(np.asarray(u[k]), np.asarray(g[k]) + 0.1 * np.asarray(p[k]),
                                   rtol=1e-6)


@pytest.mark.parametrize("kind", ["tree", "function"])
def test_add_decayed_weights_mask(kind):
    p, g = params_like(), grads_like()
    mask = {"w": True, "b": False} if kind == "tree" else (
        lambda params: jax.tree.map(lambda x: x.ndim > 1, params))
    tx = js.add_decayed_weights(0.1, mask)
    u, _ = jax.jit(tx.update)(g, tx.init(p), p)
    np.testing.assert_allclose(np.asarray(u["w"]), np.asarray(g["w"]) + 0.1 * np.asarray(p["w"]),
                               rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(u["b"]), np.asarray(g["b"]))
    optax_tx = optax.add_decayed_weights(0.1, mask)
    theirs, _ = optax_tx.update(g, optax_tx.init(p), p)
    for k in p:
        np.testing.assert_allclose(np.asarray(u[k]), np.asarray(theirs[k]), rtol=1e-6)


# ---------------------------------------------------------------- bfloat16 numerics


def test_adam_bfloat16_matches_float32_within_bf16_rounding():
    """b2 = 0.999 rounds to 1.0 in bfloat16; arithmetic must stay in float32.

    The float32 emulation keeps the moments in float32 between steps (as the
    state does for bfloat16 parameters) and rounds the update to bfloat16 once.
    """
    bf16 = ml_dtypes.bfloat16
    b1, b2, eps = 0.9, 0.999, 1e-8
    assert float(np.float32(b2).astype(bf16)) == 1.0  # the trap being tested
    g = random_grads(20, shape=(64,), seed=3).astype(bf16)
    tx = js.scale_by_adam(b1, b2, eps)
    p = jnp.zeros(64, jnp.bfloat16)
    state = tx.init(p)
    m = np.zeros(64, np.float32)
    v = np.zeros(64, np.float32)
    update = jax.jit(tx.update)
    for k, x in enumerate(g, start=1):
        u, state = update(jnp.asarray(x), state)
        xf = x.astype(np.float32)
        one, b1f, b2f = np.float32(1), np.float32(b1), np.float32(b2)
        m_new = b1f * m.astype(np.float32) + (one - b1f) * xf
        v_new = b2f * v.astype(np.float32) + (one - b2f) * xf * xf
        c1 = np.float32(1) - np.float32(b1) ** np.float32(k)
        c2 = np.float32(1) - np.float32(b2) ** np.float32(k)
        v_hat = v_new / c2
        assert np.isfinite(v_hat).all()
        expected = (m_new / c1) / (np.sqrt(v_hat) + np.float32(eps))
        m, v = m_new, v_new
        assert u.dtype == jnp.bfloat16
        got = np.asarray(u, np.float32)
        assert np.isfinite(got).all()
        # One bfloat16 rounding (2**-8 relative) plus float32 noise.
        np.testing.assert_allclose(got, expected, rtol=2**-7, atol=2**-7 * np.abs(expected).max())
        assert state.nu.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(state.nu), v, rtol=1e-5)
    assert float(state.hyperparams["b2"]) == np.float32(0.999)


@pytest.mark.parametrize("make", [lambda: js.scale_by_rms(0.999, 1e-8), lambda: js.ema(0.999),
                                  lambda: js.trace(0.999)], ids=["rms", "ema", "trace"])
def test_bfloat16_decay_close_to_one_is_not_rounded(make):
    """A decay of 0.999 must act as 0.999 (not 1.0) on bfloat16 parameters."""
    p32 = jnp.zeros(8, jnp.float32)
    g = random_grads(10, shape=(8,), seed=5)
    out32, _ = run(make(), [jnp.asarray(x) for x in g], p32)
    out16, _ = run(make(), [jnp.asarray(x, jnp.bfloat16) for x in g], p32.astype(jnp.bfloat16))
    for a, b in zip(out16, out32):
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b), rtol=3e-2,
                                   atol=3e-2 * float(jnp.abs(b).max()))


# ---------------------------------------------------------------- hyperparameter kinds


class H(NamedTuple):
    """A numeric hyperparameter: how to build the transform with it, valid values."""

    make: Callable[[Any], optax.GradientTransformation]
    key: str  # its name in `js.hyperparams`
    value: float  # a valid value
    step: float  # schedule(k) = value + step * k stays valid for k < 6


HYPERS: dict[str, H] = {
    "clip.max_delta": H(lambda v: js.clip(v), "max_delta", 0.5, 0.1),
    "clip_by_norm.max_norm": H(lambda v: js.clip_by_norm(v), "max_norm", 0.5, 0.1),
    "clip_by_global_norm.max_norm": H(lambda v: js.clip_by_global_norm(v), "max_norm", 0.5, 0.1),
    "scale.factor": H(lambda v: js.scale(v), "factor", 0.5, 0.1),
    "scale_by_schedule.schedule": H(lambda v: js.scale_by_schedule(v), "step_size", 0.5, 0.1),
    "scale_by_learning_rate.learning_rate": H(lambda v: js.scale_by_learning_rate(v),
                                              "learning_rate", 0.1, 0.05),
    "scale_by_adam.b1": H(lambda v: js.scale_by_adam(b1=v), "b1", 0.5, 0.05),
    "scale_by_adam.b2": H(lambda v: js.scale_by_adam(b2=v), "b2", 0.5, 0.05),
    "scale_by_adam.eps": H(lambda v: js.scale_by_adam(eps=v), "eps", 0.1, 0.1),
    "scale_by_adam.eps_root": H(lambda v: js.scale_by_adam(eps_root=v), "eps_root", 0.1, 0.1),
    "scale_by_rms.decay": H(lambda v: js.scale_by_rms(decay=v), "decay", 0.5, 0.05),
    "scale_by_rms.eps": H(lambda v: js.scale_by_rms(eps=v, centered=True), "eps", 0.1, 0.1),
    "scale_by_adagrad.eps": H(lambda v: js.scale_by_adagrad(eps=v), "eps", 0.1, 0.1),
    "trace.decay": H(lambda v: js.trace(v), "decay", 0.5, 0.05),
    "ema.decay": H(lambda v: js.ema(v), "decay", 0.5, 0.05),
    "add_decayed_weights.weight_decay": H(lambda v: js.add_decayed_weights(v), "weight_decay",
                                          0.1, 0.1),
}

# Ways to give a constant hyperparameter; scale_by_schedule takes schedules only.
KINDS: dict[str, Callable[[float], Any]] = {
    "float": lambda v: v,
    "array": lambda v: jnp.asarray(v),
    "numpy": lambda v: np.float32(v),
    "jaxsched_schedule": lambda v: js.constant(v),
    "optax_schedule": lambda v: optax.constant_schedule(v),
    "lambda": lambda v: (lambda step: v),
}


@pytest.mark.parametrize("name", HYPERS)
def test_every_hyperparameter_kind_gives_the_same_updates(name):
    h = HYPERS[name]
    p = params_like()
    g = [grads_like(seed=s) for s in range(3)]
    kinds = ["jaxsched_schedule", "optax_schedule", "lambda"] if name.startswith(
        "scale_by_schedule") else list(KINDS)
    results = {}
    for kind in kinds:
        out, state = run(h.make(KINDS[kind](h.value)), g, p)
        results[kind] = out
        np.testing.assert_allclose(float(js.hyperparams(state)[h.key]), h.value, rtol=1e-6)
        assert js.hyperparams(state)[h.key].dtype == jnp.float32
    first = results[kinds[0]]
    for kind in kinds[1:]:
        for a, b in zip(first, results[kind]):
            jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)),
                         a, b)


@pytest.mark.parametrize("name", HYPERS)
def test_update_k_uses_schedule_of_k(name):
    """Update k (from 0) uses schedule(k): same as a constant schedule(k) from that state."""
    h = HYPERS[name]
    sched = lambda k: h.value + h.step * k  # noqa: E731 - distinct at every step
    p = params_like()
    tx = h.make(sched)
    state = tx.init(p)
    for k in range(5):
        g = grads_like(seed=k)
        u, new_state = tx.update(g, state, p)
        hp = js.hyperparams(new_state)
        np.testing.assert_allclose(float(hp[h.key]), h.value + h.step * k, rtol=1e-6)
        if not name.startswith("scale_by_schedule"):
            fixed = h.make(hp[h.key])  # the float32 value the schedule gave
            u_fixed, _ = fixed.update(g, state, p)
            jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x),
                                                                    np.asarray(y)), u, u_fixed)
        state = new_state


@pytest.mark.parametrize("name", [n for n in HYPERS if not n.startswith("scale_by_schedule")])
def test_vmap_sweeps_a_hyperparameter(name):
    h = HYPERS[name]
    p = params_like()
    g = [grads_like(seed=s) for s in range(2)]
    values = jnp.asarray([h.value, h.value + h.step, h.value + 2 * h.step])

    def two_updates(v):
        tx = h.make(v)
        state = tx.init(p)
        for x in g:
            u, state = tx.update(x, state, p)
        return u, js.hyperparams(state)[h.key]

    swept, recorded = jax.jit(jax.vmap(two_updates))(values)
    np.testing.assert_allclose(np.asarray(recorded), np.asarray(values), rtol=1e-7)
    one_at_a_time = jax.jit(two_updates)
    for i, v in enumerate(values):
        one, _ = one_at_a_time(v)
        for k in p:
            np.testing.assert_allclose(np.asarray(swept[k][i]), np.asarray(one[k]), rtol=2e-6,
                                       atol=1e-7)


@pytest.mark.parametrize("name", [n for n in HYPERS if not n.startswith("scale_by_schedule")])
def test_changing_an_array_hyperparameter_does_not_retrace(name):
    h = HYPERS[name]
    p = params_like()
    traces = []

    @jax.jit
    def step(v, state, g):
        traces.append(None)
        return h.make(v).update(g, state, p)

    state = h.make(jnp.asarray(h.value, jnp.float32)).init(p)  # the kind update gets
    for i, v in enumerate([h.value, h.value + h.step, h.value + 2 * h.step]):
        _, state = step(jnp.asarray(v, jnp.float32), state, grads_like(seed=i))
    assert len(traces) == 1


@pytest.mark.parametrize("make,counts", [
    (lambda: js.sgd(0.1), [False]),
    (lambda: js.sgd(js.cosine_decay(0.1, 10)), [True]),  # a schedule reads the count
    (lambda: js.sgd(0.1, momentum=0.9), [False, False]),
    (lambda: js.adam(0.1), [True, False]),  # the bias correction reads it
    (lambda: js.chain(js.clip_by_global_norm(1.0), js.ema(0.9, debias=True),
                      js.ema(0.9, debias=False)), [False, True, False]),
], ids=["sgd", "sgd+schedule", "momentum", "adam", "clip+ema"])
def test_count_is_kept_only_where_used(make, counts):
    """A transformation keeps its update count when a hyperparameter is a schedule or its
    formula reads the update number; the others hold () (optax's trace and scale keep
    none either), and the update numbers stay right where a count is kept."""
    def parts(state):  # the primitives' states, in order
        named = lambda x: hasattr(x, "_fields") and "count" in x._fields  # noqa: E731
        return [s for s in jax.tree.leaves(state, is_leaf=named) if named(s)]

    tx = make()
    p = jnp.ones(3)
    state = tx.init(p)
    assert [not isinstance(s.count, tuple) for s in parts(state)] == counts
    for _ in range(3):
        _, state = tx.update(p, state)
    kept = [int(s.count) for s in parts(state) if not isinstance(s.count, tuple)]
    assert kept == [3] * sum(counts)


def test_state_without_a_count_refuses_a_schedule():
    p = jnp.ones(3)
    with pytest.raises(ValueError, match=r"`sgd`: the state keeps no update count .* got "
                                         r"learning_rate as a schedule"):
        js.sgd(js.cosine_decay(0.1, 10)).update(p, js.sgd(0.1).init(p))


def test_number_hyperparameters_are_constants_of_the_state_not_leaves():
    """A number is fixed when the optimizer is built: the state holds no leaf for it
    (each leaf costs a jitted call time), yet `hyperparams` reads it back as before."""
    p = params_like()
    state = js.adamw(1e-3, b1=0.8).init(p)
    leaves = jax.tree.leaves(state)
    moments = 2 * len(jax.tree.leaves(p))
    assert len(leaves) == moments + 1  # the moments and adam's count (for its bias correction)
    hp = js.hyperparams(state)
    assert hp["b1"].dtype == jnp.float32 and float(hp["b1"]) == np.float32(0.8)
    assert float(hp["learning_rate"]) == np.float32(1e-3)
    assert state[0].hyperparams["b1"] == 0.8  # read by name, like a dict
    with pytest.raises(TypeError):
        state[0].hyperparams["b1"] = 0.5  # noqa - a NamedTuple: immutable
    again = pickle.loads(pickle.dumps(state))
    assert jax.tree.structure(again) == jax.tree.structure(state)
    # An array gives a leaf, whose value changes without a new structure; the numbers
    # beside it stay constants.
    arrays = js.adamw(jnp.float32(1e-3), b1=jnp.float32(0.8)).init(p)
    assert len(jax.tree.leaves(arrays)) == len(leaves) + 2  # b1 and the learning rate
    assert arrays[0].hyperparams["b2"] == 0.999 and arrays[0].hyperparams["b1"].dtype == jnp.float32
    assert float(js.hyperparams(arrays)["b2"]) == np.float32(0.999)


def test_constants_are_rebuilt_by_jax_without_jaxsched_code():
    """JAX flattens and rebuilds a state at every jitted call: its constants are
    held by the state's class (no node, no leaf; the only jaxsched code that
    runs is the state class's constructor, once per state), equal exactly
    when their names and numbers are, and they survive pickling and copies."""
    import sys

    p = params_like()
    state = js.adamw(1e-3, b1=0.8).init(p)
    leaves, treedef = jax.tree.flatten(state)
    called = []

    def profile(frame, event, arg):
        if event == "call" and "jaxsched" in frame.f_code.co_filename:
            called.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        jax.tree.flatten(state)
        treedef.unflatten(leaves)
        jax.tree.map(lambda x: x, state)
    finally:
        sys.setprofile(None)
    # adamw's state: three named tuples with numbers, rebuilt twice (unflatten, map).
    assert called == ["__new__"] * 6
    # Same numbers: the same structure (no recompiling); other numbers: another one.
    assert jax.tree.structure(js.adamw(1e-3, b1=0.8).init(p)) == treedef
    assert jax.tree.structure(js.adamw(1e-3, b1=0.7).init(p)) != treedef
    # The numbers are held by the state's class, named as the class it subclasses;
    # they show where the type is printed (a structure mismatch).
    assert type(state[0]).__name__ == "ScaleByAdamState" and isinstance(state[0], js.ScaleByAdamState)
    assert "ScaleByAdamState[b1=0.8, b2=0.999" in repr(type(state[0]))
    c = state[0].hyperparams
    assert c == pickle.loads(pickle.dumps(c)) and c != js.adamw(1e-3).init(p)[0].hyperparams
    assert jax.tree.map(jnp.copy, state)[0].hyperparams["b1"] == 0.8


def test_a_state_holding_numbers_rebuilds_as_itself_from_any_constructor():
    """The numbers live in the state's class: every way a state is rebuilt (copies,
    pickling, `_replace`, flax's state dicts, a constructor given the record)
    gives the same pytree structure and the same values back."""
    import copy
    import gc

    from flax import serialization

    p = params_like()
    lr = jnp.float32(1e-3)
    for state in (js.adamw(1e-3, b1=0.8).init(p), js.adamw(lr, b1=jnp.float32(0.8)).init(p),
                  js.adamw(lr, b2=0.95).init(p)):  # numbers only, arrays only, both
        want = jax.tree.structure(state)
        first = state[0]
        rebuilt = [copy.copy(state), copy.deepcopy(state), pickle.loads(pickle.dumps(state)),
                   serialization.from_state_dict(state, serialization.to_state_dict(state)),
                   tuple(s._replace(count=s.count) for s in state),
                   (type(first)(**first._asdict()),) + state[1:],
                   (type(first)(*first._asdict().values()),) + state[1:]]
        for again in rebuilt:
            assert jax.tree.structure(again) == want
            assert js.hyperparams(again).keys() == js.hyperparams(state).keys()
            for k, v in js.hyperparams(state).items():
                assert float(js.hyperparams(again)[k]) == float(v), k
        assert repr(first).startswith("ScaleByAdamState(count=") and "eps=1e-08" in repr(first)
    # `_replace` with other numbers makes the state of those numbers.
    state = js.adam(1e-3, b1=0.8).init(p)[0]
    other = js.adam(1e-3, b1=0.7).init(p)[0]
    moved = state._replace(hyperparams=other.hyperparams)
    assert jax.tree.structure(moved) == jax.tree.structure(other)
    assert moved.hyperparams["b1"] == 0.7 and state.hyperparams["b1"] == 0.8
    # A sweep over many numbers keeps no class per number once its states are gone.
    from jaxsched import _hyper

    gc.collect()
    before = len(_hyper._TYPED_STATES)
    states = [js.scale(float(i) + 0.5).init(p) for i in range(50)]
    assert len(_hyper._TYPED_STATES) == before + 50
    del states
    gc.collect()
    assert len(_hyper._TYPED_STATES) <= before


def test_state_built_with_numbers_refuses_arrays_and_arrays_accept_numbers():
    p, g = params_like(), grads_like(seed=0)
    state = js.adam(0.1).init(p)

    @jax.jit
    def step(lr, state):
        return js.adam(lr).update(g, state)

    with pytest.raises(ValueError, match=r"`adam`: the state was built \(init\) with a number "
                                         r"for learning_rate, .*but update got an array"):
        step(jnp.float32(0.1), state)
    # One number among arrays is held to the same rule; the arrays stay arrays.
    mixed = js.adam(jnp.float32(0.1), b1=jnp.float32(0.9)).init(p)
    with pytest.raises(ValueError, match=r"with a number for b2"):
        js.adam(0.1, b2=jnp.float32(0.99)).update(g, mixed)
    _, after = js.adam(0.1, b1=0.8).update(g, mixed)
    assert jax.tree.structure(after) == jax.tree.structure(mixed)
    assert float(js.hyperparams(after)["b1"]) == np.float32(0.8)
    # The other way round is fine: numbers are recorded as arrays in an array state.
    state = js.adam(jnp.float32(0.1)).init(p)
    _, after = js.adam(0.2).update(g, state)
    assert jax.tree.structure(after) == jax.tree.structure(state)
    assert float(js.hyperparams(after)["learning_rate"]) == np.float32(0.2)


def test_schedule_passed_through_jit_does_not_retrace():
    p = params_like()
    traces = []

    @jax.jit
    def step(sched, state, g):
        traces.append(None)
        return js.scale_by_learning_rate(sched).update(g, state, p)

    state = js.scale_by_learning_rate(js.cosine_decay(0.1, 100)).init(p)
    lrs = []
    for lr0 in [0.1, 0.2, 0.3]:
        _, state = step(js.cosine_decay(lr0, 100), state, grads_like())
        lrs.append(float(js.hyperparams(state)["learning_rate"]))
    assert len(traces) == 1
    np.testing.assert_allclose(lrs, [ref.cosine_decay(lr0, 100, 0.0, k)
                                     for k, lr0 in enumerate([0.1, 0.2, 0.3])], rtol=1e-6)


def test_initial_values_accept_float_and_array():
    p = params_like()
    for v in [0.5, np.float32(0.5), jnp.asarray(0.5)]:
        s = js.scale_by_rms(initial_scale=v).init(p)
        assert all((np.asarray(x) == 0.5).all() for x in jax.tree.leaves(s.nu))
        s = js.scale_by_adagrad(initial_accumulator_value=v).init(p)
        assert all((np.asarray(x) == 0.5).all() for x in jax.tree.leaves(s.sum_of_squares))


# ---------------------------------------------------------------- hyperparams()


def test_hyperparams_two_transforms_share_a_name():
    tx = js.chain(js.scale(2.0), js.scale(3.0), js.trace(0.9), js.ema(0.5),
                  js.scale_by_learning_rate(0.1))
    _, state = tx.update(jnp.ones(2), tx.init(jnp.zeros(2)))
    hp = js.hyperparams(state)
    assert len(hp) == 5
    assert {float(v) for v in hp.values()} == {2.0, 3.0, np.float32(0.9), 0.5, np.float32(0.1)}
    assert float(hp["learning_rate"]) == np.float32(0.1)
    # Each shared name is qualified by its transformation and the keys stay unique.
    assert "factor" not in hp and "decay" not in hp
    scale_keys = [k for k in hp if "scale" in k and "factor" in k]
    assert sorted(float(hp[k]) for k in scale_keys) == [2.0, 3.0]
    assert float(hp[next(k for k in hp if "trace" in k)]) == np.float32(0.9)
    assert float(hp[next(k for k in hp if "ema" in k)]) == 0.5


def test_hyperparams_inside_optax_chain_and_nested():
    tx = optax.chain(js.clip_by_global_norm(1.0),
                     optax.chain(optax.scale_by_adam(),
                                 js.scale_by_learning_rate(js.cosine_decay(1e-3, 10))),
                     optax.identity())
    state = tx.init(params_like())
    for k in range(3):
        _, state = tx.update(grads_like(seed=k), state)
        hp = js.hyperparams(state)
        assert set(hp) == {"max_norm", "learning_rate"}
        assert set(js.measurements(state)) == {"global_norm"}
        np.testing.assert_allclose(float(hp["learning_rate"]),
                                   ref.cosine_decay(1e-3, 10, 0.0, k), rtol=1e-6)


def test_hyperparams_of_a_single_transform_and_of_empty_state():
    assert js.hyperparams(optax.EmptyState()) == {}
    assert js.hyperparams(optax.sgd(0.1).init(jnp.zeros(1))) == {}
    state = js.scale_by_adam(0.8).init(jnp.zeros(1))
    assert set(js.hyperparams(state)) == {"b1", "b2", "eps", "eps_root"}
    assert float(js.hyperparams(state)["b1"]) == np.float32(0.8)


# ---------------------------------------------------------------- strict dtype promotion


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=lambda d: jnp.dtype(d).name)
def test_update_paths_need_no_implicit_dtype_promotion(dtype):
    """Every transformation and optimizer inits and updates (eager and jitted) under
    `jax.numpy_dtype_promotion("strict")`: no silent promotion anywhere on the path."""
    txs = {name: case.make() for name, case in TRANSFORMS.items()}
    txs.update({f"optimizer:{name}": case.ours(js.cosine_decay(case.lr, 10), None)
                for name, case in OPTIMIZERS.items()})
    txs["reduce_on_plateau"] = js.reduce_on_plateau()
    txs["skip_nonfinite"] = js.skip_nonfinite(js.adamw(0.1))
    txs["fuse"] = js.fuse(js.chain(js.clip_by_global_norm(1.0), js.adamw(0.1)))
    p = params_like(dtype)
    with jax.numpy_dtype_promotion("strict"):
        for name, tx in txs.items():
            extra = {"value": jnp.asarray(1.0, jnp.float32)} if name == "reduce_on_plateau" else {}
            state = tx.init(p)
            u, state = tx.update(grads_like(dtype), state, p, **extra)
            u, state = jax.jit(lambda g, s, tx=tx, extra=extra: tx.update(g, s, p, **extra))(
                grads_like(dtype), state)
            assert jax.tree.structure(u) == jax.tree.structure(p), name
