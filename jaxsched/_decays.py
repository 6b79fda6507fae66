"""TensorFlow's learning-rate decays, with `tf.compat.v1.train` semantics.

`t` is the step (negative steps count as 0), `lr` the initial learning rate.
Where TensorFlow's float formula is fragile (restart boundaries, `0 ** power`,
periodic schedules at large steps) these compute the exact value instead.
"""

from __future__ import annotations

import dataclasses

import functools
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsched import _checks
from jaxsched._numerics import (Array, as_count, as_float, float_dtype, is_integer, ratio,
                                split_period)
from jaxsched._schedule import Schedule, optional, schedule_class, static


def _progress(t: Array, decay_steps: Any, staircase: bool) -> Array:
    """`t / decay_steps`, floored (exactly, for integers) when `staircase`."""
    if staircase:
        k, _ = split_period(t, decay_steps)
        p = k.astype(float_dtype())
    else:
        p = ratio(t, decay_steps)
    # A tiny decay_steps can overflow t / decay_steps: keep it finite, so that
    # a zero rate times it is 0, not NaN.
    return jnp.minimum(p, jnp.finfo(float_dtype()).max)


def _clamp(t: Array, limit: Any) -> Array:
    """`min(t, limit)` in the arithmetic of `t` and `limit` (exact for ints)."""
    lim = as_count(limit)
    if jnp.issubdtype(lim.dtype, jnp.integer) and jnp.issubdtype(t.dtype, jnp.integer):
        return jnp.minimum(t, lim)
    return jnp.minimum(t.astype(float_dtype()), lim.astype(float_dtype()))


@jax.custom_jvp
def _safe_pow(x: Array, y: Array) -> Array:
    """`x ** y` for `x >= 0` whose derivatives are finite at `x = 0`.

    d/dx = y * x ** (y - 1) (0 at y = 0; capped at the largest float where it
    is infinite, x = 0 and y < 1); d/dy = log(x) * x ** y (0 at x = 0). A NaN
    here would reach every hyperparameter's derivative through forward mode.
    """
    return jnp.power(x, y)


@_safe_pow.defjvp
def _safe_pow_jvp(primals, tangents):
    x, y = primals
    dx, dy = tangents
    ans = jnp.power(x, y)
    top = jnp.finfo(ans.dtype).max
    dfdx = jnp.where(y == 0, 0, jnp.minimum(y * jnp.power(x, y - 1), top))
    dfdy = jnp.where(x > 0, jnp.log(jnp.where(x > 0, x, 1)) * ans, 0)
    return ans, dfdx * dx + dfdy * dy


def _check_rate_args(owner: str, learning_rate: Any, decay_steps: Any,
                     steps_name: str = "decay_steps") -> None:
    _checks.number(owner, "learning_rate", learning_rate, lo=0)
    _checks.number(owner, steps_name, decay_steps, lo=0, lo_open=True)
    _checks.float32_range(owner, "learning_rate", learning_rate)
    _checks.float32_range(owner, steps_name, decay_steps, divisor=True)


def _check_floats(owner: str, **values: Any) -> None:
    """Every value within float32's range (after its `_checks.number` check)."""
    for name, value in values.items():
        _checks.float32_range(owner, name, value)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class _PeriodDecay(Schedule):
    """The fields and checks of the decays of `p = t / decay_steps`."""

    learning_rate: Any
    decay_steps: Any
    decay_rate: Any
    staircase: bool = static(default=False)
    _rate_max: ClassVar[float | None] = None

    def __post_init__(self):
        _check_rate_args(self.name, self.learning_rate, self.decay_steps)
        _checks.number(self.name, "decay_rate", self.decay_rate, lo=0, hi=self._rate_max)
        _check_floats(self.name, decay_rate=self.decay_rate)
        _checks.boolean(self.name, "staircase", self.staircase)


@schedule_class("exponential_decay")
class ExponentialDecay(_PeriodDecay):
    """Exponential decay: `lr * decay_rate ** p`.

    p = t / decay_steps            (floor(p) if staircase)
    value = learning_rate * decay_rate ** p

    Args:
      learning_rate: initial value, >= 0.
      decay_steps: steps per decay period, > 0.
      decay_rate: factor per period, in [0, 1] (a rate above 1 grows without
        bound and overflows; TensorFlow accepts it).
      staircase: decay at whole periods only.

    Matches `tf.compat.v1.train.exponential_decay` and optax's
    `exponential_decay` without `transition_begin`.

    Example:
        >>> import jaxsched as js
        >>> float(js.exponential_decay(0.1, 10, 0.5)(20))
        0.02500000037252903
    """

    _rate_max: ClassVar[float] = 1.0  # a rate above 1 grows without bound

    def _at(self, t):
        p = _progress(t, self.decay_steps, self.staircase)
        return as_float(self.learning_rate) * _safe_pow(as_float(self.decay_rate), p)


