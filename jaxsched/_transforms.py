"""Gradient transformations: real `optax.GradientTransformation`s.

Every hyperparameter may be a number, an array (so `jax.vmap` can sweep it and
changing it never recompiles) or a schedule (update k uses `schedule(k)`).
Hyperparameter arithmetic happens in float32 (float64 under x64) whatever the
parameter dtype; updates come back in the gradients' dtype. Each state is a
`<Name>State` NamedTuple with a saturating int32 `count` and the
`hyperparams` used by the most recent update.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import optax

from jaxsched import _checks, _hyper, _numerics
from jaxsched._hyper import Hyper
from jaxsched._numerics import float_dtype

Array = jax.Array
PyTree = Any


# ---------------------------------------------------------------- helpers

def _f(x: Array) -> Array:
    return x.astype(float_dtype())


def describe_difference(a: PyTree, b: PyTree, a_name: str = "the updates",
                         b_name: str = "the state") -> str:
    paths_a = {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(a)[0]}
    paths_b = {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(b)[0]}
    only_a, only_b = sorted(paths_a - paths_b), sorted(paths_b - paths_a)
    parts = []
    if only_a:
        parts.append(f"only in {a_name}: {', '.join(only_a[:5])}")
    if only_b:
        parts.append(f"only in {b_name}: {', '.join(only_b[:5])}")
    if not parts:
        parts.append(f"structures differ: {jax.tree.structure(a)} vs {jax.tree.structure(b)}")
    return "; ".join(parts)


def check_same_tree(owner: str, updates: PyTree, reference: PyTree, what: str = "init") -> None:
    """Raise a ValueError naming the difference if two trees differ in structure."""
    if jax.tree.structure(updates) != jax.tree.structure(reference):
        if what == "init":
            head, ref_name = "the tree passed to update does not match the one given to init", \
                "the state"
        else:
            head, ref_name = f"the updates do not match {what}", what
        raise ValueError(f"`{owner}`: {head} "
                         f"({describe_difference(updates, reference, b_name=ref_name)}).")


def _with_spec(tx: optax.GradientTransformation, **spec: Any) -> optax.GradientTransformation:
    """Describe `tx` for `fuse` (which needs to see chains, masks and per-array steps)."""
    init = tx.init

    def described_init(params):
        return init(params)

    described_init.jaxsched_spec = spec
    return tx._replace(init=described_init)


def _zeros(params: PyTree, dtype: Any = None) -> PyTree:
    # zeros_like keeps each parameter's sharding, so the state follows the params.
    return jax.tree.map(lambda p: jnp.zeros_like(p, dtype=dtype or jnp.result_type(p)), params)


def _cast_like(x: Array, like: Array) -> Array:
    return x.astype(jnp.result_type(like))


def _stateless(owner: str, state_cls: type, hypers: dict[str, Hyper],
               apply: Callable[[PyTree, dict, PyTree], tuple[PyTree, dict]]
               ) -> optax.GradientTransformation:
    """A transformation whose state is only the count and the hyperparameters.

    `apply(updates, hp, params) -> (updates, extra)`; `extra` adds recorded
    values (e.g. the global norm) to `hyperparams`.
    """

    def init(params):
        del params
        count = _numerics.zero_count()
        hp = _hyper.resolve_all(hypers, count)
        _, extra = apply(None, hp, None)
        return state_cls(count=count, hyperparams={**hp, **extra})

    def update(updates, state, params=None):
        hp = _hyper.resolve_all(hypers, state.count)
        updates, extra = apply(updates, hp, params)
        return updates, state_cls(count=_numerics.next_count(state.count),
                                  hyperparams={**hp, **extra})

    return optax.GradientTransformation(init, update)


# ---------------------------------------------------------------- clipping

class ClipState(NamedTuple):
    """State of `clip`: the update count, and the hyperparameters used last.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> state = js.clip(1.0).init(None)
        >>> state._fields
        ('count', 'hyperparams')
        >>> int(state.count), sorted(state.hyperparams)
        (0, ['max_delta'])
    """

    count: Array  # int32 []: updates done, saturating
    hyperparams: dict  # {"max_delta": float []}


def clip(max_delta: Hyper) -> optax.GradientTransformation:
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

    def apply(updates, hp, params):
        d = hp["max_delta"]
        return jax.tree.map(lambda g: _cast_like(jnp.clip(_f(g), -d, d), g), updates), {}

    return _stateless("clip", ClipState, {"max_delta": max_delta}, apply)


class ClipByNormState(NamedTuple):
    """State of `clip_by_norm`: the update count, and the hyperparameters used last.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> state = js.clip_by_norm(1.0).init(None)
        >>> state._fields
        ('count', 'hyperparams')
        >>> int(state.count), sorted(state.hyperparams)
        (0, ['max_norm'])
    """

    count: Array  # int32 []
    hyperparams: dict  # {"max_norm": float []}


def clip_by_norm(max_norm: Hyper) -> optax.GradientTransformation:
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

    def apply(updates, hp, params):
        m = hp["max_norm"]

        def one(g):
            norm = jnp.sqrt(jnp.sum(jnp.square(_f(g))))
            return _cast_like(_f(g) * (m / jnp.maximum(norm, m)), g)

        return jax.tree.map(one, updates), {}

    return _with_spec(_stateless("clip_by_norm", ClipByNormState, {"max_norm": max_norm}, apply),
                      kind="per_leaf", name="clip_by_norm")


class ClipByGlobalNormState(NamedTuple):
    """State of `clip_by_global_norm`: the update count, and the hyperparameters used last.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> state = js.clip_by_global_norm(1.0).init(None)
        >>> state._fields
        ('count', 'hyperparams')
        >>> int(state.count), sorted(state.hyperparams)
        (0, ['global_norm', 'max_norm'])
    """

    count: Array  # int32 []
    hyperparams: dict  # {"max_norm": float [], "global_norm": float [] (pre-clip, last update)}


def global_norm(tree: PyTree) -> Array:
    """The global L2 norm of a tree, in the float dtype.

    n = sqrt(sum over arrays of sum(x^2))

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> float(js.global_norm({"a": jnp.array([3.0]), "b": jnp.array([[4.0]])}))
        5.0
    """
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros([], float_dtype())
    return jnp.sqrt(sum(jnp.sum(jnp.square(_f(x))) for x in leaves))


def clip_by_global_norm(max_norm: Hyper) -> optax.GradientTransformation:
    """Scale all arrays together so their global L2 norm is at most `max_norm`.

    n = sqrt(sum over arrays of ||g||^2)
    u = g * max_norm / max(n, max_norm)

    The state records the pre-clip global norm of the last update
    (`hyperparams(state)["global_norm"]`), for logging. PyTorch's
    `clip_grad_norm_` divides by `n + 1e-6` instead.

    Args:
      max_norm: largest global norm, > 0.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.clip_by_global_norm(1.0)
        >>> u, s = tx.update({"a": jnp.array([3.0]), "b": jnp.array([4.0])}, tx.init(None))
        >>> float(js.hyperparams(s)["global_norm"]), round(float(u["b"][0]), 6)
        (5.0, 0.8)
    """
    _hyper.check("clip_by_global_norm", "max_norm", max_norm, lo=0, lo_open=True)

    def apply(updates, hp, params):
        if updates is None:
            return None, {"global_norm": jnp.zeros([], float_dtype())}
        m = hp["max_norm"]
        norm = global_norm(updates)
        factor = m / jnp.maximum(norm, m)
        clipped = jax.tree.map(lambda g: _cast_like(_f(g) * factor, g), updates)
        return clipped, {"global_norm": norm}

    return _stateless("clip_by_global_norm", ClipByGlobalNormState, {"max_norm": max_norm},
                      apply)


# ---------------------------------------------------------------- scaling

class ScaleState(NamedTuple):
    """State of `scale`: the update count, and the hyperparameters used last.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> state = js.scale(0.5).init(None)
        >>> state._fields
        ('count', 'hyperparams')
        >>> int(state.count), sorted(state.hyperparams)
        (0, ['factor'])
    """

    count: Array  # int32 []
    hyperparams: dict  # {"factor": float []}


def scale(factor: Hyper) -> optax.GradientTransformation:
    """Multiply updates by `factor`: u = factor * g.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale(-2.0)
        >>> tx.update(jnp.ones(2), tx.init(None))[0].tolist()
        [-2.0, -2.0]
    """
    _hyper.check("scale", "factor", factor)

    def apply(updates, hp, params):
        f = hp["factor"]
        return jax.tree.map(lambda g: _cast_like(_f(g) * f, g), updates), {}

    return _stateless("scale", ScaleState, {"factor": factor}, apply)


class ScaleByScheduleState(NamedTuple):
    """State of `scale_by_schedule`: the update count, and the hyperparameters used last.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> state = js.scale_by_schedule(js.constant(0.5)).init(None)
        >>> state._fields
        ('count', 'hyperparams')
        >>> int(state.count), sorted(state.hyperparams)
        (0, ['step_size'])
    """

    count: Array  # int32 []
    hyperparams: dict  # {"step_size": float []}


def scale_by_schedule(schedule: Callable[[Array], Array]) -> optax.GradientTransformation:
    """Multiply updates by `schedule(k)` at update k: u = schedule(k) * g.

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

    def apply(updates, hp, params):
        f = hp["step_size"]
        return jax.tree.map(lambda g: _cast_like(_f(g) * f, g), updates), {}

    return _stateless("scale_by_schedule", ScaleByScheduleState, {"step_size": schedule}, apply)


