"""Float64 NumPy reference implementations for the jaxsched test suite.

Written independently of the ``jaxsched`` package, from the documented
formulas in ``docs/formulas.md`` and the public documentation of TensorFlow,
PyTorch, optax, Keras and Hugging Face transformers. Every schedule takes the
same arguments as the library function plus a final ``step`` (a non-negative
Python int or float) and returns a Python float. Quantities that decide a
discrete branch (period index, cycle number, phase fraction) are computed in
exact rational arithmetic (``fractions.Fraction`` of the exact binary value of
each argument) and only then rounded to float64.

Sources, one per function:

- ``piecewise_constant``: TF ``tf.compat.v1.train.piecewise_constant``:
  ``values[0]`` if ``t <= b[0]``; ``values[i]`` if ``b[i-1] < t <= b[i]``;
  ``values[-1]`` if ``t > b[-1]``.
- ``exponential_decay``: TF ``exponential_decay``:
  ``p = t / D`` (``floor`` if staircase); ``lr0 * rate ** p``.
- ``natural_exp_decay``: TF ``natural_exp_decay``: ``lr0 * exp(-rate * p)``.
- ``inverse_time_decay``: TF ``inverse_time_decay``: ``lr0 / (1 + rate * p)``.
- ``polynomial_decay``: TF ``polynomial_decay``: without cycle
  ``t' = min(t, D)``, ``D' = D``; with cycle ``t' = t``,
  ``D' = D * (1 if t == 0 else ceil(t / D))``;
  ``(lr0 - end) * (1 - t'/D') ** power + end``; exactly ``end`` at ``t' = D'``.
- ``cosine_decay``: TF ``cosine_decay``: ``t' = min(t, D)``;
  ``c = (1 + cos(pi t'/D)) / 2``; ``lr0 * ((1 - alpha) c + alpha)``.
- ``cosine_decay_restarts``: TF ``cosine_decay_restarts`` (SGDR, Loshchilov &
  Hutter 2017): period ``i`` lasts ``first * t_mul**i``; ``f`` fraction done;
  ``c = m_mul**i (1 + cos(pi f)) / 2``; ``lr0 * ((1 - alpha) c + alpha)``.
  The period is found exactly by walking the periods with Fractions (TF's
  log-based closed form can land on the wrong side of a restart).
- ``linear_cosine_decay``: TF ``linear_cosine_decay`` (Bello et al. 2017):
  ``t' = min(t, D)``; ``linear = (D - t')/D``;
  ``c = (1 + cos(pi * 2 * num_periods * t'/D)) / 2``;
  ``lr0 * ((alpha + linear) c + beta)``.
- ``noisy_linear_cosine_decay_std``: TF ``noisy_linear_cosine_decay``: the
  noise ``eps`` added to ``linear`` has variance
  ``initial_variance / (1 + t') ** variance_decay`` (``t'`` clamped at D); this
  returns its square root. ``noiseless_linear_cosine`` is the mean.
- ``one_cycle``: PyTorch ``torch.optim.lr_scheduler.OneCycleLR`` phase walk
  (Smith & Topin 2017); steps past ``total_steps - 1`` hold the last value.
- ``cyclic``: PyTorch ``torch.optim.lr_scheduler.CyclicLR`` (Smith 2017),
  modes triangular / triangular2 / exp_range (exp_range scales by
  ``gamma ** t``, "iterations" scale mode).
- ``constant``: the value.
- ``warmup``: linear from ``init_value`` at 0 to ``inner(0)`` at
  ``warmup_steps``, then ``inner(t - warmup_steps)`` (as Keras 3 CosineDecay
  warmup / optax warmup_* schedules).
- ``join``: ``optax.join_schedules``.
- ``warmup_stable_decay``: Hugging Face ``get_wsd_schedule`` shapes (linear,
  cosine, 1-sqrt) mapped onto ``[end_value, peak_value]``.
- ``inverse_sqrt``: Hugging Face ``get_inverse_sqrt_schedule`` with
  ``timescale = warmup_steps``: ``peak * t / W`` for ``t < W`` then
  ``peak * sqrt(W / t)``.
- ``adam_step``: Kingma & Ba 2015 / ``optax.scale_by_adam`` (``eps`` outside
  the root, ``eps_root`` inside, bias correction ``1 - b**k``, k 1-based).
- ``rmsprop_step``: ``optax.scale_by_rms`` / ``scale_by_stddev`` (centered)
  (``eps`` inside the root, ``initial_scale`` starts ``v``), optional
  ``optax.trace`` momentum.
- ``adagrad_step``: ``optax.scale_by_rss`` (Duchi et al. 2011): ``s += g*g``;
  ``u = g / sqrt(s + eps)``; ``s`` starts at ``initial_accumulator_value``.
- ``momentum_step``: ``optax.trace`` / PyTorch SGD momentum (no dampening):
  ``buf = m*buf + g``; update ``buf`` or ``g + m*buf`` (Nesterov).
- ``plateau_reference`` / ``plateau_pytorch_literal``: PyTorch
  ``ReduceLROnPlateau`` on a scale that starts at 1.0; the reference has the
  two documented jaxsched deviations (NaN/inf is never an improvement and never
  becomes best; the relative threshold uses ``|best|``).
"""

