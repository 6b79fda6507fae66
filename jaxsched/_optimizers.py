"""Optimizers: each only a chain of jaxsched transformations.

Every hyperparameter may be a number, an array or a schedule; the learning
rate actually used is `jaxsched.hyperparams(state, "learning_rate")`. The
positional order of every argument is optax's function of the same name;
the primitives check the arguments, naming the optimizer the user called.
Every optimizer takes a keyword-only `groups=` (parameter groups, see
`jaxsched.group`), added by `_groups.with_groups`.
"""

from __future__ import annotations

from typing import Any

from jaxsched import _checks
from jaxsched._builder import MaskOrFn, Transformation
from jaxsched._groups import with_groups
from jaxsched._hyper import Hyper
from jaxsched._transforms import (add_decayed_weights, chain, scale_by_adagrad, scale_by_adam,
                                  scale_by_learning_rate, scale_by_rms, trace)


@with_groups
def sgd(learning_rate: Hyper, momentum: Hyper | None = None, nesterov: bool = False,
        accumulator_dtype: Any = None) -> Transformation:
    """Stochastic gradient descent: p -= learning_rate * g (with `momentum`, see `js.momentum`).

    Example:
        >>> import jax.numpy as jnp, optax, jaxsched as js
        >>> opt = js.sgd(0.1)
        >>> u, _ = opt.update(jnp.ones(1), opt.init(jnp.zeros(1)))
        >>> optax.apply_updates(jnp.zeros(1), u).tolist()
        [-0.10000000149011612]
    """
    with _checks.calling("sgd", decay="momentum"):
        if momentum is None:
            _checks.boolean("sgd", "nesterov", nesterov)
            return chain(scale_by_learning_rate(learning_rate))
        return chain(trace(momentum, nesterov, accumulator_dtype),
                     scale_by_learning_rate(learning_rate))


@with_groups
def momentum(learning_rate: Hyper, momentum: Hyper = 0.9, nesterov: bool = False,
             accumulator_dtype: Any = None) -> Transformation:
    """SGD with momentum, as PyTorch's SGD: buf = momentum * buf + g; p -= lr * buf.

    With `nesterov`, p -= lr * (g + momentum * buf). The momentum's value is
    reported as `decay` by `hyperparams`. `optax.sgd(lr, momentum)` is the same.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.momentum(0.1, 0.9)
        >>> u, _ = opt.update(jnp.ones(1), opt.init(jnp.zeros(1)))
        >>> [round(x, 6) for x in u.tolist()]
        [-0.1]
    """
    with _checks.calling("momentum", decay="momentum"):
        return chain(trace(momentum, nesterov, accumulator_dtype),
                     scale_by_learning_rate(learning_rate))


@with_groups
def adagrad(learning_rate: Hyper, initial_accumulator_value: float = 0.1,
            eps: Hyper = 1e-7) -> Transformation:
    """AdaGrad: s += g^2; p -= lr * g / sqrt(s + eps) (Duchi et al., 2011).

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.adagrad(1.0, initial_accumulator_value=0.0, eps=0.0)
        >>> opt.update(jnp.array([2.0]), opt.init(jnp.zeros(1)))[0].tolist()
        [-1.0]
    """
    with _checks.calling("adagrad"):
        return chain(scale_by_adagrad(initial_accumulator_value, eps),
                     scale_by_learning_rate(learning_rate))


@with_groups
def rmsprop(learning_rate: Hyper, decay: Hyper = 0.9, eps: Hyper = 1e-8,
            initial_scale: float = 0.0, eps_in_sqrt: bool = True, centered: bool = False,
            momentum: Hyper | None = None, nesterov: bool = False) -> Transformation:
    """RMSProp: v = decay * v + (1 - decay) * g^2; p -= lr * g / sqrt(v + eps).

    `eps` inside the root by default, as optax; PyTorch's RMSprop is
    `eps_in_sqrt=False`. With `momentum`, the update scaled by the learning
    rate feeds a momentum buffer (`trace`), in optax's order; PyTorch's buffer
    holds the unscaled update, so the two agree only while the rate is
    constant.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.rmsprop(1.0, decay=0.0, eps=0.0)
        >>> opt.update(jnp.array([4.0]), opt.init(jnp.zeros(1)))[0].tolist()
        [-1.0]
    """
    with _checks.calling("rmsprop"):
        parts = [scale_by_rms(decay, eps, initial_scale, eps_in_sqrt, centered=centered),
                 scale_by_learning_rate(learning_rate)]
        _checks.boolean("rmsprop", "nesterov", nesterov)
    if momentum is not None:
        with _checks.calling("rmsprop", decay="momentum"):
            parts.append(trace(momentum, nesterov))
    return chain(*parts)