class ScaleByLearningRateState(NamedTuple):
    """State of `scale_by_learning_rate`: the update count, and the hyperparameters used last.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> state = js.scale_by_learning_rate(0.1).init(None)
        >>> state._fields
        ('count', 'hyperparams')
        >>> int(state.count), sorted(state.hyperparams)
        (0, ['learning_rate'])
    """

    count: Array  # int32 []
    hyperparams: dict  # {"learning_rate": float []}


def scale_by_learning_rate(learning_rate: Hyper, *,
                           flip_sign: bool = True) -> optax.GradientTransformation:
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

    def apply(updates, hp, params):
        lr = sign * hp["learning_rate"]
        return jax.tree.map(lambda g: _cast_like(_f(g) * lr, g), updates), {}

    return _stateless("scale_by_learning_rate", ScaleByLearningRateState,
                      {"learning_rate": learning_rate}, apply)


# ---------------------------------------------------------------- adaptive scalings

class ScaleByAdamState(NamedTuple):
    """State of `scale_by_adam`: the update count, its buffers, and the hyperparameters used last.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> state = js.scale_by_adam().init(jnp.zeros(2))
        >>> state._fields
        ('count', 'mu', 'nu', 'hyperparams')
        >>> int(state.count), sorted(state.hyperparams)
        (0, ['b1', 'b2', 'eps', 'eps_root'])
    """

    count: Array  # int32 []: updates done, saturating
    mu: PyTree  # first moment, like params, dtype mu_dtype or the params' dtype
    nu: PyTree  # second moment, like params, the params' dtype
    hyperparams: dict  # {"b1", "b2", "eps", "eps_root": float []}


