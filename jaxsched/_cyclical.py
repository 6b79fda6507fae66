"""PyTorch's one-cycle and cyclic schedules.

Step convention: `s(t)` is the learning rate of the optimizer step that
follows `t` calls of PyTorch's `scheduler.step()`, so `s(0)` is the initial
rate.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxsched import _checks
from jaxsched._numerics import as_count, as_float, float_dtype, is_integer, split_period
from jaxsched._schedule import Schedule, schedule_class, static


def _anneal(start, end, pct, strategy: str):
    if strategy == "cos":
        return end + (start - end) * (jnp.cos(jnp.pi * pct) + 1) / 2
    return start + (end - start) * pct


@schedule_class("one_cycle")
class OneCycle(Schedule):
    """The 1cycle policy (Smith & Topin, 2018), as PyTorch's `OneCycleLR`.

    initial = max_lr / div_factor;  minimum = initial / final_div_factor
    two phases end at steps  pct_start * N - 1 (initial -> max_lr)  and  N - 1 (max_lr -> minimum)
    three_phase ends at      pct_start * N - 1 (initial -> max_lr),
                             2 * pct_start * N - 2 (max_lr -> initial),  N - 1 (initial -> minimum)
    in the first phase whose end >= t:  pct = (t - start) / (end - start)
    cos:    value = b + (a - b) * (1 + cos(pi * pct)) / 2;   linear: a + (b - a) * pct

    Differences from PyTorch: steps past `total_steps - 1` hold the final
    value (PyTorch extrapolates the last phase at step `total_steps`, the rate
    rising again, and raises after it), and a zero-length phase counts as
    done (PyTorch divides by zero). PyTorch's momentum cycling is `one_cycle_momentum`.

    Args:
      max_lr: peak learning rate, >= 0.
      total_steps: number of steps in the cycle, an int >= 1, at most 2**31 - 1
        (2**63 - 1 under x64) (an integer: no gradient).
      pct_start: fraction of the cycle spent increasing, in (0, 1).
      anneal_strategy: "cos" or "linear".
      div_factor: initial = max_lr / div_factor, > 0.
      final_div_factor: minimum = initial / final_div_factor, > 0.
      three_phase: use the three-phase variant (needs pct_start <= (N + 1) / (2N)).

    Example:
        >>> import jaxsched as js
        >>> s = js.one_cycle(0.1, 100)
        >>> [round(float(s(t)), 5) for t in (0, 29, 99)]
        [0.004, 0.1, 0.0]
    """

    max_lr: Any
    total_steps: Any
    pct_start: Any = 0.3
    anneal_strategy: str = static(default="cos")
    div_factor: Any = 25.0
    final_div_factor: Any = 1e4
    three_phase: bool = static(default=False)

    def __post_init__(self):
        n = self.name
        _checks.number(n, "max_lr", self.max_lr, lo=0)
        _checks.integer(n, "total_steps", self.total_steps, lo=1, hi=_checks.count_max())
        _checks.number(n, "pct_start", self.pct_start, lo=0, hi=1, lo_open=True, hi_open=True)
        _checks.choice(n, "anneal_strategy", self.anneal_strategy, ("cos", "linear"))
        _checks.number(n, "div_factor", self.div_factor, lo=0, lo_open=True)
        _checks.number(n, "final_div_factor", self.final_div_factor, lo=0, lo_open=True)
        _checks.float32_range(n, "max_lr", self.max_lr)
        _checks.float32_range(n, "div_factor", self.div_factor, divisor=True)
        _checks.float32_range(n, "final_div_factor", self.final_div_factor, divisor=True)
        _checks.boolean(n, "three_phase", self.three_phase)
        if self.three_phase and not (_checks.is_traced(self.pct_start)
                                     or _checks.is_traced(self.total_steps)):
            total = float(self.total_steps)
            _checks.custom(n, "pct_start", self.pct_start,
                           lambda p: 2 * float(p) * total - 2 <= total - 1,
                           "be <= (total_steps + 1) / (2 * total_steps) with three_phase")

    def _at(self, t):
        peak = as_float(self.max_lr)
        initial = peak / as_float(self.div_factor)
        minimum = initial / as_float(self.final_div_factor)
        levels = ([initial, peak, initial, minimum] if self.three_phase
                  else [initial, peak, minimum])
        return _one_cycle_walk(t, self.total_steps, self.pct_start, self.three_phase, levels,
                               self.anneal_strategy)


def _one_cycle_walk(t, total_steps, pct_start, three_phase: bool, levels, strategy: str):
    """PyTorch's OneCycleLR phase walk between `levels` (one more than phases)."""
    fdt = float_dtype()
    total = as_float(total_steps)
    tf = jnp.minimum(t, as_count(total_steps) - 1).astype(fdt)
    up_end = as_float(pct_start) * total - 1
    if three_phase:
        ends = [up_end, 2 * as_float(pct_start) * total - 2, total - 1]
    else:
        ends = [up_end, total - 1]
    result = jnp.zeros_like(tf)
    done = jnp.zeros(tf.shape, bool)
    start = jnp.asarray(0, fdt)
    for k, end in enumerate(ends):
        last = k == len(ends) - 1
        here = ~done & ((tf <= end) | last)
        length = end - start
        pct = jnp.where(length > 0, (tf - start) / jnp.where(length > 0, length, 1), 1)
        value = _anneal(levels[k], levels[k + 1], jnp.clip(pct, 0, 1), strategy)
        result = jnp.where(here, value, result)
        done = done | here
        start = end
    return result


