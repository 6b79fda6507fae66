"""Hyperparameter sweeps in one compiled program: `jax.vmap` over a whole train step.

Hyperparameters are array leaves (of schedules and of transformations), so an
optimizer built inside the step from traced values is the same program for
every value; vmapping the step trains every configuration at once.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxsched as js

STEPS = 25


@functools.lru_cache(maxsize=None)
def _data():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((32, 3)), jnp.float32)
    y = jnp.tanh(x @ jnp.array([1.0, -2.0, 0.5])) + 0.1 * jnp.asarray(rng.standard_normal(32))
    return x, y


@functools.lru_cache(maxsize=None)
def _init_params():
    rng = np.random.default_rng(1)
    return {"w1": jnp.asarray(0.5 * rng.standard_normal((3, 8)), jnp.float32),
            "b1": jnp.zeros(8), "w2": jnp.asarray(0.5 * rng.standard_normal(8), jnp.float32)}


def _loss(p, x, y):
    return jnp.mean(jnp.square(jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] - y))


def make_opt(hp):
    """The optimizer for one configuration; every entry of `hp` may be traced."""
    schedule = js.warmup(js.cosine_decay(hp["peak_lr"], 40, alpha=0.1), hp["warmup"])
    return js.adamw(schedule, b2=hp["b2"], weight_decay=hp["weight_decay"])


def _counting_step(traces):
    def train_step(hp, params, opt_state, batch):
        traces.append(1)
        loss, grads = jax.value_and_grad(_loss)(params, *batch)
        updates, opt_state = make_opt(hp).update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return train_step


def _train_swept(hps):
    traces = []
    step = jax.jit(jax.vmap(_counting_step(traces), in_axes=(0, 0, 0, None)))
    n = len(jax.tree.leaves(hps)[0])
    params = jax.tree.map(lambda p: jnp.stack([p] * n), _init_params())
    opt_state = jax.jit(jax.vmap(lambda hp, p: make_opt(hp).init(p)))(hps, params)
    losses = []
    for _ in range(STEPS):
        params, opt_state, loss = step(hps, params, opt_state, _data())
        losses.append(loss)
    return params, opt_state, np.stack(losses, axis=1), len(traces), step._cache_size()


_init_one = jax.jit(lambda hp, params: make_opt(hp).init(params))


def _train_one(hp, step):
    params = _init_params()
    opt_state = _init_one(hp, params)
    losses = []
    for _ in range(STEPS):
        params, opt_state, loss = step(hp, params, opt_state, _data())
        losses.append(loss)
    return params, opt_state, np.stack(losses)


def _check_against_separate_runs(hps, rtol=1e-5):
    params, opt_state, losses, traces, cache = _train_swept(hps)
    assert traces == 1 and cache == 1  # one trace, one compilation for the whole sweep
    one_traces = []
    step = jax.jit(_counting_step(one_traces))
    n = len(losses)
    for i in range(n):
        hp = jax.tree.map(lambda v: v[i], hps)
        p_i, s_i, l_i = _train_one(hp, step)
        np.testing.assert_allclose(losses[i], l_i, rtol=rtol)
        for a, b in zip(jax.tree.leaves(p_i), jax.tree.leaves(params)):
            # relative to the array's scale: a parameter that crosses 0 has no relative error
            np.testing.assert_allclose(b[i], a, rtol=rtol, atol=rtol * float(jnp.max(jnp.abs(a))))
        got_lr = js.hyperparams(jax.tree.map(lambda v: v[i], opt_state))["learning_rate"]
        np.testing.assert_allclose(got_lr, js.hyperparams(s_i)["learning_rate"], rtol=rtol)
    assert len(one_traces) == 1  # the separate runs share one compilation too
    return losses


def test_eight_learning_rates_equal_eight_separate_runs():
    n = 8
    hps = {"peak_lr": jnp.geomspace(1e-3, 3e-1, n).astype(jnp.float32),
           "warmup": jnp.full(n, 5, jnp.int32), "b2": jnp.full(n, 0.999, jnp.float32),
           "weight_decay": jnp.full(n, 1e-4, jnp.float32)}
    losses = _check_against_separate_runs(hps)
    # the configurations really differ
    assert len({round(float(x), 4) for x in losses[:, -1]}) == n


def test_sweep_over_warmup_weight_decay_and_b2_together():
    hps = {"peak_lr": jnp.array([1e-2, 3e-2, 1e-1, 3e-2, 1e-2, 5e-2, 2e-2, 8e-2], jnp.float32),
           "warmup": jnp.array([0, 1, 3, 5, 8, 10, 2, 30], jnp.int32),
           "b2": jnp.array([0.9, 0.95, 0.99, 0.999, 0.9, 0.98, 0.995, 0.9999], jnp.float32),
           "weight_decay": jnp.array([0.0, 1e-4, 1e-3, 1e-2, 0.1, 0.0, 0.05, 0.3], jnp.float32)}
    _check_against_separate_runs(hps)


def test_swept_run_equals_run_with_python_numbers():
    """A vmapped configuration is the run a user writes with plain numbers."""
    hps = {"peak_lr": jnp.array([1e-2, 5e-2], jnp.float32), "warmup": jnp.array([3, 7], jnp.int32),
           "b2": jnp.array([0.99, 0.999], jnp.float32),
           "weight_decay": jnp.array([1e-3, 0.0], jnp.float32)}
    _, _, losses, _, _ = _train_swept(hps)
    x, y = _data()
    for i, (lr, w, b2, wd) in [(1, (5e-2, 7, 0.999, 0.0))]:
        opt = js.adamw(js.warmup(js.cosine_decay(lr, 40, alpha=0.1), w), b2=b2, weight_decay=wd)
        params = _init_params()
        state = opt.init(params)

        @jax.jit
        def step(params, state):
            loss, grads = jax.value_and_grad(_loss)(params, x, y)
            updates, state = opt.update(grads, state, params)
            return optax.apply_updates(params, updates), state, loss

        ls = []
        for _ in range(STEPS):
            params, state, loss = step(params, state)
            ls.append(loss)
        np.testing.assert_allclose(losses[i], np.stack(ls), rtol=1e-5)


def test_training_recipes_examples_run(capsys):
    """Every code block of docs/training-recipes.md (the README sections) runs."""
    import pathlib
    import re

    page = pathlib.Path(__file__).resolve().parents[1] / "docs" / "training-recipes.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    assert len(blocks) == 13
    for code in blocks:
        exec(compile(code, str(page), "exec"), {"__name__": "recipe"})
    out = capsys.readouterr().out
    assert "(8,)" in out and "2147483647 0.001" in out and "[0. 0.] 1" in out
    assert "FlatParams(200 arrays in float32[800], float32[6400]) True" in out
    assert "{'bias': 'no_decay', 'w': 'head'}\nTrue\n1\n" in out  # parameter groups
    assert "0.002 1" in out  # a group's learning rate changed every step, one compile
    assert "True 0" in out  # accumulate equals accumulated_grad; phase 0 after the update
    assert "{'learning_rate': 0.0001, 'micro_step': 0.0, 'total_skips': 0.0}" in out
