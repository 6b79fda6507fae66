"""Warmup and cooldown: a warmup in front of any schedule, a cooldown at the end of
any schedule, warmup-stable-decay and inverse square root."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxsched import _checks
from jaxsched._numerics import as_count, as_float, as_step, float_dtype, split_period
from jaxsched._schedule import Schedule, as_schedule, optional, schedule_class, static


def _ramp(t, length, start, end):
    """Linear from `start` at t = 0 to `end` at t = length (t < length)."""
    frac = t.astype(float_dtype()) / jnp.maximum(as_float(length), 1)
    return start + (end - start) * frac


WARMUP_MODES = ("linear", "cosine", "sqrt", "exponential")


def _safe_sqrt(x):
    """sqrt(x) for x >= 0 with a finite gradient everywhere (0 at x <= 0)."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1)), 0)


def _rise(t, length, start, end, mode: str):
    """From `start` at t = 0 towards `end` at t = length, in the shape `mode` (t < length).

    linear: p;  cosine: (1 - cos(pi p)) / 2;  sqrt: 1 - sqrt(1 - p);
    exponential: start * (end / start) ** p   (geometric; start > 0).
    """
    p = jnp.clip(t.astype(float_dtype()) / jnp.maximum(as_float(length), 1), 0, 1)
    if mode == "exponential":
        ok = (start > 0) & (end > 0)
        log_start = jnp.log(jnp.where(ok, start, 1))
        log_end = jnp.log(jnp.where(ok, end, 1))
        geometric = jnp.exp(log_start + p * (log_end - log_start))
        # end == 0: start at p == 0, then 0 (the limit of the geometric path).
        return jnp.where(ok, geometric, jnp.where(p == 0, start, end))
    if mode == "cosine":
        shape = 0.5 * (1 - jnp.cos(jnp.pi * p))
    elif mode == "sqrt":
        shape = 1 - _safe_sqrt(1 - p)
    else:
        shape = p
    return start + (end - start) * shape


@schedule_class("warmup")
class Warmup(Schedule):
    """Warm up from `init_value` to `schedule(0)`, then run `schedule`.

    p = t / warmup_steps
    value = init_value + (schedule(0) - init_value) * shape(p)   for t < warmup_steps
    value = schedule(t - warmup_steps)                           after
    shape(p) = p (linear), (1 - cos(pi p)) / 2 (cosine), 1 - sqrt(1 - p) (sqrt)
    exponential: value = init_value * (schedule(0) / init_value) ** p

    Keras' `CosineDecay(a, D, alpha, warmup_target=b, warmup_steps=W)` is
    `warmup(cosine_decay(b, D, alpha), W, init_value=a)`.

    Args:
      schedule: the schedule after warmup (any callable of the step).
      warmup_steps: length of the warmup, an int >= 0, at most 2**31 - 1
        (2**63 - 1 under x64) (no gradient).
      init_value: the value at step 0, >= 0 (> 0 for "exponential").
      mode: the warmup's shape, "linear", "cosine", "sqrt" (Hugging Face's
        "1-sqrt") or "exponential" (geometric: init_value * (target /
        init_value)^p at the fraction p of the warmup).

    Raises:
      ValueError: `init_value` is 0 with `mode="exponential"`.

    Example:
        >>> import jaxsched as js
        >>> s = js.warmup(js.constant(1.0), 10)
        >>> [float(s(t)) for t in (0, 5, 10)]
        [0.0, 0.5, 1.0]
        >>> s = js.warmup(js.constant(1.0), 10, 0.01, mode="exponential")
        >>> [round(float(s(t)), 6) for t in (0, 5, 10)]
        [0.01, 0.1, 1.0]
    """

    schedule: Any
    warmup_steps: Any
    init_value: Any = 0.0
    mode: str = optional("linear", is_static=True)

    def __post_init__(self):
        n = self.name
        object.__setattr__(self, "schedule", as_schedule(n, "schedule", self.schedule))
        _checks.integer(n, "warmup_steps", self.warmup_steps, lo=0, hi=_checks.count_max())
        _checks.choice(n, "mode", self.mode, WARMUP_MODES)
        lo_open = self.mode == "exponential"
        _checks.number(n, "init_value", self.init_value, lo=0, lo_open=lo_open)
        _checks.float32_range(n, "init_value", self.init_value)

    def _at(self, t):
        w = as_count(self.warmup_steps)
        # One evaluation of the schedule (calling it twice would cost time
        # exponential in the depth of nested warmups): during the warmup
        # max(t - w, 0) = 0, so `after` is the warmup's target schedule(0).
        after = self.schedule(as_step(t - w))
        ramp = _rise(t, w, as_float(self.init_value), after, self.mode)
        return jnp.where(t < w, ramp, after)


