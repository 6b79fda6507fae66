"""Schedule-free optimization (Defazio et al., 2024).

The parameters the model sees (and differentiates at) are y; the state
keeps z, the base iterate; the evaluation parameters x are recovered from
y and z with `schedule_free_eval_params`:

    lr_k = learning_rate * min(k / warmup_steps, 1)            (k: update number from 1)
    lr_max = max(lr_max, lr_k);   w_k = k^r * lr_max^weight_lr_power
    c_k = w_k / (w_1 + ... + w_k)                                (0 while the sum is 0)
    y <- y + c_k * (z - y) + lr_k * (b1 * (1 - c_k) - 1) * d    (d: the base direction)
    z <- z - lr_k * d
    x = y + (1 - 1 / b1) * (z - y)

as the reference implementation (the `schedulefree` package's
`AdamWScheduleFree`, `SGDScheduleFree`). `scale_by_schedule_free` is this
step for any direction `d`; `schedule_free_sgd` uses d = g + weight_decay * y,
`schedule_free_adamw` the Adam-normalised gradient of
`scale_by_debiased_rms` plus weight_decay * y. Update k (from 0) uses
`learning_rate(k)` for a schedule, in its step and its averaging weight
(optax's `contrib.schedule_free` weights update k by `schedule(k + 1)`: its
count starts at 1, so `schedule(0)` is never weighed; optax PR 1744).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxsched import _carry, _checks, _hyper
from jaxsched._builder import Buffer, Transformation, structure, transformation
from jaxsched._carry import Copy
from jaxsched._hyper import Hyper, carries
from jaxsched._numerics import float_dtype
from jaxsched._transforms import add_decayed_weights, chain
from jaxsched._groups import with_groups

Array = jax.Array
PyTree = Any


@carries("scale_by_schedule_free", measured=("lr_max", "weight_sum"))
class ScheduleFreeState(NamedTuple):
    """State of `scale_by_schedule_free`; `lr_max` and `weight_sum` are carried
    scalars, reported by `measurements`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> js.scale_by_schedule_free(1.0).init(jnp.zeros(2))._fields
        ('count', 'z', 'lr_max', 'weight_sum', 'hyperparams')
    """

    count: Array  # type: ignore[assignment]  # int32 []: updates done, saturating
    z: PyTree  # the base iterate, like params (starts as a copy; float32 for bf16/f16)
    lr_max: Array  # float []: the largest warmed-up learning rate so far
    weight_sum: Array  # float []: sum of the averaging weights so far
    hyperparams: dict  # {"learning_rate", "b1", "r", "weight_lr_power": float []}


@carries("scale_by_debiased_rms")
class ScaleByDebiasedRmsState(NamedTuple):
    """State of `scale_by_debiased_rms`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> js.scale_by_debiased_rms().init(jnp.zeros(2))._fields
        ('count', 'nu', 'hyperparams')
    """

    count: Array  # type: ignore[assignment]  # int32 []
    nu: PyTree  # second moment, like params
    hyperparams: dict  # {"b2", "eps": float []}


@with_groups(tree_arguments=())
def scale_by_debiased_rms(b2: Hyper = 0.999, eps: Hyper = 1e-8,
                          state_dtype: Any = None) -> Transformation:
    """Scale by the bias-corrected root mean square: Adam without its first moment.

    v = b2 * v + (1 - b2) * g^2
    u = g / (sqrt(v / (1 - b2^k)) + eps)

    The normalisation of schedule-free AdamW (the reference's placement of
    eps, outside the root).

    Args:
      b2: decay rate, in [0, 1).
      eps: > 0.
      state_dtype: dtype of v (default: float32 for parameters narrower than
        float32, else the parameters').

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_debiased_rms()
        >>> [round(x, 6) for x in tx.update(jnp.array([-3.0]), tx.init(jnp.zeros(1)))[0].tolist()]
        [-1.0]
    """
    owner = "scale_by_debiased_rms"
    _hyper.check(owner, "b2", b2, lo=0, hi=1, hi_open=True)
    _hyper.check(owner, "eps", eps, lo=0, lo_open=True)

    def step(hp, g, v):
        v = hp.b2 * v + (1 - hp.b2) * jnp.square(g)
        return g / (jnp.sqrt(v / (1 - hp.b2 ** hp.k)) + hp.eps), v

    return transformation(owner, ScaleByDebiasedRmsState, {"b2": b2, "eps": eps}, step,
                          buffers={"nu": Buffer(dtype=state_dtype)})


@with_groups(tree_arguments=())
def scale_by_schedule_free(learning_rate: Hyper, b1: Hyper = 0.9, *, warmup_steps: int = 0,
                           r: Hyper = 0.0, weight_lr_power: Hyper = 2.0,
                           state_dtype: Any = None) -> Transformation:
    """Turn a descent direction into the schedule-free update of the parameters y.

    With d the incoming direction (the gradient, or a normalised gradient),
    the update is the change of y in the module docstring's step:
    u = c_k * (z - y) + lr_k * (b1 * (1 - c_k) - 1) * d, and z <- z - lr_k * d,
    computed as u = c_k * (z_new - y) + lr_k * (b1 * (1 - c_k) - 1 + c_k) * d
    (the same y + u, to one rounding of y), so that XLA updates z and y in
    place instead of copying them.
    It includes the learning rate and the sign: chain it last. The warmup is
    the reference's: lr_k = learning_rate * k / warmup_steps for k <= warmup_steps.

    Args:
      learning_rate: >= 0 (number, array or schedule; update k uses its value at k).
      b1: the interpolation (momentum) coefficient, in (0, 1).
      warmup_steps: linear warmup length in updates, an int >= 0.
      r: power of k in the averaging weights, >= 0.
      weight_lr_power: power of lr_max in the averaging weights, >= 0.
      state_dtype: dtype of z (default: float32 for parameters narrower than
        float32, else the parameters').

    References: Defazio et al., "The Road Less Scheduled", NeurIPS 2024.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_schedule_free(0.1)
        >>> p = jnp.zeros(1)
        >>> u, s = tx.update(jnp.ones(1), tx.init(p), p)
        >>> [round(x, 6) for x in u.tolist()], [round(x, 6) for x in s.z.tolist()]
        ([-0.1], [-0.1])
    """
    owner = "scale_by_schedule_free"
    _hyper.check(owner, "learning_rate", learning_rate, lo=0)
    _hyper.check(owner, "b1", b1, lo=0, hi=1, lo_open=True, hi_open=True)
    _checks.integer(owner, "warmup_steps", warmup_steps, lo=0, hi=_checks.INT32_MAX)
    _hyper.check(owner, "r", r, lo=0)
    _hyper.check(owner, "weight_lr_power", weight_lr_power, lo=0)
    _carry.scalar_hypers(owner, learning_rate=learning_rate, r=r,
                         weight_lr_power=weight_lr_power)
    warmup = int(warmup_steps)

    def prepare(hp, trees):
        k = hp.k.astype(float_dtype())
        lr = hp.learning_rate * (jnp.minimum(k / warmup, 1.0) if warmup > 0 else 1.0)
        lr_max = jnp.maximum(hp.lr_max, lr)
        weight = k ** hp.r * lr_max ** hp.weight_lr_power
        weight_sum = hp.weight_sum + weight
        c = jnp.where(weight_sum != 0, weight / jnp.where(weight_sum != 0, weight_sum, 1), 0.0)
        return {"lr_k": lr, "new_lr_max": lr_max, "new_weight_sum": weight_sum, "c_k": c}

    def step(hp, d, y, z):
        # u written with the new z (z = z_new + lr_k * d): the update of y then
        # reads z_new, so XLA updates z and y in place, with no copy of either.
        z_new = z - hp.lr_k * d
        u = hp.c_k * (z_new - y) + hp.lr_k * (hp.b1 * (1 - hp.c_k) - 1 + hp.c_k) * d
        return u, z_new

    zero = lambda values: jnp.zeros([], float_dtype())  # noqa: E731
    return _carry.transformation(
        owner, ScheduleFreeState,
        {"learning_rate": learning_rate, "b1": b1, "r": r, "weight_lr_power": weight_lr_power},
        step, buffers={"z": Copy(dtype=state_dtype)},
        scalars={"lr_max": zero, "weight_sum": zero}, prepare=prepare,
        finish=lambda hp: {"lr_max": hp.new_lr_max, "weight_sum": hp.new_weight_sum},
        needs_params=True)


@with_groups(tree_arguments=())
def schedule_free_sgd(learning_rate: Hyper = 1.0, warmup_steps: int = 0, b1: Hyper = 0.9,
                      weight_decay: Hyper | None = None, weight_lr_power: Hyper = 2.0,
                      state_dtype: Any = None, *, r: Hyper = 0.0) -> Transformation:
    """Schedule-free SGD, as the reference's `SGDScheduleFree`.

    d = g + weight_decay * y, then `scale_by_schedule_free` (module docstring).
    The parameters are y; evaluate at `schedule_free_eval_params(state, y)`.

    Args:
      learning_rate: >= 0 (reference default 1.0).
      warmup_steps: linear warmup, an int >= 0 (the reference's `warmup_steps`).
      b1: the reference's `momentum`, in (0, 1).
      weight_decay: L2 penalty evaluated at y, >= 0, or None (the default) for none.
      weight_lr_power: >= 0 (reference default 2).
      state_dtype: dtype of z.
      r: the reference's polynomial weighting power `r`, >= 0.

    References: Defazio et al., "The Road Less Scheduled", NeurIPS 2024.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.schedule_free_sgd(0.5)
        >>> p = jnp.ones(1)
        >>> u, s = opt.update(jnp.ones(1), opt.init(p), p)
        >>> [round(x, 6) for x in u.tolist()]
        [-0.5]
    """
    with _checks.calling("schedule_free_sgd"):
        parts = [] if weight_decay is None else [add_decayed_weights(weight_decay)]
        return chain(*parts, scale_by_schedule_free(
            learning_rate, b1, warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power,
            state_dtype=state_dtype))


@with_groups(tree_arguments=())
def schedule_free_adamw(learning_rate: Hyper = 0.0025, warmup_steps: int = 0, b1: Hyper = 0.9,
                        b2: Hyper = 0.999, eps: Hyper = 1e-8, weight_decay: Hyper | None = None,
                        weight_lr_power: Hyper = 2.0, state_dtype: Any = None, *,
                        r: Hyper = 0.0) -> Transformation:
    """Schedule-free AdamW, as the reference's `AdamWScheduleFree`.

    v = b2 * v + (1 - b2) * g^2
    d = g / (sqrt(v / (1 - b2^k)) + eps) + weight_decay * y
    then `scale_by_schedule_free` (module docstring): the decay is evaluated
    at y and multiplied by lr_k, as the reference.

    Args:
      learning_rate: >= 0 (reference default 0.0025).
      warmup_steps: linear warmup, an int >= 0.
      b1, b2: the reference's `betas`; b1 in (0, 1), b2 in [0, 1).
      eps: > 0.
      weight_decay: >= 0, or None (the default) for none.
      weight_lr_power: >= 0 (reference default 2).
      state_dtype: dtype of z and v.
      r: >= 0.

    References: Defazio et al., "The Road Less Scheduled", NeurIPS 2024.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.schedule_free_adamw(0.1)
        >>> p = jnp.zeros(1)
        >>> u, s = opt.update(jnp.array([3.0]), opt.init(p), p)
        >>> [round(x, 6) for x in u.tolist()]
        [-0.1]
    """
    with _checks.calling("schedule_free_adamw"):
        parts = [scale_by_debiased_rms(b2, eps, state_dtype)]
        if weight_decay is not None:
            parts.append(add_decayed_weights(weight_decay))
        return chain(*parts, scale_by_schedule_free(
            learning_rate, b1, warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power,
            state_dtype=state_dtype))


def schedule_free_eval_params(state: Any, params: PyTree) -> PyTree:
    """The evaluation parameters x of a schedule-free optimizer: x = y + (1 - 1/b1) * (z - y).

    `params` are the parameters being trained (y); `state` the optimizer's
    state (any state containing one `ScheduleFreeState`, e.g. inside a
    chain). b1 is the value used by the last update, as the reference's
    `optimizer.eval()`. Before the first update, x = y. The result has the
    parameters' dtypes.

    Raises:
      ValueError: if `state` holds no `ScheduleFreeState`, or if `params`
        differ in structure from its z (a `fuse`d state).

    Example:
        >>> import jax.numpy as jnp, optax, jaxsched as js
        >>> opt = js.schedule_free_sgd(1.0, b1=0.5)
        >>> p = jnp.zeros(1)
        >>> u, s = opt.update(jnp.ones(1), opt.init(p), p)
        >>> p = optax.apply_updates(p, u)
        >>> p.tolist(), js.schedule_free_eval_params(s, p).tolist()
        ([-1.0], [-1.0])
    """
    sf = next(iter(_hyper.find_states(state, ScheduleFreeState)), None)
    if sf is None:
        raise ValueError("`schedule_free_eval_params(state=...)` must hold a ScheduleFreeState "
                         "(the state of schedule_free_sgd, schedule_free_adamw or "
                         "scale_by_schedule_free).")
    if structure(sf.z) != structure(params):
        raise ValueError("`schedule_free_eval_params(params=...)` must have the structure of the "
                         "state's z (the parameters given to init; a `fuse`d state holds z in "
                         "buckets: evaluate without `fuse`, or hold the parameters as "
                         "`flat_params`).")
    b1 = jnp.asarray(sf.hyperparams["b1"], float_dtype())
    factor = 1 - 1 / b1

    def one(y, z):
        yc = y.astype(float_dtype())
        return (yc + factor * (z.astype(float_dtype()) - yc)).astype(jnp.result_type(y))

    return jax.tree.map(one, params, sf.z)
