"""Adafactor: factored second moments (Shazeer & Stern, 2018), as optax and as PyTorch.

optax's `adafactor` and PyTorch's `torch.optim.Adafactor` share the
algorithm (a factored estimate of the mean squared gradient, the update
clipped to RMS `d`, scaled by the parameters' RMS) and differ in details;
`adafactor(convention=...)` picks either, optax's by default:

| | optax (default) | PyTorch |
|---|---|---|
| which arrays are factored | the two largest dims, if the smaller is >= `min_dim_size_to_factor` (128) | the last two dims of every array of rank >= 2 |
| `eps` | added to g^2 (1e-30) | floor of the estimate, eps^2, and of its row mean, eps (dtype's machine eps) |
| step size | `learning_rate` (None: 1) | min(`learning_rate`, 1 / sqrt(k)) |
| weight decay | `u += weight_decay * p`, not scaled by the rate | `p *= 1 - lr * weight_decay` |
| momentum | optional (`momentum`) | none |
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsched import _checks, _flat, _hyper, _numerics
from jaxsched._builder import (MaskOrFn, Transformation, Values, check_real_floats,
                               check_same_tree, describe, state_dtype, structure,
                               transformation)
from jaxsched._hyper import Hyper, carries
from jaxsched._numerics import float_dtype
from jaxsched._transforms import add_decayed_weights, chain, ema, scale, scale_by_learning_rate
from jaxsched._groups import with_groups

Array = jax.Array
PyTree = Any
_CONVENTIONS = ("optax", "pytorch")


@carries("scale_by_factored_rms")
class ScaleByFactoredRmsState(NamedTuple):
    """State of `scale_by_factored_rms`: factored moments, or a full one for unfactored arrays.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> s = js.scale_by_factored_rms(convention="pytorch").init(jnp.zeros((3, 4)))
        >>> s.v_row.shape, s.v_col.shape, s.v.shape
        ((3, 1), (1, 4), (1,))
    """

    count: Array  # type: ignore[assignment]  # int32 []
    v_row: PyTree  # factored arrays: mean over the column axis (kept as size 1); else shape (1,)
    v_col: PyTree  # factored arrays: mean over the row axis (kept as size 1); else shape (1,)
    v: PyTree  # unfactored arrays: like the param; factored ones: shape (1,)
    hyperparams: dict  # {"decay_rate": float [], "epsilon": float [] (unless None)}


def factored_axes(shape: tuple, factored: bool, min_dim_size_to_factor: int | None,
                  convention: str = "optax") -> tuple[int, int] | None:
    """The (row, column) axes an array of `shape` is factored over, or None."""
    if not factored or len(shape) < 2:
        return None
    if convention == "pytorch":
        row, col = len(shape) - 2, len(shape) - 1
        threshold = 0 if min_dim_size_to_factor is None else min_dim_size_to_factor
        return None if min(shape[row], shape[col]) < threshold else (row, col)
    threshold = 128 if min_dim_size_to_factor is None else min_dim_size_to_factor
    order = np.argsort(shape)
    second, largest = int(order[-2]), int(order[-1])
    return None if shape[second] < threshold else (second, largest)


@with_groups(tree_arguments=())
def scale_by_factored_rms(factored: bool = True, decay_rate: Hyper = 0.8, step_offset: int = 0,
                          min_dim_size_to_factor: int | None = None,
                          epsilon: Hyper | None = None, *,
                          convention: str = "optax") -> Transformation:
    """Scale by the inverse root of a factored estimate of the mean squared gradient.

    b = 1 - t^(-decay_rate),  t = max(k - step_offset, 1)     (k = update count from 1)
    factored (axes r, c):  R = b R + (1 - b) mean_c(g2);  C = b C + (1 - b) mean_r(g2)
                           V = R C / mean_r(R)
    otherwise:             V = b V + (1 - b) g2
    optax:   g2 = g^2 + epsilon;  u = g / sqrt(V)
    pytorch: g2 = g^2;  V uses max(mean_r(R), epsilon);  u = g / sqrt(max(V, epsilon^2))

    See the module docstring for which arrays each convention factors.
    Reduces over each array (`per_array`). The moments of bfloat16/float16
    parameters are float32.

    Args:
      factored: factor the moments of arrays of rank >= 2.
      decay_rate: exponent of the decay schedule, >= 0 (PyTorch's
        `beta2_decay` is `-decay_rate`); a number, scalar array or schedule.
      step_offset: an int >= 0 subtracted from the update count (fine-tuning).
      min_dim_size_to_factor: an int >= 0; None: 128 (optax), 0 (pytorch).
      epsilon: > 0; None: 1e-30 (optax), the parameter dtype's machine
        epsilon (pytorch, as `eps=(None, ...)`).
      convention: "optax" or "pytorch".

    Raises:
      ValueError: for an argument out of range, (at update) an array
        hyperparameter that is not a scalar, or (at init) a `flat_params`
        buffer holding an array that would be factored (its factored moments
        are not those of a slice of a vector: keep such arrays in a tree).

    References: Shazeer & Stern, "Adafactor: Adaptive Learning Rates with
    Sublinear Memory Cost", 2018.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_factored_rms(min_dim_size_to_factor=1)
        >>> u, _ = tx.update(jnp.array([[2.0, -2.0], [1.0, 1.0]]), tx.init(jnp.zeros((2, 2))))
        >>> [[round(x, 4) for x in row] for row in u.tolist()]
        [[1.0, -1.0], [1.0, 1.0]]
    """
    owner = "scale_by_factored_rms"
    _checks.boolean(owner, "factored", factored)
    _hyper.check(owner, "decay_rate", decay_rate, lo=0)
    _checks.integer(owner, "step_offset", step_offset, lo=0, hi=_checks.INT32_MAX)
    if min_dim_size_to_factor is not None:
        _checks.integer(owner, "min_dim_size_to_factor", min_dim_size_to_factor, lo=0)
    if epsilon is not None:
        _hyper.check(owner, "epsilon", epsilon, lo=0, lo_open=True)
    _checks.choice(owner, "convention", convention, _CONVENTIONS)
    caller = _checks.caller(owner)
    hypers: dict[str, Hyper] = {"decay_rate": decay_rate}
    if epsilon is not None:
        hypers["epsilon"] = epsilon
    torch = convention == "pytorch"
    # An unused moment is a (1,) zero, as optax's: orbax refuses to save size-0 arrays.
    empty = lambda dtype: jnp.zeros((1,), dtype)  # noqa: E731

    def axes(p: Array) -> tuple[int, int] | None:
        return factored_axes(jnp.shape(p), factored, min_dim_size_to_factor, convention)

    def refuse_factored_flat(params: PyTree) -> None:
        """A flat buffer is one vector here: exact only if no array in it is factored."""
        for top in jax.tree.leaves(params, is_leaf=_flat.is_flat):
            if not isinstance(top, _flat.FlatParams):
                continue
            layout = top.layout
            for path, shape, (b, _) in zip(layout.paths(), layout.shapes, layout.places):
                if not layout.whole[b] and factored_axes(shape, factored, min_dim_size_to_factor,
                                                         convention) is not None:
                    raise ValueError(
                        f"`{caller}` factors the second moment of the array of shape {shape} at "
                        f"{path or 'the root'}, which a flat_params buffer holds as part of a "
                        f"vector: keep the factored arrays out of flat_params (a tree), or pass "
                        f"factored=False.")

    def init(params: PyTree) -> ScaleByFactoredRmsState:
        check_real_floats(caller, params, "the parameters")
        refuse_factored_flat(params)

        def buffers(p):
            dtype = state_dtype(jnp.result_type(p))
            shape = jnp.shape(p)
            ax = axes(p)
            if ax is None:
                return empty(dtype), empty(dtype), jnp.zeros(shape, dtype)
            row = tuple(1 if i == ax[1] else n for i, n in enumerate(shape))
            col = tuple(1 if i == ax[0] else n for i, n in enumerate(shape))
            return jnp.zeros(row, dtype), jnp.zeros(col, dtype), empty(dtype)

        leaves, treedef = jax.tree.leaves(params), structure(params)
        made = [buffers(p) for p in leaves]
        count = _numerics.zero_count()
        row, col, v = (treedef.unflatten([m[i] for m in made]) for i in range(3))
        return _hyper.new_state(
            ScaleByFactoredRmsState, count=count, v_row=row, v_col=col, v=v,
            hyperparams=_hyper.record(caller, hypers, _hyper.resolve_all(hypers, count)))

    def update(updates: PyTree, state: ScaleByFactoredRmsState, params: PyTree = None,
               **extra: Any):
        del params, extra
        check_same_tree(caller, updates, state.v)
        check_real_floats(caller, updates, "the updates")
        values = _hyper.resolve_all(hypers, state.count)
        for name, value in values.items():
            if jnp.ndim(value) != 0:
                raise ValueError(f"{_checks.where(caller, name)} must be a scalar (one value "
                                 f"for every array), got shape {jnp.shape(value)}.")
        hp = Values(values, _numerics.next_count(state.count))
        t = jnp.maximum(hp.k - step_offset, 1).astype(float_dtype())
        b = 1 - t ** (-hp.decay_rate)
        leaves, treedef = jax.tree.leaves(updates), structure(updates)
        rows, cols, vs = (treedef.flatten_up_to(x) for x in (state.v_row, state.v_col, state.v))
        out: list[list] = [[], [], [], []]
        for g_in, row, col, v in zip(leaves, rows, cols, vs):
            g = g_in.astype(float_dtype())
            if epsilon is not None:
                eps = hp.epsilon
            else:
                eps = jnp.asarray(jnp.finfo(jnp.result_type(g_in)).eps if torch else 1e-30,
                                  float_dtype())
            g2 = jnp.square(g) if torch else jnp.square(g) + eps
            ax = axes(g_in)
            if ax is None:
                new_v = b * v.astype(g.dtype) + (1 - b) * g2
                est = jnp.maximum(new_v, eps * eps) if torch else new_v
                u = g * jax.lax.rsqrt(est)
                new_row, new_col = row, col
            else:
                r, c = ax
                new_row = b * row.astype(g.dtype) + (1 - b) * jnp.mean(g2, axis=c, keepdims=True)
                new_col = b * col.astype(g.dtype) + (1 - b) * jnp.mean(g2, axis=r, keepdims=True)
                row_mean = jnp.mean(new_row, axis=r, keepdims=True)
                if torch:
                    est = new_row * new_col / jnp.maximum(row_mean, eps)
                    u = g * jax.lax.rsqrt(jnp.maximum(est, eps * eps))
                else:
                    u = g * jax.lax.rsqrt(new_row / row_mean) * jax.lax.rsqrt(new_col)
                new_v = v
            out[0].append(u.astype(jnp.result_type(g_in)))
            for j, (old, new) in enumerate(((row, new_row), (col, new_col), (v, new_v)), 1):
                out[j].append(new.astype(old.dtype))
        trees = [treedef.unflatten(x) for x in out]
        return trees[0], _hyper.new_state(
            ScaleByFactoredRmsState, count=hp.k, v_row=trees[1], v_col=trees[2], v=trees[3],
            hyperparams=_hyper.record(caller, hypers, values, state.hyperparams))

    return describe(optax.GradientTransformationExtraArgs(init, update), name=owner,
                    per_array=True)


# ---------------------------------------------------------------- block RMS scalings


@carries("clip_by_block_rms")
class ClipByBlockRmsState(NamedTuple):
    """State of `clip_by_block_rms`: the count and the threshold used last.

    Example:
        >>> import jaxsched as js
        >>> js.clip_by_block_rms(1.0).init(None)._fields
        ('count', 'hyperparams')
    """

    count: Array  # type: ignore[assignment]  # int32 []
    hyperparams: dict  # {"threshold": float []}


@carries("scale_by_param_block_rms")
class ScaleByParamBlockRmsState(NamedTuple):
    """State of `scale_by_param_block_rms`: the count and the floor used last.

    Example:
        >>> import jaxsched as js
        >>> js.scale_by_param_block_rms().init(None)._fields
        ('count', 'hyperparams')
    """

    count: Array  # type: ignore[assignment]  # int32 []
    hyperparams: dict  # {"min_scale": float []}


def _rms(hp: Values, x: Array) -> Array:
    """The root mean square of x over the array (each original array's, on flat buffers)."""
    if not x.size:
        return jnp.zeros([], x.dtype)
    return jnp.sqrt(hp.array_sum(jnp.square(x)) / hp.array_size(x))


@with_groups(tree_arguments=())
def clip_by_block_rms(threshold: Hyper) -> Transformation:
    """Scale each array down so its root mean square is at most `threshold`.

    u = g / max(1, rms(g) / threshold)          (rms over each array)

    optax's `clip_by_block_rms`; PyTorch's Adafactor calls it `d`.
    Reduces over each array (`per_array`).

    Args:
      threshold: > 0.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.clip_by_block_rms(1.0)
        >>> tx.update(jnp.array([4.0, -4.0]), tx.init(None))[0].tolist()
        [1.0, -1.0]
    """
    _hyper.check("clip_by_block_rms", "threshold", threshold, lo=0, lo_open=True)
    return transformation("clip_by_block_rms", ClipByBlockRmsState, {"threshold": threshold},
                          lambda hp, g: g / jnp.maximum(1, _rms(hp, g) / hp.threshold),
                          per_array=True, segment_sums=True)


@with_groups(tree_arguments=())
def scale_by_param_block_rms(min_scale: Hyper = 1e-3) -> Transformation:
    """Multiply each array's update by its parameter's root mean square (at least `min_scale`).

    u = g * max(rms(p), min_scale)              (rms over each array)

    optax's `scale_by_param_block_rms`; PyTorch's Adafactor calls `min_scale`
    `eps[1]`. Needs `update(updates, state, params)`; reduces over each array.

    Args:
      min_scale: >= 0.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_param_block_rms()
        >>> p = jnp.array([3.0, -3.0])
        >>> tx.update(jnp.array([1.0, 2.0]), tx.init(p), p)[0].tolist()
        [3.0, 6.0]
    """
    _hyper.check("scale_by_param_block_rms", "min_scale", min_scale, lo=0)
    return transformation("scale_by_param_block_rms", ScaleByParamBlockRmsState,
                          {"min_scale": min_scale},
                          lambda hp, g, p: g * jnp.maximum(_rms(hp, p), hp.min_scale),
                          needs_params=True, per_array=True, segment_sums=True)


# ---------------------------------------------------------------- the alias


@carries("adafactor")
class AdafactorStepState(NamedTuple):
    """State of PyTorch-convention Adafactor's last step (relative step size and decay).

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.adafactor(0.01, convention="pytorch")
        >>> type(opt.init(jnp.zeros(2))[-1]).__name__
        'AdafactorStepState'
    """

    count: Array  # type: ignore[assignment]  # int32 []
    hyperparams: dict  # {"learning_rate", "weight_decay": float []}


def _pytorch_step(learning_rate: Hyper, weight_decay: Hyper) -> Transformation:
    """u = -(min(lr, 1 / sqrt(k)) * g + lr * weight_decay * p)."""
    _hyper.check("adafactor", "learning_rate", learning_rate, lo=0)
    _hyper.check("adafactor", "weight_decay", weight_decay, lo=0)

    def step(hp, g, p):
        rho = jnp.minimum(hp.learning_rate, jax.lax.rsqrt(hp.k.astype(g.dtype)))
        return -(rho * g + hp.learning_rate * hp.weight_decay * p)

    return transformation("adafactor", AdafactorStepState,
                          {"learning_rate": learning_rate, "weight_decay": weight_decay}, step,
                          needs_params=True)


@with_groups(tree_arguments=('weight_decay_mask',))
def adafactor(learning_rate: Hyper | None = None, min_dim_size_to_factor: int | None = None,
              decay_rate: Hyper = 0.8, decay_offset: int = 0,
              multiply_by_parameter_scale: bool = True, clipping_threshold: Hyper | None = 1.0,
              momentum: Hyper | None = None, dtype_momentum: Any = jnp.float32,
              weight_decay_rate: Hyper | None = None, eps: Hyper | None = None,
              factored: bool = True, weight_decay_mask: MaskOrFn = None, *,
              convention: str = "optax", min_scale: Hyper = 1e-3) -> Transformation:
    """Adafactor (Shazeer & Stern, 2018), as optax's `adafactor` or PyTorch's `Adafactor`.

    u = g / sqrt(V)                         (`scale_by_factored_rms`)
    u = u / max(1, rms(u) / clipping_threshold)
    optax:   p -= lr * max(rms(p), min_scale) * u  [EMA with `momentum`]  + weight_decay_rate * p
    pytorch: p -= min(lr, 1 / sqrt(k)) * max(rms(p), min_scale) * u + lr * weight_decay_rate * p

    `convention="optax"` (default) is optax's `adafactor` with the same
    arguments, defaults and order. `convention="pytorch"` is
    `torch.optim.Adafactor(lr, beta2_decay, eps=(eps1, eps2), d,
    weight_decay)` with `learning_rate=lr` (None: PyTorch's 1e-2),
    `decay_rate=-beta2_decay`, `eps=eps1`, `min_scale=eps2`,
    `clipping_threshold=d`, `weight_decay_rate=weight_decay`; there it has
    no momentum and no decay mask (use parameter groups). See the module
    docstring for the differences; moments are float32 for bfloat16 params
    (optax keeps the params' dtype).

    Args:
      learning_rate: >= 0 or None (optax: no scaling; pytorch: 1e-2).
      min_dim_size_to_factor: int >= 0, or None (optax 128, pytorch 0).
      decay_rate: >= 0.  decay_offset: int >= 0.
      multiply_by_parameter_scale: scale by the parameters' RMS.
      clipping_threshold: > 0, or None for no clipping.
      momentum: in [0, 1], or None (optax only).   dtype_momentum: its dtype.
      weight_decay_rate: >= 0 or None.   eps: > 0 or None (see
        `scale_by_factored_rms`).   factored: factor the moments.
      weight_decay_mask: which leaves are decayed (optax only).
      convention: "optax" or "pytorch".
      min_scale: floor of the parameters' RMS, >= 0.

    Raises:
      ValueError: for an argument out of range, or `momentum` or
        `weight_decay_mask` with `convention="pytorch"`; at init, for
        `flat_params` buffers holding an array that would be factored.

    References: Shazeer & Stern, "Adafactor: Adaptive Learning Rates with
    Sublinear Memory Cost", 2018.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.adafactor(0.1)
        >>> p = jnp.ones(2)
        >>> opt.update(jnp.array([3.0, -3.0]), opt.init(p), p)[0].tolist()
        [-0.10000000149011612, 0.10000000149011612]
    """
    with _checks.calling("adafactor", step_offset="decay_offset", epsilon="eps",
                         threshold="clipping_threshold", decay="momentum",
                         weight_decay="weight_decay_rate", mask="weight_decay_mask"):
        _checks.choice("adafactor", "convention", convention, _CONVENTIONS)
        _checks.boolean("adafactor", "multiply_by_parameter_scale", multiply_by_parameter_scale)
        parts = [scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor,
                                       eps, convention=convention)]
        if clipping_threshold is not None:
            parts.append(clip_by_block_rms(clipping_threshold))
        if convention == "pytorch":
            for name, value in (("momentum", momentum), ("weight_decay_mask", weight_decay_mask)):
                if value is not None:
                    raise ValueError(f"`adafactor({name}=...)` must be None with "
                                     f"convention='pytorch' (PyTorch's Adafactor has none), "
                                     f"got {value!r}.")
            if multiply_by_parameter_scale:
                parts.append(scale_by_param_block_rms(min_scale))
            parts.append(_pytorch_step(1e-2 if learning_rate is None else learning_rate,
                                       0.0 if weight_decay_rate is None else weight_decay_rate))
            return chain(*parts)
        if learning_rate is not None:
            parts.append(scale_by_learning_rate(learning_rate, flip_sign=False))
        if multiply_by_parameter_scale:
            parts.append(scale_by_param_block_rms(min_scale))
        if momentum is not None:
            parts.append(ema(momentum, debias=False, accumulator_dtype=dtype_momentum))
        if weight_decay_rate is not None:
            parts.append(add_decayed_weights(weight_decay_rate, weight_decay_mask))
        parts.append(scale(-1.0))
        return chain(*parts)