@schedule_class("warmup_stable_decay")
class WarmupStableDecay(Schedule):
    """Warmup, a stable phase at the peak, then a decay (the WSD schedule).

    t < W:                 init_value + (peak_value - init_value) * rise(t / W)
    then `cycles` times:   R re-warm steps (linear from end_value back to the
                           peak; none before the first cycle), S steps at
                           peak_value, D decay steps:
    p = (steps into the decay) / D
    value = end_value + (peak_value - end_value) * shape(p)
    shape(p) = 1 - p (linear), (1 + cos(2 pi num_cycles p)) / 2 (cosine),
               1 - sqrt(p) (sqrt, Hugging Face's "1-sqrt")
    after the last decay:  end_value
    rise: the `warmup` shape ("linear", "cosine", "sqrt"), as in `js.warmup`.

    Used for LLM pre-training (Hu et al., MiniCPM, 2024; Hägele et al., 2024);
    `cycles > 1` is WSD-S (Wen et al., 2024), which resumes from each decayed
    checkpoint at the peak (`rewarm_steps=0`) or after a short re-warm.
    Hugging Face's `get_wsd_schedule(..., min_lr_ratio=r)` is
    `init_value = end_value = r * peak_value`.

    Args:
      peak_value: the stable value, >= 0.
      warmup_steps, stable_steps, decay_steps: phase lengths, ints >= 0 with a sum
        <= 2**31 - 1 (2**63 - 1 under x64) (integers: no gradient).
      init_value: value at step 0, >= 0.
      end_value: value at and after the end of the decay, >= 0.
      decay: "linear", "cosine" or "sqrt".
      warmup: the warmup's shape, "linear", "cosine" or "sqrt".
      num_cycles: cosine periods in the decay (default 0.5, half a cosine), >= 0.
      cycles: number of stable + decay cycles (default 1), an int >= 1 (no gradient).
      rewarm_steps: an int >= 0 (no gradient), steps from end_value back to the
        peak between cycles (default 0).

    Example:
        >>> import jaxsched as js
        >>> s = js.warmup_stable_decay(1.0, 10, 10, 10)
        >>> [float(s(t)) for t in (5, 15, 25, 30)]
        [0.5, 1.0, 0.5, 0.0]
        >>> s = js.warmup_stable_decay(1.0, 0, 10, 10, cycles=2)
        >>> [float(s(t)) for t in (15, 20, 35, 40)]
        [0.5, 1.0, 0.5, 0.0]
    """

    peak_value: Any
    warmup_steps: Any
    stable_steps: Any
    decay_steps: Any
    init_value: Any = 0.0
    end_value: Any = 0.0
    decay: str = static(default="linear")
    warmup: str = optional("linear", is_static=True)
    num_cycles: Any = optional()
    cycles: Any = optional()
    rewarm_steps: Any = optional()

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
        _checks.choice(n, "warmup", self.warmup, ("linear", "cosine", "sqrt"))
        if self.num_cycles is not None:
            _checks.number(n, "num_cycles", self.num_cycles, lo=0)
        if self.cycles is not None:
            _checks.integer(n, "cycles", self.cycles, lo=1, hi=_checks.count_max())
        if self.rewarm_steps is not None:
            _checks.integer(n, "rewarm_steps", self.rewarm_steps, lo=0,
                            hi=_checks.count_max())

    def _at(self, t):
        fdt = float_dtype()
        w, s, d = (as_count(x) for x in (self.warmup_steps, self.stable_steps, self.decay_steps))
        r = as_count(0 if self.rewarm_steps is None else self.rewarm_steps)
        cycles = as_count(1 if self.cycles is None else self.cycles)
        peak, end = as_float(self.peak_value), as_float(self.end_value)
        # Position after the warmup, as if the first cycle also began with a re-warm.
        u = jnp.maximum(t - w, 0) + r
        k, pos = split_period(u, jnp.maximum(r + s + d, 1))
        into_decay = pos - r - s
        p = jnp.clip(into_decay.astype(fdt) / jnp.maximum(as_float(d), 1), 0, 1)
        if self.decay == "linear":
            shape = 1 - p
        elif self.decay == "cosine":
            cycles_2 = 1.0 if self.num_cycles is None else 2 * as_float(self.num_cycles)
            shape = (1 + jnp.cos(jnp.pi * cycles_2 * p)) / 2
        else:
            shape = 1 - _safe_sqrt(p)
        decayed = jnp.where(into_decay >= d, end, end + (peak - end) * shape)
        rewarm = _ramp(pos, r, end, peak)
        in_cycle = jnp.where(pos < r, rewarm, jnp.where(pos < r + s, peak, decayed))
        after = jnp.where(k >= cycles, end, in_cycle)
        ramp = _rise(t, w, as_float(self.init_value), peak, self.warmup)
        return jnp.where(t < w, ramp, after)


