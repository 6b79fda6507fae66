"""Optimizers: parity with optax and the float64 reference, state, tracing.

`OPTIMIZERS` (tests/optimizer_registry.py) is the registry of every optimizer
configuration with its optax counterpart and float64 reference; the parity
tests run over all of it, with a constant learning rate, a schedule and a
mask, and the structural tests over `STRUCTURAL`. Gradients are fixed random arrays, not functions of the parameters, so the
trajectories are not chaotic and a float32 rtol of 1e-5 is meaningful.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsched as js
import reference as ref
from optimizer_registry import OPTIMIZERS, STRUCTURAL, params_like, random_grads
from training import assert_params_close, trajectory, with_count

INT32_MAX = 2**31 - 1
MASK = {"w": True, "b": False}


DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]


# ---------------------------------------------------------------- parity


# (name, mask, with a schedule): every entry, and the masked and scheduled variants.
PARITY = ([(name, None, False) for name in OPTIMIZERS]
          + [("adamw", MASK, False), ("adamw", None, True), ("clip+adamw", MASK, True),
             ("momentum_nesterov", None, True), ("rmsprop_centered", None, True)])


@pytest.mark.parametrize("name,mask,scheduled", PARITY,
                         ids=[f"{n}{'-mask' * (m is not None)}{'-schedule' * s}"
                              for n, m, s in PARITY])
def test_matches_optax_over_200_steps(name, mask, scheduled):
    case = OPTIMIZERS[name]
    lr = js.cosine_decay(case.lr, 150) if scheduled else case.lr  # optax takes it as a schedule
    p, g = params_like(), random_grads(200)
    ours = trajectory(case.ours(lr, mask), p, g)[0]
    theirs = trajectory(case.theirs(lr, mask), p, g)[0]
    assert_params_close(ours, theirs)
    # The run moved the parameters well beyond the tolerance.
    assert float(jnp.abs(ours["w"][-1] - p["w"]).max()) > 1e-2


@pytest.mark.parametrize("name", [n for n in OPTIMIZERS if OPTIMIZERS[n].reference])
def test_matches_float64_reference_over_50_steps(name):
    case = OPTIMIZERS[name]
    p, g = params_like(), random_grads(50, seed=7)
    ours = trajectory(case.ours(case.lr, None), p, g)[0]
    expected = {}
    for k in p:
        pk, state, traj = np.asarray(p[k], np.float64), None, []
        for gk in g[k]:
            u, state = case.reference(gk, state, pk)
            pk = pk - case.lr * u
            traj.append(pk)
        expected[k] = np.stack(traj)
    assert_params_close(ours, expected)


def test_adamw_mask_leaves_masked_leaf_undecayed():
    p, g = params_like(), random_grads(20)
    masked = trajectory(js.adamw(0.01, weight_decay=0.5, mask=MASK), p, g)[0]
    adam = trajectory(js.adam(0.01), p, g)[0]
    decayed = trajectory(js.adamw(0.01, weight_decay=0.5), p, g)[0]
    np.testing.assert_array_equal(np.asarray(masked["b"]), np.asarray(adam["b"]))
    np.testing.assert_array_equal(np.asarray(masked["w"]), np.asarray(decayed["w"]))
    assert not np.allclose(np.asarray(masked["w"]), np.asarray(adam["w"]))


def test_adamw_decay_is_scaled_by_scheduled_learning_rate():
    """p -= lr_k * (u + wd * p): with zero gradients u = 0, so p *= 1 - lr_k * wd."""
    sched = js.exponential_decay(0.1, 1, 0.5)
    tx = js.adamw(sched, weight_decay=0.5)
    p = jnp.ones(3)
    state = tx.init(p)
    expected = 1.0
    for k in range(4):
        u, state = tx.update(jnp.zeros(3), state, p)
        p = optax.apply_updates(p, u)
        expected *= 1 - ref.exponential_decay(0.1, 1, 0.5, False, k) * 0.5
        np.testing.assert_allclose(np.asarray(p), expected, rtol=1e-6)


# ---------------------------------------------------------------- state and dtypes


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("name", STRUCTURAL)
def test_state_stable_and_zero_gradient_no_nan(name, dtype):
    tx = OPTIMIZERS[name].ours(OPTIMIZERS[name].lr, None)
    p = params_like(dtype)
    state = tx.init(p)
    u, new_state = tx.update(jax.tree.map(lambda x: x[0].astype(dtype), random_grads(1)),
                             state, p)
    jax.lax.cond(True, lambda: state, lambda: new_state)
    assert all(x.dtype == dtype for x in jax.tree.leaves(u))
    zeros = jax.tree.map(jnp.zeros_like, p)
    for _ in range(3):
        u, state = tx.update(zeros, state, p)
        for x in jax.tree.leaves(u):
            assert x.dtype == dtype
            assert np.isfinite(np.asarray(x, np.float32)).all(), name
    assert all(np.isfinite(np.asarray(x, np.float32)).all() for x in jax.tree.leaves(state))


@pytest.mark.parametrize("name", STRUCTURAL)
def test_counter_saturates(name):
    tx = OPTIMIZERS[name].ours(OPTIMIZERS[name].lr, None)
    p = params_like()
    state = with_count(tx.init(p), INT32_MAX - 1)
    update = jax.jit(tx.update)
    g = jax.tree.map(lambda x: jnp.asarray(x[0]), random_grads(1))
    for _ in range(5):
        u, state = update(g, state, p)
        p = optax.apply_updates(p, u)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves((p, state)))
    counts = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]
              if getattr(path[-1], "name", None) == "count"]
    assert counts
    for count in counts:
        assert count.dtype == jnp.int32 and int(count) == INT32_MAX


# ---------------------------------------------------------------- hyperparameters


@pytest.mark.parametrize("name", ["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"])
def test_learning_rate_schedule_step_convention(name):
    """Update k (from 0) uses schedule(k), reported as hyperparams()["learning_rate"]."""
    sched = js.piecewise_constant([0, 1, 2, 3], [0.5, 0.25, 0.125, 0.0625, 0.03125])
    make = getattr(js, name)
    tx = make(sched)
    p = params_like()
    state = tx.init(p)
    g = jax.tree.map(lambda x: jnp.asarray(x[0]), random_grads(1))
    for k in range(6):
        u, new_state = tx.update(g, state, p)
        assert float(js.hyperparams(new_state)["learning_rate"]) == ref.piecewise_constant(
            [0, 1, 2, 3], [0.5, 0.25, 0.125, 0.0625, 0.03125], k)
        # From the same state, the update is the one of the constant schedule(k).
        u_fixed, _ = make(float(sched(k))).update(g, state, p)
        for key in p:
            np.testing.assert_allclose(np.asarray(u[key]), np.asarray(u_fixed[key]), rtol=1e-6)
        state = new_state


def test_hyperparams_keys_of_each_optimizer():
    p = params_like()
    expected = {
        "sgd": {"learning_rate"},
        "momentum": {"decay", "learning_rate"},
        "adagrad": {"eps", "learning_rate"},
        "rmsprop": {"decay", "eps", "learning_rate"},
        "adam": {"b1", "b2", "eps", "eps_root", "learning_rate"},
        "adamw": {"b1", "b2", "eps", "eps_root", "weight_decay", "learning_rate"},
    }
    for name, keys in expected.items():
        assert set(js.hyperparams(getattr(js, name)(0.1).init(p))) == keys, name
    hp = js.hyperparams(js.adamw(0.1, 0.8, 0.99, 1e-6, weight_decay=0.01).init(p))
    assert {k: float(v) for k, v in hp.items()} == pytest.approx(
        {"learning_rate": 0.1, "b1": 0.8, "b2": 0.99, "eps": 1e-6, "eps_root": 0.0,
         "weight_decay": 0.01}, rel=1e-6)


def test_vmap_sweeps_learning_rate_and_b2():
    p, g = params_like(), random_grads(5)

    def final(lr, b2):
        return trajectory(js.adam(lr, b2=b2), p, g)[0]["w"][-1]

    lrs, b2s = jnp.asarray([0.1, 0.01, 0.001]), jnp.asarray([0.9, 0.99, 0.999])
    swept = jax.vmap(final)(lrs, b2s)
    for i in range(3):
        np.testing.assert_allclose(np.asarray(swept[i]),
                                   np.asarray(final(float(lrs[i]), float(b2s[i]))), rtol=1e-6)


# ---------------------------------------------------------------- whole train step under jit


def _mlp_problem():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    params = {"w1": 0.5 * jax.random.normal(k1, (4, 8)), "b1": jnp.zeros(8),
              "w2": 0.5 * jax.random.normal(k2, (8, 1)), "b2": jnp.zeros(1)}
    x = jax.random.normal(k3, (32, 4))
    y = jnp.sin(x.sum(axis=1, keepdims=True))

    def loss(params, x, y):
        h = jnp.tanh(x @ params["w1"] + params["b1"])
        return jnp.mean((h @ params["w2"] + params["b2"] - y) ** 2)

    return params, x, y, loss


def test_train_step_traces_once_over_1000_steps():
    params, x, y, loss = _mlp_problem()
    tx = js.chain(js.clip_by_global_norm(1.0),
                  js.adamw(js.warmup(js.cosine_decay(1e-2, 900), 100), weight_decay=1e-4,
                           mask=lambda p: jax.tree.map(lambda a: a.ndim > 1, p)))
    traces = []

    @jax.jit
    def step(params, state, x, y):
        traces.append(None)
        value, grads = jax.value_and_grad(loss)(params, x, y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    state = tx.init(params)
    losses = []
    for _ in range(1000):
        params, state, value = step(params, state, x, y)
        losses.append(float(value))
    assert len(traces) == 1
    assert losses[-1] < 0.2 * losses[0]
    hp = js.hyperparams(state)
    assert int(state[1][0].count) == 1000  # adam's (clip_by_global_norm keeps no count)
    np.testing.assert_allclose(float(hp["learning_rate"]),
                               ref.cosine_decay(1e-2, 900, 0.0, 999 - 100), rtol=1e-5,
                               atol=1e-5 * 1e-2)
    assert float(js.measurements(state, "global_norm")) > 0


@pytest.mark.parametrize("make", [js.sgd, js.momentum, js.adagrad, js.rmsprop, js.adam, js.adamw],
                         ids=lambda f: f.__name__)
def test_train_step_traces_once_for_two_learning_rates(make):
    params, x, y, loss = _mlp_problem()
    traces = []

    @jax.jit
    def step(params, state, lr, x, y):
        traces.append(None)
        tx = js.chain(js.clip_by_global_norm(1.0), make(lr))  # built from a traced lr
        grads = jax.grad(loss)(params, x, y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    # Built with an array, as the step gets it (a number would be a constant of its structure).
    state0 = js.chain(js.clip_by_global_norm(1.0), make(jnp.float32(0.1))).init(params)
    finals = []
    for lr in [0.05, 0.01]:
        p, state = params, state0
        for _ in range(3):
            p, state = step(p, state, jnp.asarray(lr, jnp.float32), x, y)
        assert float(js.hyperparams(state)["learning_rate"]) == np.float32(lr)
        finals.append(p)
    assert len(traces) == 1
    assert not np.allclose(np.asarray(finals[0]["w1"]), np.asarray(finals[1]["w1"]))


def test_hyperparameters_as_a_pytree_argument_do_not_retrace():
    params, x, y, loss = _mlp_problem()
    traces = []

    @jax.jit
    def step(params, state, hp, x, y):
        traces.append(None)
        tx = js.adamw(hp["lr"], b1=hp["b1"], weight_decay=hp["wd"])
        updates, state = tx.update(jax.grad(loss)(params, x, y), state, params)
        return optax.apply_updates(params, updates), state

    # Built with arrays, as update gets them (numbers would be constants of its structure).
    state = js.adamw(js.cosine_decay(0.1, 10), b1=jnp.float32(0.9),
                     weight_decay=jnp.float32(0.1)).init(params)
    for hp in [dict(lr=js.cosine_decay(0.01, 10), b1=0.9, wd=0.1),
               dict(lr=js.cosine_decay(0.02, 20), b1=0.8, wd=0.0)]:
        params, state = step(params, state, hp, x, y)
    assert len(traces) == 1
    got = js.hyperparams(state)
    assert float(got["b1"]) == np.float32(0.8) and float(got["weight_decay"]) == 0.0
    np.testing.assert_allclose(float(got["learning_rate"]), ref.cosine_decay(0.02, 20, 0.0, 1),
                               rtol=1e-6)
