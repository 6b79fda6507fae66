"""jaxsched transformations and schedules mixed with optax and flax.

Each mix is compared with the all-optax equivalent on fixed random gradients
(scaled so that global-norm clipping is active), float32, rtol 1e-5 with an
absolute tolerance scaled to the parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxsched as js
import reference as ref
from training import assert_params_close, trajectory


def params_like(seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {"w": jax.random.normal(k1, (4, 3)), "b": jax.random.normal(k2, (3,))}


def random_grads(n, seed=1, scale=3.0):
    rng = np.random.default_rng(seed)
    return {k: (scale * rng.normal(size=(n,) + shape)).astype(np.float32)
            for k, shape in [("w", (4, 3)), ("b", (3,))]}


def all_optax(lr=1e-3):
    return optax.chain(optax.clip_by_global_norm(1.0), optax.scale_by_adam(),
                       optax.scale_by_learning_rate(optax.cosine_decay_schedule(lr, 1000)))


def test_jaxsched_clip_and_lr_around_optax_adam():
    tx = optax.chain(js.clip_by_global_norm(1.0), optax.scale_by_adam(),
                     js.scale_by_learning_rate(js.cosine_decay(1e-3, 1000)))
    p, g = params_like(), random_grads(100)
    ours, state = trajectory(tx, p, g)
    theirs, _ = trajectory(all_optax(), p, g)
    assert_params_close(ours, theirs)
    hp = js.hyperparams(state)
    np.testing.assert_allclose(float(hp["learning_rate"]), ref.cosine_decay(1e-3, 1000, 0.0, 99),
                               rtol=1e-6)
    last = np.sqrt(sum(float((x[-1].astype(np.float64) ** 2).sum()) for x in g.values()))
    np.testing.assert_allclose(float(js.measurements(state, "global_norm")), last, rtol=1e-5)
    assert last > 1.0  # clipping was active


def test_optax_clip_and_lr_around_jaxsched_adam():
    tx = optax.chain(optax.clip_by_global_norm(1.0), js.scale_by_adam(),
                     optax.scale_by_learning_rate(optax.cosine_decay_schedule(1e-3, 1000)))
    p, g = params_like(), random_grads(100)
    ours, state = trajectory(tx, p, g)
    theirs, _ = trajectory(all_optax(), p, g)
    assert_params_close(ours, theirs)
    assert set(js.hyperparams(state)) == {"b1", "b2", "eps", "eps_root"}


def test_js_chain_of_optax_transforms():
    tx = js.chain(optax.clip_by_global_norm(1.0), optax.scale_by_adam(),
                  optax.scale_by_learning_rate(optax.cosine_decay_schedule(1e-3, 1000)))
    p, g = params_like(), random_grads(20)
    assert_params_close(trajectory(tx, p, g)[0], trajectory(all_optax(), p, g)[0])


def test_optax_adam_with_jaxsched_schedule():
    p, g = params_like(), random_grads(100)
    ours, _ = trajectory(optax.adam(js.warmup(js.cosine_decay(1e-2, 80), 20)), p, g)
    theirs, _ = trajectory(optax.adam(optax.warmup_cosine_decay_schedule(0.0, 1e-2, 20, 100)),
                           p, g)
    assert_params_close(ours, theirs)


def test_jaxsched_adam_with_optax_schedule():
    sched = optax.exponential_decay(1e-2, 10, 0.5)
    p, g = params_like(), random_grads(100)
    ours, state = trajectory(js.adam(sched), p, g)
    theirs, _ = trajectory(optax.adam(sched), p, g)
    assert_params_close(ours, theirs)
    np.testing.assert_allclose(float(js.hyperparams(state)["learning_rate"]), float(sched(99)),
                               rtol=1e-6)


def test_inject_hyperparams_under_jit():
    p, g = params_like(), random_grads(10)
    ours_tx = optax.inject_hyperparams(js.adam)(learning_rate=1e-2, b1=0.8)
    theirs_tx = optax.inject_hyperparams(optax.adam)(learning_rate=1e-2, b1=0.8)
    traces = []

    def make_step(tx, count):
        @jax.jit
        def step(p, s, g):
            if count:
                traces.append(None)
            u, s = tx.update(g, s, p)
            return optax.apply_updates(p, u), s
        return step

    step_ours, step_theirs = make_step(ours_tx, True), make_step(theirs_tx, False)
    p1, s1, p2, s2 = p, ours_tx.init(p), p, theirs_tx.init(p)
    for k in range(10):
        if k == 5:  # change the learning rate in the state: no retrace
            s1.hyperparams["learning_rate"] = jnp.asarray(3e-3, jnp.float32)
            s2.hyperparams["learning_rate"] = jnp.asarray(3e-3, jnp.float32)
        gk = jax.tree.map(lambda x: jnp.asarray(x[k]), g)
        p1, s1 = step_ours(p1, s1, gk)
        p2, s2 = step_theirs(p2, s2, gk)
        assert_params_close(p1, p2)
    assert len(traces) == 1
    hp = js.hyperparams(s1)
    assert any(k.endswith("learning_rate") for k in hp)
    for k, v in hp.items():
        if k.endswith("learning_rate"):
            np.testing.assert_allclose(float(v), 3e-3, rtol=1e-6)
        if k.endswith("b1"):
            np.testing.assert_allclose(float(v), 0.8, rtol=1e-6)


def test_multi_steps():
    every_k = 3
    p, g = params_like(), random_grads(12)
    ours, state = trajectory(optax.MultiSteps(js.adam(js.exponential_decay(1e-2, 1, 0.9)),
                                              every_k), p, g)
    theirs, _ = trajectory(optax.MultiSteps(optax.adam(optax.exponential_decay(1e-2, 1, 0.9)),
                                            every_k), p, g)
    assert_params_close(ours, theirs)
    # The inner optimizer updated 12 / k times: its last update used schedule(12 / k - 1).
    np.testing.assert_allclose(float(js.hyperparams(state)["learning_rate"]),
                               1e-2 * 0.9 ** (12 // every_k - 1), rtol=1e-5)


def _regression_data():
    x = jax.random.normal(jax.random.key(3), (64, 3))
    return x, jnp.sin(x.sum(axis=1, keepdims=True))


def test_flax_train_state_trains_mlp():
    import flax.linen as nn
    from flax.training import train_state

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(1)(nn.tanh(nn.Dense(16)(x)))

    x, y = _regression_data()
    model = MLP()
    state = train_state.TrainState.create(
        apply_fn=model.apply, params=model.init(jax.random.key(0), x),
        tx=js.adamw(js.cosine_decay(1e-2, 200), weight_decay=1e-4,
                    mask=lambda p: jax.tree.map(lambda a: a.ndim > 1, p)))

    @jax.jit
    def step(state):
        def loss_fn(params):
            return jnp.mean((state.apply_fn(params, x) - y) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), loss

    losses = []
    for _ in range(100):
        state, loss = step(state)
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    assert int(state.step) == 100
    np.testing.assert_allclose(float(js.hyperparams(state.opt_state)["learning_rate"]),
                               ref.cosine_decay(1e-2, 200, 0.0, 99), rtol=1e-5)


def test_flax_nnx_optimizer_trains_model():
    from flax import nnx

    class Model(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(3, 16, rngs=rngs)
            self.l2 = nnx.Linear(16, 1, rngs=rngs)

        def __call__(self, x):
            return self.l2(jnp.tanh(self.l1(x)))

    x, y = _regression_data()
    model = Model(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, js.adamw(1e-2, weight_decay=1e-4), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        def loss_fn(model):
            return jnp.mean((model(x) - y) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(100)]
    assert losses[-1] < 0.5 * losses[0]