@schedule_class("inverse_sqrt")
class InverseSqrt(Schedule):
    """Linear warmup, then decay as the inverse square root of the step.

    value = peak_value * t / warmup_steps                               for t < warmup_steps
    value = max(min_value, peak_value * sqrt(timescale / (t + shift)))  after
    timescale defaults to warmup_steps, shift to timescale - warmup_steps
    (so the decay starts at peak_value).

    The schedule of "Attention Is All You Need" (Vaswani et al., 2017) up to
    scale; Hugging Face's `get_inverse_sqrt_schedule(num_warmup_steps,
    timescale)` is `inverse_sqrt(lr, num_warmup_steps, timescale)`.

    Args:
      peak_value: value at the end of the warmup, >= 0.
      warmup_steps: length of the warmup, an int >= 0 (>= 1 without `timescale`), at most
        2**31 - 1 (2**63 - 1 under x64) (no gradient).
      timescale: steps over which the rate falls by sqrt(2) from t + shift = timescale, > 0.
      shift: added to the step in the decay; warmup_steps + shift must be > 0.
      min_value: floor of the decay, >= 0 (the warmup starts below it).

    Example:
        >>> import jaxsched as js
        >>> s = js.inverse_sqrt(1.0, 100)
        >>> [float(s(t)) for t in (50, 100, 400)]
        [0.5, 1.0, 0.5]
        >>> s = js.inverse_sqrt(1.0, 0, timescale=100, min_value=0.2)
        >>> [round(float(s(t)), 6) for t in (0, 300, 10**6)]
        [1.0, 0.5, 0.2]
    """

    peak_value: Any
    warmup_steps: Any
    timescale: Any = optional()
    shift: Any = optional()
    min_value: Any = optional()

    def __post_init__(self):
        n = self.name
        _checks.number(n, "peak_value", self.peak_value, lo=0)
        _checks.float32_range(n, "peak_value", self.peak_value)
        _checks.integer(n, "warmup_steps", self.warmup_steps,
                        lo=1 if self.timescale is None else 0, hi=_checks.count_max())
        if self.timescale is not None:
            _checks.number(n, "timescale", self.timescale, lo=0, lo_open=True)
            _checks.float32_range(n, "timescale", self.timescale, divisor=True)
        if self.shift is not None:
            _checks.number(n, "shift", self.shift)
            _checks.float32_range(n, "shift", self.shift)
            if not (_checks.is_traced(self.shift) or _checks.is_traced(self.warmup_steps)):
                w = float(self.warmup_steps)
                _checks.custom(n, "shift", self.shift, lambda v: w + float(v) > 0,
                               f"be > -warmup_steps = {-w:g}")
        if self.min_value is not None:
            _checks.number(n, "min_value", self.min_value, lo=0)
            _checks.float32_range(n, "min_value", self.min_value)

    def _at(self, t):
        fdt = float_dtype()
        w = as_count(self.warmup_steps)
        wf = as_float(self.warmup_steps)
        peak = as_float(self.peak_value)
        tf = t.astype(fdt)
        scale = wf if self.timescale is None else as_float(self.timescale)
        shift = scale - wf if self.shift is None else as_float(self.shift)
        denom = jnp.maximum(tf, wf) + shift
        ok = denom > 0
        decayed = peak * jnp.sqrt(scale / jnp.where(ok, denom, 1))
        if self.min_value is not None:
            decayed = jnp.maximum(decayed, as_float(self.min_value))
        return jnp.where(t < w, peak * tf / jnp.maximum(wf, 1), decayed)