@schedule_class("cyclic")
class Cyclic(Schedule):
    """Cyclical learning rates (Smith, 2017), as PyTorch's `CyclicLR`.

    total = step_size_up + step_size_down;  cycle = floor(1 + t / total)
    w = t - (cycle - 1) * total            (exact in integers)
    s = w / step_size_up  if w <= step_size_up  else  (total - w) / step_size_down
    value = base_lr + (max_lr - base_lr) * s * scale
    scale = 1 (triangular), 1 / 2 ** (cycle - 1) (triangular2), gamma ** t (exp_range)

    PyTorch computes `x = 1 + t / total - cycle` in floats, which loses the
    position in the cycle at large steps; this is exact for integer steps and
    step sizes.

    Args:
      base_lr: lower bound, >= 0.
      max_lr: upper bound, >= 0.
      step_size_up: steps from base to max, > 0.
      step_size_down: steps from max back to base (default `step_size_up`), > 0.
      mode: "triangular", "triangular2" or "exp_range".
      gamma: decay per step in exp_range mode, in (0, 1].

    Example:
        >>> import jaxsched as js
        >>> s = js.cyclic(0.1, 1.0, 10)
        >>> [round(float(s(t)), 4) for t in (0, 5, 10, 20)]
        [0.1, 0.55, 1.0, 0.1]
    """

    base_lr: Any
    max_lr: Any
    step_size_up: Any
    step_size_down: Any = None
    mode: str = static(default="triangular")
    gamma: Any = 1.0

    def __post_init__(self):
        n = self.name
        _checks.number(n, "base_lr", self.base_lr, lo=0)
        _checks.number(n, "max_lr", self.max_lr, lo=0)
        _checks.number(n, "step_size_up", self.step_size_up, lo=0, lo_open=True)
        if self.step_size_down is not None:
            _checks.number(n, "step_size_down", self.step_size_down, lo=0, lo_open=True)
        _checks.choice(n, "mode", self.mode, ("triangular", "triangular2", "exp_range"))
        _checks.number(n, "gamma", self.gamma, lo=0, hi=1, lo_open=True)
        _checks.float32_range(n, "base_lr", self.base_lr)
        _checks.float32_range(n, "max_lr", self.max_lr)
        _checks.float32_range(n, "step_size_up", self.step_size_up, divisor=True)
        if self.step_size_down is not None:
            _checks.float32_range(n, "step_size_down", self.step_size_down, divisor=True)
        sizes = (self.step_size_up, self.step_size_up if self.step_size_down is None
                 else self.step_size_down)
        if all(is_integer(x) and not _checks.is_traced(x) for x in sizes):
            total = sum(int(np.max(np.asarray(x))) for x in sizes)
            _checks.custom(n, "step_size_up", self.step_size_up,
                           lambda _: total <= _checks.count_max(),
                           f"keep step_size_up + step_size_down <= {_checks.count_max()} as "
                           f"integers (int32; pass floats for longer cycles)")

    def _at(self, t):
        base = as_float(self.base_lr)
        return base + (as_float(self.max_lr) - base) * _triangle(
            t, self.step_size_up, self.step_size_down, self.mode, self.gamma)


def _triangle(t, step_size_up, step_size_down, mode: str, gamma):
    """CyclicLR's height in [0, 1] times its scale, at step t."""
    fdt = float_dtype()
    up = as_count(step_size_up)
    down = up if step_size_down is None else as_count(step_size_down)
    total = up + down
    k, w = split_period(t, total)
    rising = w <= up
    s = jnp.where(rising, w.astype(fdt) / up.astype(fdt),
                  (total - w).astype(fdt) / down.astype(fdt))
    scale: Any
    if mode == "triangular":
        scale = 1.0
    elif mode == "triangular2":
        scale = jnp.exp2(-k.astype(fdt))
    else:
        scale = jnp.power(as_float(gamma), t.astype(fdt))
    return s * scale


