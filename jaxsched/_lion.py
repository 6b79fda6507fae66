"""Lion: the sign of an interpolated momentum (Chen et al., 2023)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxsched import _checks, _hyper
from jaxsched._builder import Buffer, MaskOrFn, Transformation, transformation
from jaxsched._hyper import Hyper, carries
from jaxsched._transforms import add_decayed_weights, chain, scale_by_learning_rate
from jaxsched._groups import with_groups

Array = jax.Array
PyTree = Any


@carries("scale_by_lion")
class ScaleByLionState(NamedTuple):
    """State of `scale_by_lion`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> js.scale_by_lion().init(jnp.zeros(2))._fields
        ('count', 'mu', 'hyperparams')
    """

    count: Array  # type: ignore[assignment]  # int32 []: updates done, saturating
    mu: PyTree  # momentum, like params (float32 for bf16/f16 params, or mu_dtype)
    hyperparams: dict  # {"b1", "b2": float []}


@with_groups(tree_arguments=())
def scale_by_lion(b1: Hyper = 0.9, b2: Hyper = 0.99, mu_dtype: Any = None, *,
                  mode: str = "hard", smooth_beta: float = 1.0) -> Transformation:
    """Scale by the sign of Lion's interpolated momentum (optax's `scale_by_lion`).

    c = b1 * m + (1 - b1) * g
    u = sign(c)        (mode "smooth": tanh(smooth_beta * c); "refined": c where |c| < 1, else sign(c))
    m = b2 * m + (1 - b2) * g

    Args:
      b1: interpolation weight of the momentum in the update, in [0, 1).
      b2: decay of the momentum, in [0, 1).
      mu_dtype: dtype of `m` (default: float32 for parameters narrower than
        float32, else the parameters').
      mode: "hard" (the paper's sign), "smooth" or "refined", as optax.
      smooth_beta: the slope of "smooth", > 0.

    Raises:
      ValueError: for an argument out of range.

    References: Chen et al., "Symbolic Discovery of Optimization Algorithms", 2023.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_lion()
        >>> tx.update(jnp.array([0.3, -2.0, 0.0]), tx.init(jnp.zeros(3)))[0].tolist()
        [1.0, -1.0, 0.0]
    """
    owner = "scale_by_lion"
    for name, value in (("b1", b1), ("b2", b2)):
        _hyper.check(owner, name, value, lo=0, hi=1, hi_open=True)
    _checks.choice(owner, "mode", mode, ("hard", "smooth", "refined"))
    _checks.number(owner, "smooth_beta", smooth_beta, lo=0, lo_open=True)

    def step(hp, g, m):
        # In optax's order (the same numbers: + commutes), so that the compiled
        # loops are optax's, operand for operand.
        c = (1 - hp.b1) * g + hp.b1 * m
        if mode == "hard":
            u = jnp.sign(c)
        elif mode == "smooth":
            u = jnp.tanh(smooth_beta * c)
        else:
            u = jnp.where(jnp.abs(c) < 1, c, jnp.sign(c))
        return u, (1 - hp.b2) * g + hp.b2 * m

    return transformation(owner, ScaleByLionState, {"b1": b1, "b2": b2}, step,
                          buffers={"mu": Buffer(dtype=mu_dtype)})


@with_groups
def lion(learning_rate: Hyper, b1: Hyper = 0.9, b2: Hyper = 0.99, mu_dtype: Any = None,
         weight_decay: Hyper = 1e-3, mask: MaskOrFn = None) -> Transformation:
    """Lion (Chen et al., 2023): p -= lr * (sign(b1 * m + (1 - b1) * g) + weight_decay * p).

    optax's `lion` exactly (same arguments, defaults and order): the decay
    is decoupled and multiplied by the learning rate in force, as the paper.
    The `lion-pytorch` package's `Lion(lr, betas=(b1, b2), weight_decay)`
    applies `p *= 1 - lr * wd` before the signed step: the same update.

    Args:
      learning_rate: >= 0 (number, array or schedule).
      b1, b2: in [0, 1), see `scale_by_lion`.
      mu_dtype: dtype of the momentum.
      weight_decay: >= 0.
      mask: pytree of bools like the params, or a function of them; False
        leaves are not decayed.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.lion(0.1, weight_decay=0.0)
        >>> p = jnp.zeros(2)
        >>> opt.update(jnp.array([3.0, -1.0]), opt.init(p), p)[0].tolist()
        [-0.10000000149011612, 0.10000000149011612]
    """
    with _checks.calling("lion"):
        return chain(scale_by_lion(b1, b2, mu_dtype), add_decayed_weights(weight_decay, mask),
                     scale_by_learning_rate(learning_rate))