@schedule_class("cooldown")
class Cooldown(Schedule):
    """End any schedule with a cooldown to zero over its last `cooldown_steps`.

    c = total_steps - cooldown_steps;  p = (t - c) / cooldown_steps
    value = schedule(t)                    for t < c
    value = schedule(c) * (1 - p)          linear,  or  schedule(c) * (1 - sqrt(p))  sqrt
    value = 0                              for t >= total_steps

    The cooldown starts from the value the schedule has when it begins, as
    the decay of a warmup-stable-decay schedule (Hägele et al., 2024: linear
    and 1-sqrt cooldowns); after `total_steps` the rate is 0, the trailing
    zero-learning-rate phase of MaxText-style runs.

    Args:
      schedule: any schedule (a callable of the step).
      total_steps: the step where the rate reaches 0, an int >= 0.
      cooldown_steps: length of the cooldown, an int in [0, total_steps].
      shape: "linear" or "sqrt" (1 - sqrt).

    Example:
        >>> import jaxsched as js
        >>> s = js.cooldown(js.constant(1.0), 100, 20)
        >>> [float(s(t)) for t in (79, 80, 90, 100)]
        [1.0, 1.0, 0.5, 0.0]
    """

    schedule: Any
    total_steps: Any
    cooldown_steps: Any
    shape: str = static(default="linear")

    def __post_init__(self):
        n = self.name
        object.__setattr__(self, "schedule", as_schedule(n, "schedule", self.schedule))
        _checks.integer(n, "total_steps", self.total_steps, lo=0, hi=_checks.count_max())
        _checks.integer(n, "cooldown_steps", self.cooldown_steps, lo=0,
                        hi=_checks.count_max())
        if not (_checks.is_traced(self.total_steps) or _checks.is_traced(self.cooldown_steps)):
            total = int(self.total_steps)
            _checks.custom(n, "cooldown_steps", self.cooldown_steps, lambda c: int(c) <= total,
                           f"be <= total_steps = {total}")
        _checks.choice(n, "shape", self.shape, ("linear", "sqrt"))

    def _at(self, t):
        total, steps = as_count(self.total_steps), as_count(self.cooldown_steps)
        begin = total - steps
        p = jnp.clip((t - begin).astype(float_dtype()) / jnp.maximum(as_float(steps), 1), 0, 1)
        factor = 1 - p if self.shape == "linear" else 1 - _safe_sqrt(p)
        # One evaluation of the schedule: at t before the cooldown, at its start after.
        value = self.schedule(as_step(jnp.minimum(t, begin)))
        return jnp.where(t >= total, 0.0, jnp.where(t < begin, value, value * factor))


warmup = Warmup
warmup_stable_decay = WarmupStableDecay
inverse_sqrt = InverseSqrt
cooldown = Cooldown
