"""Weight averaging: an exponential moving average of the parameters, and SWA.

Both are transformations that leave the updates unchanged and keep the
averaged parameters in their state; `averaged_params(state)` returns them
for evaluation. Place them last in a chain: they average `params + updates`,
the parameters after the update (what PyTorch's `AveragedModel` sees when
`update_parameters` follows `optimizer.step()`).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jaxsched import _checks, _hyper, _numerics
from jaxsched._builder import (Transformation, check_real_floats, check_same_tree, describe,
                               state_dtype)
from jaxsched import _combine, _warmup
from jaxsched._hyper import Hyper, carries
from jaxsched._numerics import float_dtype
from jaxsched._spikes import applied_updates

Array = jax.Array
PyTree = Any


@carries("ema_params")
class EmaParamsState(NamedTuple):
    """State of `ema_params`: the moving average of the parameters.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> s = js.ema_params(0.9).init(jnp.ones(2))
        >>> s.average.tolist(), int(s.count)
        ([1.0, 1.0], 0)
    """

    count: Array  # type: ignore[assignment]  # int32 []: updates done, saturating
    average: PyTree  # the averaged parameters, like params (float32 for bf16/f16 params)
    hyperparams: dict  # {"decay": float []}: the decay used by the last update


@carries("swa", measured=("n_averaged",))
class SwaState(NamedTuple):
    """State of `swa`: the equal-weight average and how many parameter sets it holds.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> s = js.swa(start=10).init(jnp.ones(2))
        >>> s.average.tolist(), int(s.n_averaged)
        ([1.0, 1.0], 0)
    """

    count: Array  # type: ignore[assignment]  # int32 []: updates done, saturating
    average: PyTree  # the averaged parameters, like params (float32 for bf16/f16 params)
    n_averaged: Array  # int32 []: parameter sets in the average (PyTorch's n_averaged)


def _copy(params: PyTree) -> PyTree:
    """A copy (never the same buffer: a train step may donate params and state together)."""
    return jax.tree.map(lambda p: jnp.array(p, dtype=state_dtype(jnp.result_type(p)), copy=True),
                        params)


def _new_params(owner: str, updates: PyTree, params: PyTree) -> PyTree:
    """`optax.apply_updates(params, updates)`, leaf for leaf in the parameters' dtype."""
    if params is None:
        raise ValueError(f"`{owner}` needs the parameters: call update(updates, state, params).")
    check_same_tree(owner, updates, params, what="the params")
    check_real_floats(owner, updates, "the updates")
    return jax.tree.map(lambda p, u: jnp.asarray(p + u).astype(jnp.result_type(p)),
                        params, applied_updates(updates))


