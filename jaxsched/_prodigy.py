"""Prodigy: Adam with a learned step size d (Mishchenko & Defazio, 2024).

d is a tree-level estimate of the distance to the solution, carried in the
state from update to update and reported by `js.measurements(state)`; it is
not a hyperparameter. The formulas are those of the `prodigyopt` package's
`Prodigy` (with `slice_p=1`), the parity target.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxsched import _carry, _checks, _hyper, _numerics
from jaxsched._builder import Buffer, Transformation
from jaxsched._carry import Copy
from jaxsched._hyper import Hyper, carries
from jaxsched._numerics import float_dtype
from jaxsched._transforms import chain
from jaxsched._groups import with_groups

Array = jax.Array
PyTree = Any


# Arrays of at least this many elements have their moments updated after the
# sum of their |s| (see `step`). Measured at 1M float32 parameters against
# optax.contrib.prodigy: one array 0.99-1.02x with the order, 1.04-1.10x
# without; 100 arrays of 10,000 1.12x with it, 1.07x without (small arrays
# stay in cache anyway, and the order only narrows XLA's choice of schedule).
ORDERED_SIZE = 2 ** 18


@carries("scale_by_prodigy", measured=("d", "d_max", "d_numerator", "steps"))
class ScaleByProdigyState(NamedTuple):
    """State of `scale_by_prodigy`; `d`, `d_max`, `d_numerator` and `steps` are
    carried scalars, reported by `measurements`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> s = js.scale_by_prodigy().init(jnp.zeros(2))
        >>> s._fields[:5], round(float(js.measurements(s)["d"]), 9)
        (('count', 'mu', 'nu', 's', 'p0'), 1e-06)
    """

    count: Array  # type: ignore[assignment]  # int32 []: updates done, saturating
    mu: PyTree  # first moment (scaled by d), like params
    nu: PyTree  # second moment (scaled by d^2), like params
    s: PyTree  # the d estimate's running sum of weighted gradients, like params
    p0: PyTree  # the initial parameters
    d: Array  # float []: the step-size estimate (starts at estim_lr0)
    d_max: Array  # float []: the largest estimate so far
    d_numerator: Array  # float []: the estimate's running numerator
    steps: Array  # int32 []: updates that moved the parameters (the reference's k)
    hyperparams: dict  # {"learning_rate", "b1", "b2", "beta3", "eps", ...: float []}


@with_groups(tree_arguments=())
def scale_by_prodigy(learning_rate: Hyper = 1.0, *, b1: Hyper = 0.9, b2: Hyper = 0.999,
                     beta3: Hyper | None = None, eps: Hyper = 1e-8, estim_lr0: Hyper = 1e-6,
                     estim_lr_coef: Hyper = 1.0, weight_decay: Hyper = 0.0,
                     decouple: bool = True, use_bias_correction: bool = False,
                     safeguard_warmup: bool = False,
                     growth_rate: Hyper = math.inf) -> Transformation:
    """Prodigy's update, as the `prodigyopt` package's `Prodigy`: learning rate and sign included.

    With d the estimate before this update, d0 = estim_lr0, t = steps taken so far + 1,
    bc = sqrt(1 - b2^t) / (1 - b1^t) if use_bias_correction else 1:
    dlr = d * learning_rate * bc;   beta3 defaults to sqrt(b2)
    g = g + weight_decay * p                         (only if not decouple)
    numerator = beta3 * numerator + (d / d0) * dlr * sum over the tree of g . (p0 - p)
    m = b1 * m + d * (1 - b1) * g;   v = b2 * v + d^2 * (1 - b2) * g^2
    s = beta3 * s + (d / d0) * dlr * g               (safeguard_warmup: (d / d0) * d * g)
    d_hat = estim_lr_coef * numerator / sum over the tree of |s|
    d' = max(d, d_hat) if d == d0 else d;   d_max = max(d_max, d_hat);   d' = min(d_max, d' * growth_rate)
    u = -dlr * m / (sqrt(v) + d' * eps)  - dlr * weight_decay * p (if decouple)
       (b1 = 0: u = -dlr * d' * g / (sqrt(v) + d' * eps))

    An update with learning_rate 0 leaves everything but the count unchanged;
    one whose sum of |s| is 0 (all-zero gradients so far) updates the moments
    but not d or the parameters, as the reference. `steps` counts the other
    updates and drives the bias correction (the reference's `k`).

    Args:
      learning_rate: multiplier of the estimated step size, >= 0 (reference: 1.0).
      b1, b2: the reference's `betas`, in [0, 1).
      beta3: decay of the estimate's sums, in [0, 1); None for sqrt(b2).
      eps: > 0, multiplied by d.
      estim_lr0: the initial estimate d0, > 0 (the reference's `d0`).
      estim_lr_coef: the reference's `d_coef`, > 0.
      weight_decay: >= 0.
      decouple: decoupled (AdamW-style) weight decay, as the reference's default.
      use_bias_correction: Adam's bias correction on the step size.
      safeguard_warmup: leave the learning rate out of `s`.
      growth_rate: the largest factor by which d grows per update, >= 1 (inf: unbounded).

    References: Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive
    Parameter-Free Learner", ICML 2024.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_prodigy()
        >>> p = jnp.ones(2)
        >>> u, s = tx.update(jnp.ones(2), tx.init(p), p)
        >>> round(float(js.measurements(s)["d"]), 9), int(js.measurements(s)["steps"])
        (1e-06, 1)
    """
    owner = "scale_by_prodigy"
    _hyper.check(owner, "learning_rate", learning_rate, lo=0)
    for name, value in (("b1", b1), ("b2", b2)):
        _hyper.check(owner, name, value, lo=0, hi=1, hi_open=True)
    if beta3 is not None:
        _hyper.check(owner, "beta3", beta3, lo=0, hi=1, hi_open=True)
    _hyper.check(owner, "eps", eps, lo=0, lo_open=True)
    _hyper.check(owner, "estim_lr0", estim_lr0, lo=0, lo_open=True)
    _hyper.check(owner, "estim_lr_coef", estim_lr_coef, lo=0, lo_open=True)
    _hyper.check(owner, "weight_decay", weight_decay, lo=0)
    _hyper.check(owner, "growth_rate", growth_rate, lo=1, hi=math.inf)
    _checks.boolean(owner, "decouple", decouple)
    _checks.boolean(owner, "use_bias_correction", use_bias_correction)
    _checks.boolean(owner, "safeguard_warmup", safeguard_warmup)
    hypers: dict[str, Hyper] = {"learning_rate": learning_rate, "b1": b1, "b2": b2, "eps": eps,
                                "estim_lr0": estim_lr0, "estim_lr_coef": estim_lr_coef,
                                "weight_decay": weight_decay, "growth_rate": growth_rate}
    if beta3 is not None:
        hypers["beta3"] = beta3
    _carry.scalar_hypers(owner, **hypers)

    def grad(hp, g, p):
        return g if decouple else g + hp.weight_decay * p

    def prepare(hp, trees):
        b3 = hp.beta3 if beta3 is not None else jnp.sqrt(hp.b2)
        taken = _numerics.next_count(hp.steps)
        t = taken.astype(float_dtype())
        bc = (jnp.sqrt(1 - hp.b2 ** t) / (1 - hp.b1 ** t)) if use_bias_correction else 1.0
        d, d0 = hp.d, hp.estim_lr0
        dlr = d * hp.learning_rate * bc
        active = hp.learning_rate > 0
        s_weight = (d / d0) * (d if safeguard_warmup else dlr)
        delta = _carry.tree_sum(lambda g, p, p0: jnp.sum(grad(hp, g, p) * (p0 - p)),
                                trees.updates, trees.params, trees.p0)
        denom = _carry.tree_sum(
            lambda g, p, s: jnp.sum(jnp.abs(b3 * s + s_weight * grad(hp, g, p))),
            trees.updates, trees.params, trees.s)
        denom = jnp.where(active, denom, 0.0)
        # denom > 0, written through a square root (denom is >= 0 or NaN, so the
        # test is the same): XLA copies cheap scalar arithmetic into every loop
        # that reads it, here the sum of one value per array into each array's
        # parameter loop (105 operands each at 100 arrays, optax's 6); an
        # expensive operation it computes once. 100 arrays: 0.97-1.00x optax,
        # against 1.02-1.04x in the same sequence of runs.
        moved = jnp.sqrt(denom) > 0
        numerator = b3 * hp.d_numerator + (d / d0) * dlr * delta
        d_hat = hp.estim_lr_coef * numerator / jnp.where(moved, denom, 1.0)
        new_d = jnp.where(d == d0, jnp.maximum(d, d_hat), d)
        d_max = jnp.maximum(hp.d_max, d_hat)
        new_d = jnp.minimum(d_max, new_d * hp.growth_rate)
        return {"b3": b3, "dlr": dlr, "active": active, "moved": moved, "s_weight": s_weight,
                "new": {"d": jnp.where(moved, new_d, d),
                        "d_max": jnp.where(moved, d_max, hp.d_max),
                        "d_numerator": jnp.where(moved, numerator, hp.d_numerator),
                        "steps": jnp.where(moved, taken, hp.steps)}}

    def step(hp, g, p, m, v, s, p0):
        g = grad(hp, g, p)
        s1 = hp.b3 * s + hp.s_weight * g
        d, new_d = hp.d, hp.new["d"]
        if s1.size >= ORDERED_SIZE:
            # d for the moments, read after this array's sum |s1| (prepare's
            # sum, which XLA computes once): XLA then sums s right after
            # updating it, while s is in cache, and updates the moments just
            # before the parameters read them.
            d = _numerics.computed_after(d, jnp.sum(jnp.abs(s1)))
        m1 = hp.b1 * m + d * (1 - hp.b1) * g
        v1 = hp.b2 * v + d * d * (1 - hp.b2) * jnp.square(g)
        m, v, s = (jnp.where(hp.active, a, b) for a, b in ((m1, m), (v1, v), (s1, s)))
        direction = jnp.where(hp.b1 > 0, m, new_d * g) / (jnp.sqrt(v) + new_d * hp.eps)
        u = -hp.dlr * direction
        if decouple:
            u = u - hp.dlr * hp.weight_decay * p
        return jnp.where(hp.moved, u, 0.0), m, v, s, p0

    return _carry.transformation(
        owner, ScaleByProdigyState, hypers, step,
        buffers={"mu": Buffer(), "nu": Buffer(), "s": Buffer(), "p0": Copy()},
        scalars={"d": lambda values: values["estim_lr0"],
                 "d_max": lambda values: values["estim_lr0"],
                 "d_numerator": lambda values: jnp.zeros([], float_dtype()),
                 "steps": lambda values: jnp.zeros([], jnp.int32)},
        prepare=prepare, finish=lambda hp: dict(hp.values["new"]), needs_params=True)


@with_groups(tree_arguments=())
def prodigy(learning_rate: Hyper = 1.0, *, b1: Hyper = 0.9, b2: Hyper = 0.999,
            beta3: Hyper | None = None, eps: Hyper = 1e-8, estim_lr0: Hyper = 1e-6,
            estim_lr_coef: Hyper = 1.0, weight_decay: Hyper = 0.0, decouple: bool = True,
            use_bias_correction: bool = False, safeguard_warmup: bool = False,
            growth_rate: Hyper = math.inf) -> Transformation:
    """Prodigy, as the `prodigyopt` package's `Prodigy` (see `scale_by_prodigy`).

    Argument names follow `optax.contrib.prodigy` (`estim_lr0` is the
    reference's `d0`, `estim_lr_coef` its `d_coef`), except that the
    reference's and optax's `betas=(b1, b2)` are two arguments; so every
    argument after `learning_rate` is keyword-only. optax's
    `contrib.prodigy` has no `decouple`, `use_bias_correction` or
    `growth_rate`. The estimate d is reported by `js.measurements(state)["d"]`.

    References: Mishchenko & Defazio, ICML 2024.

    Example:
        >>> import jax.numpy as jnp, optax, jaxsched as js
        >>> opt = js.prodigy()
        >>> p = jnp.ones(3)
        >>> state = opt.init(p)
        >>> for _ in range(20):
        ...     u, state = opt.update(2 * p, state, p)
        ...     p = optax.apply_updates(p, u)
        >>> float(js.measurements(state)["d"]) > 1e-3
        True
    """
    with _checks.calling("prodigy"):
        return chain(scale_by_prodigy(learning_rate, b1=b1, b2=b2, beta3=beta3, eps=eps,
                                      estim_lr0=estim_lr0, estim_lr_coef=estim_lr_coef,
                                      weight_decay=weight_decay, decouple=decouple,
                                      use_bias_correction=use_bias_correction,
                                      safeguard_warmup=safeguard_warmup,
                                      growth_rate=growth_rate))