def scale_by_adam(b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8,
                  eps_root: Hyper = 0.0, *, mu_dtype: Any = None,
                  nesterov: bool = False) -> optax.GradientTransformation:
    """Scale by Adam's bias-corrected moment estimates (Kingma & Ba, 2015).

    m = b1 * m + (1 - b1) * g;   v = b2 * v + (1 - b2) * g^2;   k = update count from 1
    m_hat = m / (1 - b1^k)        (Nesterov: b1 * m / (1 - b1^(k+1)) + (1 - b1) * g / (1 - b1^k))
    v_hat = v / (1 - b2^k)
    u = m_hat / (sqrt(v_hat + eps_root) + eps)

    `eps` is outside the square root (optax and PyTorch); TF1/Keras fold the
    bias correction into the step size, which scales `eps` by sqrt(1 - b2^k).

    Args:
      b1, b2: moment decay rates, in [0, 1).
      eps: added to the denominator, >= 0.
      eps_root: added inside the square root, >= 0.
      mu_dtype: dtype of the first moment (default: the parameters').
      nesterov: use Nesterov momentum (NAdam, Dozat 2016).

    References: Kingma & Ba, "Adam: A Method for Stochastic Optimization", 2015.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_adam()
        >>> u, _ = tx.update(jnp.array([2.0, -3.0]), tx.init(jnp.zeros(2)))
        >>> [round(x, 6) for x in u.tolist()]
        [1.0, -1.0]
    """
    owner = "scale_by_adam"
    _hyper.check(owner, "b1", b1, lo=0, hi=1, hi_open=True)
    _hyper.check(owner, "b2", b2, lo=0, hi=1, hi_open=True)
    _hyper.check(owner, "eps", eps, lo=0)
    _hyper.check(owner, "eps_root", eps_root, lo=0)
    _checks.boolean(owner, "nesterov", nesterov)
    if mu_dtype is not None:
        mu_dtype = jnp.dtype(mu_dtype)
    hypers = {"b1": b1, "b2": b2, "eps": eps, "eps_root": eps_root}

    def init(params):
        count = _numerics.zero_count()
        return ScaleByAdamState(count=count, mu=_zeros(params, mu_dtype), nu=_zeros(params),
                                hyperparams=_hyper.resolve_all(hypers, count))

    def update(updates, state, params=None):
        del params
        check_same_tree(owner, updates, state.nu)
        hp = _hyper.resolve_all(hypers, state.count)
        b1_, b2_ = hp["b1"], hp["b2"]
        k = _numerics.next_count(state.count)
        c1 = 1 - b1_ ** k
        c2 = 1 - b2_ ** k
        c1_next = 1 - b1_ ** _numerics.next_count(k)

        def one(g, m, v):
            gf = _f(g)
            m_new = b1_ * _f(m) + (1 - b1_) * gf
            v_new = b2_ * _f(v) + (1 - b2_) * jnp.square(gf)
            if nesterov:
                m_hat = b1_ * m_new / c1_next + (1 - b1_) * gf / c1
            else:
                m_hat = m_new / c1
            v_hat = v_new / c2
            u = m_hat / (jnp.sqrt(v_hat + hp["eps_root"]) + hp["eps"])
            return _cast_like(u, g), _cast_like(m_new, m), _cast_like(v_new, v)

        out = jax.tree.map(one, updates, state.mu, state.nu)
        u, mu, nu = (jax.tree.map(lambda _, o: o[i], updates, out) for i in range(3))
        return u, ScaleByAdamState(count=_numerics.next_count(state.count), mu=mu, nu=nu,
                                   hyperparams=hp)

    return optax.GradientTransformation(init, update)


