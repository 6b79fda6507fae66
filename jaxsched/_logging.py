"""One dict to log: every hyperparameter and measured value of an optimizer state."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxsched import _checks, _hyper, _numerics
from jaxsched._builder import Transformation, describe
from jaxsched._hyper import carries
from jaxsched._numerics import float_dtype
from jaxsched._transforms import ClipByGlobalNormState, global_norm

Array = jax.Array
PyTree = Any


@carries("monitor", measured=("grad_norm", "update_norm", "param_norm", "update_ratio"))
class MonitorState(NamedTuple):
    """State of `monitor`: norms measured by the last update (`()` where not measured).

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> s = js.monitor(js.sgd(0.1)).init(jnp.zeros(2))
        >>> float(s.grad_norm), s.update_ratio
        (0.0, ())
    """

    count: Array  # type: ignore[assignment]  # int32 []: updates done, saturating
    inner_state: PyTree  # the wrapped transformation's state
    grad_norm: Array  # float []: global L2 norm of the gradients given to update
    update_norm: Array  # float []: global L2 norm of the updates returned
    param_norm: Any  # float [] with update_ratio=True, else (): global norm of the params
    update_ratio: Any  # float [] with update_ratio=True, else (): update_norm / param_norm


def monitor(inner: optax.GradientTransformation, *, update_ratio: bool = False) -> Transformation:
    """Wrap `inner` and measure the global norms of what goes in and out.

    grad_norm = ||g||          (the gradients given to update, before any clipping)
    update_norm = ||u||        (the updates `inner` returns, after clipping and scaling)
    update_ratio = ||u|| / ||params||   (0 where ||params|| = 0; only with update_ratio=True)

    with ||x|| = sqrt(sum over arrays of sum(x^2)). The values are measured values of the
    state: `js.measurements(state)` and `js.log_values(state)` report them. `grad_norm`
    costs one pass over the gradients; `update_ratio` another over the updates and one
    over the parameters, so it is off by default. The updates pass unchanged.

    Args:
      inner: the optimizer to watch (any optax GradientTransformation).
      update_ratio: also measure the parameters' norm and the update-to-parameter ratio
        (needs `params` at `update`).

    Returns:
      An `optax.GradientTransformationExtraArgs` whose state is a `MonitorState`.

    Raises:
      TypeError: if `inner` is not an optax GradientTransformation or `update_ratio` is
        not a bool.
      ValueError: at `update`, with `update_ratio=True` and no `params`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.monitor(js.sgd(0.1), update_ratio=True)
        >>> params = jnp.array([3.0, 4.0])
        >>> _, state = tx.update(jnp.array([6.0, 8.0]), tx.init(params), params)
        >>> [round(float(state[k]), 6) for k in (2, 3, 5)]
        [10.0, 1.0, 0.2]
    """
    _checks.transformation("monitor", "inner", inner)
    _checks.boolean("monitor", "update_ratio", update_ratio)
    inner = optax.with_extra_args_support(inner)

    def init(params):
        def zero():  # a new buffer per field: states may be donated
            return jnp.zeros([], float_dtype())
        return MonitorState(count=_numerics.zero_count(), inner_state=inner.init(params),
                            grad_norm=zero(), update_norm=zero(),
                            param_norm=zero() if update_ratio else (),
                            update_ratio=zero() if update_ratio else ())

    def update(updates, state, params=None, **extra_args):
        if update_ratio and params is None:
            raise ValueError("`monitor(update_ratio=True)` needs the parameters: call "
                             "update(updates, state, params).")
        g_norm = global_norm(updates)
        out, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
        u_norm = global_norm(out)
        p_norm: Any = ()
        ratio: Any = ()
        if update_ratio:
            p_norm = global_norm(params)
            ratio = jnp.where(p_norm > 0, u_norm / jnp.where(p_norm > 0, p_norm, 1), 0)
        return out, MonitorState(count=_numerics.next_count(state.count),
                                 inner_state=inner_state, grad_norm=g_norm,
                                 update_norm=u_norm, param_norm=p_norm, update_ratio=ratio)

    return describe(optax.GradientTransformationExtraArgs(init, update),
                    needs_params=update_ratio or getattr(inner, "needs_params", True),
                    per_array=getattr(inner, "per_array", False))


def _clipped_norm(state: ClipByGlobalNormState) -> Array:
    """The global norm after `clip_by_global_norm`: n * max_norm / max(n, max_norm)."""
    n, max_norm = state.global_norm, state.hyperparams["max_norm"]
    return n * (max_norm / jnp.maximum(n, max_norm))


# Values derived from a state's fields for the log: (state class, key, function).
_DERIVED = ((ClipByGlobalNormState, "clipped_global_norm", _clipped_norm),)


def _derived(opt_state: Any) -> list[tuple[str, str, str, Any]]:
    return [("", _hyper._CARRIERS[cls].owner, key, fn(x)) for cls, key, fn in _DERIVED
            for x in _hyper.find_states(opt_state, cls)]


def log_values(opt_state: Any) -> dict[str, Array]:
    """Every value worth logging after an update, as one flat dict of scalar arrays.

    The dict holds, for the most recent update:
    - every hyperparameter, keyed as `js.hyperparams(state)` keys it (`learning_rate`,
      `b1`, `trace/decay`, ...): the values actually used, schedules resolved;
    - every measured value, keyed as `js.measurements(state)` keys it: `global_norm`
      (the gradient norm before `clip_by_global_norm`), `scale` (`reduce_on_plateau`),
      `total_skips`, `consecutive_skips`, `skipped` (`skip_spikes`, `skip_nonfinite`),
      `micro_step` (the accumulation phase of `accumulate`), `n_averaged` (`swa`),
      `grad_norm`, `update_norm`, `update_ratio` (`monitor`);
    - derived values: `clipped_global_norm`, the gradient norm after
      `clip_by_global_norm` (n * max_norm / max(n, max_norm) from its state).

    A measured key that is also a hyperparameter key is prefixed `measured/`. Values
    not measured by the configuration (`()` in the state) are left out. Works on a
    traced state too, so a jitted train step can return it with its metrics; every
    value is a JAX array, ready for any logger (`{k: float(v) ...}`).

    Args:
      opt_state: an optimizer state.

    Returns:
      A dict from names to arrays (scalars, unless a hyperparameter is an array).

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.monitor(js.chain(js.clip_by_global_norm(1.0),
        ...                           js.adamw(js.cosine_decay(1e-3, 100))))
        >>> params = {"w": jnp.zeros(2)}
        >>> _, state = opt.update({"w": jnp.array([3.0, 4.0])}, opt.init(params), params)
        >>> logs = js.log_values(state)
        >>> sorted(logs)
        ['b1', 'b2', 'clipped_global_norm', 'eps', 'eps_root', 'global_norm', 'grad_norm', 'learning_rate', 'max_norm', 'update_norm', 'weight_decay']
        >>> float(logs["global_norm"]), float(logs["clipped_global_norm"])
        (5.0, 1.0)
    """
    values: dict[str, Any] = dict(_hyper.hyperparams(opt_state))
    found = [t for t in _hyper._collect(opt_state, measured=True) + _derived(opt_state)
             if not (isinstance(t[3], tuple) and t[3] == ())]
    for key, value in _hyper._keyed(found).items():
        values[key if key not in values else f"measured/{key}"] = value
    return {k: jnp.asarray(v) for k, v in values.items()}