def ema_params(decay: Hyper = 0.999, warmup: int = 0) -> Transformation:
    """Keep an exponential moving average of the parameters in the state (updates unchanged).

    p_k = params + updates               (the parameters after update k, k from 1)
    average = p_k                        for k <= warmup + 1 (a copy: the average starts)
    average = decay * average + (1 - decay) * p_k      after      (computed as a lerp)

    Until update `warmup + 1` the average follows the parameters; from then on it is
    PyTorch's `AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))` updated
    after every `optimizer.step()` (whose first `update_parameters` copies), and Keras's
    `use_ema=True, ema_momentum=decay` (whose first step uses momentum 0). Before any
    update the average is the initial parameters. Keras also has
    `ema_overwrite_frequency`, which writes the average into the model; here the
    parameters are never changed: evaluate with `averaged_params(state)`.

    Place it last in the chain (it must see the final updates). Inside `accumulate` it
    averages once per optimizer update; inside `skip_spikes` a skipped update does not
    move it. The average is float32 for bfloat16/float16 parameters (PyTorch and Keras
    keep it in the parameters' dtype).

    Args:
      decay: the weight of the old average, in [0, 1]: a number, array or schedule of
        the update count (update k uses `decay(k - 1)`, as every jaxsched hyperparameter).
      warmup: updates before the average starts, an int >= 0.

    Returns:
      An `optax.GradientTransformationExtraArgs` (needs `params`) whose state is an
      `EmaParamsState`.

    Raises:
      ValueError: for `decay` outside [0, 1] or a negative `warmup`; at `update`, when
        the parameters are missing or their tree differs from the updates'.
      TypeError: for a non-numeric `decay` or a non-integer `warmup`.

    Example:
        >>> import jax.numpy as jnp, optax, jaxsched as js
        >>> opt = js.chain(js.sgd(1.0), js.ema_params(0.5))
        >>> params = jnp.zeros(1)
        >>> state = opt.init(params)
        >>> for _ in range(3):
        ...     updates, state = opt.update(jnp.ones(1), state, params)
        ...     params = optax.apply_updates(params, updates)
        >>> params.tolist(), js.averaged_params(state).tolist()  # -1 copied, then -2, -3 averaged
        ([-3.0], [-2.25])

    References:
      PyTorch `torch.optim.swa_utils.get_ema_multi_avg_fn`; Keras `use_ema`.
    """
    owner = _checks.caller("ema_params")
    _hyper.check("ema_params", "decay", decay, lo=0, hi=1)
    _checks.integer("ema_params", "warmup", warmup, lo=0, hi=_numerics.INT32_MAX)
    hypers = {"decay": decay}

    def init(params):
        check_real_floats(owner, params, "the parameters")
        return _hyper.new_state(EmaParamsState, count=_numerics.zero_count(),
                                average=_copy(params),
                                hyperparams=_hyper.record(owner, hypers, _hyper.resolve_all(
                                    hypers, _numerics.zero_count())))

    def update(updates, state, params=None, **extra_args):
        del extra_args
        new = _new_params(owner, updates, params)
        check_same_tree(owner, updates, state.average)
        values = _hyper.resolve_all(hypers, state.count)
        k = _numerics.next_count(state.count)
        copy = k <= jnp.asarray(warmup, jnp.int32) + 1
        weight = jnp.where(copy, 1, 1 - values["decay"])  # of the new parameters

        def mix(avg, p):
            w = weight.astype(avg.dtype)
            p = p.astype(avg.dtype)
            # torch.lerp: start + w * (end - start) for w < 0.5, else end - (end - start) * (1 - w)
            return jnp.where(w < 0.5, avg + w * (p - avg), p - (p - avg) * (1 - w))

        average = jax.tree.map(mix, state.average, new)
        return updates, _hyper.new_state(EmaParamsState, count=k, average=average,
                                          hyperparams=_hyper.record(owner, hypers, values,
                                                                    state.hyperparams))

    return describe(optax.GradientTransformationExtraArgs(init, update), needs_params=True,
                    name="ema_params")


