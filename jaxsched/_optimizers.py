"""Optimizers: each only a chain of jaxsched transformations.

Every hyperparameter may be a number, an array or a schedule; the learning
rate actually used is in `jaxsched.hyperparams(state)["learning_rate"]`.
"""

from __future__ import annotations

from typing import Any

import optax

from jaxsched import _checks, _hyper
from jaxsched._hyper import Hyper
from jaxsched._transforms import (MaskOrFn, add_decayed_weights, chain, scale_by_adagrad,
                                  scale_by_adam, scale_by_learning_rate, scale_by_rms, trace)


def _lr(owner: str, learning_rate: Any) -> None:
    _hyper.check(owner, "learning_rate", learning_rate, lo=0)


def _adam_args(owner: str, b1: Any, b2: Any, eps: Any) -> None:
    # Checked here too, so that the error names the function the user called.
    _hyper.check(owner, "b1", b1, lo=0, hi=1, hi_open=True)
    _hyper.check(owner, "b2", b2, lo=0, hi=1, hi_open=True)
    _hyper.check(owner, "eps", eps, lo=0)


def sgd(learning_rate: Hyper) -> optax.GradientTransformationExtraArgs:
    """Stochastic gradient descent: p -= learning_rate * g.

    Example:
        >>> import jax.numpy as jnp, optax, jaxsched as js
        >>> opt = js.sgd(0.1)
        >>> u, _ = opt.update(jnp.ones(1), opt.init(jnp.zeros(1)))
        >>> optax.apply_updates(jnp.zeros(1), u).tolist()
        [-0.10000000149011612]
    """
    _lr("sgd", learning_rate)
    return chain(scale_by_learning_rate(learning_rate))


def momentum(learning_rate: Hyper, momentum: Hyper = 0.9,
             nesterov: bool = False) -> optax.GradientTransformationExtraArgs:
    """SGD with momentum, as PyTorch's SGD: buf = momentum * buf + g; p -= lr * buf.

    With `nesterov`, p -= lr * (g + momentum * buf). The momentum's value is
    reported as `decay` by `hyperparams`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.momentum(0.1, 0.9)
        >>> u, _ = opt.update(jnp.ones(1), opt.init(jnp.zeros(1)))
        >>> [round(x, 6) for x in u.tolist()]
        [-0.1]
    """
    _lr("momentum", learning_rate)
    _hyper.check("momentum", "momentum", momentum, lo=0, hi=1)
    _checks.boolean("momentum", "nesterov", nesterov)
    return chain(trace(momentum, nesterov), scale_by_learning_rate(learning_rate))


def adagrad(learning_rate: Hyper, initial_accumulator_value: float = 0.1,
            eps: Hyper = 1e-7) -> optax.GradientTransformationExtraArgs:
    """AdaGrad: s += g^2; p -= lr * g / sqrt(s + eps) (Duchi et al., 2011).

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.adagrad(1.0, initial_accumulator_value=0.0, eps=0.0)
        >>> opt.update(jnp.array([2.0]), opt.init(jnp.zeros(1)))[0].tolist()
        [-1.0]
    """
    _lr("adagrad", learning_rate)
    _checks.number("adagrad", "initial_accumulator_value", initial_accumulator_value, lo=0)
    _hyper.check("adagrad", "eps", eps, lo=0)
    return chain(scale_by_adagrad(initial_accumulator_value, eps),
                 scale_by_learning_rate(learning_rate))


def rmsprop(learning_rate: Hyper, decay: Hyper = 0.9, eps: Hyper = 1e-8,
            centered: bool = False) -> optax.GradientTransformationExtraArgs:
    """RMSProp: v = decay * v + (1 - decay) * g^2; p -= lr * g / sqrt(v + eps).

    `eps` inside the root, as optax (PyTorch adds it outside).

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.rmsprop(1.0, decay=0.0, eps=0.0)
        >>> opt.update(jnp.array([4.0]), opt.init(jnp.zeros(1)))[0].tolist()
        [-1.0]
    """
    _lr("rmsprop", learning_rate)
    _hyper.check("rmsprop", "decay", decay, lo=0, hi=1)
    _hyper.check("rmsprop", "eps", eps, lo=0)
    _checks.boolean("rmsprop", "centered", centered)
    return chain(scale_by_rms(decay, eps, 0.0, centered), scale_by_learning_rate(learning_rate))


def adam(learning_rate: Hyper, b1: Hyper = 0.9, b2: Hyper = 0.999,
         eps: Hyper = 1e-8) -> optax.GradientTransformationExtraArgs:
    """Adam (Kingma & Ba, 2015): p -= lr * m_hat / (sqrt(v_hat) + eps).

    See `scale_by_adam` for the moment formulas.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.adam(0.1)
        >>> [round(x, 6) for x in opt.update(jnp.array([3.0]), opt.init(jnp.zeros(1)))[0].tolist()]
        [-0.1]
    """
    _lr("adam", learning_rate)
    _adam_args("adam", b1, b2, eps)
    return chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(learning_rate))


def adamw(learning_rate: Hyper, b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8,
          weight_decay: Hyper = 1e-4, mask: MaskOrFn = None) -> optax.GradientTransformationExtraArgs:
    """AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    p -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p)

    The decay is multiplied by the learning rate in force, as PyTorch's AdamW
    (`p *= 1 - lr * wd`) and optax's `adamw`.

    Args:
      mask: pytree of bools like the params, or a function of the params; False
        leaves are not decayed.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.adamw(0.1, weight_decay=0.5)
        >>> p = jnp.array([2.0])
        >>> [round(x, 6) for x in opt.update(jnp.array([3.0]), opt.init(p), p)[0].tolist()]
        [-0.2]
    """
    _lr("adamw", learning_rate)
    _adam_args("adamw", b1, b2, eps)
    _hyper.check("adamw", "weight_decay", weight_decay, lo=0)
    return chain(scale_by_adam(b1, b2, eps), add_decayed_weights(weight_decay, mask),
                 scale_by_learning_rate(learning_rate))