@schedule_class("natural_exp_decay")
class NaturalExpDecay(_PeriodDecay):
    """Natural exponential decay: `lr * exp(-decay_rate * p)`.

    p = t / decay_steps            (floor(p) if staircase)
    value = learning_rate * exp(-decay_rate * p)

    Args:
      learning_rate: initial value, >= 0.
      decay_steps: steps per decay period, > 0.
      decay_rate: >= 0.
      staircase: decay at whole periods only.

    Matches `tf.compat.v1.train.natural_exp_decay`.

    Example:
        >>> import jaxsched as js
        >>> round(float(js.natural_exp_decay(0.1, 10, 1.0)(10)), 6)
        0.036788
    """

    def _at(self, t):
        p = _progress(t, self.decay_steps, self.staircase)
        return as_float(self.learning_rate) * jnp.exp(-as_float(self.decay_rate) * p)


@schedule_class("inverse_time_decay")
class InverseTimeDecay(_PeriodDecay):
    """Inverse-time decay: `lr / (1 + decay_rate * p)`.

    p = t / decay_steps            (floor(p) if staircase)
    value = learning_rate / (1 + decay_rate * p)

    Args:
      learning_rate: initial value, >= 0.
      decay_steps: steps per decay period, > 0.
      decay_rate: >= 0.
      staircase: decay at whole periods only.

    Matches `tf.compat.v1.train.inverse_time_decay`.

    Example:
        >>> import jaxsched as js
        >>> float(js.inverse_time_decay(0.1, 10, 1.0)(10))
        0.05000000074505806
    """

    def _at(self, t):
        p = _progress(t, self.decay_steps, self.staircase)
        return as_float(self.learning_rate) / (1 + as_float(self.decay_rate) * p)


@schedule_class("polynomial_decay")
class PolynomialDecay(Schedule):
    """Polynomial decay from `learning_rate` to `end_learning_rate`.

    without cycle: t' = min(t, decay_steps), D = decay_steps
    with cycle:    t' = t, D = decay_steps * max(1, ceil(t / decay_steps))
    value = (learning_rate - end_learning_rate) * (1 - t' / D) ** power + end_learning_rate

    With `cycle` each period starts lower than the last (it does not restart at
    `learning_rate`), as in TensorFlow; step 0 gives `learning_rate`. At
    `t' = D` the value is exactly `end_learning_rate`, also for fractional
    `power` (where a naive `0 ** power` can give NaN).

    Args:
      learning_rate: initial value, >= 0.
      decay_steps: length of the decay, > 0.
      end_learning_rate: final value, >= 0.
      power: exponent, > 0.
      cycle: restart the decay every `decay_steps` (TensorFlow's rule).

    Matches `tf.compat.v1.train.polynomial_decay`; optax's
    `polynomial_schedule` has no `cycle`.

    Example:
        >>> import jaxsched as js
        >>> round(float(js.polynomial_decay(1.0, 10, 0.0)(5)), 6)
        0.5
    """

    learning_rate: Any
    decay_steps: Any
    end_learning_rate: Any = 0.0001
    power: Any = 1.0
    cycle: bool = static(default=False)

    def __post_init__(self):
        _check_rate_args(self.name, self.learning_rate, self.decay_steps)
        _checks.number(self.name, "end_learning_rate", self.end_learning_rate, lo=0)
        _checks.number(self.name, "power", self.power, lo=0, lo_open=True)
        _check_floats(self.name, end_learning_rate=self.end_learning_rate, power=self.power)
        _checks.boolean(self.name, "cycle", self.cycle)

    def _at(self, t):
        fdt = float_dtype()
        exact = is_integer(t) and jnp.issubdtype(as_count(self.decay_steps).dtype, jnp.integer)
        if self.cycle and exact:
            # For t >= 1: t = q * D + w with w in [1, D], so ceil(t / D) = q + 1
            # and D * ceil(t / D) - t = D - w, computed exactly in integers.
            q, _ = split_period(jnp.maximum(t - 1, 0), self.decay_steps)
            w = t - q * as_count(self.decay_steps)
            remaining = (as_count(self.decay_steps) - w).astype(fdt)
            periods = (q + 1).astype(fdt)
            frac = remaining / (as_float(self.decay_steps) * periods)
            frac = jnp.where(t == 0, jnp.asarray(1, fdt), frac)
        elif self.cycle:
            # TensorFlow's rule for a fractional decay_steps or step:
            # D' = D * ceil(t / D) (1 at t = 0), frac = 1 - t / D'. The float
            # ceil is corrected by one either way where t / D rounded across
            # an integer, so that (p - 1) * D < t <= p * D.
            tf = t.astype(fdt)
            d = as_float(self.decay_steps)
            p = jnp.maximum(jnp.ceil(tf / d), 1)
            p = jnp.where((p > 1) & ((p - 1) * d >= tf), p - 1, p)
            p = jnp.where(p * d < tf, p + 1, p)
            span = d * p
            # Where t / D overflows, frac = (D' - t) / D' < D / t is 0 in this dtype.
            frac = jnp.where(jnp.isfinite(span), (span - tf) / jnp.where(
                jnp.isfinite(span), span, 1), 0)
        else:
            tc = _clamp(t, self.decay_steps)
            frac = (as_count(self.decay_steps) - tc).astype(fdt) / as_float(self.decay_steps)
        frac = jnp.clip(frac, 0, 1)
        positive = frac > 0
        shaped = jnp.where(positive, jnp.power(jnp.where(positive, frac, 1), as_float(self.power)), 0)
        end = as_float(self.end_learning_rate)
        return (as_float(self.learning_rate) - end) * shaped + end