@schedule_class("one_cycle_momentum")
class OneCycleMomentum(Schedule):
    """The momentum that PyTorch's `OneCycleLR(cycle_momentum=True)` sets.

    Same phases as `one_cycle` (see there), between these levels:
    two phases:    max_momentum -> base_momentum -> max_momentum
    three_phase:   max_momentum -> base_momentum -> max_momentum -> max_momentum
    anneal: "cos" or "linear", as the learning rate.

    Pass it as SGD's `momentum=` or Adam's `b1=` next to `one_cycle(...)` with
    the same `total_steps`, `pct_start`, `anneal_strategy` and `three_phase`
    to reproduce PyTorch, where the optimizer's momentum (or beta1) follows
    the learning rate in the opposite direction.

    Args:
      total_steps: number of steps in the cycle, an int >= 1 (no gradient).
      pct_start: fraction of the cycle spent increasing the rate, in (0, 1).
      anneal_strategy: "cos" or "linear".
      base_momentum: lowest momentum (at the peak rate), in [0, 1].
      max_momentum: highest momentum, in [0, 1].
      three_phase: the three-phase variant.

    Example:
        >>> import jaxsched as js
        >>> m = js.one_cycle_momentum(100)
        >>> [round(float(m(t)), 4) for t in (0, 29, 99)]
        [0.95, 0.85, 0.95]
    """

    total_steps: Any
    pct_start: Any = 0.3
    anneal_strategy: str = static(default="cos")
    base_momentum: Any = 0.85
    max_momentum: Any = 0.95
    three_phase: bool = static(default=False)

    def __post_init__(self):
        n = self.name
        _checks.integer(n, "total_steps", self.total_steps, lo=1, hi=_checks.count_max())
        _checks.number(n, "pct_start", self.pct_start, lo=0, hi=1, lo_open=True, hi_open=True)
        _checks.choice(n, "anneal_strategy", self.anneal_strategy, ("cos", "linear"))
        _checks.number(n, "base_momentum", self.base_momentum, lo=0, hi=1)
        _checks.number(n, "max_momentum", self.max_momentum, lo=0, hi=1)
        _checks.boolean(n, "three_phase", self.three_phase)

    def _at(self, t):
        low, high = as_float(self.base_momentum), as_float(self.max_momentum)
        levels = [high, low, high, high] if self.three_phase else [high, low, high]
        return _one_cycle_walk(t, self.total_steps, self.pct_start, self.three_phase, levels,
                               self.anneal_strategy)


@schedule_class("cyclic_momentum")
class CyclicMomentum(Schedule):
    """The momentum that PyTorch's `CyclicLR(cycle_momentum=True)` sets.

    value = max_momentum - (max_momentum - base_momentum) * s * scale
    with the triangle height `s` and `scale` of `cyclic` (same step sizes,
    mode and gamma): the momentum is lowest where the rate peaks.

    Pass it as SGD's `momentum=` or Adam's `b1=` next to `cyclic(...)`.

    Args:
      base_momentum: lowest momentum, in [0, 1].
      max_momentum: highest momentum, in [0, 1].
      step_size_up: steps from base to max rate, > 0.
      step_size_down: steps back (default `step_size_up`), > 0.
      mode: "triangular", "triangular2" or "exp_range".
      gamma: decay per step in exp_range mode, in (0, 1].

    Example:
        >>> import jaxsched as js
        >>> m = js.cyclic_momentum(0.8, 0.9, 10)
        >>> [round(float(m(t)), 4) for t in (0, 5, 10)]
        [0.9, 0.85, 0.8]
    """

    base_momentum: Any = 0.8
    max_momentum: Any = 0.9
    step_size_up: Any = 2000
    step_size_down: Any = None
    mode: str = static(default="triangular")
    gamma: Any = 1.0

    def __post_init__(self):
        n = self.name
        _checks.number(n, "base_momentum", self.base_momentum, lo=0, hi=1)
        _checks.number(n, "max_momentum", self.max_momentum, lo=0, hi=1)
        _checks.number(n, "step_size_up", self.step_size_up, lo=0, lo_open=True)
        if self.step_size_down is not None:
            _checks.number(n, "step_size_down", self.step_size_down, lo=0, lo_open=True)
        _checks.choice(n, "mode", self.mode, ("triangular", "triangular2", "exp_range"))
        _checks.number(n, "gamma", self.gamma, lo=0, hi=1, lo_open=True)

    def _at(self, t):
        top = as_float(self.max_momentum)
        return top - (top - as_float(self.base_momentum)) * _triangle(
            t, self.step_size_up, self.step_size_down, self.mode, self.gamma)


one_cycle = OneCycle
cyclic = Cyclic
one_cycle_momentum = OneCycleMomentum
cyclic_momentum = CyclicMomentum
