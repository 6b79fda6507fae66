"""Hypothesis strategies over every schedule family's accepted hyperparameters.

`FAMILIES[name](draw, extreme)` draws one accepted configuration and returns
`(schedule, reference(step) -> float, bound)`: the jaxsched schedule, its
float64 reference (tests/reference.py) and the largest value it can take
(None where it is unbounded: the noisy schedule). With `extreme`, value
ranges reach far towards float32's limits (for finiteness checks); without,
fractional step counts and factors are multiples of 1/8, so that floor/ceil
decisions of the float64 arithmetic agree with the exact rational reference.
"""

from __future__ import annotations

import functools

from hypothesis import strategies as st

import jaxsched as js
import reference as ref

P = functools.partial


def _value(draw, extreme, hi=10.0):
    """A learning-rate-like value >= 0 (sometimes exactly 0)."""
    top = 1e30 if extreme else hi
    return draw(st.one_of(st.just(0.0), st.floats(0.0, top, allow_subnormal=False),
                          st.floats(1e-30 if extreme else 1e-8, 1.0)))


def _steps(draw, extreme, lo=1):
    """A step count: an int, or (not extreme) a multiple of 1/8, or (extreme) any float."""
    if extreme:
        return draw(st.one_of(st.integers(lo, 2**31 - 1),
                              st.floats(1.2e-38 if lo < 1 else lo, 1e12)))
    return draw(st.one_of(st.integers(lo, 10**6), st.integers(8 * lo, 8 * 10**5).map(
        lambda k: k / 8)))


def _unit(draw):
    return draw(st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0.0, 1.0)))


def exponential(draw, extreme):
    lr, d, rate, stair = _value(draw, extreme), _steps(draw, extreme), _unit(draw), draw(
        st.booleans())
    return (js.exponential_decay(lr, d, rate, stair),
            P(ref.exponential_decay, lr, d, rate, stair), lr)


def natural(draw, extreme):
    lr, d, stair = _value(draw, extreme), _steps(draw, extreme), draw(st.booleans())
    rate = draw(st.floats(0.0, 1e30 if extreme else 10.0))
    return (js.natural_exp_decay(lr, d, rate, stair), P(ref.natural_exp_decay, lr, d, rate, stair),
            lr)


def inverse_time(draw, extreme):
    lr, d, stair = _value(draw, extreme), _steps(draw, extreme), draw(st.booleans())
    rate = draw(st.floats(0.0, 1e30 if extreme else 10.0))
    return (js.inverse_time_decay(lr, d, rate, stair),
            P(ref.inverse_time_decay, lr, d, rate, stair), lr)


def polynomial(draw, extreme):
    lr, end, d = _value(draw, extreme), _value(draw, extreme), _steps(draw, extreme)
    power = draw(st.one_of(st.sampled_from([1.0, 2.0, 0.5]),
                           st.floats(1e-3, 1e3 if extreme else 5.0)))
    cycle = draw(st.booleans())
    return (js.polynomial_decay(lr, d, end, power, cycle),
            P(ref.polynomial_decay, lr, d, end, power, cycle), max(lr, end))


def cosine(draw, extreme):
    lr, d, alpha = _value(draw, extreme), _steps(draw, extreme), _unit(draw)
    return js.cosine_decay(lr, d, alpha), P(ref.cosine_decay, lr, d, alpha), lr


def restarts(draw, extreme):
    lr, m, alpha = _value(draw, extreme), _unit(draw), _unit(draw)
    first = draw(st.one_of(st.integers(1, 10**5), st.integers(8, 8 * 10**4).map(lambda k: k / 8)))
    t_mul = draw(st.one_of(st.sampled_from([1.0, 2.0, 3.0]),
                           st.integers(8, 32).map(lambda k: k / 8)))
    if extreme:
        t_mul = draw(st.one_of(st.just(t_mul), st.floats(1e-3, 1e3)))
        first = draw(st.one_of(st.just(first), st.floats(1e-3, 1e9)))
    return (js.cosine_decay_restarts(lr, first, t_mul, m, alpha),
            P(ref.cosine_decay_restarts, lr, first, t_mul, m, alpha), lr)


def linear_cosine(draw, extreme):
    lr, d = _value(draw, extreme, 1.0), _steps(draw, extreme)
    periods = draw(st.floats(0.0, 1e6 if extreme else 4.0))
    alpha, beta = draw(st.floats(0.0, 2.0)), draw(st.floats(0.0, 1.0))
    return (js.linear_cosine_decay(lr, d, periods, alpha, beta),
            P(ref.linear_cosine_decay, lr, d, periods, alpha, beta), lr * (1 + alpha + beta))


