"""Helpers shared by the optimizer, transformation and interop tests."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax


def trajectory(tx, params, grads):
    """Parameters after each of the scanned updates, and the final state (one jit, one compile)."""

    @jax.jit
    def go(params, grads):
        def body(carry, g):
            p, s = carry
            u, s = tx.update(g, s, p)
            p = optax.apply_updates(p, u)
            return (p, s), p

        return jax.lax.scan(body, (params, tx.init(params)), grads)

    (_, state), ps = go(params, jax.tree.map(jnp.asarray, grads))
    return ps, state


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
