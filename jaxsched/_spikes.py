"""Skip updates whose loss or gradient norm spikes above its recent history."""

from __future__ import annotations

import contextvars
import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jaxsched import _checks, _numerics
from jaxsched._builder import Transformation, describe
from jaxsched._hyper import carries
from jaxsched._numerics import float_dtype

Array = jax.Array
PyTree = Any

_OWNER = "skip_spikes"
_SIGNALS = {"loss": ("loss",), "grad_norm": ("grad_norm",), "both": ("loss", "grad_norm")}


@carries("skip_spikes", measured=("total_skips", "consecutive_skips", "skipped"))
class SkipSpikesState(NamedTuple):
    """State of `skip_spikes`: the inner state, the window of accepted values, skip counters.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> s = js.skip_spikes(js.sgd(0.1), on="both", window=4).init(jnp.zeros(2))
        >>> s.history.shape, int(s.accepted), int(s.total_skips)
        ((4, 2), 0, 0)
    """

    count: Array  # type: ignore[assignment]  # int32 []: updates seen (skipped or not), saturating
    inner_state: PyTree  # the wrapped transformation's state, untouched by a skipped update
    history: Array  # float [window, signals]: the last accepted values (loss, grad_norm)
    position: Array  # int32 []: the row of `history` the next accepted values go to
    accepted: Array  # int32 []: accepted updates recorded in `history`, saturating
    total_skips: Array  # int32 []: updates skipped so far, saturating
    consecutive_skips: Array  # int32 []: updates skipped since the last applied one
    skipped: Array  # int32 []: 1 if the last update was skipped, else 0


#: How the skipping wrapper whose inner update is being traced gates its updates, or None.
_GATE: contextvars.ContextVar = contextvars.ContextVar("jaxsched_gate", default=None)


def _gate(skip: Array, u: Array) -> Array:
    """The update a `skip_spikes` returns: -0.0 when skipped (p + -0.0 keeps p's bits)."""
    return jnp.where(skip, jnp.full_like(u, -0.0), u)


def applied_updates(updates: PyTree) -> PyTree:
    """`updates` as the caller will add them: gated by the enclosing skipping wrapper.

    A parameter average inside `skip_spikes` or `skip_nonfinite` (`ema_params`,
    `swa`) computes the new parameters from these, so its `params + updates` is the
    very expression of the train step's: XLA computes the sum once and the average
    reads the updated parameters (with the ungated sum it reads the old ones while
    the step overwrites them, and XLA copies every parameter first). Where the
    update is skipped the wrapper discards the average's new value, so the result
    is the same either way.
    """
    gate = _GATE.get()
    return updates if gate is None else jax.tree.map(gate, updates)


def gated_update(inner: optax.GradientTransformation, gate: Callable[[Array], Array],
                 updates: PyTree, inner_state: PyTree, params: PyTree,
                 extra_args: dict) -> tuple[PyTree, PyTree]:
    """A skipping wrapper's call of `inner.update`: (gate(u) per leaf, new inner state).

    While `inner` is traced, `applied_updates` gates with the same `gate`, so an
    average inside adds exactly what the caller will add.
    """
    token = _GATE.set(gate)
    try:
        new_updates, new_inner = inner.update(updates, inner_state, params, **extra_args)
    finally:
        _GATE.reset(token)
    return jax.tree.map(gate, new_updates), new_inner


def _check_value(value: Any) -> Array:
    if jnp.ndim(value) != 0:
        raise ValueError(f"`{_OWNER}(...).update(value=...)` must be a scalar loss, got shape "
                         f"{tuple(jnp.shape(value))}.")
    return jnp.asarray(value).astype(float_dtype())


def _global_norm(tree: PyTree) -> Array:
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros([], float_dtype())
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(float_dtype()))) for x in leaves))


