"""The registry of optimizer configurations shared by the test modules.

Each entry builds jaxsched's optimizer for a learning rate (a number or a
schedule) and a weight-decay mask, optax's counterpart for the same
arguments (optax accepts jaxsched schedules: they are callables of the
step), and a float64 reference of the direction `u` (the step is
`p -= lr * u`), written from docs/formulas.md in `tests/reference.py`.
optax.sgd(lr, momentum, nesterov) is js.momentum; optax.rmsprop puts eps
inside the root like jaxsched.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxsched as js
import reference as ref


class Optimizer(NamedTuple):
    """One optimizer configuration.

    ours(lr, mask) / theirs(lr, mask) build jaxsched's and optax's optimizer;
    lr: a learning rate that suits the tests' small model; reference(g,
    state, p) -> (u, state) with p -= lr * u, for a constant lr.
    """

    ours: Callable[[Any, Any], optax.GradientTransformation]
    theirs: Callable[[Any, Any], optax.GradientTransformation]
    lr: float
    reference: Callable[[np.ndarray, Any, np.ndarray], tuple] | None = None


def _adamw_ref(wd):
    def step(g, state, p):
        u, state = ref.adam_step(g, state)
        return u + wd * p, state
    return step


def _ndim_mask(params):
    return jax.tree.map(lambda x: x.ndim > 1, params)


OPTIMIZERS: dict[str, Optimizer] = {
    "sgd": Optimizer(lambda lr, m: js.sgd(lr), lambda lr, m: optax.sgd(lr), 0.05,
                     lambda g, s, p: (np.asarray(g, np.float64), s)),
    "momentum": Optimizer(lambda lr, m: js.momentum(lr, 0.9), lambda lr, m: optax.sgd(lr, 0.9),
                          0.05, lambda g, s, p: ref.momentum_step(g, s, 0.9)),
    "momentum_nesterov": Optimizer(
        lambda lr, m: js.momentum(lr, 0.8, nesterov=True),
        lambda lr, m: optax.sgd(lr, 0.8, nesterov=True), 0.05,
        lambda g, s, p: ref.momentum_step(g, s, 0.8, nesterov=True)),
    "adagrad": Optimizer(lambda lr, m: js.adagrad(lr), lambda lr, m: optax.adagrad(lr, 0.1, 1e-7),
                         0.1, lambda g, s, p: ref.adagrad_step(g, s, 0.1, 1e-7)),
    "adagrad_custom": Optimizer(lambda lr, m: js.adagrad(lr, 0.5, 1e-4),
                                lambda lr, m: optax.adagrad(lr, 0.5, 1e-4), 0.1,
                                lambda g, s, p: ref.adagrad_step(g, s, 0.5, 1e-4)),
    "rmsprop": Optimizer(lambda lr, m: js.rmsprop(lr), lambda lr, m: optax.rmsprop(lr, 0.9, 1e-8),
                         0.01, lambda g, s, p: ref.rmsprop_step(g, s, 0.9, 1e-8)),
    "rmsprop_centered": Optimizer(
        lambda lr, m: js.rmsprop(lr, 0.95, 1e-6, centered=True),
        lambda lr, m: optax.rmsprop(lr, 0.95, 1e-6, centered=True), 0.01,
        lambda g, s, p: ref.rmsprop_step(g, s, 0.95, 1e-6, centered=True)),
    "adam": Optimizer(lambda lr, m: js.adam(lr), lambda lr, m: optax.adam(lr), 0.01,
                      lambda g, s, p: ref.adam_step(g, s)),
    "adam_custom": Optimizer(lambda lr, m: js.adam(lr, 0.5, 0.9, 1e-3),
                             lambda lr, m: optax.adam(lr, 0.5, 0.9, 1e-3), 0.01,
                             lambda g, s, p: ref.adam_step(g, s, 0.5, 0.9, 1e-3)),
    "adamw": Optimizer(lambda lr, m: js.adamw(lr, weight_decay=0.1, mask=m),
                       lambda lr, m: optax.adamw(lr, weight_decay=0.1, mask=m), 0.01,
                       _adamw_ref(0.1)),
    "adamw_mask_fn": Optimizer(
        lambda lr, m: js.adamw(lr, weight_decay=0.1, mask=_ndim_mask),
        lambda lr, m: optax.adamw(lr, weight_decay=0.1, mask=_ndim_mask), 0.01),
    "clip+adamw": Optimizer(
        lambda lr, m: js.chain(js.clip_by_global_norm(1.0), js.adamw(lr, weight_decay=1e-2,
                                                                     mask=m)),
        lambda lr, m: optax.chain(optax.clip_by_global_norm(1.0),
                                  optax.adamw(lr, weight_decay=1e-2, mask=m)), 0.01),
}

# One configuration of each optimizer function, the most stateful one, for the
# structural tests.
STRUCTURAL = ["sgd", "momentum_nesterov", "adagrad", "rmsprop_centered", "adam", "adamw_mask_fn",
              "clip+adamw"]


def params_like(dtype=jnp.float32, seed=0):
    """The registry's small model: a (4, 3) matrix and a (3,) vector."""
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {"w": jax.random.normal(k1, (4, 3)).astype(dtype),
            "b": jax.random.normal(k2, (3,)).astype(dtype)}


def random_grads(n, seed=1):
    """n fixed gradients like params_like(): varying scale, some exact zeros."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, shape in [("w", (4, 3)), ("b", (3,))]:
        g = rng.normal(size=(n,) + shape) * np.exp(rng.normal(size=(n,) + (1,) * len(shape)))
        g[rng.random(size=g.shape) < 0.05] = 0.0
        out[k] = g.astype(np.float32)
    return out