class ScaleByRmsState(NamedTuple):
    """State of `scale_by_rms`: the update count, its buffers, and the hyperparameters used last.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> state = js.scale_by_rms().init(jnp.zeros(2))
        >>> state._fields
        ('count', 'nu', 'mu', 'hyperparams')
        >>> int(state.count), sorted(state.hyperparams)
        (0, ['decay', 'eps'])
    """

    count: Array  # int32 []
    nu: PyTree  # mean of squares, like params
    mu: PyTree  # mean (centered only; otherwise an empty tuple)
    hyperparams: dict  # {"decay", "eps": float []}


def scale_by_rms(decay: Hyper = 0.9, eps: Hyper = 1e-8, initial_scale: float = 0.0,
                 centered: bool = False) -> optax.GradientTransformation:
    """Scale by the root mean square of past gradients (RMSProp, Hinton 2012).

    v = decay * v + (1 - decay) * g^2           (v starts at initial_scale)
    u = g / sqrt(v + eps)
    centered: m = decay * m + (1 - decay) * g;  u = g / sqrt(v - m^2 + eps)

    `eps` is inside the square root, as optax; PyTorch puts it outside and
    TF1 starts `v` at 1.

    Args:
      decay: decay of the running average, in [0, 1].
      eps: >= 0.
      initial_scale: starting value of `v`, >= 0.
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
    _checks.boolean(owner, "centered", centered)
    hypers = {"decay": decay, "eps": eps}

    def init(params):
        count = _numerics.zero_count()
        nu = jax.tree.map(lambda p: jnp.full_like(p, initial_scale, jnp.result_type(p)), params)
        mu = _zeros(params) if centered else ()
        return ScaleByRmsState(count=count, nu=nu, mu=mu,
                               hyperparams=_hyper.resolve_all(hypers, count))

    def update(updates, state, params=None):
        del params
        check_same_tree(owner, updates, state.nu)
        hp = _hyper.resolve_all(hypers, state.count)
        d = hp["decay"]
        nu = jax.tree.map(lambda g, v: d * _f(v) + (1 - d) * jnp.square(_f(g)), updates, state.nu)
        if centered:
            mu = jax.tree.map(lambda g, m: d * _f(m) + (1 - d) * _f(g), updates, state.mu)
            denom = jax.tree.map(lambda v, m: v - jnp.square(m), nu, mu)
            mu_out = jax.tree.map(_cast_like, mu, state.mu)
        else:
            denom, mu_out = nu, ()
        u = jax.tree.map(lambda g, s: _cast_like(_f(g) * jax.lax.rsqrt(s + hp["eps"]), g),
                         updates, denom)
        return u, ScaleByRmsState(count=_numerics.next_count(state.count),
                                  nu=jax.tree.map(_cast_like, nu, state.nu), mu=mu_out,
                                  hyperparams=hp)

    return optax.GradientTransformation(init, update)


class ScaleByAdagradState(NamedTuple):
    """State of `scale_by_adagrad`: the update count, its buffers, and the hyperparameters used last.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> state = js.scale_by_adagrad().init(jnp.zeros(2))
        >>> state._fields
        ('count', 'sum_of_squares', 'hyperparams')
        >>> int(state.count), sorted(state.hyperparams)
        (0, ['eps'])
    """

    count: Array  # int32 []
    sum_of_squares: PyTree  # like params
    hyperparams: dict  # {"eps": float []}


def scale_by_adagrad(initial_accumulator_value: float = 0.1,
                     eps: Hyper = 1e-7) -> optax.GradientTransformation:
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
    hypers = {"eps": eps}

    def init(params):
        count = _numerics.zero_count()
        s = jax.tree.map(lambda p: jnp.full_like(p, initial_accumulator_value,
                                                 jnp.result_type(p)), params)
        return ScaleByAdagradState(count=count, sum_of_squares=s,
                                   hyperparams=_hyper.resolve_all(hypers, count))

    def update(updates, state, params=None):
        del params
        check_same_tree(owner, updates, state.sum_of_squares)
        hp = _hyper.resolve_all(hypers, state.count)
        s = jax.tree.map(lambda g, a: _f(a) + jnp.square(_f(g)), updates, state.sum_of_squares)

        def one(g, acc):
            return _cast_like(jnp.where(acc > 0, _f(g) * jax.lax.rsqrt(acc + hp["eps"]), 0), g)

        u = jax.tree.map(one, updates, s)
        return u, ScaleByAdagradState(
            count=_numerics.next_count(state.count),
            sum_of_squares=jax.tree.map(_cast_like, s, state.sum_of_squares), hyperparams=hp)

    return optax.GradientTransformation(init, update)


class TraceState(NamedTuple):
    """State of `trace`: the update count, its buffers, and the hyperparameters used last.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> state = js.trace(0.9).init(jnp.zeros(2))
        >>> state._fields
        ('count', 'trace', 'hyperparams')
        >>> int(state.count), sorted(state.hyperparams)
        (0, ['decay'])
    """

    count: Array  # int32 []
    trace: PyTree  # momentum buffer, like params
    hyperparams: dict  # {"decay": float []}


def trace(decay: Hyper, nesterov: bool = False) -> optax.GradientTransformation:
    """Momentum, as PyTorch's SGD (dampening 0).

    buf = decay * buf + g
    u = buf           (Nesterov: u = g + decay * buf)

    Args:
      decay: momentum, in [0, 1].
      nesterov: use Nesterov momentum.

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
    owner = "trace"
    _hyper.check(owner, "decay", decay, lo=0, hi=1)
    _checks.boolean(owner, "nesterov", nesterov)
    hypers = {"decay": decay}

    def init(params):
        count = _numerics.zero_count()
        return TraceState(count=count, trace=_zeros(params),
                          hyperparams=_hyper.resolve_all(hypers, count))

    def update(updates, state, params=None):
        del params
        check_same_tree(owner, updates, state.trace)
        hp = _hyper.resolve_all(hypers, state.count)
        d = hp["decay"]
        buf = jax.tree.map(lambda g, b: d * _f(b) + _f(g), updates, state.trace)
        if nesterov:
            u = jax.tree.map(lambda g, b: _cast_like(_f(g) + d * b, g), updates, buf)
        else:
            u = jax.tree.map(_cast_like, buf, updates)
        return u, TraceState(count=_numerics.next_count(state.count),
                             trace=jax.tree.map(_cast_like, buf, state.trace), hyperparams=hp)

    return optax.GradientTransformation(init, update)