@schedule_class("cosine_decay")
class CosineDecay(Schedule):
    """Cosine decay from `learning_rate` to `alpha * learning_rate`.

    t' = min(t, decay_steps)           (t' = t with periodic=True)
    c = (1 + cos(2 * pi * num_cycles * t' / decay_steps)) / 2
    value = learning_rate * ((1 - alpha) * c ** exponent + alpha)

    The defaults (`num_cycles=0.5`, `exponent=1`) give half a cosine and then
    a flat tail. `periodic=True` keeps the cosine going past `decay_steps`, as
    PyTorch's `CosineAnnealingLR` (back up to `learning_rate` at
    `2 * decay_steps`) and Hugging Face's cosine schedules do. `exponent` is
    optax's `cosine_decay_schedule(..., exponent=)`. Periodic with the default
    `num_cycles` is exact at every integer step; with an explicit `num_cycles`
    the phase of the whole periods is a float product, good to about 1e-6 up
    to 2**24 periods in float32 (1e-15 under x64).

    Args:
      learning_rate: initial value, >= 0.
      decay_steps: length of the decay, > 0.
      alpha: final value as a fraction of `learning_rate`, in [0, 1].
      num_cycles: cosine periods per `decay_steps` (0.5: half a cosine), >= 0.
      exponent: power on the cosine factor, > 0.
      periodic: continue the cosine past `decay_steps` instead of holding.

    Matches `tf.compat.v1.train.cosine_decay` (Loshchilov & Hutter, SGDR) and
    optax's `cosine_decay_schedule(init_value, decay_steps, alpha, exponent)`.

    Example:
        >>> import jaxsched as js
        >>> round(float(js.cosine_decay(1.0, 100)(50)), 6)
        0.5
        >>> s = js.cosine_decay(1.0, 100, periodic=True)
        >>> [round(float(s(t)), 6) for t in (100, 150, 200)]
        [0.0, 0.5, 1.0]
    """

    learning_rate: Any
    decay_steps: Any
    alpha: Any = 0.0
    num_cycles: Any = optional()
    exponent: Any = optional()
    periodic: bool = optional(False, is_static=True)

    def __post_init__(self):
        _check_rate_args(self.name, self.learning_rate, self.decay_steps)
        _checks.number(self.name, "alpha", self.alpha, lo=0, hi=1)
        if self.num_cycles is not None:
            _checks.number(self.name, "num_cycles", self.num_cycles, lo=0)
        if self.exponent is not None:
            _checks.number(self.name, "exponent", self.exponent, lo=0, lo_open=True)
        _checks.boolean(self.name, "periodic", self.periodic)

    def _at(self, t):
        fdt = float_dtype()
        if self.periodic:
            # t = k * decay_steps + r exactly; the whole periods' phase is reduced
            # mod 2 first, so the cosine stays exact at large steps.
            k, r = split_period(t, self.decay_steps)
            frac = ratio(r, self.decay_steps)
            parity = jnp.mod(k, 2).astype(fdt)  # exact for integer k
            k = k.astype(fdt)
        else:
            frac = ratio(_clamp(t, self.decay_steps), self.decay_steps)
            k = parity = jnp.zeros((), fdt)
        if self.num_cycles is None:
            phase = frac if not self.periodic else parity + frac
        else:
            cycles = 2 * as_float(self.num_cycles)
            phase = cycles * frac if not self.periodic else jnp.mod(cycles * k, 2) + cycles * frac
        c = 0.5 * (1 + jnp.cos(jnp.pi * phase))
        if self.exponent is not None:
            c = _safe_pow(c, as_float(self.exponent))
        alpha = as_float(self.alpha)
        return as_float(self.learning_rate) * ((1 - alpha) * c + alpha)


