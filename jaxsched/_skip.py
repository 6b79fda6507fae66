"""Skip updates whose gradients hold a NaN or an infinity."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jaxsched import _checks, _numerics
from jaxsched._builder import Transformation, describe
from jaxsched._hyper import carries
from jaxsched._spikes import gated_update

Array = jax.Array
PyTree = Any

_OWNER = "skip_nonfinite"


@carries("skip_nonfinite", measured=("total_skips", "consecutive_skips"))
class SkipNonfiniteState(NamedTuple):
    """State of `skip_nonfinite`: the inner state and the skip counters.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> s = js.skip_nonfinite(js.sgd(0.1)).init(jnp.zeros(2))
        >>> int(s.total_skips), int(s.consecutive_skips), type(s.inner_state).__name__
        (0, 0, 'tuple')
    """

    count: Array  # type: ignore[assignment]  # int32 []: updates seen (skipped or not), saturating
    inner_state: PyTree  # the wrapped transformation's state, untouched by a skipped update
    total_skips: Array  # int32 []: updates skipped so far, saturating
    consecutive_skips: Array  # int32 []: updates skipped since the last finite one


def _all_finite(tree: PyTree) -> Array:
    flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    if not flags:
        return jnp.ones([], bool)
    return jnp.all(jnp.stack(flags))


def skip_nonfinite(inner: optax.GradientTransformation,
                   max_consecutive: Optional[int] = None) -> Transformation:
    """Wrap `inner` so an update with a NaN or infinite gradient is skipped exactly.

    finite = every element of every incoming update is finite
    skip = not finite and (max_consecutive is None or consecutive_skips < max_consecutive)
    skip:     u = 0 (each leaf in its dtype), inner state unchanged (bit for bit,
              its step count included), total_skips += 1, consecutive_skips += 1
    finite:   u, inner state = inner.update(...), consecutive_skips = 0
    otherwise (the limit is reached): the non-finite update goes through `inner`
              and out, and consecutive_skips stays at max_consecutive

    A skipped step is as if it never happened: schedules inside `inner` do
    not advance, Adam's moments and bias correction do not see it.

    When `max_consecutive` non-finite updates in a row have been skipped, the
    next non-finite one is let through, so the parameters (and the loss)
    become NaN where the run can see them. A run whose gradients stay
    non-finite is broken, and skipping forever would hide that behind a loss
    curve that has silently stopped moving; letting the update through is
    also what optax's `apply_if_finite(inner, max_consecutive_errors)` does.
    Skipping resumes (and the consecutive count restarts) after the next
    finite update. With `max_consecutive=None` every non-finite update is
    skipped; check `state.total_skips` to notice them.

    The inner update is computed every step and selected with `jnp.where`,
    so the wrapper is jit-, vmap- and scan-friendly. Extra keyword arguments
    of `update` (such as `value=` for `reduce_on_plateau`) go to `inner`.

    Args:
      inner: the transformation to protect (an optimizer, a chain).
      max_consecutive: how many non-finite updates in a row are skipped before
        one is let through, an int >= 0, or None for no limit.

    Returns:
      An `optax.GradientTransformationExtraArgs` whose state is a
      `SkipNonfiniteState`.

    Raises:
      TypeError: if `inner` is not an optax GradientTransformation or
        `max_consecutive` is not an int or None.
      ValueError: for a negative `max_consecutive`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.skip_nonfinite(js.adam(0.1))
        >>> state = tx.init(jnp.zeros(2))
        >>> u, state = tx.update(jnp.array([1.0, jnp.inf]), state)
        >>> u.tolist(), int(state.total_skips), int(state.inner_state[0].count)
        ([0.0, 0.0], 1, 0)
        >>> u, state = tx.update(jnp.array([1.0, 2.0]), state)
        >>> u = [round(x, 6) for x in u.tolist()]
        >>> u, int(state.consecutive_skips), int(state.inner_state[0].count)
        ([-0.1, -0.1], 0, 1)
    """
    _checks.transformation(_OWNER, "inner", inner)
    if max_consecutive is not None:
        _checks.integer(_OWNER, "max_consecutive", max_consecutive, lo=0,
                        hi=_numerics.INT32_MAX)
    original, inner = inner, optax.with_extra_args_support(inner)

    def init(params):
        # Three counters, three buffers: a donated state must not share one.
        return SkipNonfiniteState(count=_numerics.zero_count(), inner_state=inner.init(params),
                                  total_skips=_numerics.zero_count(),
                                  consecutive_skips=_numerics.zero_count())

    def update(updates, state, params=None, **extra_args):
        finite = _all_finite(updates)
        skip = ~finite
        if max_consecutive is not None:
            skip = skip & (state.consecutive_skips < jnp.asarray(max_consecutive, jnp.int32))

        out, new_inner = gated_update(inner, lambda u: jnp.where(skip, jnp.zeros_like(u), u),
                                      updates, state.inner_state, params, extra_args)
        inner_state = jax.tree.map(
            lambda old, new: jnp.where(skip, old, new).astype(jnp.result_type(new)),
            state.inner_state, new_inner)
        consecutive = jnp.where(skip, _numerics.next_count(state.consecutive_skips),
                                jnp.where(finite, 0, state.consecutive_skips))
        total = jnp.where(skip, _numerics.next_count(state.total_skips), state.total_skips)
        return out, SkipNonfiniteState(count=_numerics.next_count(state.count),
                                       inner_state=inner_state,
                                       total_skips=total.astype(jnp.int32),
                                       consecutive_skips=consecutive.astype(jnp.int32))

    return describe(optax.GradientTransformationExtraArgs(init, update), needs_params=True,
                    per_array=getattr(inner, "per_array", False), wrapped=(original,))
