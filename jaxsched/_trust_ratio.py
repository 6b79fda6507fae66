"""Layer-wise trust ratios: `scale_by_trust_ratio`, LAMB and LARS."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxsched import _checks, _hyper
from jaxsched._builder import MaskOrFn, Transformation, transformation
from jaxsched._hyper import Hyper, carries
from jaxsched._groups import with_groups
from jaxsched._transforms import add_decayed_weights, chain, scale_by_adam, \
    scale_by_learning_rate, trace

Array = jax.Array
PyTree = Any


@carries("scale_by_trust_ratio")
class ScaleByTrustRatioState(NamedTuple):
    """State of `scale_by_trust_ratio`: the count and the hyperparameters used last.

    Example:
        >>> import jaxsched as js
        >>> js.scale_by_trust_ratio().init(None)._fields
        ('count', 'hyperparams')
    """

    count: Array  # type: ignore[assignment]  # int32 []
    hyperparams: dict  # {"min_norm", "trust_coefficient", "eps": float []}


def _norm(sum_of_squares: Array, min_norm: Array) -> Array:
    n = jnp.sqrt(sum_of_squares)
    return jnp.where(n <= min_norm, min_norm, n)


@with_groups
def scale_by_trust_ratio(min_norm: Hyper = 0.0, trust_coefficient: Hyper = 1.0,
                         eps: Hyper = 0.0, *, mask: MaskOrFn = None) -> Transformation:
    """Scale each array's update by its trust ratio ||p|| / ||u|| (optax's form).

    n_p = max(||p||, min_norm);   n_u = max(||u||, min_norm)     (L2 norms of each array)
    u = u * trust_coefficient * n_p / (n_u + eps)       (u unchanged where n_p or n_u is 0)

    Reduces over each array (`per_array`): on flat buffers the norms are
    those of the original arrays. Needs `update(updates, state, params)`.

    Args:
      min_norm: lower bound of both norms, >= 0.
      trust_coefficient: multiplier of the ratio, >= 0.
      eps: added to the update's norm, >= 0.
      mask: a tree of bools like the params, or a function of them; False
        leaves pass unchanged.

    Raises:
      ValueError: for an argument out of range.

    References: You et al., "Large Batch Training of Convolutional Networks", 2017.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_trust_ratio()
        >>> p = jnp.array([3.0, 4.0])
        >>> tx.update(jnp.array([0.0, 1.0]), tx.init(p), p)[0].tolist()
        [0.0, 5.0]
    """
    owner = "scale_by_trust_ratio"
    _hyper.check(owner, "min_norm", min_norm, lo=0)
    _hyper.check(owner, "trust_coefficient", trust_coefficient, lo=0)
    _hyper.check(owner, "eps", eps, lo=0)

    def step(hp, g, p):
        def factor(p_sq: Array, u_sq: Array) -> Array:
            p_norm, u_norm = _norm(p_sq, hp.min_norm), _norm(u_sq, hp.min_norm)
            zero = (p_norm == 0) | (u_norm == 0)
            # 1 / 1 where either norm is 0. A division last: XLA does not
            # copy it into the loop over the elements (it would repeat it per element).
            return (jnp.where(zero, 1, hp.trust_coefficient * p_norm)
                    / jnp.where(zero, 1, u_norm + hp.eps))

        # per original array on flat buffers: the factor is computed once per array
        return g * hp.per_array(factor, jnp.square(p), jnp.square(g))

    return transformation(owner, ScaleByTrustRatioState,
                          {"min_norm": min_norm, "trust_coefficient": trust_coefficient,
                           "eps": eps}, step, needs_params=True, mask=mask, per_array=True,
                          segment_sums=True)


@with_groups
def lamb(learning_rate: Hyper, b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-6,
         eps_root: Hyper = 0.0, weight_decay: Hyper = 0.0, mask: MaskOrFn = None
         ) -> Transformation:
    """LAMB (You et al., 2020): Adam's direction plus decay, scaled by each array's trust ratio.

    r = m_hat / (sqrt(v_hat + eps_root) + eps) + weight_decay * p     (see `scale_by_adam`)
    p -= lr * ||p|| / ||r|| * r         (per array; ratio 1 where either norm is 0)

    optax's `lamb` exactly (same arguments, defaults and order). The state
    reports Adam's `eps` as `scale_by_adam/eps` and the trust ratio's (0) as
    `scale_by_trust_ratio/eps`. PyTorch has no LAMB.

    Args:
      learning_rate: >= 0 (number, array or schedule).
      b1, b2: in [0, 1).   eps, eps_root: >= 0.   weight_decay: >= 0.
      mask: pytree of bools like the params, or a function of them; False
        leaves are not decayed.

    References: You et al., "Large Batch Optimization for Deep Learning:
    Training BERT in 76 minutes", 2020.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.lamb(0.1)
        >>> p = jnp.array([3.0, 4.0])
        >>> [round(x, 4) for x in opt.update(jnp.array([1.0, 1.0]), opt.init(p), p)[0].tolist()]
        [-0.3536, -0.3536]
    """
    with _checks.calling("lamb"):
        return chain(scale_by_adam(b1, b2, eps, eps_root),
                     add_decayed_weights(weight_decay, mask), scale_by_trust_ratio(),
                     scale_by_learning_rate(learning_rate))


def _bool_mask(mask: Any) -> MaskOrFn:
    """optax's `True` (every leaf) / `False` (none) prefix masks as jaxsched masks."""
    if mask is True:
        return None
    if mask is False:
        return lambda params: jax.tree.map(lambda _: False, params)
    return mask


@with_groups(tree_arguments=('weight_decay_mask', 'trust_ratio_mask'))
def lars(learning_rate: Hyper, weight_decay: Hyper = 0.0, weight_decay_mask: Any = True,
         trust_coefficient: Hyper = 0.001, eps: Hyper = 0.0, trust_ratio_mask: Any = True,
         momentum: Hyper = 0.9, nesterov: bool = False) -> Transformation:
    """LARS (You et al., 2017): SGD with momentum on trust-ratio-scaled, decayed gradients.

    r = g + weight_decay * p
    r = r * trust_coefficient * ||p|| / (||r|| + eps)        (per array; where both norms > 0)
    buf = momentum * buf + lr * r;   p -= buf      (Nesterov: p -= lr * r + momentum * buf)

    optax's `lars` exactly (same arguments, defaults and order; masks may be
    `True`, `False`, a tree of bools or a function of the params). The
    learning rate is inside the momentum buffer, as optax. The momentum is
    reported as `decay` by `hyperparams`.

    Args:
      learning_rate: >= 0 (number, array or schedule).
      weight_decay: >= 0.   trust_coefficient: >= 0.   eps: >= 0.
      weight_decay_mask, trust_ratio_mask: which leaves are decayed / scaled.
      momentum: in [0, 1].   nesterov: Nesterov momentum.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.lars(1.0, trust_coefficient=1.0)
        >>> p = jnp.array([3.0, 4.0])
        >>> opt.update(jnp.array([0.0, 2.0]), opt.init(p), p)[0].tolist()
        [0.0, -5.0]
    """
    with _checks.calling("lars", decay="momentum", mask="weight_decay_mask"):
        decay = add_decayed_weights(weight_decay, _bool_mask(weight_decay_mask))
    with _checks.calling("lars", mask="trust_ratio_mask"):
        ratio = scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps,
                                     mask=_bool_mask(trust_ratio_mask))
    with _checks.calling("lars", decay="momentum"):
        return chain(decay, ratio, scale_by_learning_rate(learning_rate),
                     trace(momentum, nesterov))
