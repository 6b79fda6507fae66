"""Warmup schedules: linear warmup in front of any schedule, warmup-stable-decay
and inverse square root."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxsched import _checks
from jaxsched._numerics import as_count, as_float, as_step, float_dtype
from jaxsched._schedule import Schedule, as_schedule, schedule_class, static


def _ramp(t, length, start, end):
    """Linear from `start` at t = 0 to `end` at t = length (t < length)."""
    frac = t.astype(float_dtype()) / jnp.maximum(as_float(length), 1)
    return start + (end - start) * frac


@schedule_class("warmup")
class Warmup(Schedule):
    """Linear warmup from `init_value` to `schedule(0)`, then `schedule`.

    value = init_value + (schedule(0) - init_value) * t / warmup_steps   for t < warmup_steps
    value = schedule(t - warmup_steps)                                   after

    Keras' `CosineDecay(a, D, alpha, warmup_target=b, warmup_steps=W)` is
    `warmup(cosine_decay(b, D, alpha), W, init_value=a)`.

    Args:
      schedule: the schedule after warmup (any callable of the step).
      warmup_steps: length of the warmup, an int >= 0, at most 2**31 - 1
        (2**63 - 1 under x64) (no gradient).
      init_value: the value at step 0, >= 0.

    Example:
        >>> import jaxsched as js
        >>> s = js.warmup(js.constant(1.0), 10)
        >>> [float(s(t)) for t in (0, 5, 10)]
        [0.0, 0.5, 1.0]
    """

    schedule: Any
    warmup_steps: Any
    init_value: Any = 0.0

    def __post_init__(self):
        n = self.name
        object.__setattr__(self, "schedule", as_schedule(n, "schedule", self.schedule))
        _checks.integer(n, "warmup_steps", self.warmup_steps, lo=0, hi=_checks.count_max())
        _checks.number(n, "init_value", self.init_value, lo=0)
        _checks.float32_range(n, "init_value", self.init_value)

    def _at(self, t):
        w = as_count(self.warmup_steps)
        # One call of the inner schedule at the steps [0, *(t - w)]: calling it
        # twice would cost time exponential in the depth of nested warmups.
        later = jnp.ravel(as_step(t - w))
        both = self.schedule(jnp.concatenate([jnp.zeros((1,), later.dtype), later]))
        target, after = both[0], both[1:].reshape(t.shape)
        ramp = _ramp(t, w, as_float(self.init_value), target)
        return jnp.where(t < w, ramp, after)


@schedule_class("warmup_stable_decay")
class WarmupStableDecay(Schedule):
    """Warmup, a stable phase at the peak, then a decay (the WSD schedule).

    t < W:                 init_value + (peak_value - init_value) * t / W
    W <= t < W + S:        peak_value
    p = (t - W - S) / D    (the fraction of the decay done, clamped to [0, 1])
    value = end_value + (peak_value - end_value) * shape(p)
    shape(p) = 1 - p (linear), (1 + cos(pi * p)) / 2 (cosine), 1 - sqrt(p) (sqrt)

    Used for LLM pre-training (Hu et al., MiniCPM, 2024; Hägele et al., 2024).

    Args:
      peak_value: the stable value, >= 0.
      warmup_steps, stable_steps, decay_steps: phase lengths, ints >= 0 with a sum
        <= 2**31 - 1 (2**63 - 1 under x64) (integers: no gradient).
      init_value: value at step 0, >= 0.
      end_value: value at and after the end of the decay, >= 0.
      decay: "linear", "cosine" or "sqrt".

    Example:
        >>> import jaxsched as js
        >>> s = js.warmup_stable_decay(1.0, 10, 10, 10)
        >>> [float(s(t)) for t in (5, 15, 25, 30)]
        [0.5, 1.0, 0.5, 0.0]
    """

    peak_value: Any
    warmup_steps: Any
    stable_steps: Any
    decay_steps: Any
    init_value: Any = 0.0
    end_value: Any = 0.0
    decay: str = static("linear")

    def __post_init__(self):
        n = self.name
        _checks.number(n, "peak_value", self.peak_value, lo=0)
        for arg in ("warmup_steps", "stable_steps", "decay_steps"):
            _checks.integer(n, arg, getattr(self, arg), lo=0, hi=_checks.count_max())
        _checks.number(n, "init_value", self.init_value, lo=0)
        _checks.number(n, "end_value", self.end_value, lo=0)
        for arg in ("peak_value", "init_value", "end_value"):
            _checks.float32_range(n, arg, getattr(self, arg))
        lengths = (self.warmup_steps, self.stable_steps, self.decay_steps)
        if not any(_checks.is_traced(x) for x in lengths):
            total = sum(int(np.max(np.asarray(x))) for x in lengths)
            _checks.custom(n, "decay_steps", self.decay_steps,
                           lambda _: total <= _checks.count_max(),
                           f"keep warmup_steps + stable_steps + decay_steps <= "
                           f"{_checks.count_max()} (the largest step count)")
        _checks.choice(n, "decay", self.decay, ("linear", "cosine", "sqrt"))

    def _at(self, t):
        w, s, d = (as_count(x) for x in (self.warmup_steps, self.stable_steps, self.decay_steps))
        peak, end = as_float(self.peak_value), as_float(self.end_value)
        into_decay = jnp.maximum(t - w - s, 0)
        p = jnp.clip(into_decay.astype(float_dtype()) / jnp.maximum(as_float(d), 1), 0, 1)
        p = jnp.where(into_decay >= d, 1.0, p)
        if self.decay == "linear":
            shape = 1 - p
        elif self.decay == "cosine":
            shape = (1 + jnp.cos(jnp.pi * p)) / 2
        else:
            shape = 1 - jnp.sqrt(p)
        decayed = end + (peak - end) * shape
        ramp = _ramp(t, w, as_float(self.init_value), peak)
        return jnp.where(t < w, ramp, jnp.where(t < w + s, peak, decayed))


@schedule_class("inverse_sqrt")
class InverseSqrt(Schedule):
    """Linear warmup, then decay as the inverse square root of the step.

    value = peak_value * t / warmup_steps               for t < warmup_steps
    value = peak_value * sqrt(warmup_steps / t)         after

    The schedule of "Attention Is All You Need" (Vaswani et al., 2017) up to
    scale, as Hugging Face's `get_inverse_sqrt_schedule` with timescale
    `warmup_steps`.

    Args:
      peak_value: value at the end of the warmup, >= 0.
      warmup_steps: length of the warmup, an int >= 1, at most 2**31 - 1
        (2**63 - 1 under x64) (no gradient).

    Example:
        >>> import jaxsched as js
        >>> s = js.inverse_sqrt(1.0, 100)
        >>> [float(s(t)) for t in (50, 100, 400)]
        [0.5, 1.0, 0.5]
    """

    peak_value: Any
    warmup_steps: Any

    def __post_init__(self):
        _checks.number(self.name, "peak_value", self.peak_value, lo=0)
        _checks.integer(self.name, "warmup_steps", self.warmup_steps, lo=1, hi=_checks.count_max())
        _checks.float32_range(self.name, "peak_value", self.peak_value)

    def _at(self, t):
        w = as_count(self.warmup_steps)
        peak = as_float(self.peak_value)
        tf = t.astype(float_dtype())
        wf = as_float(self.warmup_steps)
        decayed = peak * jnp.sqrt(wf / jnp.maximum(tf, wf))
        return jnp.where(t < w, peak * tf / wf, decayed)


warmup = Warmup
warmup_stable_decay = WarmupStableDecay
inverse_sqrt = InverseSqrt