def swa(start: int, every: int = 1) -> Transformation:
    """Keep the equal-weight average of the parameters every `every` updates after `start`.

    p_k = params + updates                          (the parameters after update k, k from 1)
    averaged at k > start with (k - start) % every == 0:
        average = average + (p_k - average) / (n_averaged + 1);   n_averaged += 1
    (the first averaged update copies, n_averaged = 0); until then average = p_k.

    PyTorch's `AveragedModel(model)` (default averaging) with `update_parameters(model)`
    called after the updates `start + every`, `start + 2 * every`, ...; PyTorch's
    per-epoch loop `if epoch > swa_start: swa_model.update_parameters(model)` is
    `start = swa_start + 1`, `every = 1`, with one update per epoch. Pair it with
    `swa_lr` for the learning rate. Batch-norm statistics are not parameters: recompute
    them for the averaged weights (PyTorch's `update_bn`) if the model has any.

    Args:
      start: updates before averaging starts, an int >= 0.
      every: updates between averaged parameter sets, an int >= 1 (the cycle length of
        cyclic SWA).

    Returns:
      An `optax.GradientTransformationExtraArgs` (needs `params`) whose state is a
      `SwaState`; `js.averaged_params(state)` is the average,
      `js.measurements(state)["n_averaged"]` how many sets it holds.

    Raises:
      ValueError: for a negative `start` or `every` < 1; at `update`, when the
        parameters are missing or their tree differs from the updates'.
      TypeError: for non-integer `start` or `every`.

    Example:
        >>> import jax.numpy as jnp, optax, jaxsched as js
        >>> opt = js.chain(js.sgd(1.0), js.swa(start=1))
        >>> params = jnp.zeros(1)
        >>> state = opt.init(params)
        >>> for _ in range(4):
        ...     updates, state = opt.update(jnp.ones(1), state, params)
        ...     params = optax.apply_updates(params, updates)
        >>> js.averaged_params(state).tolist(), int(js.measurements(state)["n_averaged"])
        ([-3.0], 3)

    References:
      Izmailov et al., "Averaging Weights Leads to Wider Optima and Better
      Generalization", UAI 2018; PyTorch `torch.optim.swa_utils.AveragedModel`.
    """
    owner = _checks.caller("swa")
    _checks.integer("swa", "start", start, lo=0, hi=_numerics.INT32_MAX)
    _checks.integer("swa", "every", every, lo=1, hi=_numerics.INT32_MAX)

    def init(params):
        check_real_floats(owner, params, "the parameters")
        return SwaState(count=_numerics.zero_count(), average=_copy(params),
                        n_averaged=_numerics.zero_count())

    def update(updates, state, params=None, **extra_args):
        del extra_args
        new = _new_params(owner, updates, params)
        check_same_tree(owner, updates, state.average)
        k = _numerics.next_count(state.count)
        after = k - jnp.asarray(start, jnp.int32)
        take = (after > 0) & (after % jnp.asarray(every, jnp.int32) == 0)
        n = state.n_averaged
        # Until the first averaged set the average follows the parameters (weight 1).
        weight = jnp.where(take & (n > 0), 1 / (n.astype(float_dtype()) + 1), 1.0)
        moving = take | (n == 0)

        def mix(avg, p):
            p = p.astype(avg.dtype)
            return jnp.where(moving, avg + (p - avg) * weight.astype(avg.dtype), avg)

        average = jax.tree.map(mix, state.average, new)
        n = jnp.where(take, _numerics.next_count(n), n).astype(jnp.int32)
        return updates, SwaState(count=k, average=average, n_averaged=n)

    return describe(optax.GradientTransformationExtraArgs(init, update), needs_params=True,
                    name="swa")


