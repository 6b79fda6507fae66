"""Adam's relatives: NAdam, RAdam, Adamax, AMSGrad and ADOPT.

Each is a primitive (`scale_by_nadam`, `scale_by_radam`, `scale_by_adamax`,
`scale_by_amsgrad`, `scale_by_adopt`) and an optimizer alias that chains it
with weight decay and the learning rate. Where PyTorch and optax differ
(eps placement, NAdam's momentum schedule, the bias corrections), the
PyTorch form is the parity target and each docstring says so; ADOPT follows
`optax.contrib.adopt` (PyTorch has none). Every float hyperparameter may be
a number, an array or a schedule; `k` below is the update number from 1.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxsched import _carry, _checks, _hyper
from jaxsched._builder import Buffer, MaskOrFn, Transformation, transformation
from jaxsched._hyper import Hyper, carries
from jaxsched._numerics import computed_after, float_dtype
from jaxsched._transforms import add_decayed_weights, chain, scale_by_learning_rate
from jaxsched._groups import with_groups

Array = jax.Array
PyTree = Any


# ---------------------------------------------------------------- states

@carries("scale_by_nadam", measured=("mu_product",))
class ScaleByNadamState(NamedTuple):
    """State of `scale_by_nadam`; `mu_product` (the product of the momentum
    coefficients so far) is carried, reported by `measurements`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> js.scale_by_nadam().init(jnp.zeros(2))._fields
        ('count', 'mu', 'nu', 'mu_product', 'hyperparams')
    """

    count: Array  # type: ignore[assignment]  # int32 []: updates done, saturating
    mu: PyTree  # first moment, like params (float32 for bf16/f16 params, or mu_dtype)
    nu: PyTree  # second moment, like params (float32 for bf16/f16 params)
    mu_product: Array  # float []: prod of mu_t over the updates done (1 at init)
    hyperparams: dict  # {"b1", "b2", "eps", "momentum_decay": float []}


@carries("scale_by_radam")
class ScaleByRadamState(NamedTuple):
    """State of `scale_by_radam`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> js.scale_by_radam().init(jnp.zeros(2))._fields
        ('count', 'mu', 'nu', 'hyperparams')
    """

    count: Array  # type: ignore[assignment]  # int32 []
    mu: PyTree  # first moment, like params
    nu: PyTree  # second moment, like params
    hyperparams: dict  # {"b1", "b2", "eps", "threshold": float []}


@carries("scale_by_adamax")
class ScaleByAdamaxState(NamedTuple):
    """State of `scale_by_adamax`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> js.scale_by_adamax().init(jnp.zeros(2))._fields
        ('count', 'mu', 'nu', 'hyperparams')
    """

    count: Array  # type: ignore[assignment]  # int32 []
    mu: PyTree  # first moment, like params
    nu: PyTree  # exponentially weighted infinity norm, like params
    hyperparams: dict  # {"b1", "b2", "eps": float []}


@carries("scale_by_amsgrad")
class ScaleByAmsgradState(NamedTuple):
    """State of `scale_by_amsgrad`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> js.scale_by_amsgrad().init(jnp.zeros(2))._fields
        ('count', 'mu', 'nu', 'nu_max', 'hyperparams')
    """

    count: Array  # type: ignore[assignment]  # int32 []
    mu: PyTree  # first moment, like params
    nu: PyTree  # second moment, like params
    nu_max: PyTree  # running maximum of nu (not bias-corrected), like params
    hyperparams: dict  # {"b1", "b2", "eps": float []}


@carries("scale_by_adopt")
class ScaleByAdoptState(NamedTuple):
    """State of `scale_by_adopt`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> js.scale_by_adopt().init(jnp.zeros(2))._fields
        ('count', 'mu', 'nu', 'hyperparams')
    """

    count: Array  # type: ignore[assignment]  # int32 []
    mu: PyTree  # first moment of the normalised gradients, like params (or mu_dtype)
    nu: PyTree  # second moment, like params
    hyperparams: dict  # {"b1", "b2", "eps", "clip_value": float []}


# ---------------------------------------------------------------- checks

def _check_betas(owner: str, **rates: Hyper) -> None:
    for name, value in rates.items():
        _hyper.check(owner, name, value, lo=0, hi=1, hi_open=True)


def _check_eps(owner: str, eps: Hyper) -> None:
    _hyper.check(owner, "eps", eps, lo=0, lo_open=True)


def _safe_div(num: Array, den: Array) -> Array:
    return num / jnp.where(den != 0, den, 1)


# ---------------------------------------------------------------- NAdam

@with_groups(tree_arguments=())
def scale_by_nadam(b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8, *,
                   momentum_decay: Hyper = 4e-3, mu_dtype: Any = None) -> Transformation:
    """Scale by NAdam's Nesterov-momentum moments, as PyTorch's `NAdam` (Dozat, 2016).

    mu_k = b1 * (1 - 0.5 * 0.96^(k * momentum_decay));  mu_{k+1} likewise with k + 1
    P_k = mu_1 * ... * mu_k   (carried in the state: `mu_product`)
    m = b1 * m + (1 - b1) * g;   v = b2 * v + (1 - b2) * g^2
    d = sqrt(v / (1 - b2^k)) + eps
    u = ((1 - mu_k) / (1 - P_k) * g + mu_{k+1} / (1 - P_k * mu_{k+1}) * m) / d

    This is PyTorch's NAdam (with its momentum-decay schedule on b1, eps
    outside the root). optax's `scale_by_adam(nesterov=True)` (and
    `js.scale_by_adam(nesterov=True)`) is the form without the momentum
    schedule: it equals this one only in the limit `momentum_decay -> inf`.

    Args:
      b1, b2: moment decay rates, in [0, 1).
      eps: added to the denominator, > 0.
      momentum_decay: PyTorch's `momentum_decay` (psi), >= 0.
      mu_dtype: dtype of the first moment (default: float32 for parameters
        narrower than float32, else the parameters').

    References: Dozat, "Incorporating Nesterov Momentum into Adam", 2016.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_nadam()
        >>> u, s = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))
        >>> round(float(u[0]), 4), round(float(js.measurements(s)["mu_product"]), 4)
        (1.0565, 0.4501)
    """
    owner = "scale_by_nadam"
    _check_betas(owner, b1=b1, b2=b2)
    _check_eps(owner, eps)
    _hyper.check(owner, "momentum_decay", momentum_decay, lo=0)
    _carry.scalar_hypers(owner, b1=b1, momentum_decay=momentum_decay)

    def prepare(hp, trees):
        k = hp.k.astype(float_dtype())
        mu = hp.b1 * (1 - 0.5 * 0.96 ** (k * hp.momentum_decay))
        mu_next = hp.b1 * (1 - 0.5 * 0.96 ** ((k + 1) * hp.momentum_decay))
        product = hp.mu_product * mu
        return {"mu_t": mu, "mu_next": mu_next, "new_product": product}

    def step(hp, g, m, v):
        m = hp.b1 * m + (1 - hp.b1) * g
        v = hp.b2 * v + (1 - hp.b2) * jnp.square(g)
        d = jnp.sqrt(v / (1 - hp.b2 ** hp.k)) + hp.eps
        c_g = (1 - hp.mu_t) / (1 - hp.new_product)
        c_m = hp.mu_next / (1 - hp.new_product * hp.mu_next)
        return (c_g * g + c_m * m) / d, m, v  # one division per element

    return _carry.transformation(
        owner, ScaleByNadamState,
        {"b1": b1, "b2": b2, "eps": eps, "momentum_decay": momentum_decay}, step,
        buffers={"mu": Buffer(dtype=mu_dtype), "nu": Buffer()},
        scalars={"mu_product": lambda values: jnp.ones([], float_dtype())},
        prepare=prepare, finish=lambda hp: {"mu_product": hp.new_product})


@with_groups(tree_arguments=())
def nadam(learning_rate: Hyper, b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8, *,
          momentum_decay: Hyper = 4e-3, weight_decay: Hyper | None = None,
          mu_dtype: Any = None) -> Transformation:
    """NAdam as PyTorch's `torch.optim.NAdam` (`decoupled_weight_decay=False`).

    g = g + weight_decay * p        (only if weight_decay is given: PyTorch's L2 penalty)
    p -= learning_rate * scale_by_nadam(g)

    See `scale_by_nadam` for the formula. PyTorch's NAdam with
    `decoupled_weight_decay=True` is `nadamw`. optax's `nadam` has no
    momentum-decay schedule (see `scale_by_nadam`).

    Args:
      learning_rate: >= 0 (number, array or schedule); PyTorch's default is 2e-3.
      b1, b2: PyTorch's `betas`, in [0, 1).
      eps: > 0, outside the square root.
      momentum_decay: PyTorch's `momentum_decay`, >= 0.
      weight_decay: L2 penalty added to the gradient, >= 0; None (the
        default) adds none, and `update` then needs no parameters.
      mu_dtype: dtype of the first moment.

    Raises:
      ValueError: for a value out of range, naming `nadam`.

    References: Dozat, 2016.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.nadam(0.1)
        >>> [round(x, 6) for x in opt.update(jnp.array([3.0]), opt.init(jnp.zeros(1)))[0].tolist()]
        [-0.105645]
    """
    with _checks.calling("nadam"):
        parts = [] if weight_decay is None else [add_decayed_weights(weight_decay)]
        parts += [scale_by_nadam(b1, b2, eps, momentum_decay=momentum_decay, mu_dtype=mu_dtype),
                  scale_by_learning_rate(learning_rate)]
        return chain(*parts)


@with_groups
def nadamw(learning_rate: Hyper, b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8, *,
           weight_decay: Hyper = 1e-4, mask: MaskOrFn = None, momentum_decay: Hyper = 4e-3,
           mu_dtype: Any = None) -> Transformation:
    """NAdam with decoupled weight decay, as PyTorch's `NAdam(decoupled_weight_decay=True)`.

    p -= learning_rate * (scale_by_nadam(g) + weight_decay * p)

    PyTorch multiplies `p` by `1 - lr * weight_decay` before the step: the
    same update. Set `weight_decay` explicitly when porting (PyTorch's
    default is 0, optax's `nadamw` 1e-4, like jaxsched's `adamw`).

    Args:
      learning_rate: >= 0.
      b1, b2: in [0, 1).
      eps: > 0.
      weight_decay: >= 0, multiplied by the learning rate in force.
      mask: pytree of bools like the params, or a function of the params;
        False leaves are not decayed.
      momentum_decay: PyTorch's `momentum_decay`, >= 0.
      mu_dtype: dtype of the first moment.

    References: Dozat, 2016; Loshchilov & Hutter, 2019.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.nadamw(0.1, weight_decay=0.5)
        >>> p = jnp.array([2.0])
        >>> [round(x, 6) for x in opt.update(jnp.array([3.0]), opt.init(p), p)[0].tolist()]
        [-0.205645]
    """
    with _checks.calling("nadamw"):
        return chain(scale_by_nadam(b1, b2, eps, momentum_decay=momentum_decay,
                                    mu_dtype=mu_dtype),
                     add_decayed_weights(weight_decay, mask),
                     scale_by_learning_rate(learning_rate))


# ---------------------------------------------------------------- RAdam

@with_groups(tree_arguments=())
def scale_by_radam(b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8, *,
                   threshold: Hyper = 5.0) -> Transformation:
    """Scale by RAdam's rectified moments, as PyTorch's `RAdam` (Liu et al., 2020).

    m = b1 * m + (1 - b1) * g;   v = b2 * v + (1 - b2) * g^2
    rho_inf = 2 / (1 - b2) - 1;   rho_k = rho_inf - 2 * k * b2^k / (1 - b2^k)
    r = sqrt((rho_k - 4) * (rho_k - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_k))
    u = r * m / (1 - b1^k) * sqrt(1 - b2^k) / (sqrt(v) + eps)     if rho_k > threshold
    u = m / (1 - b1^k)                                            otherwise

    PyTorch's eps placement: `eps` is added to sqrt(v) before the bias
    correction, so it equals optax's `scale_by_radam` with eps scaled by
    1 / sqrt(1 - b2^k). PyTorch's threshold is 5.

    Args:
      b1, b2: in [0, 1).
      eps: > 0.
      threshold: rho above which the adaptive step is used, >= 4.

    References: Liu et al., "On the Variance of the Adaptive Learning Rate
    and Beyond", ICLR 2020.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_radam()
        >>> tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))[0].tolist()
        [2.0]
    """
    owner = "scale_by_radam"
    _check_betas(owner, b1=b1, b2=b2)
    _check_eps(owner, eps)
    _hyper.check(owner, "threshold", threshold, lo=4)

    def step(hp, g, m, v):
        m = hp.b1 * m + (1 - hp.b1) * g
        v = hp.b2 * v + (1 - hp.b2) * jnp.square(g)
        k = hp.k.astype(float_dtype())
        bc1, bc2 = 1 - hp.b1 ** k, 1 - hp.b2 ** k
        m_hat = m / bc1
        rho_inf = 2 / (1 - hp.b2) - 1
        rho = rho_inf - 2 * k * hp.b2 ** k / bc2
        adaptive = rho > hp.threshold
        ratio = _safe_div((rho - 4) * (rho - 2) * rho_inf, (rho_inf - 4) * (rho_inf - 2) * rho)
        r = jnp.sqrt(jnp.where(adaptive, ratio, 1.0))
        u = jnp.where(adaptive, m_hat * r * jnp.sqrt(bc2) / (jnp.sqrt(v) + hp.eps), m_hat)
        return u, m, v

    return transformation(owner, ScaleByRadamState,
                          {"b1": b1, "b2": b2, "eps": eps, "threshold": threshold}, step,
                          buffers={"mu": Buffer(), "nu": Buffer()})


@with_groups(tree_arguments=())
def radam(learning_rate: Hyper, b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8, *,
          threshold: Hyper = 5.0, weight_decay: Hyper | None = None,
          decoupled_weight_decay: bool = False) -> Transformation:
    """RAdam as PyTorch's `torch.optim.RAdam`.

    p -= learning_rate * scale_by_radam(g + weight_decay * p)          (L2, the default)
    p -= learning_rate * (scale_by_radam(g) + weight_decay * p)        (decoupled_weight_decay)

    See `scale_by_radam` (PyTorch's eps placement, which differs from optax's).

    Args:
      learning_rate: >= 0.
      b1, b2: PyTorch's `betas`, in [0, 1).
      eps: > 0.
      threshold: >= 4 (PyTorch: 5).
      weight_decay: >= 0, or None (the default) for none.
      decoupled_weight_decay: PyTorch's flag of that name.

    References: Liu et al., 2020.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.radam(0.1)
        >>> [round(x, 6) for x in opt.update(jnp.array([3.0]), opt.init(jnp.zeros(1)))[0].tolist()]
        [-0.3]
    """
    with _checks.calling("radam"):
        _checks.boolean("radam", "decoupled_weight_decay", decoupled_weight_decay)
        core = scale_by_radam(b1, b2, eps, threshold=threshold)
        if weight_decay is None:
            parts = [core]
        elif decoupled_weight_decay:
            parts = [core, add_decayed_weights(weight_decay)]
        else:
            parts = [add_decayed_weights(weight_decay), core]
        return chain(*parts, scale_by_learning_rate(learning_rate))


# ---------------------------------------------------------------- Adamax

@with_groups(tree_arguments=())
def scale_by_adamax(b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8) -> Transformation:
    """Scale by Adamax's infinity-norm moments, as PyTorch's `Adamax` (Kingma & Ba, 2015).

    m = b1 * m + (1 - b1) * g
    n = max(b2 * n, |g| + eps)
    u = m / (1 - b1^k) / n

    eps inside the maximum, as PyTorch's `Adamax` and optax's `scale_by_adamax`
    (which computes max(|g| + eps, b2 * n)).

    Args:
      b1, b2: in [0, 1).
      eps: > 0.

    References: Kingma & Ba, "Adam: A Method for Stochastic Optimization", 2015, section 7.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_adamax(eps=1e-6)
        >>> [round(x, 4) for x in tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))[0].tolist()]
        [1.0]
    """
    owner = "scale_by_adamax"
    _check_betas(owner, b1=b1, b2=b2)
    _check_eps(owner, eps)

    def step(hp, g, m, n):
        # Written in optax's order (the same numbers: + and max commute), so that
        # the compiled loops are optax's, operand for operand. m / (1 - b1^k) / n,
        # not m / ((1 - b1^k) * n): the scalar division becomes a multiplication
        # and the divisor is n as loaded (at one array of 1M parameters 1.009x
        # optax over 8 runs, against 1.018-1.030x).
        m = (1 - hp.b1) * g + hp.b1 * m
        n = jnp.maximum(jnp.abs(g) + hp.eps, hp.b2 * n)
        return m / (1 - hp.b1 ** hp.k) / n, m, n

    return transformation(owner, ScaleByAdamaxState, {"b1": b1, "b2": b2, "eps": eps}, step,
                          buffers={"mu": Buffer(), "nu": Buffer()})


@with_groups(tree_arguments=())
def adamax(learning_rate: Hyper, b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8, *,
           weight_decay: Hyper | None = None) -> Transformation:
    """Adamax as PyTorch's `torch.optim.Adamax`: p -= lr * scale_by_adamax(g + weight_decay * p).

    Args:
      learning_rate: >= 0 (PyTorch's default is 2e-3).
      b1, b2: PyTorch's `betas`, in [0, 1).
      eps: > 0 (inside the maximum, as PyTorch and optax; see `scale_by_adamax`).
      weight_decay: L2 penalty, >= 0, or None (the default) for none.

    References: Kingma & Ba, 2015.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.adamax(0.1)
        >>> [round(x, 6) for x in opt.update(jnp.array([3.0]), opt.init(jnp.zeros(1)))[0].tolist()]
        [-0.1]
    """
    with _checks.calling("adamax"):
        parts = [] if weight_decay is None else [add_decayed_weights(weight_decay)]
        return chain(*parts, scale_by_adamax(b1, b2, eps), scale_by_learning_rate(learning_rate))


# ---------------------------------------------------------------- AMSGrad

@with_groups(tree_arguments=())
def scale_by_amsgrad(b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8, *,
                     mu_dtype: Any = None) -> Transformation:
    """Scale by AMSGrad's moments, as PyTorch's `Adam(amsgrad=True)` (Reddi et al., 2018).

    m = b1 * m + (1 - b1) * g;   v = b2 * v + (1 - b2) * g^2
    v_max = max(v_max, v)
    u = m / (1 - b1^k) / (sqrt(v_max / (1 - b2^k)) + eps)

    PyTorch keeps the maximum of the raw second moment and bias-corrects it
    with the current k; optax's `scale_by_amsgrad` keeps the maximum of the
    bias-corrected moment, which keeps the large early values: the two differ
    from the second update on, and with shrinking gradients ever more.
    `scale_by_adam(amsgrad=True)` is the same PyTorch form with Adam's
    `eps_root`, `nu_dtype` and `nesterov` (state `ScaleByAdamAmsgradState`).

    Args:
      b1, b2: in [0, 1).
      eps: > 0.
      mu_dtype: dtype of the first moment.

    References: Reddi et al., "On the Convergence of Adam and Beyond", ICLR 2018.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_amsgrad()
        >>> [round(x, 6) for x in tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))[0].tolist()]
        [1.0]
    """
    owner = "scale_by_amsgrad"
    _check_betas(owner, b1=b1, b2=b2)
    _check_eps(owner, eps)

    def step(hp, g, m, v, v_max):
        m = hp.b1 * m + (1 - hp.b1) * g
        v = hp.b2 * v + (1 - hp.b2) * jnp.square(g)
        v_max = jnp.maximum(v_max, v)
        d = jnp.sqrt(v_max) / jnp.sqrt(1 - hp.b2 ** hp.k) + hp.eps
        return m / (1 - hp.b1 ** hp.k) / d, m, v, v_max

    return transformation(owner, ScaleByAmsgradState, {"b1": b1, "b2": b2, "eps": eps}, step,
                          buffers={"mu": Buffer(dtype=mu_dtype), "nu": Buffer(),
                                   "nu_max": Buffer()})


@with_groups(tree_arguments=())
def amsgrad(learning_rate: Hyper, b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8, *,
            weight_decay: Hyper | None = None, mu_dtype: Any = None) -> Transformation:
    """AMSGrad as PyTorch's `torch.optim.Adam(amsgrad=True)`.

    p -= learning_rate * scale_by_amsgrad(g + weight_decay * p)

    PyTorch's convention (the maximum of the raw second moment, see
    `scale_by_amsgrad`), not optax's `amsgrad` (the maximum of the
    bias-corrected one). Without `weight_decay` it is `js.adam(learning_rate,
    b1, b2, eps, amsgrad=True)` (equal up to rounding: the two compute
    sqrt(v_max / (1 - b2^k)) in a different order); that form also takes
    `eps_root`, `nu_dtype` and `nesterov`. PyTorch's `AdamW(amsgrad=True)`
    is `js.adamw(..., amsgrad=True)`.

    Args:
      learning_rate: >= 0.
      b1, b2: PyTorch's `betas`, in [0, 1).
      eps: > 0.
      weight_decay: L2 penalty (PyTorch Adam's `weight_decay`), >= 0, or None.
      mu_dtype: dtype of the first moment.

    References: Reddi et al., 2018.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.amsgrad(0.1)
        >>> [round(x, 6) for x in opt.update(jnp.array([3.0]), opt.init(jnp.zeros(1)))[0].tolist()]
        [-0.1]
    """
    with _checks.calling("amsgrad"):
        parts = [] if weight_decay is None else [add_decayed_weights(weight_decay)]
        return chain(*parts, scale_by_amsgrad(b1, b2, eps, mu_dtype=mu_dtype),
                     scale_by_learning_rate(learning_rate))


# ---------------------------------------------------------------- ADOPT

def _quarter_power(count: Array) -> Array:
    """count^0.25: ADOPT's default clipping value at update `count` (from 0)."""
    return jnp.asarray(count, float_dtype()) ** 0.25


@with_groups(tree_arguments=())
def scale_by_adopt(b1: Hyper = 0.9, b2: Hyper = 0.9999, eps: Hyper = 1e-6,
                   mu_dtype: Any = None, *, nesterov: bool = False, use_clipping: bool = True,
                   clip_value_fn: Callable[[Array], Array] | None = None) -> Transformation:
    """Scale by ADOPT's moments, as `optax.contrib.scale_by_adopt` (Taniguchi et al., 2024).

    Update 1 only records v = g^2 (its output is 0). From update 2 on:
    n = g / max(sqrt(v), eps)        (v of the previous updates; clipped to +-c if use_clipping)
    m = b1 * m + (1 - b1) * n;   v = b2 * v + (1 - b2) * g^2
    u = m                            (nesterov: u = b1 * m + (1 - b1) * n)

    The clipping value c at update k (from 0) is `clip_value_fn(k)`, by
    default k^0.25; it is reported by `hyperparams` as `clip_value`.

    Args:
      b1, b2: in [0, 1).
      eps: > 0 (the floor of sqrt(v)).
      mu_dtype: dtype of the first moment.
      nesterov: Nesterov form of the momentum.
      use_clipping: clip the normalised gradient.
      clip_value_fn: the clipping value as a schedule of the update count
        (default k^0.25); any jaxsched schedule or callable of the step.

    References: Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any
    beta2 with the Optimal Rate", NeurIPS 2024.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_adopt(b1=0.5)
        >>> s = tx.init(jnp.zeros(1))
        >>> u1, s = tx.update(jnp.array([2.0]), s)
        >>> u2, s = tx.update(jnp.array([2.0]), s)
        >>> u1.tolist(), u2.tolist()
        ([0.0], [0.5])
    """
    owner = "scale_by_adopt"
    _check_betas(owner, b1=b1, b2=b2)
    _check_eps(owner, eps)
    _checks.boolean(owner, "nesterov", nesterov)
    _checks.boolean(owner, "use_clipping", use_clipping)
    hypers: dict[str, Hyper] = {"b1": b1, "b2": b2, "eps": eps}
    if use_clipping:
        if clip_value_fn is not None:
            _checks.callable_(owner, "clip_value_fn", clip_value_fn)
        hypers["clip_value"] = _quarter_power if clip_value_fn is None else clip_value_fn

    def step(hp, g, m, v):
        first = hp.k == 1
        b1_ = jnp.where(first, 1.0, hp.b1)
        b2_ = jnp.where(first, 0.0, hp.b2)
        n = g / jnp.maximum(jnp.sqrt(v), hp.eps)
        if use_clipping:
            n = jnp.clip(n, -hp.clip_value, hp.clip_value)
        m = b1_ * m + (1 - b1_) * n
        u = b1_ * m + (1 - b1_) * n if nesterov else m
        # m and u read the old v: v is written after them, in place (no copy)
        v = computed_after(b2_ * v + (1 - b2_) * jnp.square(g), u)
        return u, m, v

    return transformation(owner, ScaleByAdoptState, hypers, step,
                          buffers={"mu": Buffer(dtype=mu_dtype), "nu": Buffer()})


@with_groups(tree_arguments=())
def adopt(learning_rate: Hyper, b1: Hyper = 0.9, b2: Hyper = 0.9999, eps: Hyper = 1e-6,
          mu_dtype: Any = None, *, nesterov: bool = False, use_clipping: bool = True,
          clip_value_fn: Callable[[Array], Array] | None = None) -> Transformation:
    """ADOPT as `optax.contrib.adopt`: p -= learning_rate * scale_by_adopt(g).

    Arguments and defaults are optax's (`clip_value_fn=None` is optax's
    default, k^0.25). PyTorch has no ADOPT.

    References: Taniguchi et al., NeurIPS 2024.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.adopt(0.1)
        >>> opt.update(jnp.array([3.0]), opt.init(jnp.zeros(1)))[0].tolist()
        [-0.0]
    """
    with _checks.calling("adopt"):
        return chain(scale_by_adopt(b1, b2, eps, mu_dtype, nesterov=nesterov,
                                    use_clipping=use_clipping, clip_value_fn=clip_value_fn),
                     scale_by_learning_rate(learning_rate))
