"""Gradient transformations: real `optax.GradientTransformation`s.

Every hyperparameter may be a number, an array (so `jax.vmap` can sweep it and
changing it never recompiles) or a schedule (update k uses `schedule(k)`).
Each transformation is its per-array formula, lifted to pytrees by
`_builder.transformation`; its state is a `<Name>State` NamedTuple with a
saturating int32 `count`, its buffers and the `hyperparams` used by the most
recent update. Arithmetic is done in float32 (float64 under x64) whatever
the parameter dtype; buffers of bfloat16/float16 parameters are float32.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxsched import _checks, _hyper, _numerics
from jaxsched._builder import Buffer, MaskOrFn, Transformation, describe, transformation
from jaxsched._groups import with_groups
from jaxsched._hyper import Hyper, carries
from jaxsched._numerics import float_dtype

Array = jax.Array
PyTree = Any


# ---------------------------------------------------------------- states

def _hyper_state(name: str, owner: str) -> Any:
    """A `<Name>State` holding only the update count and the hyperparameters used last."""
    cls = NamedTuple(name, [("count", Array), ("hyperparams", dict)])  # type: ignore[misc]
    cls.__module__ = __name__
    cls.__doc__ = (f"State of `{owner}`: `count` (int32 [], updates done, saturating) and "
                   f"`hyperparams` (the values used last).\n\nExample:\n"
                   f"    >>> import jaxsched as js\n    >>> js.{name}._fields\n"
                   f"    ('count', 'hyperparams')\n")
    return carries(owner)(cls)


ClipState = _hyper_state("ClipState", "clip")
ClipByNormState = _hyper_state("ClipByNormState", "clip_by_norm")
ScaleState = _hyper_state("ScaleState", "scale")
ScaleByScheduleState = _hyper_state("ScaleByScheduleState", "scale_by_schedule")
ScaleByLearningRateState = _hyper_state("ScaleByLearningRateState", "scale_by_learning_rate")
AddDecayedWeightsState = _hyper_state("AddDecayedWeightsState", "add_decayed_weights")


@carries("clip_by_global_norm", measured=("global_norm",))
class ClipByGlobalNormState(NamedTuple):
    """State of `clip_by_global_norm`; `global_norm` is measured, not a hyperparameter.

    Example:
        >>> import jaxsched as js
        >>> js.clip_by_global_norm(1.0).init(None)._fields
        ('count', 'global_norm', 'hyperparams')
    """

    count: Array  # type: ignore[assignment]  # int32 []
    global_norm: Array  # float []: the pre-clip global norm of the last update
    hyperparams: dict  # {"max_norm": float []}


@carries("scale_by_adam")
class ScaleByAdamState(NamedTuple):
    """State of `scale_by_adam`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> state = js.scale_by_adam().init(jnp.zeros(2, jnp.bfloat16))
        >>> state._fields, state.mu.dtype, state.nu.dtype
        (('count', 'mu', 'nu', 'hyperparams'), dtype('float32'), dtype('float32'))
    """

    count: Array  # type: ignore[assignment]  # int32 []: updates done, saturating
    mu: PyTree  # first moment, like params (float32 for bf16/f16 params, or mu_dtype)
    nu: PyTree  # second moment, like params (float32 for bf16/f16 params, or nu_dtype)
    hyperparams: dict  # {"b1", "b2", "eps", "eps_root": float []}


@carries("scale_by_adam")
class ScaleByAdamAmsgradState(NamedTuple):
    """State of `scale_by_adam(amsgrad=True)`: Adam's moments and the running maximum of `nu`.

    `nu_max` is the maximum of the raw (not bias-corrected) second moment
    over the updates done, as PyTorch's `max_exp_avg_sq`. The state of
    `scale_by_adam(amsgrad=False)` is `ScaleByAdamState`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> state = js.scale_by_adam(amsgrad=True).init(jnp.zeros(2, jnp.bfloat16))
        >>> state._fields, state.nu_max.dtype
        (('count', 'mu', 'nu', 'nu_max', 'hyperparams'), dtype('float32'))
    """

    count: Array  # type: ignore[assignment]  # int32 []: updates done, saturating
    mu: PyTree  # first moment, like params (float32 for bf16/f16 params, or mu_dtype)
    nu: PyTree  # second moment, like params (float32 for bf16/f16 params, or nu_dtype)
    nu_max: PyTree  # running maximum of nu (not bias-corrected), like nu (same dtype)
    hyperparams: dict  # {"b1", "b2", "eps", "eps_root": float []}


@carries("scale_by_rms")
class ScaleByRmsState(NamedTuple):
    """State of `scale_by_rms`; `mu` is `()` unless centered.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> js.scale_by_rms().init(jnp.zeros(2)).mu
        ()
    """

    count: Array  # type: ignore[assignment]  # int32 []
    nu: PyTree  # mean of squares, like params
    mu: PyTree  # mean (centered only; otherwise an empty tuple)
    hyperparams: dict  # {"decay", "eps": float []}


@carries("scale_by_adagrad")
class ScaleByAdagradState(NamedTuple):
    """State of `scale_by_adagrad`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> js.scale_by_adagrad(0.5).init(jnp.zeros(2)).sum_of_squares.tolist()
        [0.5, 0.5]
    """

    count: Array  # type: ignore[assignment]  # int32 []
    sum_of_squares: PyTree  # like params
    hyperparams: dict  # {"eps": float []}


@carries("trace")
class TraceState(NamedTuple):
    """State of `trace`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> js.trace(0.9).init(jnp.zeros(2)).trace.tolist()
        [0.0, 0.0]
    """

    count: Array  # type: ignore[assignment]  # int32 []
    trace: PyTree  # momentum buffer, like params
    hyperparams: dict  # {"decay": float []}


@carries("ema")
class EmaState(NamedTuple):
    """State of `ema`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> js.ema(0.9).init(jnp.zeros(2))._fields
        ('count', 'ema', 'hyperparams')
    """

    count: Array  # type: ignore[assignment]  # int32 []
    ema: PyTree  # running average (not debiased), like params
    hyperparams: dict  # {"decay": float []}


# ---------------------------------------------------------------- clipping

@with_groups
def clip(max_delta: Hyper) -> Transformation:
    """Clip every element to [-max_delta, max_delta].

    u = min(max(g, -max_delta), max_delta)

    Args:
      max_delta: bound, >= 0 (number, array or schedule).

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.clip(1.0)
        >>> u, _ = tx.update(jnp.array([-3.0, 0.5, 2.0]), tx.init(None))
        >>> u.tolist()
        [-1.0, 0.5, 1.0]
    """
    _hyper.check("clip", "max_delta", max_delta, lo=0)
    return transformation("clip", ClipState, {"max_delta": max_delta},
                          lambda hp, g: jnp.clip(g, -hp.max_delta, hp.max_delta))


@with_groups
def clip_by_norm(max_norm: Hyper) -> Transformation:
    """Clip each array to L2 norm `max_norm` (`tf.clip_by_norm` per array).

    u = g * max_norm / max(||g||, max_norm)

    Args:
      max_norm: largest norm of each array, > 0.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.clip_by_norm(1.0)
        >>> u, _ = tx.update({"a": jnp.array([3.0, 4.0])}, tx.init(None))
        >>> u["a"].tolist()
        [0.6000000238418579, 0.800000011920929]
    """
    _hyper.check("clip_by_norm", "max_norm", max_norm, lo=0, lo_open=True)

    def step(hp, g):
        def factor(sum_of_squares: Array) -> Array:
            return hp.max_norm / jnp.maximum(jnp.sqrt(sum_of_squares), hp.max_norm)

        # per original array on flat buffers: the factor is computed once per array
        return g * hp.per_array(factor, jnp.square(g))

    return transformation("clip_by_norm", ClipByNormState, {"max_norm": max_norm}, step,
                          per_array=True, segment_sums=True)


def global_norm(updates: PyTree) -> Array:
    """The global L2 norm of a tree, in the float dtype.

    n = sqrt(sum over arrays of sum(x^2))

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> float(js.global_norm({"a": jnp.array([3.0]), "b": jnp.array([[4.0]])}))
        5.0
    """
    leaves = jax.tree.leaves(updates)
    if not leaves:
        return jnp.zeros([], float_dtype())
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(float_dtype()))) for x in leaves))


@with_groups
def clip_by_global_norm(max_norm: Hyper) -> Transformation:
    """Scale all arrays together so their global L2 norm is at most `max_norm`.

    n = sqrt(sum over arrays of ||g||^2)
    u = g * max_norm / max(n, max_norm)

    The state records the pre-clip global norm of the last update, a
    measured value: `measurements(state)["global_norm"]`. PyTorch's
    `clip_grad_norm_` divides by `n + 1e-6` instead.

    Args:
      max_norm: largest global norm, > 0.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.clip_by_global_norm(1.0)
        >>> u, s = tx.update({"a": jnp.array([3.0]), "b": jnp.array([4.0])}, tx.init(None))
        >>> float(js.measurements(s)["global_norm"]), round(float(u["b"][0]), 6)
        (5.0, 0.8)
    """
    _hyper.check("clip_by_global_norm", "max_norm", max_norm, lo=0, lo_open=True)
    return transformation(
        "clip_by_global_norm", ClipByGlobalNormState, {"max_norm": max_norm},
        lambda hp, g: g * (hp.max_norm / jnp.maximum(hp.global_norm, hp.max_norm)),
        prepare=lambda hp, updates: {"global_norm": global_norm(updates)},
        measured={"global_norm": lambda: jnp.zeros([], float_dtype())})


# ---------------------------------------------------------------- scaling

@with_groups
def scale(factor: Hyper) -> Transformation:
    """Multiply updates by `factor`: u = factor * g.

    optax names the argument `step_size`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale(-2.0)
        >>> tx.update(jnp.ones(2), tx.init(None))[0].tolist()
        [-2.0, -2.0]
    """
    _hyper.check("scale", "factor", factor)
    return transformation("scale", ScaleState, {"factor": factor}, lambda hp, g: g * hp.factor)


@with_groups
def scale_by_schedule(schedule: Callable[[Array], Array]) -> Transformation:
    """Multiply updates by `schedule(k)` at update k: u = schedule(k) * g.

    optax names the argument `step_size_fn`; the value is reported as `step_size`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_schedule(js.piecewise_constant([0], [1.0, 0.5]))
        >>> s = tx.init(None)
        >>> u0, s = tx.update(jnp.ones(1), s)
        >>> u1, s = tx.update(jnp.ones(1), s)
        >>> u0.tolist(), u1.tolist()
        ([1.0], [0.5])
    """
    _checks.callable_("scale_by_schedule", "schedule", schedule)
    return transformation("scale_by_schedule", ScaleByScheduleState, {"step_size": schedule},
                          lambda hp, g: g * hp.step_size)


@with_groups
def scale_by_learning_rate(learning_rate: Hyper, *, flip_sign: bool = True) -> Transformation:
    """Multiply updates by the learning rate, negated for descent.

    u = -learning_rate * g      (u = learning_rate * g with flip_sign=False)

    Args:
      learning_rate: a number, array or schedule, >= 0.
      flip_sign: negate, so that adding the update descends.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_learning_rate(0.1)
        >>> tx.update(jnp.ones(1), tx.init(None))[0].tolist()
        [-0.10000000149011612]
    """
    _hyper.check("scale_by_learning_rate", "learning_rate", learning_rate, lo=0)
    _checks.boolean("scale_by_learning_rate", "flip_sign", flip_sign)
    sign = -1.0 if flip_sign else 1.0
    return transformation("scale_by_learning_rate", ScaleByLearningRateState,
                          {"learning_rate": learning_rate},
                          lambda hp, g: g * (sign * hp.learning_rate))


# ---------------------------------------------------------------- adaptive scalings

def _check_decay_rates(owner: str, **rates: Hyper) -> None:
    for name, value in rates.items():
        _hyper.check(owner, name, value, lo=0, hi=1, hi_open=True)


@with_groups
def scale_by_adam(b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8,
                  eps_root: Hyper = 0.0, *, mu_dtype: Any = None, nu_dtype: Any = None,
                  nesterov: bool = False, amsgrad: bool = False) -> Transformation:
    """Scale by Adam's bias-corrected moment estimates (Kingma & Ba, 2015).

    m = b1 * m + (1 - b1) * g;   v = b2 * v + (1 - b2) * g^2;   k = update count from 1
    m_hat = m / (1 - b1^k)        (Nesterov: b1 * m / (1 - b1^(k+1)) + (1 - b1) * g / (1 - b1^k))
    v_hat = v / (1 - b2^k)        (amsgrad: v_max = max(v_max, v);  v_hat = v_max / (1 - b2^k))
    u = m_hat / (sqrt(v_hat + eps_root) + eps)

    `eps` is outside the square root (optax and PyTorch); TF1/Keras fold the
    bias correction into the step size, so their `eps` acts as
    eps / sqrt(1 - b2^k) does here (larger in the first updates).
    The moments of bfloat16/float16 parameters are kept in float32 (optax
    keeps them in the parameters' dtype, where `v` stops tracking).

    With `amsgrad=True` (Reddi et al., 2018) the denominator uses the running
    maximum of the raw second moment `v`, bias-corrected with the current
    k, as PyTorch's `Adam(amsgrad=True)`; the state is then a
    `ScaleByAdamAmsgradState` (with `nu_max`, in `nu`'s dtype). optax's
    `scale_by_amsgrad` keeps the maximum of the bias-corrected `v_hat`
    instead, which keeps the large early values: the two differ from the
    second update on, and with shrinking gradients the difference grows. `js.scale_by_amsgrad` is
    PyTorch's form too, without `eps_root`, `nu_dtype` or `nesterov`.

    Args:
      b1, b2: moment decay rates, in [0, 1).
      eps: added to the denominator, >= 0.
      eps_root: added inside the square root, >= 0.
      mu_dtype, nu_dtype: dtypes of the moments (default: float32 for
        parameters narrower than float32, else the parameters').
      nesterov: use Nesterov momentum (NAdam, Dozat 2016).
      amsgrad: keep the running maximum of `v` (AMSGrad), a bool.

    Raises:
      ValueError: for a value out of range.
      TypeError: if `nesterov` or `amsgrad` is not a bool.

    References: Kingma & Ba, "Adam: A Method for Stochastic Optimization", 2015;
    Reddi et al., "On the Convergence of Adam and Beyond", ICLR 2018.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_adam()
        >>> u, _ = tx.update(jnp.array([2.0, -3.0]), tx.init(jnp.zeros(2)))
        >>> [round(x, 6) for x in u.tolist()]
        [1.0, -1.0]
        >>> tx = js.scale_by_adam(b1=0.0, b2=0.5, eps=0.0, amsgrad=True)
        >>> state = tx.init(jnp.zeros(1))
        >>> _, state = tx.update(jnp.array([4.0]), state)
        >>> u, state = tx.update(jnp.array([1.0]), state)  # v_max keeps 8, not v = 4.5
        >>> state.nu.tolist(), state.nu_max.tolist(), [round(x, 6) for x in u.tolist()]
        ([4.5], [8.0], [0.306186])
    """
    owner = "scale_by_adam"
    _check_decay_rates(owner, b1=b1, b2=b2)
    _hyper.check(owner, "eps", eps, lo=0)
    _hyper.check(owner, "eps_root", eps_root, lo=0)
    _checks.boolean(owner, "nesterov", nesterov)
    _checks.boolean(owner, "amsgrad", amsgrad)

    def moments(hp, g, m, v):
        m = hp.b1 * m + (1 - hp.b1) * g
        v = hp.b2 * v + (1 - hp.b2) * jnp.square(g)
        return m, v

    def direction(hp, g, m, v):
        """m_hat / (sqrt(v_hat + eps_root) + eps), `v` the (maximum) second moment."""
        c1 = 1 - jax.lax.pow(hp.b1, hp.k)  # b ** k for an int32 k, without promoting k
        if nesterov:
            c1_next = 1 - jax.lax.pow(hp.b1, _numerics.next_count(hp.k))
            m_hat = hp.b1 * m / c1_next + (1 - hp.b1) * g / c1
        else:
            m_hat = m / c1
        v_hat = v / (1 - jax.lax.pow(hp.b2, hp.k))
        return m_hat / (jnp.sqrt(v_hat + hp.eps_root) + hp.eps)

    def step(hp, g, m, v):
        m, v = moments(hp, g, m, v)
        return direction(hp, g, m, v), m, v

    def amsgrad_step(hp, g, m, v, v_max):
        m, v = moments(hp, g, m, v)
        v_max = jnp.maximum(v_max, v)
        return direction(hp, g, m, v_max), m, v, v_max

    hypers = {"b1": b1, "b2": b2, "eps": eps, "eps_root": eps_root}
    if amsgrad:
        return transformation(owner, ScaleByAdamAmsgradState, hypers, amsgrad_step,
                              buffers={"mu": Buffer(dtype=mu_dtype), "nu": Buffer(dtype=nu_dtype),
                                       "nu_max": Buffer(dtype=nu_dtype)})
    return transformation(owner, ScaleByAdamState, hypers, step,
                          buffers={"mu": Buffer(dtype=mu_dtype), "nu": Buffer(dtype=nu_dtype)})


@with_groups
def scale_by_rms(decay: Hyper = 0.9, eps: Hyper = 1e-8, initial_scale: float = 0.0,
                 eps_in_sqrt: bool = True, *, centered: bool = False) -> Transformation:
    """Scale by the root mean square of past gradients (RMSProp, Hinton 2012).

    v = decay * v + (1 - decay) * g^2           (v starts at initial_scale)
    u = g / sqrt(v + eps)                       (eps_in_sqrt=False: g / (sqrt(v) + eps))
    centered: m = decay * m + (1 - decay) * g;  v - m^2 in place of v

    `eps` is inside the square root by default, as optax; PyTorch's RMSprop
    is `eps_in_sqrt=False`. TF1 starts `v` at 1.

    Args:
      decay: decay of the running average, in [0, 1].
      eps: >= 0.
      initial_scale: starting value of `v`, >= 0.
      eps_in_sqrt: add `eps` inside the square root.
      centered: subtract the squared running mean (Graves, 2013).

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_rms(decay=0.0, eps=0.0)
        >>> tx.update(jnp.array([-2.0]), tx.init(jnp.zeros(1)))[0].tolist()
        [-1.0]
    """
    owner = "scale_by_rms"
    _hyper.check(owner, "decay", decay, lo=0, hi=1)
    _hyper.check(owner, "eps", eps, lo=0)
    _checks.number(owner, "initial_scale", initial_scale, lo=0)
    _checks.boolean(owner, "eps_in_sqrt", eps_in_sqrt)
    _checks.boolean(owner, "centered", centered)

    def step(hp, g, v, m=None):
        v = hp.decay * v + (1 - hp.decay) * jnp.square(g)
        s = v
        if centered:
            m = hp.decay * m + (1 - hp.decay) * g
            s = v - jnp.square(m)
        u = g * jax.lax.rsqrt(s + hp.eps) if eps_in_sqrt else g / (jnp.sqrt(s) + hp.eps)
        return (u, v, m) if centered else (u, v)

    buffers = {"nu": Buffer(fill=initial_scale)}
    if centered:
        buffers["mu"] = Buffer()
    return transformation(owner, ScaleByRmsState, {"decay": decay, "eps": eps}, step,
                          buffers=buffers)


@with_groups
def scale_by_adagrad(initial_accumulator_value: float = 0.1, eps: Hyper = 1e-7) -> Transformation:
    """Scale by the inverse root of the sum of past squared gradients (AdaGrad).

    s = s + g^2            (s starts at initial_accumulator_value)
    u = g / sqrt(s + eps)  (0 where s == 0)

    PyTorch computes g / (sqrt(s) + eps).

    References: Duchi, Hazan & Singer, "Adaptive Subgradient Methods", 2011.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_adagrad(0.0, eps=0.0)
        >>> tx.update(jnp.array([3.0]), tx.init(jnp.zeros(1)))[0].tolist()
        [1.0]
    """
    owner = "scale_by_adagrad"
    _checks.number(owner, "initial_accumulator_value", initial_accumulator_value, lo=0)
    _hyper.check(owner, "eps", eps, lo=0)

    def step(hp, g, s):
        s = s + jnp.square(g)
        return jnp.where(s > 0, g * jax.lax.rsqrt(s + hp.eps), 0), s

    return transformation(owner, ScaleByAdagradState, {"eps": eps}, step,
                          buffers={"sum_of_squares": Buffer(fill=initial_accumulator_value)})


@with_groups
def trace(decay: Hyper, nesterov: bool = False, accumulator_dtype: Any = None) -> Transformation:
    """Momentum, as PyTorch's SGD (dampening 0).

    buf = decay * buf + g
    u = buf           (Nesterov: u = g + decay * buf)

    Args:
      decay: momentum, in [0, 1].
      nesterov: use Nesterov momentum.
      accumulator_dtype: dtype of `buf` (default: float32 for parameters
        narrower than float32, else the parameters').

    References: Polyak, 1964; Sutskever et al., 2013.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.trace(0.5)
        >>> s = tx.init(jnp.zeros(1))
        >>> u, s = tx.update(jnp.ones(1), s)
        >>> u, s = tx.update(jnp.ones(1), s)
        >>> u.tolist()
        [1.5]
    """
    _hyper.check("trace", "decay", decay, lo=0, hi=1)
    _checks.boolean("trace", "nesterov", nesterov)

    def step(hp, g, buf):
        buf = hp.decay * buf + g
        return (g + hp.decay * buf if nesterov else buf), buf

    return transformation("trace", TraceState, {"decay": decay}, step,
                          buffers={"trace": Buffer(dtype=accumulator_dtype)})


@with_groups
def ema(decay: Hyper, debias: bool = True, accumulator_dtype: Any = None) -> Transformation:
    """Exponential moving average of the updates.

    e = decay * e + (1 - decay) * g
    u = e / (1 - decay^k) if debias else e      (k = update count from 1)

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.ema(0.9)
        >>> tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))[0].tolist()
        [2.0]
    """
    _hyper.check("ema", "decay", decay, lo=0, hi=1)
    _checks.boolean("ema", "debias", debias)

    def step(hp, g, e):
        e = hp.decay * e + (1 - hp.decay) * g
        if not debias:
            return e, e
        correction = 1 - jax.lax.pow(hp.decay, hp.k)
        return e / jnp.where(correction > 0, correction, 1), e

    return transformation("ema", EmaState, {"decay": decay}, step,
                          buffers={"ema": Buffer(dtype=accumulator_dtype)})


# ---------------------------------------------------------------- weight decay

@with_groups
def add_decayed_weights(weight_decay: Hyper = 0.0, mask: MaskOrFn = None) -> Transformation:
    """Add decoupled weight decay: u = g + weight_decay * params.

    Followed by `scale_by_learning_rate`, the decay is multiplied by the
    learning rate in force, as PyTorch's and optax's AdamW do (Loshchilov &
    Hutter, 2019, multiply it by the schedule multiplier only, not by the
    base rate).

    Args:
      weight_decay: >= 0 (number, array or schedule).
      mask: a pytree of bools like the parameters, or a function of the
        parameters returning one; False leaves are not decayed (biases, norms).

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.add_decayed_weights(0.1)
        >>> p = jnp.array([10.0])
        >>> tx.update(jnp.array([1.0]), tx.init(p), p)[0].tolist()
        [2.0]
    """
    _hyper.check("add_decayed_weights", "weight_decay", weight_decay, lo=0)
    if mask is not None and not callable(mask):
        jax.tree.leaves(mask)  # a pytree; its structure is checked against the params at init
    return transformation("add_decayed_weights", AddDecayedWeightsState,
                          {"weight_decay": weight_decay},
                          lambda hp, g, p: g + hp.weight_decay * p, needs_params=True, mask=mask)


# ---------------------------------------------------------------- chain

def chain(*transforms: optax.GradientTransformation) -> Transformation:
    """Apply transformations in sequence (any mix of jaxsched and optax).

    Extra keyword arguments of `update` (such as `value=` for
    `reduce_on_plateau`) are forwarded to the transformations that take them.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.chain(js.clip(1.0), js.scale(-0.5))
        >>> tx.update(jnp.array([4.0]), tx.init(None))[0].tolist()
        [-0.5]
    """
    for i, t in enumerate(transforms):
        _checks.transformation("chain", f"transforms[{i}]", t)
    return describe(optax.chain(*transforms), members=transforms,
                    needs_params=any(not isinstance(t, Transformation) or t.needs_params
                                     for t in transforms),
                    per_array=any(getattr(t, "per_array", False) for t in transforms))
