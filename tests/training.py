"""Helpers shared by the optimizer, transformation and interop tests."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax


def scanned(tx, params, grads):
    """The scanned updates of `tx` over `grads` (one jit, one compile): the final
    parameters and state, the parameters after each update and each update."""

    @jax.jit
    def go(params, grads):
        def body(carry, g):
            p, s = carry
            u, s = tx.update(g, s, p)
            p = optax.apply_updates(p, u)
            return (p, s), (p, u)

        return jax.lax.scan(body, (params, tx.init(params)), grads)

    (p, state), (ps, us) = go(params, jax.tree.map(jnp.asarray, grads))
    return p, state, ps, us


def trajectory(tx, params, grads):
    """Parameters after each of the scanned updates, and the final state."""
    _, state, ps, _ = scanned(tx, params, grads)
    return ps, state


def compiled_step_entry(tx, params, **update_args) -> str:
    """The ENTRY computation XLA compiled for a jitted `update` + `apply_updates`
    step with the parameters and state donated (gradients like the parameters)."""
    def step(params, state, grads, update_args):
        updates, state = tx.update(grads, state, params, **update_args)
        return optax.apply_updates(params, updates), state

    hlo = jax.jit(step, donate_argnums=(0, 1)).lower(
        params, tx.init(params), params, update_args).compile().as_text()
    return hlo[hlo.index("\nENTRY"):]


def assert_params_close(actual, expected, rtol=1e-5):
    for k in expected:
        e = np.asarray(expected[k], np.float64)
        np.testing.assert_allclose(np.asarray(actual[k], np.float64), e, rtol=rtol,
                                   atol=rtol * np.abs(e).max(), err_msg=k)


def with_count(state: Any, value: int) -> Any:
    """Set the `count` of every NamedTuple state (in chains too) to `value`."""
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        fields = {f: with_count(getattr(state, f), value) for f in state._fields
                  if f not in ("hyperparams", "count")}
        if "count" in state._fields:
            fields["count"] = jnp.asarray(value, jnp.int32)
        return state._replace(**fields)
    if isinstance(state, (tuple, list)):
        return type(state)(with_count(s, value) for s in state)
    return state


def tree_of_every_kind(key=0):
    """Mixed dtypes, a scalar, a zero-size array, None, a MaskedNode and many small arrays."""
    k = jax.random.split(jax.random.PRNGKey(key), 8)
    return {
        "dense": {"w": jax.random.normal(k[0], (7, 5)), "b": jax.random.normal(k[1], (5,))},
        "scalar": jax.random.normal(k[2], ()),
        "empty": jnp.zeros((0, 3)),
        "half": jax.random.normal(k[3], (4, 3)).astype(jnp.bfloat16),
        "f16": jax.random.normal(k[4], (6,)).astype(jnp.float16),
        "none": None,
        "masked": optax.MaskedNode(),
        "many": [jax.random.normal(jax.random.fold_in(k[5], i), (i + 1,)) for i in range(20)],
    }


def random_grads_like(tree, i):
    """Gradient number `i` for `tree`: seeded normals in each leaf's shape and dtype."""
    return jax.tree.map(
        lambda p: jax.random.normal(jax.random.PRNGKey(100 + i), jnp.shape(p)).astype(p.dtype),
        tree)


def assert_trees_close(a, b, rtol):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype and x.shape == y.shape
        x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
        scale = max(1.0, float(np.max(np.abs(y64)))) if y64.size else 1.0
        np.testing.assert_allclose(x64, y64, rtol=rtol, atol=rtol * scale)


def run_on_eight_cpu_devices(code: str) -> None:
    """Run `code` in a fresh process with 8 CPU devices; it must print OK."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]


def flat_grads(flat, tree_grads):
    """The gradient of a loss whose tree-gradient is `tree_grads`, through `unflatten`."""
    _, pullback = jax.vjp(lambda f: f.unflatten(), flat)
    return pullback(tree_grads)[0]


def train_random(tx, params, steps):
    """`steps` jitted updates with `random_grads_like` gradients, on a tree or a
    `FlatParams` (whose gradients arrive flat, through `unflatten`)."""
    import jaxsched as js

    @jax.jit
    def step(p, s, g):
        if isinstance(p, js.FlatParams):
            g = flat_grads(p, g)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    state = tx.init(params)
    for i in range(steps):
        tree = params.unflatten() if isinstance(params, js.FlatParams) else params
        params, state = step(params, state, random_grads_like(tree, i))
    return params, state