def noisy(draw, extreme):
    lr, d = draw(st.floats(0.0, 1e6 if extreme else 10.0)), _steps(draw, extreme)
    seed = draw(st.integers(-(2**63), 2**64 - 1))
    variance = draw(st.floats(0.0, 1e6 if extreme else 4.0))
    decay = draw(st.floats(0.0, 4.0))
    return (js.noisy_linear_cosine_decay(lr, d, variance, decay, seed=seed), None, None)


def piecewise(draw, extreme):
    n = draw(st.sampled_from([0, 3, 12]))  # few table sizes: few compilations
    raw = draw(st.lists(st.integers(0, 2**31 - 1) if extreme or draw(st.booleans())
                        else st.integers(0, 8 * 10**6).map(lambda k: k / 8),
                        min_size=n, max_size=n, unique=True))
    bounds = sorted(raw)
    values = [_value(draw, extreme) for _ in range(n + 1)]
    return (js.piecewise_constant(bounds, values), P(ref.piecewise_constant, bounds, values),
            max(values))


def one_cycle(draw, extreme):
    lr, n = _value(draw, extreme), draw(st.integers(1, 2**31 - 1 if extreme else 10**6))
    three = draw(st.booleans())
    top = (n + 1) / (2 * n) if three else 1.0
    pct = draw(st.floats(1e-6, top, exclude_max=True))
    strategy = draw(st.sampled_from(["cos", "linear"]))
    div, fdiv = draw(st.floats(1e-3, 1e6)), draw(st.floats(1e-3, 1e6))
    return (js.one_cycle(lr, n, pct, strategy, div, fdiv, three),
            P(ref.one_cycle, lr, n, pct, strategy, div, fdiv, three),
            max(lr, lr / div, lr / div / fdiv))


def cyclic(draw, extreme):
    base, top = _value(draw, extreme), _value(draw, extreme)
    up = _steps(draw, extreme) if not extreme else draw(st.integers(1, 2**30))
    down = draw(st.one_of(st.none(), st.just(up) if extreme else st.one_of(
        st.integers(1, 10**6), st.integers(8, 8 * 10**5).map(lambda k: k / 8))))
    mode = draw(st.sampled_from(["triangular", "triangular2", "exp_range"]))
    gamma = draw(st.one_of(st.just(1.0), st.floats(1e-6, 1.0)))
    return (js.cyclic(base, top, up, down, mode, gamma),
            P(ref.cyclic, base, top, up, down, mode, gamma), max(base, top))


def constant(draw, extreme):
    v = _value(draw, extreme)
    return js.constant(v), P(ref.constant, v), v


def warmup(draw, extreme):
    inner, inner_ref, bound = draw(st.sampled_from([cosine, polynomial, constant]))(draw, extreme)
    w = draw(st.integers(0, 2**31 - 1 if extreme else 10**6))
    init = _value(draw, extreme)
    return (js.warmup(inner, w, init), lambda t: ref.warmup(inner_ref, w, init, t),
            max(bound, init))


def wsd(draw, extreme):
    peak, init, end = (_value(draw, extreme) for _ in range(3))
    top = 2**31 - 1 if extreme else 10**6
    w, s = draw(st.integers(0, top // 3)), draw(st.integers(0, top // 3))
    d = draw(st.integers(0, top // 3))
    decay = draw(st.sampled_from(["linear", "cosine", "sqrt"]))
    return (js.warmup_stable_decay(peak, w, s, d, init, end, decay),
            P(ref.warmup_stable_decay, peak, w, s, d, init, end, decay), max(peak, init, end))


def inverse_sqrt(draw, extreme):
    peak, w = _value(draw, extreme), draw(st.integers(1, 2**31 - 1 if extreme else 10**6))
    return js.inverse_sqrt(peak, w), P(ref.inverse_sqrt, peak, w), peak


def join(draw, extreme):
    parts = [draw(st.sampled_from([cosine, constant, exponential]))(draw, extreme)
             for _ in range(draw(st.integers(1, 3)))]
    bounds = sorted(draw(st.lists(st.integers(0, 10**6), min_size=len(parts) - 1,
                                  max_size=len(parts) - 1, unique=True)))
    return (js.join([p[0] for p in parts], bounds),
            lambda t: ref.join([p[1] for p in parts], bounds, t), max(p[2] for p in parts))


FAMILIES = {
    "exponential_decay": exponential, "natural_exp_decay": natural,
    "inverse_time_decay": inverse_time, "polynomial_decay": polynomial,
    "cosine_decay": cosine, "cosine_decay_restarts": restarts,
    "linear_cosine_decay": linear_cosine, "noisy_linear_cosine_decay": noisy,
    "piecewise_constant": piecewise, "one_cycle": one_cycle, "cyclic": cyclic,
    "constant": constant, "warmup": warmup, "warmup_stable_decay": wsd,
    "inverse_sqrt": inverse_sqrt, "join": join,
}