def swa_lr(schedule: Any, swa_lr: Any, start: int, anneal_steps: int = 10,
           strategy: str = "cos") -> Any:
    """A schedule that anneals from `schedule(start)` to `swa_lr` (PyTorch's `SWALR`).

    value(t) = schedule(t)                                      for t < start
    s = (t - start) / max(1, anneal_steps), clamped to [0, 1]
    a = (1 - cos(pi * s)) / 2   ("cos")   or   a = s   ("linear")
    value(t) = swa_lr * a + schedule(start) * (1 - a)           for t >= start

    PyTorch's loop `if epoch > swa_start: swa_scheduler.step() else: scheduler.step()`
    (one update per epoch) uses this learning rate at update t with
    `start = swa_start + 1`: `SWALR` takes over from the learning rate in force at
    `start` and reaches `swa_lr` after `anneal_steps` of its steps (at the first with
    `anneal_steps=0`). A `join` of `schedule` and a `warmup_stable_decay` decaying from
    `schedule(start)` to `swa_lr`, so it prints, pickles and saves as a config.
    One PyTorch quirk is not reproduced: `SWALR(anneal_epochs=0)` already sets `swa_lr`
    when it is constructed, which the loop's first epochs then use unless another
    scheduler overwrites it; here the value before `start` is always `schedule(t)`.

    Args:
      schedule: the schedule before SWA (a schedule or a number).
      swa_lr: the learning rate of the SWA phase, >= 0.
      start: the update at which the annealing begins, an int >= 0.
      anneal_steps: length of the annealing, an int >= 0.
      strategy: "cos" or "linear", as `SWALR`'s `anneal_strategy`.

    Returns:
      A jaxsched schedule.

    Raises:
      ValueError: for a negative `swa_lr`, `start` or `anneal_steps`, or an unknown
        `strategy`.
      TypeError: for a `schedule` that is not callable or a number.

    Example:
        >>> import jaxsched as js
        >>> s = js.swa_lr(js.constant(1.0), swa_lr=0.5, start=10, anneal_steps=2,
        ...               strategy="linear")
        >>> [float(s(t)) for t in (9, 10, 11, 12, 100)]
        [1.0, 1.0, 0.75, 0.5, 0.5]

    References:
      PyTorch `torch.optim.swa_utils.SWALR`.
    """
    with _checks.calling("swa_lr", end_value="swa_lr", decay_steps="anneal_steps",
                         decay="strategy", schedules="schedule", boundaries="start"):
        _checks.choice("swa_lr", "strategy", strategy, ("cos", "linear"))
        _checks.integer("swa_lr", "start", start, lo=0, hi=_numerics.INT32_MAX)
        _checks.integer("swa_lr", "anneal_steps", anneal_steps, lo=0, hi=_numerics.INT32_MAX)
        _checks.number("swa_lr", "swa_lr", swa_lr, lo=0)
        if not callable(schedule):
            _checks.number("swa_lr", "schedule", schedule, lo=0)
            schedule = _CONSTANT(schedule)
        handover = schedule(start)
        if not _checks.is_traced(handover):
            handover = float(handover)
        # SWALR reaches swa_lr at its first step when anneal_steps == 0: one stable step.
        anneal = _WSD(handover, 0, 1 if anneal_steps == 0 else 0,
                                     anneal_steps, end_value=swa_lr,
                                     decay="cosine" if strategy == "cos" else "linear")
        return _JOIN([schedule, anneal], [start])


# The schedule classes, typed loosely (mypy does not see their dataclass __init__).
_CONSTANT: Any = _combine.constant
_JOIN: Any = _combine.join
_WSD: Any = _warmup.warmup_stable_decay
_AVERAGES = (EmaParamsState, SwaState)


def averaged_params(opt_state: Any, which: Optional[str] = None) -> PyTree:
    """The averaged parameters held by `ema_params` or `swa` in an optimizer state.

    Args:
      opt_state: an optimizer state holding one averaging state (in a chain, inside
        `accumulate`, `skip_spikes`, ... at any depth).
      which: "ema_params" or "swa", when the state holds both.

    Returns:
      The average, a tree like the parameters (float32 where the parameters are
      bfloat16/float16; `FlatParams` when they are).

    Raises:
      ValueError: if the state holds no average, or several and `which` does not choose.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> state = js.chain(js.adam(1e-3), js.ema_params(0.99)).init({"w": jnp.ones(2)})
        >>> js.averaged_params(state)["w"].tolist()
        [1.0, 1.0]
    """
    if which is not None:
        _checks.choice("averaged_params", "which", which, ("ema_params", "swa"))
    found = _hyper.find_states(opt_state, _AVERAGES)
    if which is not None:
        found = [s for s in found if isinstance(s, EmaParamsState if which == "ema_params"
                                                else SwaState)]
    if not found:
        raise ValueError("`averaged_params(opt_state=...)` holds no `ema_params` or `swa` state"
                         + (f" of kind {which!r}." if which else "."))
    if len(found) > 1:
        kinds = ", ".join("ema_params" if isinstance(s, EmaParamsState) else "swa"
                          for s in found)
        raise ValueError(f"`averaged_params(opt_state=...)` holds several averages ({kinds}); "
                         f"choose one with `which=`.")
    return found[0].average