class EmaState(NamedTuple):
    """State of `ema`: the update count, its buffers, and the hyperparameters used last.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> state = js.ema(0.9).init(jnp.zeros(2))
        >>> state._fields
        ('count', 'ema', 'hyperparams')
        >>> int(state.count), sorted(state.hyperparams)
        (0, ['decay'])
    """

    count: Array  # int32 []
    ema: PyTree  # running average (not debiased), like params
    hyperparams: dict  # {"decay": float []}


def ema(decay: Hyper, debias: bool = True) -> optax.GradientTransformation:
    """Exponential moving average of the updates.

    e = decay * e + (1 - decay) * g
    u = e / (1 - decay^k) if debias else e      (k = update count from 1)

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.ema(0.9)
        >>> tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))[0].tolist()
        [2.0]
    """
    owner = "ema"
    _hyper.check(owner, "decay", decay, lo=0, hi=1)
    _checks.boolean(owner, "debias", debias)
    hypers = {"decay": decay}

    def init(params):
        count = _numerics.zero_count()
        return EmaState(count=count, ema=_zeros(params),
                        hyperparams=_hyper.resolve_all(hypers, count))

    def update(updates, state, params=None):
        del params
        check_same_tree(owner, updates, state.ema)
        hp = _hyper.resolve_all(hypers, state.count)
        d = hp["decay"]
        e = jax.tree.map(lambda g, a: d * _f(a) + (1 - d) * _f(g), updates, state.ema)
        if debias:
            correction = 1 - d ** _numerics.next_count(state.count)
            correction = jnp.where(correction > 0, correction, 1)
            u = jax.tree.map(lambda g, a: _cast_like(a / correction, g), updates, e)
        else:
            u = jax.tree.map(_cast_like, e, updates)
        return u, EmaState(count=_numerics.next_count(state.count),
                           ema=jax.tree.map(_cast_like, e, state.ema), hyperparams=hp)

    return optax.GradientTransformation(init, update)


