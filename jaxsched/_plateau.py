"""Reduce the update scale when a monitored metric stops improving.

PyTorch's `ReduceLROnPlateau` as an optax transformation: the metric arrives
with each update as the `value=` keyword, and the decision is made inside the
compiled step (no Python control flow on values, so a jitted train step traces
once and the state can be checkpointed like any other optimizer state).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxsched import _checks, _numerics
from jaxsched._builder import Transformation, describe
from jaxsched._hyper import carries
from jaxsched._numerics import float_dtype

Array = jax.Array

_OWNER = "reduce_on_plateau"


@carries("reduce_on_plateau", measured=("scale",))
class ReduceOnPlateauState(NamedTuple):
    """State of `reduce_on_plateau`: PyTorch's scheduler fields as fixed-dtype arrays.

    Example:
        >>> import jaxsched as js
        >>> s = js.reduce_on_plateau().init(None)
        >>> float(s.scale), float(s.best), int(s.num_bad), int(s.cooldown_left)
        (1.0, inf, 0, 0)
    """

    count: Array  # type: ignore[assignment]  # int32 []: updates done, saturating
    best: Array  # float []: best (mean) metric so far; +inf (min) / -inf (max) at first
    num_bad: Array  # int32 []: decisions in a row without improvement
    cooldown_left: Array  # int32 []: decisions still ignored after the last cut
    scale: Array  # float []: the scale in force (1.0 at first)
    acc_sum: Array  # float []: sum of the values accumulated towards the next decision
    acc_count: Array  # int32 []: number of values in acc_sum


def reduce_on_plateau(factor: Any = 0.1, patience: Any = 10, *, mode: str = "min",
                      threshold: Any = 1e-4, threshold_mode: str = "rel", cooldown: Any = 0,
                      min_scale: Any = 0.0, eps: Any = 1e-8,
                      accumulation_size: Any = 1) -> Transformation:
    """Multiply updates by a scale that is cut by `factor` when `value` plateaus.

    Call `update(updates, state, params, value=metric)`. Every
    `accumulation_size` values, their mean `a` is one decision (PyTorch's
    `scheduler.step(a)`), on a scale that starts at 1.0:

    better = a < best - margin          (mode "min"; "max": a > best + margin)
    margin = |best| * threshold         (threshold_mode "rel"; "abs": margin = threshold)
    if better: best = a, num_bad = 0    else: num_bad += 1
    if cooldown_left > 0: cooldown_left -= 1, num_bad = 0
    if num_bad > patience: new = max(scale * factor, min_scale),
        scale = new if scale - new > eps, cooldown_left = cooldown, num_bad = 0
    u = scale * g

    The scale decided from a value applies to the update that carries it (the
    update made after PyTorch's `scheduler.step(value)`). Between decisions
    (`accumulation_size > 1`) the scale does not change: with one value per
    step and `accumulation_size = k` steps per epoch, this is PyTorch's
    once-per-epoch `scheduler.step(mean epoch loss)`.

    Equal to PyTorch's learning rate divided by the initial learning rate
    (`min_lr = min_scale * lr0`; `eps` here compares scales, so it is
    PyTorch's `eps / lr0`), with two deliberate differences:

    - a NaN or infinite value is never an improvement and never becomes
      `best` (PyTorch compares it, so `-inf` in min mode would become a best
      nothing can beat);
    - the relative threshold uses `|best|`, so a negative metric (a
      log-likelihood, a reward) is handled correctly; PyTorch's
      `a < best * (1 - threshold)` asks a negative metric to get *worse*
      (PyTorch issue 47513; optax's `contrib.reduce_on_plateau` has the same
      bug, PR 1767). For a positive `best` the two agree.

    The first finite value always becomes `best`. optax's
    `contrib.reduce_on_plateau` differs from PyTorch in other ways too
    (it compares `value < (1 - rtol) * best - atol` and resets `num_bad`
    differently); this transform follows PyTorch.

    Args:
      factor: multiplier of a cut, in (0, 1).
      patience: number of non-improving decisions tolerated before a cut, an
        int >= 0 (a cut happens on the `patience + 1`-th).
      mode: "min" (lower is better, a loss) or "max" (an accuracy, a reward).
      threshold: smallest improvement that counts, >= 0 (relative to `|best|`
        or absolute, see `threshold_mode`).
      threshold_mode: "rel" or "abs".
      cooldown: decisions ignored after a cut, an int >= 0.
      min_scale: the scale never goes below this, >= 0.
      eps: a cut that would change the scale by `eps` or less is skipped, >= 0.
      accumulation_size: number of values averaged into one decision, an int
        >= 1.

    Returns:
      An `optax.GradientTransformationExtraArgs` whose state is a
      `ReduceOnPlateauState`; `jaxsched.measurements(state)["scale"]` is the
      scale applied to the most recent update. Inside `optax.chain` or
      `jaxsched.chain` the `value=` keyword is forwarded to it.

    Raises:
      ValueError: for `factor` outside (0, 1), a negative `patience`,
        `cooldown`, `threshold`, `min_scale` or `eps`, an `accumulation_size`
        < 1, an unknown `mode` or `threshold_mode`; at `update`, for a `value`
        that is not a scalar.
      TypeError: for a non-numeric argument, a non-integer count, and at
        `update` when the `value=` keyword is missing.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.reduce_on_plateau(factor=0.5, patience=1)
        >>> state = tx.init(None)
        >>> for loss in [3.0, 2.0, 2.0, 2.0, 2.0, 2.0]:
        ...     u, state = tx.update(jnp.ones(1), state, value=loss)
        ...     print(float(js.measurements(state)["scale"]), u.tolist())
        1.0 [1.0]
        1.0 [1.0]
        1.0 [1.0]
        0.5 [0.5]
        0.5 [0.5]
        0.25 [0.25]
    """
    _checks.number(_OWNER, "factor", factor, lo=0, hi=1, lo_open=True, hi_open=True)
    _checks.integer(_OWNER, "patience", patience, lo=0, hi=_numerics.INT32_MAX)
    _checks.choice(_OWNER, "mode", mode, ("min", "max"))
    _checks.number(_OWNER, "threshold", threshold, lo=0)
    _checks.choice(_OWNER, "threshold_mode", threshold_mode, ("rel", "abs"))
    _checks.integer(_OWNER, "cooldown", cooldown, lo=0, hi=_numerics.INT32_MAX)
    _checks.number(_OWNER, "min_scale", min_scale, lo=0)
    _checks.number(_OWNER, "eps", eps, lo=0)
    _checks.integer(_OWNER, "accumulation_size", accumulation_size, lo=1,
                    hi=_numerics.INT32_MAX)
    minimize = mode == "min"
    relative = threshold_mode == "rel"

    def init(params):
        del params
        fdt = float_dtype()
        scale = jnp.ones([], fdt)
        return ReduceOnPlateauState(
            count=_numerics.zero_count(),
            best=jnp.asarray(jnp.inf if minimize else -jnp.inf, fdt),
            num_bad=jnp.zeros([], jnp.int32), cooldown_left=jnp.zeros([], jnp.int32),
            scale=scale, acc_sum=jnp.zeros([], fdt), acc_count=jnp.zeros([], jnp.int32))

    def decide(a: Array, state: ReduceOnPlateauState) -> tuple[Array, Array, Array, Array]:
        """One PyTorch `step(a)`: the new (best, num_bad, cooldown_left, scale)."""
        fdt = float_dtype()
        best = state.best
        thr = jnp.asarray(threshold, fdt)
        margin = jnp.abs(best) * thr if relative else thr
        beats = a < best - margin if minimize else a > best + margin
        # The first finite value beats the initial +-inf (inf - inf * thr is NaN).
        better = jnp.isfinite(a) & (beats | ~jnp.isfinite(best))
        best = jnp.where(better, a, best)
        num_bad = jnp.where(better, 0, _numerics.next_count(state.num_bad))
        in_cooldown = state.cooldown_left > 0
        cooldown_left = jnp.where(in_cooldown, state.cooldown_left - 1, state.cooldown_left)
        num_bad = jnp.where(in_cooldown, 0, num_bad)
        cut = num_bad > jnp.asarray(patience, jnp.int32)
        scale = state.scale
        new = jnp.maximum(scale * jnp.asarray(factor, fdt), jnp.asarray(min_scale, fdt))
        scale = jnp.where(cut & (scale - new > jnp.asarray(eps, fdt)), new, scale)
        cooldown_left = jnp.where(cut, jnp.asarray(cooldown, jnp.int32), cooldown_left)
        num_bad = jnp.where(cut, 0, num_bad)
        return best, num_bad.astype(jnp.int32), cooldown_left.astype(jnp.int32), scale

    def update(updates, state, params=None, *, value=None, **extra_args):
        del params, extra_args
        if value is None:
            raise TypeError(
                f"`{_OWNER}(...).update` needs the metric as the keyword argument `value` "
                f"(e.g. `update(updates, state, params, value=loss)`), got none.")
        if jnp.ndim(value) != 0:
            raise ValueError(f"`{_OWNER}(...).update(value=...)` must be a scalar, got shape "
                             f"{tuple(jnp.shape(value))}.")
        fdt = float_dtype()
        v = jnp.asarray(value).astype(fdt)
        k = jnp.asarray(accumulation_size, jnp.int32)
        acc_sum = state.acc_sum + v
        acc_count = state.acc_count + 1
        ready = acc_count >= k
        mean = acc_sum / k.astype(fdt)
        best, num_bad, cooldown_left, scale = decide(mean, state)
        keep = lambda new, old: jnp.where(ready, new, old)  # noqa: E731
        scale = keep(scale, state.scale)
        new_state = ReduceOnPlateauState(
            count=_numerics.next_count(state.count), best=keep(best, state.best),
            num_bad=keep(num_bad, state.num_bad),
            cooldown_left=keep(cooldown_left, state.cooldown_left), scale=scale,
            acc_sum=jnp.where(ready, jnp.zeros([], fdt), acc_sum),
            acc_count=jnp.where(ready, 0, acc_count).astype(jnp.int32))
        updates = jax.tree.map(lambda g: (g.astype(fdt) * scale).astype(jnp.result_type(g)),
                               updates)
        return updates, new_state

    return describe(optax.GradientTransformationExtraArgs(init, update), exact_on_flat=True)