from __future__ import annotations

import bisect
import math
import numbers
from fractions import Fraction

import numpy as np

__all__ = [
    "piecewise_constant",
    "exponential_decay",
    "natural_exp_decay",
    "inverse_time_decay",
    "polynomial_decay",
    "cosine_decay",
    "cosine_decay_restarts",
    "restart_steps",
    "iter_restart_steps",
    "linear_cosine_decay",
    "noisy_linear_cosine_decay_std",
    "noiseless_linear_cosine",
    "one_cycle",
    "cyclic",
    "constant",
    "warmup",
    "join",
    "warmup_stable_decay",
    "inverse_sqrt",
    "cosine_decay_general",
    "warmup_shaped",
    "warmup_stable_decay_general",
    "inverse_sqrt_general",
    "piecewise_interpolate",
    "shift",
    "cooldown",
    "one_cycle_momentum",
    "cyclic_momentum",
    "adam_step",
    "rmsprop_step",
    "adagrad_step",
    "momentum_step",
    "plateau_reference",
    "plateau_pytorch_literal",
]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _q(x) -> Fraction:
    """Exact rational value of a Python/NumPy int or float (its binary value)."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"expected a number, got {x!r}")
    if isinstance(x, numbers.Integral):
        return Fraction(int(x))
    xf = float(x)
    if not math.isfinite(xf):
        raise ValueError(f"expected a finite number, got {x!r}")
    return Fraction(xf)


def _check_step(step) -> Fraction:
    s = _q(step)
    if s < 0:
        raise ValueError(f"step must be >= 0, got {step!r}")
    return s


def _floor(q: Fraction) -> int:
    return q.numerator // q.denominator


def _ceil(q: Fraction) -> int:
    return -((-q.numerator) // q.denominator)


# --------------------------------------------------------------------------
# TensorFlow decays
# --------------------------------------------------------------------------


def piecewise_constant(boundaries, values, step) -> float:
    """TF piecewise_constant: boundaries are inclusive on the right."""
    if len(values) != len(boundaries) + 1:
        raise ValueError("len(values) must be len(boundaries) + 1")
    t = _check_step(step)
    for i, b in enumerate(boundaries):
        if t <= _q(b):
            return float(values[i])
    return float(values[-1])


def _decay_power(decay_steps, staircase, step) -> float:
    p = _check_step(step) / _q(decay_steps)
    if staircase:
        return float(_floor(p))
    return float(p)


def exponential_decay(learning_rate, decay_steps, decay_rate, staircase, step) -> float:
    p = _decay_power(decay_steps, staircase, step)
    return float(learning_rate) * float(decay_rate) ** p


def natural_exp_decay(learning_rate, decay_steps, decay_rate, staircase, step) -> float:
    p = _decay_power(decay_steps, staircase, step)
    return float(learning_rate) * math.exp(-float(decay_rate) * p)


def inverse_time_decay(learning_rate, decay_steps, decay_rate, staircase, step) -> float:
    p = _decay_power(decay_steps, staircase, step)
    return float(learning_rate) / (1.0 + float(decay_rate) * p)


def polynomial_decay(learning_rate, decay_steps, end_learning_rate, power, cycle, step) -> float:
    """TF polynomial_decay, incl. ``cycle`` (D' = D at t == 0).

    ``1 - t'/D'`` is computed exactly; where it is 0 the result is exactly
    ``end_learning_rate`` (also for ``power == 0``, where TF would give
    ``0 ** 0 == 1``; jaxsched documents "exactly end at t' = D").
    """
    t = _check_step(step)
    d = _q(decay_steps)
    if cycle:
        n = 1 if t == 0 else _ceil(t / d)
        dd = d * n
        tt = t
    else:
        dd = d
        tt = min(t, d)
    remaining = 1 - tt / dd  # exact, in [0, 1]
    lr0 = float(learning_rate)
    end = float(end_learning_rate)
    if remaining == 0:
        return end
    return (lr0 - end) * float(remaining) ** float(power) + end


def cosine_decay(learning_rate, decay_steps, alpha, step) -> float:
    t = _check_step(step)
    d = _q(decay_steps)
    frac = float(min(t, d) / d)
    c = 0.5 * (1.0 + math.cos(math.pi * frac))
    a = float(alpha)
    return float(learning_rate) * ((1.0 - a) * c + a)


# ---- cosine decay with restarts -------------------------------------------

_RESTART_CACHE: dict = {}


class _Periods:
    """Exact period starts S_0=0, S_1, ... and lengths for t_mul != 1."""

    def __init__(self, first, t_mul):
        self.first = _q(first)
        self.t_mul = _q(t_mul)
        if self.first <= 0:
            raise ValueError("first_decay_steps must be > 0")
        if self.t_mul <= 0:
            raise ValueError("t_mul must be > 0")
        self.starts = [Fraction(0)]
        self.lengths = [self.first]
        # Sum of all periods (finite only when t_mul < 1).
        self.total = None if self.t_mul >= 1 else self.first / (1 - self.t_mul)

    def extend_past(self, step: Fraction):
        """Extend until the last known period contains ``step``."""
        if self.total is not None and step >= self.total:
            raise ValueError(
                f"t_mul < 1: the periods sum to {float(self.total)}; step {float(step)} "
                "is beyond every period")
        while step >= self.starts[-1] + self.lengths[-1]:
            self.starts.append(self.starts[-1] + self.lengths[-1])
            self.lengths.append(self.lengths[-1] * self.t_mul)

    def locate(self, step: Fraction):
        """(i, start, length) of the period containing ``step``.

        Same result as the literal walk
        ``while step >= start + length: start += length; length *= t_mul; i += 1``.
        """
        self.extend_past(step)
        i = bisect.bisect_right(self.starts, step) - 1
        return i, self.starts[i], self.lengths[i]


def _periods(first, t_mul) -> _Periods:
    key = (_q(first), _q(t_mul))
    p = _RESTART_CACHE.get(key)
    if p is None:
        p = _RESTART_CACHE[key] = _Periods(first, t_mul)
    return p


def _restart_period(first, t_mul, step: Fraction):
    """Exact (i, f) with f = (step - S_i) / L_i in [0, 1)."""
    first_q, t_mul_q = _q(first), _q(t_mul)
    if first_q <= 0:
        raise ValueError("first_decay_steps must be > 0")
    if t_mul_q == 1:
        # All periods have the same length; the walk reduces to floor division.
        i = _floor(step / first_q)
        return i, (step - i * first_q) / first_q
    i, start, length = _periods(first, t_mul).locate(step)
    return i, (step - start) / length


def cosine_decay_restarts(learning_rate, first_decay_steps, t_mul, m_mul, alpha, step) -> float:
    t = _check_step(step)
    i, f = _restart_period(first_decay_steps, t_mul, t)
    assert 0 <= f < 1
    m_fac = float(m_mul) ** i  # 0.0 ** 0 == 1.0
    c = 0.5 * m_fac * (1.0 + math.cos(math.pi * float(f)))
    a = float(alpha)
    return float(learning_rate) * ((1.0 - a) * c + a)


def iter_restart_steps(first_decay_steps, t_mul, limit):
    """Lazily yield the distinct integer steps ceil(S_i) < limit, i >= 1, ascending.

    ``S_i`` is the exact rational start of period ``i`` (``S_1 = first``).
    ``ceil(S_i)`` is the first integer step of period ``i`` (unless a later
    period starts at or before it, which needs periods shorter than 1 step;
    duplicates are dropped).
    """
    first = _q(first_decay_steps)
    tm = _q(t_mul)
    lim = _q(limit)
    if first <= 0:
        raise ValueError("first_decay_steps must be > 0")
    if tm < 1:
        raise ValueError("restart_steps supports t_mul >= 1 only")
    last = None
    if tm == 1:
        k = 1
        while k * first < lim:
            b = _ceil(k * first)
            if b < lim and b != last:
                yield b
                last = b
            k += 1
        return
    start, length = first, first * tm  # S_1 and L_1
    while start < lim:
        b = _ceil(start)
        if b < lim and b != last:
            yield b
            last = b
        start += length
        length *= tm


def restart_steps(first_decay_steps, t_mul, limit, max_count=None) -> list:
    """Sorted list of integer restart steps ``ceil(S_i) < limit`` (i >= 1).

    ``max_count`` caps the number returned (the first ``max_count``). With
    ``t_mul == 1`` there are about ``limit / first`` of them: without
    ``max_count`` more than 10**6 raises ValueError (use
    ``iter_restart_steps`` or pass ``max_count``).
    """
    out = []
    for b in iter_restart_steps(first_decay_steps, t_mul, limit):
        if max_count is not None and len(out) >= max_count:
            break
        if max_count is None and len(out) >= 10**6:
            raise ValueError("more than 10**6 restart steps; pass max_count")
        out.append(b)
    return out


def linear_cosine_decay(learning_rate, decay_steps, num_periods, alpha, beta, step) -> float:
    t = _check_step(step)
    d = _q(decay_steps)
    tt = min(t, d)
    linear = float((d - tt) / d)
    frac = float(2 * _q(num_periods) * tt / d)
    c = 0.5 * (1.0 + math.cos(math.pi * frac))
    return float(learning_rate) * ((float(alpha) + linear) * c + float(beta))


def noisy_linear_cosine_decay_std(initial_variance, variance_decay, decay_steps, step) -> float:
    """Standard deviation of the noise ``eps`` added to ``linear``.

    ``sqrt(initial_variance / (1 + min(t, decay_steps)) ** variance_decay)``.
    The learning-rate noise is ``lr0 * c * eps`` (``c`` the cosine factor).
    """
    t = _check_step(step)
    tt = float(min(t, _q(decay_steps)))
    return math.sqrt(float(initial_variance) / (1.0 + tt) ** float(variance_decay))


def noiseless_linear_cosine(learning_rate, decay_steps, num_periods, alpha, beta, step) -> float:
    """Mean of the noisy linear cosine decay: the linear cosine decay."""
    return linear_cosine_decay(learning_rate, decay_steps, num_periods, alpha, beta, step)


# --------------------------------------------------------------------------
# PyTorch schedules
# --------------------------------------------------------------------------


def _anneal_cos(start, end, pct):
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)


def _anneal_linear(start, end, pct):
    return (end - start) * pct + start


def one_cycle(max_lr, total_steps, pct_start, anneal_strategy, div_factor,
              final_div_factor, three_phase, step) -> float:
    """PyTorch OneCycleLR learning rate after ``step`` scheduler steps.

    Phase ends (float64, as PyTorch computes them): ``pct_start*N - 1`` and
    ``N - 1``; with three_phase ``pct_start*N - 1``, ``2*pct_start*N - 2``,
    ``N - 1``. The first phase whose end is ``>= s`` is used (the last phase
    always), ``pct = (s - start)/(end - start)``. Steps past ``N - 1`` hold the
    value at ``N - 1``. A zero-length phase (PyTorch divides by zero) is taken
    at its end value (``pct = 1``), which equals the next phase's start value.
    """
    n = int(total_steps)
    if n != total_steps or n < 1:
        raise ValueError("total_steps must be a positive int")
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError("anneal_strategy must be 'cos' or 'linear'")
    anneal = _anneal_cos if anneal_strategy == "cos" else _anneal_linear
    max_lr = float(max_lr)
    initial = max_lr / float(div_factor)
    min_lr = initial / float(final_div_factor)
    pct_start = float(pct_start)
    if three_phase:
        phases = [
            (float(pct_start * n) - 1, initial, max_lr),
            (float(2 * pct_start * n) - 2, max_lr, initial),
            (n - 1, initial, min_lr),
        ]
    else:
        phases = [
            (float(pct_start * n) - 1, initial, max_lr),
            (n - 1, max_lr, min_lr),
        ]
    s = float(min(_check_step(step), n - 1))
    start_step = 0.0
    for i, (end_step, a, b) in enumerate(phases):
        if s <= end_step or i == len(phases) - 1:
            if end_step == start_step:
                pct = 1.0
            else:
                pct = (s - start_step) / (end_step - start_step)
            return anneal(a, b, pct)
        start_step = end_step
    raise AssertionError("unreachable")


def cyclic(base_lr, max_lr, step_size_up, step_size_down, mode, gamma, step) -> float:
    """PyTorch CyclicLR learning rate after ``step`` scheduler steps.

    ``cycle``, ``x`` and the triangle height ``s`` are exact rationals;
    ``s = x/ratio`` if ``x <= ratio`` else ``(x-1)/(ratio-1)``.
    triangular2 scales by ``2 ** -(cycle-1)`` (underflows to 0, never
    overflows); exp_range by ``gamma ** t``.
    """
    up = _q(step_size_up)
    down = up if step_size_down is None else _q(step_size_down)
    total = up + down
    if total <= 0:
        raise ValueError("step_size_up + step_size_down must be > 0")
    t = _check_step(step)
    cycle = _floor(1 + t / total)
    x = 1 + t / total - cycle  # in [0, 1)
    ratio = up / total
    if x <= ratio:
        # ratio == 0 (no up phase) only reaches here at x == 0: the peak.
        s = x / ratio if ratio > 0 else Fraction(1)
    else:
        s = (x - 1) / (ratio - 1)
    if mode == "triangular":
        scale = 1.0
    elif mode == "triangular2":
        scale = math.ldexp(1.0, -(cycle - 1))
    elif mode == "exp_range":
        scale = float(gamma) ** float(t)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    base = float(base_lr)
    height = (float(max_lr) - base) * float(s)
    return base + height * scale


# --------------------------------------------------------------------------
# combinators and warmup shapes
# --------------------------------------------------------------------------


def constant(value, step) -> float:
    _check_step(step)
    return float(value)


def warmup(inner_fn, warmup_steps, init_value, step) -> float:
    """Linear ``init_value -> inner_fn(0)`` over ``[0, W]``, then ``inner_fn(t - W)``."""
    t = _check_step(step)
    w = _q(warmup_steps)
    if t < w:
        target = float(inner_fn(0))
        init = float(init_value)
        return init + (target - init) * float(t / w)
    rest = t - w
    rest = int(rest) if rest.denominator == 1 else float(rest)
    return float(inner_fn(rest))


def join(fns, boundaries, step) -> float:
    """optax.join_schedules: later boundaries override earlier ones."""
    if len(fns) != len(boundaries) + 1:
        raise ValueError("len(fns) must be len(boundaries) + 1")
    t = _check_step(step)
    out = float(fns[0](step))
    for b, fn in zip(boundaries, fns[1:]):
        bq = _q(b)
        if t >= bq:
            rest = t - bq
            rest = int(rest) if rest.denominator == 1 else float(rest)
            out = float(fn(rest))
    return out


def warmup_stable_decay(peak_value, warmup_steps, stable_steps, decay_steps,
                        init_value, end_value, decay, step) -> float:
    """Linear warmup, flat at peak, then decay shape on ``[end, peak]``."""
    t = _check_step(step)
    w, st, d = _q(warmup_steps), _q(stable_steps), _q(decay_steps)
    peak, init, end = float(peak_value), float(init_value), float(end_value)
    if t < w:
        return init + (peak - init) * float(t / w)
    if t < w + st:
        return peak
    if d == 0:
        return end
    p = min(max((t - w - st) / d, Fraction(0)), Fraction(1))
    if p == 1:
        return end
    pf = float(p)
    if decay == "linear":
        shape = 1.0 - pf
    elif decay == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * pf))
    elif decay in ("sqrt", "1-sqrt"):
        shape = 1.0 - math.sqrt(pf)
    else:
        raise ValueError(f"unknown decay {decay!r}")
    return end + (peak - end) * shape


def inverse_sqrt(peak_value, warmup_steps, step) -> float:
    """``peak * t/W`` for ``t < W``; ``peak * sqrt(W/t)`` after (W > 0)."""
    t = _check_step(step)
    w = _q(warmup_steps)
    if w <= 0:
        raise ValueError("warmup_steps must be > 0")
    peak = float(peak_value)
    if t < w:
        return peak * float(t / w)
    return peak * math.sqrt(float(w / t))


# --------------------------------------------------------------------------
# shapes added with schedule arithmetic and the by-name constructors
# --------------------------------------------------------------------------


def _cos_factor(phase: Fraction) -> float:
    """(1 + cos(pi * phase)) / 2 with the exact phase reduced mod 2 first."""
    reduced = phase - 2 * _floor(phase / 2)
    return 0.5 * (1.0 + math.cos(math.pi * float(reduced)))


def cosine_decay_general(learning_rate, decay_steps, alpha, num_cycles, exponent, periodic,
                         step) -> float:
    """optax ``cosine_decay_schedule`` with ``exponent``; HF's ``num_cycles``
    (``cos(2 pi num_cycles p)``); ``periodic`` drops the clamp at ``decay_steps``
    (PyTorch ``CosineAnnealingLR``)."""
    t = _check_step(step)
    d = _q(decay_steps)
    tt = t if periodic else min(t, d)
    c = _cos_factor(2 * _q(num_cycles) * tt / d)
    c = c ** float(exponent) if c > 0 else 0.0
    a = float(alpha)
    return float(learning_rate) * ((1.0 - a) * c + a)


def _rise(p: Fraction, mode: str) -> float:
    pf = float(p)
    if mode == "linear":
        return pf
    if mode == "cosine":
        return 0.5 * (1.0 - math.cos(math.pi * pf))
    if mode == "sqrt":  # HF "1-sqrt" warmup
        return 1.0 - math.sqrt(float(1 - p))
    raise ValueError(mode)


def warmup_shaped(inner_fn, warmup_steps, init_value, mode, step) -> float:
    """Warmup from ``init_value`` to ``inner_fn(0)`` in shape ``mode`` (linear,
    cosine, 1-sqrt, or exponential: geometric interpolation), then ``inner_fn(t - W)``."""
    t = _check_step(step)
    w = _q(warmup_steps)
    if t >= w:
        rest = t - w
        return float(inner_fn(int(rest) if rest.denominator == 1 else float(rest)))
    target, init = float(inner_fn(0)), float(init_value)
    p = t / w
    if mode == "exponential":
        if target == 0:
            return init if p == 0 else 0.0
        return init * (target / init) ** float(p)
    return init + (target - init) * _rise(p, mode)


def warmup_stable_decay_general(peak_value, warmup_steps, stable_steps, decay_steps, init_value,
                                end_value, decay, warmup, num_cycles, cycles, rewarm_steps,
                                step) -> float:
    """HF ``get_wsd_schedule`` shapes on ``[end, peak]`` with WSD-S cycles: the
    phases are walked literally (warmup; then per cycle a linear re-warm from end
    to peak before every cycle but the first, stable, decay; end afterwards)."""
    t = _check_step(step)
    w = _q(warmup_steps)
    peak, init, end = float(peak_value), float(init_value), float(end_value)
    if t < w:
        return init + (peak - init) * _rise(t / w, warmup)
    u = t - w
    for k in range(int(cycles)):
        r = _q(rewarm_steps) if k > 0 else Fraction(0)
        if u < r:
            return end + (peak - end) * float(u / r)
        u -= r
        if u < _q(stable_steps):
            return peak
        u -= _q(stable_steps)
        d = _q(decay_steps)
        if u < d:
            p = u / d
            if decay == "linear":
                shape = 1.0 - float(p)
            elif decay == "cosine":
                shape = _cos_factor(2 * _q(num_cycles) * p)
            else:
                shape = 1.0 - math.sqrt(float(p))
            return end + (peak - end) * shape
        u -= d
    return end


def inverse_sqrt_general(peak_value, warmup_steps, timescale, shift, min_value, step) -> float:
    """HF ``get_inverse_sqrt_schedule``: ``peak * t / W`` for ``t < W``, then
    ``peak / sqrt((t + shift) / timescale)`` (HF: ``shift = timescale - W``),
    floored at ``min_value``."""
    t = _check_step(step)
    w = _q(warmup_steps)
    peak = float(peak_value)
    if t < w:
        return peak * float(t / w)
    ts = _q(timescale)
    sh = ts - w if shift is None else _q(shift)
    return max(float(min_value), peak / math.sqrt(float((t + sh) / ts)))


def piecewise_interpolate(interpolate_type, init_value, boundaries_and_scales, step) -> float:
    """optax ``piecewise_interpolate_schedule``: accumulated scales, interpolated
    linearly or by a half cosine between boundaries; the last value after them."""
    t = _check_step(step)
    bounds = [Fraction(0)] + [_q(b) for b in sorted(boundaries_and_scales)]
    values = [float(init_value)]
    for b in sorted(boundaries_and_scales):
        values.append(values[-1] * float(boundaries_and_scales[b]))
    for i in range(len(bounds) - 1):
        if bounds[i] <= t < bounds[i + 1]:
            pct = float((t - bounds[i]) / max(bounds[i + 1] - bounds[i], Fraction(1)))
            if interpolate_type == "cosine":
                pct = 0.5 * (1.0 - math.cos(math.pi * pct))
            return values[i] + (values[i + 1] - values[i]) * pct
    return values[-1]


def shift(inner_fn, offset, step) -> float:
    """``inner_fn(max(t + offset, 0))``."""
    t = _check_step(step)
    moved = max(t + int(offset), Fraction(0))
    return float(inner_fn(int(moved) if moved.denominator == 1 else float(moved)))


def cooldown(inner_fn, total_steps, cooldown_steps, shape, step) -> float:
    """Hägele et al. 2024 cooldown: from ``inner_fn(c)`` (c = total - cooldown)
    to 0 at ``total``, linear or ``1 - sqrt``; 0 afterwards."""
    t = _check_step(step)
    total, n = int(total_steps), int(cooldown_steps)
    c = total - n
    if t < c:
        return float(inner_fn(int(t) if t.denominator == 1 else float(t)))
    if t >= total:
        return 0.0
    p = float((t - c) / n)
    factor = 1.0 - p if shape == "linear" else 1.0 - math.sqrt(p)
    return float(inner_fn(c)) * factor


def one_cycle_momentum(total_steps, pct_start, anneal_strategy, base_momentum, max_momentum,
                       three_phase, step) -> float:
    """The momentum PyTorch ``OneCycleLR(cycle_momentum=True)`` sets: the same
    phase walk as ``one_cycle`` from max to base momentum and back (three_phase:
    max -> base -> max, then flat at max)."""
    n = int(total_steps)
    anneal = _anneal_cos if anneal_strategy == "cos" else _anneal_linear
    lo, hi = float(base_momentum), float(max_momentum)
    pct_start = float(pct_start)
    if three_phase:
        phases = [(float(pct_start * n) - 1, hi, lo), (float(2 * pct_start * n) - 2, lo, hi),
                  (n - 1, hi, hi)]
    else:
        phases = [(float(pct_start * n) - 1, hi, lo), (n - 1, lo, hi)]
    s = float(min(_check_step(step), n - 1))
    start_step = 0.0
    for i, (end_step, a, b) in enumerate(phases):
        if s <= end_step or i == len(phases) - 1:
            pct = 1.0 if end_step == start_step else (s - start_step) / (end_step - start_step)
            return anneal(a, b, pct)
        start_step = end_step
    raise AssertionError("unreachable")


def cyclic_momentum(base_momentum, max_momentum, step_size_up, step_size_down, mode, gamma,
                    step) -> float:
    """The momentum PyTorch ``CyclicLR(cycle_momentum=True)`` sets:
    ``max_m - (max_m - base_m) * height * scale`` (height and scale of CyclicLR)."""
    height = cyclic(0.0, 1.0, step_size_up, step_size_down, mode, gamma, step)
    hi = float(max_momentum)
    return hi - (hi - float(base_momentum)) * height


# --------------------------------------------------------------------------
# single-step update rules (update direction is multiplied by -lr)
# --------------------------------------------------------------------------


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def adam_step(grads, state, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0):
    """One Adam step. ``state``: None or dict(m, v, count).

    m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; k = count + 1;
    u = (m/(1-b1^k)) / (sqrt(v/(1-b2^k) + eps_root) + eps).
    """
    g = _f64(grads)
    if state is None:
        state = dict(m=np.zeros_like(g), v=np.zeros_like(g), count=0)
    m = b1 * _f64(state["m"]) + (1.0 - b1) * g
    v = b2 * _f64(state["v"]) + (1.0 - b2) * g * g
    k = int(state["count"]) + 1
    m_hat = m / (1.0 - b1 ** k)
    v_hat = v / (1.0 - b2 ** k)
    u = m_hat / (np.sqrt(v_hat + eps_root) + eps)
    return u, dict(m=m, v=v, count=k)


def rmsprop_step(grads, state, decay=0.9, eps=1e-8, initial_scale=0.0,
                 centered=False, momentum=None, nesterov=False):
    """One RMSProp step (optax convention, eps inside the root).

    v = decay v + (1-decay) g^2 (v starts at initial_scale);
    centered: mu = decay mu + (1-decay) g (mu starts at 0), v <- v - mu^2;
    u = g / sqrt(v + eps); then optional trace momentum
    (buf = momentum buf + u; u = buf, or u + momentum buf if nesterov).
    ``state``: None or dict(nu, mu, trace).
    """
    g = _f64(grads)
    if state is None:
        state = dict(nu=np.full_like(g, float(initial_scale)), mu=np.zeros_like(g),
                     trace=np.zeros_like(g))
    nu = decay * _f64(state["nu"]) + (1.0 - decay) * g * g
    mu = _f64(state["mu"])
    if centered:
        mu = decay * mu + (1.0 - decay) * g
        u = g / np.sqrt(nu - mu * mu + eps)
    else:
        u = g / np.sqrt(nu + eps)
    trace = _f64(state["trace"])
    if momentum is not None:
        trace = momentum * trace + u
        u = u + momentum * trace if nesterov else trace
    return u, dict(nu=nu, mu=mu, trace=trace)


def adagrad_step(grads, state, initial_accumulator_value=0.1, eps=1e-7):
    """One AdaGrad step: s += g^2 (s starts at initial_accumulator_value);
    u = g / sqrt(s + eps), and u = 0 where s == 0 (optax's guard).
    ``state``: None or dict(s)."""
    g = _f64(grads)
    if state is None:
        state = dict(s=np.full_like(g, float(initial_accumulator_value)))
    s = _f64(state["s"]) + g * g
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(s > 0, g / np.sqrt(s + eps), 0.0)
    return u, dict(s=s)


def momentum_step(grads, state, momentum=0.9, nesterov=False):
    """One heavy-ball step: buf = m buf + g; u = buf, or g + m buf (Nesterov).
    ``state``: None or dict(buf)."""
    g = _f64(grads)
    if state is None:
        state = dict(buf=np.zeros_like(g))
    buf = momentum * _f64(state["buf"]) + g
    u = g + momentum * buf if nesterov else buf
    return u, dict(buf=buf)


# --------------------------------------------------------------------------
# ReduceLROnPlateau
# --------------------------------------------------------------------------


class plateau_reference:
    """PyTorch ReduceLROnPlateau on a scale starting at 1.0, jaxsched variant.

    Per ``step(value)``: if better, ``best = value``, ``bad = 0``, else
    ``bad += 1``; if ``cooldown_left > 0``: ``cooldown_left -= 1``,
    ``bad = 0``; if ``bad > patience``: ``new = max(scale*factor, min_scale)``,
    applied only if ``scale - new > eps``; ``cooldown_left = cooldown``,
    ``bad = 0``. Returns the scale.

    Deviations from PyTorch (documented by jaxsched): a NaN/inf value is never
    better and never becomes best; the relative threshold uses ``|best|``
    (min: ``a < best - |best| thr``, max: ``a > best + |best| thr``). While
    ``best`` is still the initial ``+inf`` (min) / ``-inf`` (max) any finite
    value is better (``inf - inf*thr`` would be NaN).
    """

    literal = False

    def __init__(self, factor=0.1, patience=10, mode="min", threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_scale=0.0, eps=1e-8):
        if mode not in ("min", "max"):
            raise ValueError("mode must be 'min' or 'max'")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError("threshold_mode must be 'rel' or 'abs'")
        self.factor = float(factor)
        self.patience = int(patience)
        self.mode = mode
        self.threshold = float(threshold)
        self.threshold_mode = threshold_mode
        self.cooldown = int(cooldown)
        self.min_scale = float(min_scale)
        self.eps = float(eps)
        self.scale = 1.0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad = 0
        self.cooldown_left = 0

    def is_better(self, a: float, best: float) -> bool:
        thr = self.threshold
        if self.literal:
            if self.mode == "min" and self.threshold_mode == "rel":
                return a < best * (1.0 - thr)
            if self.mode == "min":
                return a < best - thr
            if self.threshold_mode == "rel":
                return a > best * (thr + 1.0)
            return a > best + thr
        if not math.isfinite(a):
            return False
        if not math.isfinite(best):  # the initial +-inf
            return True
        if self.threshold_mode == "rel":
            margin = abs(best) * thr
        else:
            margin = thr
        if self.mode == "min":
            return a < best - margin
        return a > best + margin

    def step(self, value) -> float:
        a = float(value)
        if self.is_better(a, self.best):
            self.best = a
            self.num_bad = 0
        else:
            self.num_bad += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.num_bad = 0
        if self.num_bad > self.patience:
            new = max(self.scale * self.factor, self.min_scale)
            if self.scale - new > self.eps:
                self.scale = new
            self.cooldown_left = self.cooldown
            self.num_bad = 0
        return self.scale


class plateau_pytorch_literal(plateau_reference):
    """The literal PyTorch ReduceLROnPlateau rule (no deviations), on a scale.

    Equal to PyTorch with initial lr 1.0 (``min_lr = min_scale``,
    ``eps`` absolute on the scale). Use on positive, finite sequences.
    """

    literal = True