# ---------------------------------------------------------------- weight decay

class AddDecayedWeightsState(NamedTuple):
    """State of `add_decayed_weights`: the update count, and the hyperparameters used last.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> state = js.add_decayed_weights(1e-4).init(jnp.zeros(2))
        >>> state._fields
        ('count', 'hyperparams')
        >>> int(state.count), sorted(state.hyperparams)
        (0, ['weight_decay'])
    """

    count: Array  # int32 []
    hyperparams: dict  # {"weight_decay": float []}


MaskOrFn = Optional[Union[PyTree, Callable[[PyTree], PyTree]]]


def _resolve_mask(owner: str, mask: MaskOrFn, params: PyTree) -> PyTree:
    tree = mask(params) if callable(mask) else mask
    if jax.tree.structure(tree) != jax.tree.structure(params):
        raise ValueError(f"`{owner}(mask=...)` must have the structure of the parameters "
                         f"({describe_difference(tree, params, 'the mask', 'the parameters')}).")
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if not isinstance(leaf, (bool, jnp.bool_)) and not (
                hasattr(leaf, "dtype") and leaf.dtype == jnp.bool_):
            raise TypeError(f"`{owner}(mask=...)` must hold bools, got {leaf!r} at "
                            f"{jax.tree_util.keystr(path)}.")
    return tree


def add_decayed_weights(weight_decay: Hyper = 0.0,
                        mask: MaskOrFn = None) -> optax.GradientTransformation:
    """Add decoupled weight decay: u = g + weight_decay * params.

    Followed by `scale_by_learning_rate`, the decay is multiplied by the
    learning rate in force (AdamW as PyTorch and optax define it; Loshchilov &
    Hutter, 2019).

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
    owner = "add_decayed_weights"
    _hyper.check(owner, "weight_decay", weight_decay, lo=0)
    if mask is not None and not callable(mask):
        jax.tree.leaves(mask)  # a pytree; its structure is checked against the params at init
    hypers = {"weight_decay": weight_decay}

    def init(params):
        if mask is not None:
            _resolve_mask(owner, mask, params)
        count = _numerics.zero_count()
        return AddDecayedWeightsState(count=count, hyperparams=_hyper.resolve_all(hypers, count))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError(f"`{owner}` needs the parameters: call update(updates, state, params).")
        check_same_tree(owner, updates, params, what="the params")
        hp = _hyper.resolve_all(hypers, state.count)
        wd = hp["weight_decay"]

        def one(g, p, keep=True):
            if not keep:
                return g
            return _cast_like(_f(g) + wd * _f(p), g)

        if mask is None:
            u = jax.tree.map(one, updates, params)
        else:
            u = jax.tree.map(lambda g, p, k: one(g, p, bool(k)), updates, params,
                             _resolve_mask(owner, mask, params))
        return u, AddDecayedWeightsState(count=_numerics.next_count(state.count), hyperparams=hp)

    return _with_spec(optax.GradientTransformation(init, update), kind="add_decayed_weights",
                      mask=mask, rebuild=lambda m: add_decayed_weights(weight_decay, m))


# ---------------------------------------------------------------- chain

def chain(*transforms: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
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
        if not isinstance(t, optax.GradientTransformation):
            raise TypeError(f"`chain(transforms[{i}]=...)` must be an optax "
                            f"GradientTransformation, got {type(t).__name__} {t!r}.")
    return _with_spec(optax.chain(*transforms), kind="chain", members=transforms)