def skip_spikes(inner: optax.GradientTransformation, on: str = "loss", *, window: int = 128,
                threshold: Any = 6.0, warmup: Optional[int] = None,
                max_consecutive: Optional[int] = None) -> Transformation:
    """Wrap `inner` so an update whose loss or gradient norm spikes is skipped exactly.

    For each monitored value v (the loss given as `value=`, the global norm
    of the incoming gradients, or both), over the last n = min(accepted,
    window) accepted values h_1..h_n:

    mean = sum(h) / n;   std = sqrt(sum((h - mean)^2) / n)        (population std)
    spike(v) = v is NaN or infinite, or (accepted >= warmup and v > mean + threshold * std)
    skip = any spike(v) and (max_consecutive is None or consecutive_skips < max_consecutive)
    skip:     u = -0.0 (each leaf in its dtype), inner state unchanged (bit for bit, its
              step count included), the history unchanged, total_skips += 1,
              consecutive_skips += 1
    applied:  u, inner state = inner.update(...), consecutive_skips = 0, and when every
              monitored value is finite they enter the history (accepted += 1)

    A skipped update is as if it never happened: the parameters (`optax.apply_updates`
    adds -0.0, which leaves every bit of every parameter as it was, -0.0 included),
    schedules inside `inner`, Adam's moments and bias correction do not see it, and the
    statistics hold accepted updates only, so a spike never raises the bar for the next
    one. The give-up rule is exact: at most `max_consecutive` updates in a row are
    skipped; the next spike is applied (so a lasting change of level enters the
    statistics instead of being skipped forever) and the consecutive count restarts at 0,
    so the following spikes are skipped again (optax's `apply_if_finite` keeps counting
    after it gives up, optax PR 1746). A non-finite value is always a spike, also during
    warmup, and never enters the statistics; when let through at the give-up point the
    parameters turn NaN where the run can see it.

    The rule is levanter's `SkipStepConfig` (mean plus `sigma_factor` population standard
    deviations of a rolling window) with two differences: levanter records every value,
    skipped ones included, and floors the std at 1e-6; here the window holds accepted
    values only and the std is not floored (a constant history makes any larger value a
    spike). The inner update is computed every step and its updates selected with
    `jnp.where`, so that the train step adds them to the parameters in the same fused
    loop as the unwrapped optimizer does: with no spike the run is bitwise the unwrapped
    optimizer (an update computed apart, e.g. inside `lax.cond`, is rounded before the
    addition, which XLA otherwise fuses into one multiply-add and can change the last
    bit). The new inner state is chosen by a `lax.cond` on the skip decision: an applied
    update writes it over the old one (one pass over the state), a skipped one keeps the
    old buffers. (A `jnp.where` there made XLA copy the donated inner state, and with
    `ema_params` inside the parameters too, before the update: about 80 array copies per
    step on the LSTM benchmark's AdamW with `ema_params`, and 5.8 MiB more temporaries
    than the unwrapped AdamW. With the cond an applied update copies each new state array
    once into its old buffer, with no extra temporaries.) An average inside
    (`ema_params`, `swa`) computes the new parameters from the gated updates (see
    `applied_updates`), the train step's own sum, so XLA adds once and copies no
    parameter. The wrapper stays jit-, vmap- (the cond becomes a select) and scan-friendly.
    `value=` and other extra keyword arguments
    of `update` are passed on to `inner` (a `reduce_on_plateau` inside sees the loss).
    Inside `accumulate` (`js.accumulate(js.skip_spikes(opt), every=k)`) it judges the
    averaged gradient and the averaged loss of each optimizer update.

    Args:
      inner: the transformation to protect (an optimizer, a chain).
      on: "loss" (the `value=` keyword of `update`), "grad_norm" (the global L2 norm of
        the gradients given to `update`) or "both" (skip if either spikes).
      window: number of accepted values the statistics are taken over, an int >= 2.
      threshold: how many standard deviations above the mean a spike starts, a number
        > 0 (levanter's default is 6).
      warmup: accepted updates before any finite value can be a spike, an int >= 2;
        None: max(2, window // 2), as levanter.
      max_consecutive: how many spikes in a row are skipped before one is applied, an
        int >= 0, or None for no limit.

    Returns:
      An `optax.GradientTransformationExtraArgs` whose state is a `SkipSpikesState`;
      `js.measurements(state)` reports `total_skips`, `consecutive_skips` and `skipped`.

    Raises:
      TypeError: if `inner` is not an optax GradientTransformation, an integer argument
        is not an int, and at `update` when `on` needs the loss and the `value=` keyword
        is missing.
      ValueError: for an unknown `on`, `window` < 2, `threshold` <= 0, `warmup` < 2, a
        negative `max_consecutive`; at `update`, for a `value` that is not a scalar.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.skip_spikes(js.sgd(1.0), window=4, threshold=3.0, warmup=3)
        >>> state = tx.init(jnp.zeros(1))
        >>> for loss in [1.0, 1.1, 0.9, 1.0, 50.0, 1.0]:
        ...     u, state = tx.update(jnp.ones(1), state, value=loss)
        ...     print(loss, u.tolist(), int(state.total_skips))
        1.0 [-1.0] 0
        1.1 [-1.0] 0
        0.9 [-1.0] 0
        1.0 [-1.0] 0
        50.0 [-0.0] 1
        1.0 [-1.0] 1

    References:
      levanter `SkipStepConfig` (stanford-crfm/levanter, optim/skipstep.py); optax PR 1746.
    """
    _checks.transformation(_OWNER, "inner", inner)
    _checks.choice(_OWNER, "on", on, tuple(_SIGNALS))
    _checks.integer(_OWNER, "window", window, lo=2, hi=_numerics.INT32_MAX)
    _checks.number(_OWNER, "threshold", threshold, lo=0, lo_open=True)
    if warmup is None:
        warmup = max(2, window // 2)
    _checks.integer(_OWNER, "warmup", warmup, lo=2, hi=_numerics.INT32_MAX)
    if max_consecutive is not None:
        _checks.integer(_OWNER, "max_consecutive", max_consecutive, lo=0,
                        hi=_numerics.INT32_MAX)
    signals = _SIGNALS[on]
    inner = optax.with_extra_args_support(inner)

    def init(params):
        zero = _numerics.zero_count  # a new buffer per field: states may be donated
        return SkipSpikesState(
            count=zero(), inner_state=inner.init(params),
            history=jnp.zeros((window, len(signals)), float_dtype()), position=zero(),
            accepted=zero(), total_skips=zero(), consecutive_skips=zero(), skipped=zero())

    def update(updates, state, params=None, *, value=None, **extra_args):
        if value is None and "loss" in signals:
            raise TypeError(
                f"`{_OWNER}(on={on!r}).update` needs the loss as the keyword argument `value` "
                f"(e.g. `update(grads, state, params, value=loss)`), got none.")
        if value is not None:
            _check_value(value)
            extra_args["value"] = value
        fdt = float_dtype()
        measured = []
        for s in signals:
            measured.append(_check_value(value) if s == "loss" else _global_norm(updates))
        v = jnp.stack(measured)                                   # [signals]
        n = jnp.minimum(state.accepted, window)
        valid = (jnp.arange(window) < n)[:, None]                 # [window, 1]
        nf = jnp.maximum(n, 1).astype(fdt)
        mean = jnp.sum(jnp.where(valid, state.history, 0), axis=0) / nf
        var = jnp.sum(jnp.where(valid, jnp.square(state.history - mean), 0), axis=0) / nf
        bar = mean + jnp.asarray(threshold, fdt) * jnp.sqrt(var)
        finite = jnp.isfinite(v)
        ready = state.accepted >= jnp.asarray(warmup, jnp.int32)
        spike = jnp.any(~finite | (ready & (v > bar)))
        skip = spike
        if max_consecutive is not None:
            skip = skip & (state.consecutive_skips < jnp.asarray(max_consecutive, jnp.int32))

        # The updates: a select, which XLA fuses into the caller's `params + updates`
        # exactly as it fuses the unwrapped optimizer's (bitwise the same parameters).
        out, new_inner = gated_update(inner, functools.partial(_gate, skip), updates,
                                      state.inner_state, params, extra_args)
        # The state: a cond, so an applied update writes the new state over the old
        # (donated) buffers once and a skipped one keeps them; a select here reads the
        # old state in two loops and makes XLA copy all of it first.
        new_inner = jax.tree.map(lambda new, old: new.astype(jnp.result_type(old)),
                                 new_inner, state.inner_state)
        inner_state = jax.lax.cond(~skip, lambda old, new: new, lambda old, new: old,
                                   state.inner_state, new_inner)
        record = ~skip & jnp.all(finite)
        row = jnp.where(record, v, state.history[state.position])
        history = state.history.at[state.position].set(row)
        position = jnp.where(record, (state.position + 1) % window, state.position)
        return out, SkipSpikesState(
            count=_numerics.next_count(state.count), inner_state=inner_state,
            history=history, position=position.astype(jnp.int32),
            accepted=jnp.where(record, _numerics.next_count(state.accepted),
                               state.accepted).astype(jnp.int32),
            total_skips=jnp.where(skip, _numerics.next_count(state.total_skips),
                                  state.total_skips).astype(jnp.int32),
            consecutive_skips=jnp.where(skip, _numerics.next_count(state.consecutive_skips),
                                        0).astype(jnp.int32),
            skipped=skip.astype(jnp.int32))

    return describe(optax.GradientTransformationExtraArgs(init, update), needs_params=True,
                    per_array=getattr(inner, "per_array", False))