@with_groups
def adam(learning_rate: Hyper, b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8,
         eps_root: Hyper = 0.0, mu_dtype: Any = None, *, nu_dtype: Any = None,
         nesterov: bool = False, amsgrad: bool = False) -> Transformation:
    """Adam (Kingma & Ba, 2015): p -= lr * m_hat / (sqrt(v_hat) + eps).

    See `scale_by_adam` for the moment formulas and their dtypes.

    With `amsgrad=True` (Reddi et al., 2018), v_max = max(v_max, v) and
    v_hat = v_max / (1 - b2^k): PyTorch's `torch.optim.Adam(amsgrad=True)`
    (the maximum of the raw second moment, bias-corrected with the current
    k, eps outside the root). The first state is then a
    `ScaleByAdamAmsgradState` (`nu_max` added); `amsgrad=False` is Adam
    unchanged. `js.amsgrad` is the same algorithm with PyTorch Adam's L2
    `weight_decay` and without `eps_root`/`nu_dtype`/`nesterov` (its state is
    a `ScaleByAmsgradState`); `optax.amsgrad` differs: it keeps the maximum
    of the bias-corrected v_hat (the large early values stay), so the two part
    from the second update on.

    Args:
      learning_rate: >= 0 (number, array or schedule).
      b1, b2: moment decay rates, in [0, 1).
      eps: added outside the square root, >= 0.
      eps_root: added inside the square root, >= 0.
      mu_dtype, nu_dtype: dtypes of the moments (and of `nu_max`: nu_dtype).
      nesterov: Nesterov momentum (NAdam, Dozat 2016).
      amsgrad: AMSGrad's running maximum of the second moment; a bool,
        keyword-only (optax's `adam` has no such argument).

    Raises:
      ValueError: for a value out of range, naming `adam`.
      TypeError: if `nesterov` or `amsgrad` is not a bool.

    References: Kingma & Ba, 2015; Reddi et al., "On the Convergence of Adam
    and Beyond", ICLR 2018.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.adam(0.1)
        >>> [round(x, 6) for x in opt.update(jnp.array([3.0]), opt.init(jnp.zeros(1)))[0].tolist()]
        [-0.1]
        >>> opt = js.adam(0.1, amsgrad=True)
        >>> type(opt.init(jnp.zeros(1))[0]).__name__
        'ScaleByAdamAmsgradState'
    """
    with _checks.calling("adam"):
        return chain(scale_by_adam(b1, b2, eps, eps_root, mu_dtype=mu_dtype, nu_dtype=nu_dtype,
                                   nesterov=nesterov, amsgrad=amsgrad),
                     scale_by_learning_rate(learning_rate))


@with_groups
def adamw(learning_rate: Hyper, b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8,
          eps_root: Hyper = 0.0, mu_dtype: Any = None, weight_decay: Hyper = 1e-4,
          mask: MaskOrFn = None, *, nu_dtype: Any = None,
          nesterov: bool = False, amsgrad: bool = False) -> Transformation:
    """AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    p -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p)

    The decay is multiplied by the learning rate in force, as PyTorch's AdamW
    (`p *= 1 - lr * wd`) and optax's `adamw`. With `amsgrad=True`, v_hat is
    the bias-corrected running maximum of v, as PyTorch's
    `AdamW(amsgrad=True)` (see `adam` for how it relates to `js.amsgrad`
    and `optax.amsgrad`); PyTorch's default `weight_decay` is 1e-2.

    Args:
      learning_rate: >= 0 (number, array or schedule).
      b1, b2: moment decay rates, in [0, 1).
      eps, eps_root: >= 0, outside and inside the square root.
      mu_dtype, nu_dtype: dtypes of the moments.
      weight_decay: >= 0, multiplied by the learning rate in force.
      mask: pytree of bools like the params, or a function of the params; False
        leaves are not decayed.
      nesterov: Nesterov momentum.
      amsgrad: AMSGrad's running maximum of the second moment; a bool,
        keyword-only.

    Raises:
      ValueError: for a value out of range, naming `adamw`.
      TypeError: if `nesterov` or `amsgrad` is not a bool.

    References: Loshchilov & Hutter, "Decoupled Weight Decay Regularization",
    ICLR 2019; Reddi et al., ICLR 2018.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.adamw(0.1, weight_decay=0.5)
        >>> p = jnp.array([2.0])
        >>> [round(x, 6) for x in opt.update(jnp.array([3.0]), opt.init(p), p)[0].tolist()]
        [-0.2]
    """
    with _checks.calling("adamw"):
        return chain(scale_by_adam(b1, b2, eps, eps_root, mu_dtype=mu_dtype, nu_dtype=nu_dtype,
                                   nesterov=nesterov, amsgrad=amsgrad),
                     add_decayed_weights(weight_decay, mask),
                     scale_by_learning_rate(learning_rate))