@functools.partial(jax.jit, static_argnums=2)
def _pow_by_squaring(base: Array, n: Array, bits: int) -> Array:
    """`base ** n` for integral `n >= 0` by repeated squaring (exact for exact powers)."""
    def body(_, carry):  # a rolled loop: unrolled, it takes seconds to compile
        result, base, n = carry
        odd = jnp.mod(n, 2) == 1
        result = jnp.where(odd, result * base, result)
        # Square only while bits remain: squaring on overflows to inf, and the
        # zero cotangent of an unused inf makes jax.grad NaN.
        more = n > 1
        base = jnp.where(more, base * jnp.where(more, base, 1), base)
        return result, base, jnp.floor_divide(n, 2)

    result = jnp.ones_like(base * n)
    base = jnp.broadcast_to(base.astype(result.dtype), result.shape)
    return lax.fori_loop(0, bits, body, (result, base, jnp.broadcast_to(n, result.shape)))[0]


def _sat_mul(x: Array, y: Array, top: int) -> tuple[Array, Array]:
    """`x * y` for non-negative ints, and whether it exceeded `top`."""
    over = (y > 0) & (x > top // jnp.maximum(y, 1))
    return jnp.where(over, top, x * y), over


@jax.jit
def _int_period_start(a: Array, r: Array, i: Array) -> tuple[Array, Array]:
    """Start step of period `i` for integer `first = a`, `t_mul = r` (exact).

    Returns `(start, overflow)`; `start = a * (r**i - 1) / (r - 1)` (or `a * i`
    for `r == 1`), computed with overflow detection in the integer dtype.
    """
    top = jnp.iinfo(i.dtype).max
    bits = 64 if i.dtype == jnp.int64 else 32
    # count = 1 + r + ... + r**(i-1) by Horner's rule, not (r**i - 1) / (r - 1):
    # r**i can overflow where the start itself fits (r = 2, i = 31 in int32).
    # For r >= 2 the count exceeds `top` before i reaches `bits`.
    def body(j, carry):
        geometric, over = carry
        prod, o = _sat_mul(geometric, r, top)
        o = o | (prod == top)
        active = j < i
        geometric = jnp.where(active, jnp.where(o, top, prod + 1), geometric)
        return geometric, over | (active & o)

    geometric, over = lax.fori_loop(0, bits, body, (jnp.zeros_like(i), i > bits))
    over = over & (r != 1)
    count = jnp.where(r == 1, i, geometric)
    start, o3 = _sat_mul(count, a, top)
    return start, over | o3


@schedule_class("cosine_decay_restarts")
class CosineDecayRestarts(Schedule):
    """Cosine decay with warm restarts (SGDR).

    Period i (from 0) lasts first_decay_steps * t_mul**i steps; f is the
    fraction of the current period done (f = 0 at the first step of a period).
    c = m_mul**i * (1 + cos(pi * f)) / 2
    value = learning_rate * ((1 - alpha) * c + alpha)

    The floor `alpha * learning_rate` is not scaled by `m_mul**i`; the schedule
    restarts forever. TensorFlow finds `i` with a float `log`/`floor` closed
    form that can land on the wrong side of an exact restart step; here the
    period is corrected against exactly computed period starts (integer
    arithmetic when `first_decay_steps` and `t_mul` are whole numbers and the
    step is an integer; otherwise float, where a restart whose exact start
    lies within rounding of an integer, about 1e-16 relative under x64 and
    1e-6 relative in float32, can move by a step). PyTorch's
    `CosineAnnealingWarmRestarts(T_0, T_mult, eta_min)` is `t_mul=T_mult,
    m_mul=1, alpha=eta_min/lr`.

    Args:
      learning_rate: initial value, >= 0.
      first_decay_steps: length of the first period, > 0.
      t_mul: growth factor of each period's length, > 0.
      m_mul: factor on each period's peak, in [0, 1].
      alpha: floor as a fraction of `learning_rate`, in [0, 1].

    Example:
        >>> import jaxsched as js
        >>> s = js.cosine_decay_restarts(1.0, 10, t_mul=2.0)
        >>> [round(float(s(t)), 3) for t in (0, 9, 10, 30)]
        [1.0, 0.024, 1.0, 1.0]
    """

    learning_rate: Any
    first_decay_steps: Any
    t_mul: Any = 2.0
    m_mul: Any = 1.0
    alpha: Any = 0.0

    def __post_init__(self):
        _check_rate_args(self.name, self.learning_rate, self.first_decay_steps,
                         "first_decay_steps")
        _checks.number(self.name, "t_mul", self.t_mul, lo=0, lo_open=True)
        _checks.float32_range(self.name, "t_mul", self.t_mul, divisor=True)
        _checks.number(self.name, "m_mul", self.m_mul, lo=0, hi=1)
        _checks.number(self.name, "alpha", self.alpha, lo=0, hi=1)

    def _period(self, t: Array) -> tuple[Array, Array]:
        """(i, f): the period index (float) and the fraction done in it."""
        fdt = float_dtype()
        tf = t.astype(fdt)
        a = as_float(self.first_decay_steps)
        r = as_float(self.t_mul)
        one = r == 1
        rs = jnp.where(one, 2, r)

        def start(i):
            # (the unused branch at i = 0: an overflowed r**i would make NaN derivatives)
            geometric = a * (_pow_by_squaring(rs, jnp.where(one, 0, i), 64) - 1) / (rs - 1)
            # At t_mul = 1 the start is a * i; its derivative in t_mul there is
            # a * i * (i - 1) / 2 (the limit of the geometric sum's), which the
            # zero-valued `r - stop_gradient(r)` term carries.
            level = a * (i + i * (i - 1) / 2 * (r - lax.stop_gradient(r)))
            return jnp.where(one, level, geometric)

        def reached(i):
            # tf >= start(i), cross-multiplied: XLA turns a division by a scalar
            # into a multiplication by its reciprocal, which can put an exact
            # integer restart step (first_decay_steps itself) one ulp late.
            p = _pow_by_squaring(rs, i, 64)
            return jnp.where(one, tf >= a * i, tf * jnp.abs(rs - 1) >= a * jnp.abs(p - 1))

        arg = 1 - tf / a * (1 - rs)
        tiny = jnp.finfo(fdt).tiny
        est = jnp.floor(jnp.log(jnp.maximum(arg, tiny)) / jnp.log(rs))
        i = jnp.maximum(jnp.where(one, jnp.floor(tf / a), est), 0)
        i = jnp.minimum(i, 2.0**62)
        for _ in range(2):  # correct the closed form's rounding at boundaries
            i = i - (~reached(i)).astype(fdt) + reached(i + 1).astype(fdt)
            i = jnp.maximum(i, 0)
        length = a * _pow_by_squaring(r, i, 64)
        # With t_mul < 1 the periods shrink to nothing at a finite step; past it
        # the length underflows to 0: count the (vanished) period as done.
        f = jnp.where(length > 0, (tf - start(i)) / jnp.where(length > 0, length, 1), 1)

        if is_integer(t):
            # Exact integer arithmetic for whole-number first_decay_steps and t_mul.
            idt = t.dtype
            whole = (a == jnp.round(a)) & (r == jnp.round(r)) & (r >= 1) & (a >= 1)
            top = float(jnp.iinfo(idt).max)
            ai = jnp.where(whole, jnp.clip(a, 1, top), 1).astype(idt)
            ri = jnp.where(whole, jnp.clip(r, 1, 64), 1).astype(idt)
            # t_mul == 1: the float estimate of i is off by many at large steps.
            ii = jnp.where(ri == 1, t // ai, jnp.clip(i, 0, top).astype(idt))
            for _ in range(2):
                s0, o0 = _int_period_start(ai, ri, ii)
                last = ii == jnp.iinfo(idt).max  # no period ii + 1 in this dtype
                s1, o1 = _int_period_start(ai, ri, jnp.where(last, ii, ii + 1))
                o1 = o1 | last
                ii = ii - ((t < s0) | o0).astype(idt) + ((t >= s1) & ~o1).astype(idt)
                ii = jnp.maximum(ii, 0)
            s0, _ = _int_period_start(ai, ri, ii)
            length_int = a * jnp.where(one, 1, _pow_by_squaring(rs, ii.astype(fdt), 64))
            f_int = (t - s0).astype(fdt) / length_int
            # The value is exact; the derivative in first_decay_steps and t_mul
            # is that of the formula at the same period (s0 is an integer).
            fi = jnp.where(whole, ii.astype(fdt), 0)  # finite where the value is unused
            formula = (tf - start(fi)) / (a * _pow_by_squaring(r, fi, 64))
            f_int = lax.stop_gradient(f_int) + (formula - lax.stop_gradient(formula))
            i = jnp.where(whole, ii.astype(fdt), i)
            f = jnp.where(whole, f_int, f)
        return i, jnp.clip(f, 0, 1)

    def _at(self, t):
        i, f = self._period(t)
        m = as_float(self.m_mul)
        peak = jnp.where(i == 0, 1, _safe_pow(m, i))
        c = peak * 0.5 * (1 + jnp.cos(jnp.pi * f))
        alpha = as_float(self.alpha)
        return as_float(self.learning_rate) * ((1 - alpha) * c + alpha)


@schedule_class("linear_cosine_decay")
class LinearCosineDecay(Schedule):
    """Linear cosine decay (Bello et al., 2017).

    t' = min(t, decay_steps)
    linear = (decay_steps - t') / decay_steps
    c = (1 + cos(pi * 2 * num_periods * t' / decay_steps)) / 2
    value = learning_rate * ((alpha + linear) * c + beta)

    Args:
      learning_rate: initial value, >= 0.
      decay_steps: length of the decay, > 0.
      num_periods: cosine periods in the decay, >= 0.
      alpha: added to the linear part, >= 0.
      beta: floor as a fraction of `learning_rate`, >= 0.

    Matches `tf.compat.v1.train.linear_cosine_decay`; optax has no equivalent.

    Example:
        >>> import jaxsched as js
        >>> round(float(js.linear_cosine_decay(1.0, 100)(0)), 6)
        1.001
    """

    learning_rate: Any
    decay_steps: Any
    num_periods: Any = 0.5
    alpha: Any = 0.0
    beta: Any = 0.001

    def __post_init__(self):
        _check_rate_args(self.name, self.learning_rate, self.decay_steps)
        _checks.number(self.name, "num_periods", self.num_periods, lo=0)
        _checks.number(self.name, "alpha", self.alpha, lo=0)
        _checks.number(self.name, "beta", self.beta, lo=0)
        _check_floats(self.name, num_periods=self.num_periods, alpha=self.alpha, beta=self.beta)
        values = (self.learning_rate, self.alpha, self.beta)
        if not any(_checks.is_traced(v) for v in values):
            lr, alpha, beta = (float(np.max(np.asarray(v, np.float64))) for v in values)
            _checks.custom(self.name, "learning_rate", self.learning_rate,
                           lambda _: lr * (1 + alpha + beta) <= _checks.FLOAT32_MAX,
                           f"keep learning_rate * (1 + alpha + beta) <= "
                           f"{_checks.FLOAT32_MAX:g} (float32)")

    def _parts(self, t: Array, noise: Array | float = 0.0) -> Array:
        tc = _clamp(t, self.decay_steps)
        linear = (as_count(self.decay_steps) - tc).astype(float_dtype()) / as_float(self.decay_steps)
        frac = ratio(tc, self.decay_steps)
        c = 0.5 * (1 + jnp.cos(jnp.pi * 2 * as_float(self.num_periods) * frac))
        return as_float(self.learning_rate) * (
            (as_float(self.alpha) + linear + noise) * c + as_float(self.beta))

    def _at(self, t):
        return self._parts(t)


def _is_key(seed: Any) -> bool:
    return isinstance(seed, (jax.Array, np.ndarray)) and (
        jnp.issubdtype(seed.dtype, jax.dtypes.prng_key)
        or (seed.shape == (2,) and seed.dtype == np.uint32))


@schedule_class("noisy_linear_cosine_decay")
class NoisyLinearCosineDecay(Schedule):
    """Linear cosine decay with Gaussian noise on the linear part.

    As `linear_cosine_decay` with `linear + eps` in place of `linear`:
    eps ~ Normal(0, initial_variance / (1 + t') ** variance_decay)   (a variance)

    Unlike TensorFlow, which draws new noise at every call, the noise is a
    pure function of `(seed, step)`: the same step always gives the same value,
    under `jit` or not, so runs are reproducible.

    Args:
      learning_rate, decay_steps, num_periods, alpha, beta: as in
        `linear_cosine_decay`.
      initial_variance: noise variance at step 0, >= 0.
      variance_decay: decay exponent of the variance, >= 0.
      seed: an int in [-2**63, 2**64 - 1] or a JAX PRNG key. A seed outside
        int32 is kept whole as the threefry key of its 64 bits (shown as
        `key([high, low])`), never wrapped.

    Example:
        >>> import jaxsched as js
        >>> s = js.noisy_linear_cosine_decay(1.0, 100, seed=3)
        >>> bool(s(7) == s(7))
        True
    """

    learning_rate: Any
    decay_steps: Any
    initial_variance: Any = 1.0
    variance_decay: Any = 0.55
    num_periods: Any = 0.5
    alpha: Any = 0.0
    beta: Any = 0.001
    seed: Any = 0

    # Not a subclass of LinearCosineDecay: dataclass inheritance would keep the
    # parent's field order, so positional arguments would not follow TensorFlow's
    # (learning_rate, decay_steps, initial_variance, variance_decay, ...).
    _parts = LinearCosineDecay._parts

    def __post_init__(self):
        LinearCosineDecay.__post_init__(self)
        _checks.number(self.name, "initial_variance", self.initial_variance, lo=0)
        _checks.number(self.name, "variance_decay", self.variance_decay, lo=0)
        _check_floats(self.name, initial_variance=self.initial_variance,
                      variance_decay=self.variance_decay)
        if not (_is_key(self.seed) or _checks.is_traced(self.seed)):
            _checks.seed(self.name, "seed", self.seed)
            if np.ndim(self.seed) == 0 and not -(2**31) <= int(self.seed) < 2**31:
                # JAX would wrap a seed beyond int32 (2**32 + k gives the noise of
                # k): keep all 64 bits as a threefry key [high word, low word],
                # the key `jax.random.key(seed)` makes for an int64 seed under x64.
                whole = int(self.seed) % 2**64
                data = np.asarray([whole >> 32, whole & 0xFFFFFFFF], np.uint32)
                object.__setattr__(self, "seed", jax.random.wrap_key_data(
                    data, impl="threefry2x32"))

    def _key(self) -> Array:
        seed = self.seed
        if isinstance(seed, (jax.Array, jax.core.Tracer)) and jnp.issubdtype(
                seed.dtype, jax.dtypes.prng_key):
            return seed
        if _is_key(seed) or (hasattr(seed, "shape") and getattr(seed, "shape", ()) == (2,)):
            return jax.random.wrap_key_data(jnp.asarray(seed, jnp.uint32))
        return jax.random.key(seed)

    def _at(self, t):
        key = self._key()
        flat = jnp.ravel(t)
        steps = (flat if is_integer(flat) else jnp.floor(flat)).astype(jnp.uint32)
        eps = jax.vmap(lambda s: jax.random.normal(jax.random.fold_in(key, s),
                                                   dtype=float_dtype()))(steps)
        eps = eps.reshape(t.shape)
        tc = ratio(_clamp(t, self.decay_steps), 1)
        variance = as_float(self.initial_variance) / jnp.power(1 + tc, as_float(self.variance_decay))
        # sqrt with a zero derivative at variance 0 (infinite there: no NaN).
        positive = variance > 0
        std = jnp.where(positive, jnp.sqrt(jnp.where(positive, variance, 1)), 0)
        return self._parts(t, eps * std)


exponential_decay = ExponentialDecay
natural_exp_decay = NaturalExpDecay
inverse_time_decay = InverseTimeDecay
polynomial_decay = PolynomialDecay
cosine_decay = CosineDecay
cosine_decay_restarts = CosineDecayRestarts
linear_cosine_decay = LinearCosineDecay
noisy_linear_cosine_decay = NoisyLinearCosineDecay


