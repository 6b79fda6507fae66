"""Gradient accumulation: one optimizer update from the mean of k micro-batch gradients."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxsched import _checks, _numerics
from jaxsched._builder import Transformation, check_real_floats, check_same_tree, describe, \
    state_dtype
from jaxsched._hyper import carries
from jaxsched._numerics import float_dtype

Array = jax.Array
PyTree = Any

_OWNER = "accumulate"


@carries("accumulate", measured=("micro_step",))
class AccumulateState(NamedTuple):
    """State of `accumulate`: the gradient sum, the loss sum and the accumulation phase.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> s = js.accumulate(js.sgd(0.1), every=4).init(jnp.zeros(3))
        >>> s.grad_sum.tolist(), int(s.micro_step)
        ([0.0, 0.0, 0.0], 0)
    """

    count: Array  # type: ignore[assignment]  # int32 []: micro-steps seen, saturating
    inner_state: PyTree  # the wrapped transformation's state; changes once every `every` calls
    grad_sum: PyTree  # sum of the micro-batch gradients since the last update, like params
    value_sum: Array  # float []: sum of the `value=` keywords since the last update
    micro_step: Array  # int32 []: micro-batches in grad_sum (0 right after an update)


def accumulate(inner: optax.GradientTransformation, every: int) -> Transformation:
    """Apply `inner` once every `every` calls, to the mean of their gradients.

    s = s + g                                  (every call; s is one buffer like the params)
    call j = every, 2 * every, ...:   u, inner state = inner.update(s / every, ...), s = 0
    other calls:                      u = -0.0, inner state unchanged

    `inner` runs once per optimizer update, so its count, its schedules (update k uses
    `schedule(k)`), Adam's bias correction and everything else count optimizer updates,
    never micro-steps. The mean of `every` micro-batch gradients of equal size is the
    gradient of their concatenation, so the result equals one update on the large batch
    (to float rounding). The `value=` keyword (the loss, for `reduce_on_plateau` or
    `skip_spikes` inside) is averaged the same way and given to `inner` with the mean
    gradient; other extra keywords are given as they arrive with the last micro-batch.

    Memory: one buffer like the gradients (float32 for bfloat16/float16 parameters) and a
    scalar; `inner` runs under `lax.cond`, so the micro-steps in between neither compute
    nor copy its state. `optax.MultiSteps` computes the inner update at every micro-step
    and selects it, which holds a second copy of the inner state in the compiled step.
    With `js.flat_params` the buffer is one flat array per dtype. Where the micro-batches
    can all be in one train step, `accumulated_grad` needs no state at all.

    Differences from `optax.MultiSteps(inner, every)`: the same updates up to float
    rounding (MultiSteps keeps a running mean, here a sum divided once); mid-step updates
    are -0.0 (MultiSteps' are +-0.0, the sign of the inner update), so
    `optax.apply_updates` leaves every parameter bit unchanged; `value=` is averaged over the micro-steps (MultiSteps passes on the last
    one's); no `should_skip_update_fn` (wrap `inner` in `skip_spikes` or
    `skip_nonfinite` instead).

    Args:
      inner: the optimizer (any optax GradientTransformation).
      every: micro-batches per optimizer update, an int >= 1.

    Returns:
      An `optax.GradientTransformationExtraArgs` whose state is an `AccumulateState`;
      `js.measurements(state)["micro_step"]` is the accumulation phase (0 after an update).

    Raises:
      TypeError: if `inner` is not an optax GradientTransformation or `every` is not an
        int; at `update`, for non-float gradients.
      ValueError: for `every` < 1; at `update`, for gradients whose tree differs from the
        parameters', or a `value` that is not a scalar.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.accumulate(js.adam(1.0), every=2)
        >>> state = tx.init(jnp.zeros(1))
        >>> u, state = tx.update(jnp.array([1.0]), state)
        >>> u.tolist(), int(state.micro_step)
        ([-0.0], 1)
        >>> u, state = tx.update(jnp.array([3.0]), state)  # adam's step on the mean, 2
        >>> u.tolist(), int(state.micro_step), int(state.inner_state[0].count)
        ([-1.0], 0, 1)
    """
    _checks.transformation(_OWNER, "inner", inner)
    _checks.integer(_OWNER, "every", every, lo=1, hi=_numerics.INT32_MAX)
    inner = optax.with_extra_args_support(inner)

    def init(params):
        check_real_floats(_OWNER, params, "the parameters")
        return AccumulateState(
            count=_numerics.zero_count(), inner_state=inner.init(params),
            grad_sum=jax.tree.map(
                lambda p: jnp.zeros(jnp.shape(p), state_dtype(jnp.result_type(p))), params),
            value_sum=jnp.zeros([], float_dtype()), micro_step=_numerics.zero_count())

    def update(updates, state, params=None, *, value=None, **extra_args):
        check_same_tree(_OWNER, updates, state.grad_sum)
        check_real_floats(_OWNER, updates, "the updates")
        value_sum = state.value_sum
        if value is not None:
            if jnp.ndim(value) != 0:
                raise ValueError(f"`{_OWNER}(...).update(value=...)` must be a scalar, got "
                                 f"shape {tuple(jnp.shape(value))}.")
            value_sum = value_sum + jnp.asarray(value).astype(float_dtype())
        total = jax.tree.map(lambda s, g: s + g.astype(s.dtype), state.grad_sum, updates)
        final = state.micro_step >= jnp.asarray(every - 1, jnp.int32)

        def apply(operands):
            total, inner_state, value_sum = operands
            mean = jax.tree.map(lambda s: s / jnp.asarray(every, s.dtype), total)
            kwargs = dict(extra_args)
            if value is not None:
                kwargs["value"] = value_sum / jnp.asarray(every, value_sum.dtype)
            u, new_inner = inner.update(mean, inner_state, params, **kwargs)
            u = jax.tree.map(lambda x, g: x.astype(jnp.result_type(g)), u, updates)
            new_inner = jax.tree.map(lambda new, old: new.astype(jnp.result_type(old)),
                                     new_inner, inner_state)
            return (u, new_inner, jax.tree.map(jnp.zeros_like, total),
                    jnp.zeros_like(value_sum))

        def hold(operands):
            total, inner_state, value_sum = operands
            return (jax.tree.map(lambda g: jnp.full_like(g, -0.0), updates), inner_state,
                    total, value_sum)

        u, inner_state, grad_sum, value_sum = jax.lax.cond(
            final, apply, hold, (total, state.inner_state, value_sum))
        micro = jnp.where(final, 0, state.micro_step + 1).astype(jnp.int32)
        return u, AccumulateState(count=_numerics.next_count(state.count),
                                  inner_state=inner_state, grad_sum=grad_sum,
                                  value_sum=value_sum, micro_step=micro)

    return describe(optax.GradientTransformationExtraArgs(init, update), needs_params=True,
                    per_array=getattr(inner, "per_array", False))


def accumulated_grad(loss_fn: Callable[..., Any], params: PyTree, batches: PyTree, *,
                     has_aux: bool = False) -> tuple[Any, PyTree]:
    """The mean loss and mean gradient over micro-batches, one micro-batch at a time.

    loss = sum_i loss_fn(params, batch_i) / k;   grads = sum_i grad loss_fn(params, batch_i) / k

    `batches` holds k micro-batches stacked on a leading axis; a `lax.scan` computes one
    micro-batch's forward and backward pass at a time and sums the gradients in its carry,
    so activations of one micro-batch are alive at once and no optimizer state is needed:
    the train step calls the optimizer once on the result. With micro-batches of equal
    size this is `jax.value_and_grad` of the loss on their concatenation (to float
    rounding). The sum is kept in float32 for bfloat16/float16 parameters.

    Args:
      loss_fn: `loss_fn(params, batch) -> scalar loss` (`-> (loss, aux)` with `has_aux`).
      params: the parameters (any pytree, a `FlatParams` included).
      batches: a pytree whose leaves have the micro-batch index as their leading axis.
      has_aux: `loss_fn` returns `(loss, aux)`; the aux values come back stacked.

    Returns:
      `(loss, grads)`, or `((loss, aux), grads)` with `has_aux`, as `jax.value_and_grad`.

    Raises:
      ValueError: if the leaves of `batches` disagree on their leading axis, or it is 0.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> loss_fn = lambda w, x: jnp.mean((x * w) ** 2)
        >>> xs = jnp.arange(8.0).reshape(4, 2)  # 4 micro-batches of 2
        >>> loss, g = js.accumulated_grad(loss_fn, jnp.float32(1.0), xs)
        >>> float(loss), float(g)  # the loss and gradient on all 8 values
        (17.5, 35.0)
    """
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in jax.tree.leaves(batches)}
    if len(sizes) != 1 or None in sizes or 0 in sizes:
        raise ValueError(f"`accumulated_grad(batches=...)` must have leaves with one common, "
                         f"non-zero leading axis (the micro-batches), got {sorted(sizes, key=str)}.")
    k = int(sizes.pop())  # type: ignore[arg-type]
    grad_fn = jax.value_and_grad(loss_fn, has_aux=has_aux)

    def body(carry, batch):
        loss_sum, grad_sum = carry
        out, g = grad_fn(params, batch)
        loss, aux = out if has_aux else (out, None)
        grad_sum = jax.tree.map(lambda s, x: s + x.astype(s.dtype), grad_sum, g)
        return (loss_sum + jnp.asarray(loss).astype(loss_sum.dtype), grad_sum), aux

    zeros = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), state_dtype(jnp.result_type(p))),
                         params)
    (loss_sum, grad_sum), aux = jax.lax.scan(body, (jnp.zeros([], float_dtype()), zeros),
                                             batches)
    loss = loss_sum / k
    grads = jax.tree.map(lambda s, p: (s / k).astype(jnp.result_type(p)), grad_sum, params)
    return ((loss, aux), grads) if has_aux else (loss, grads)
