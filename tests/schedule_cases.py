"""The schedule registry shared by the schedule test modules.

`CASES` lists every schedule family in several configurations with the
matching `reference` function (a float64 NumPy implementation written from
docs/formulas.md); the value tests in test_schedule_values.py, the object
tests in test_schedule_objects.py and the x64 tests run over it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

import jaxsched as js
import reference as ref

INT32_MAX = 2**31 - 1
LOG_STEPS = np.unique(np.geomspace(1, INT32_MAX, 200).astype(np.int64))


@dataclasses.dataclass(frozen=True)
class Case:
    """One schedule configuration and its float64 reference.

    make: builds the jaxsched schedule. ref: reference value at a Python int
    step. T: the schedule's natural length (steps [0, 3T] are checked).
    scale: the largest value it takes (tolerances are relative to it).
    marks: boundary, restart or milestone steps (checked at b-1, b, b+1).
    """

    id: str
    make: Callable[[], Any]
    ref: Callable[[int], float]
    T: int
    scale: float
    marks: tuple = ()
    f32_limit: int = INT32_MAX
    f32_tol: float = 1e-6

    def steps(self, limit: int = INT32_MAX) -> np.ndarray:
        """Every step in [0, 3T], log-spaced steps to `limit`, and b-1, b, b+1."""
        near = [b + d for b in self.marks for d in (-1, 0, 1)]
        s = np.concatenate([np.arange(3 * self.T + 1), LOG_STEPS, np.asarray(near, np.int64)])
        return np.unique(s[(s >= 0) & (s <= limit)])

    def expected(self, steps) -> np.ndarray:
        return np.array([self.ref(int(t)) for t in steps], np.float64)


def _p(*args):
    """Curry a reference function over its hyperparameters (step comes last)."""
    fn, params = args[0], args[1:]
    return lambda t: fn(*params, t)


def _restart_marks(first, t_mul, limit):
    return tuple(ref.restart_steps(first, t_mul, limit, max_count=200))


def _cases() -> list[Case]:
    c: list[Case] = []
    add = c.append

    # ---- exponential / natural exp / inverse time, with and without staircase
    for stair in (False, True):
        tag = "stair" if stair else "smooth"
        for lr, d, rate in ((0.1, 100, 0.96), (1.0, 7, 0.5), (2.0, 1, 0.75), (0.5, 50, 0.0),
                            (0.25, 30, 1.0)):
            add(Case(f"exponential_decay-{tag}-{lr}-{d}-{rate}",
                     lambda lr=lr, d=d, rate=rate, stair=stair: js.exponential_decay(
                         lr, d, rate, staircase=stair),
                     _p(ref.exponential_decay, lr, d, rate, stair), max(3 * d, 30), lr,
                     (d, 2 * d, 10 * d) if stair else ()))
        for lr, d, rate in ((0.1, 100, 0.5), (2.0, 13, 3.0), (1.0, 1, 0.0)):
            add(Case(f"natural_exp_decay-{tag}-{lr}-{d}-{rate}",
                     lambda lr=lr, d=d, rate=rate, stair=stair: js.natural_exp_decay(
                         lr, d, rate, staircase=stair),
                     _p(ref.natural_exp_decay, lr, d, rate, stair), max(3 * d, 30), lr,
                     (d, 2 * d, 5 * d) if stair else ()))
        for lr, d, rate in ((0.1, 100, 0.5), (1.0, 13, 4.0), (0.3, 1, 1e-3)):
            add(Case(f"inverse_time_decay-{tag}-{lr}-{d}-{rate}",
                     lambda lr=lr, d=d, rate=rate, stair=stair: js.inverse_time_decay(
                         lr, d, rate, staircase=stair),
                     _p(ref.inverse_time_decay, lr, d, rate, stair), max(3 * d, 30), lr,
                     (d, 2 * d, 5 * d) if stair else ()))

    # ---- polynomial decay
    for lr, d, end, power, cycle in ((0.1, 100, 0.001, 1.0, False), (0.1, 100, 0.0, 2.0, False),
                                     (1.0, 37, 0.01, 0.5, False), (1.0, 37, 0.0, 0.5, False),
                                     (0.01, 20, 0.5, 1.5, False),
                                     (0.1, 100, 0.001, 1.0, True), (1.0, 25, 0.0, 0.5, True),
                                     (1.0, 10, 0.1, 3.0, True), (1.0, 1, 0.0, 0.5, True)):
        add(Case(f"polynomial_decay-{lr}-{d}-{end}-{power}-{'cycle' if cycle else 'nocycle'}",
                 lambda lr=lr, d=d, end=end, power=power, cycle=cycle: js.polynomial_decay(
                     lr, d, end, power, cycle=cycle),
                 _p(ref.polynomial_decay, lr, d, end, power, cycle), max(d, 20), max(lr, end),
                 (d, 2 * d, 3 * d, 1000 * d)))

    # ---- cosine decay
    for lr, d, alpha in ((0.1, 1000, 0.0), (0.1, 100, 0.1), (1.0, 1, 0.0), (0.5, 77, 1.0)):
        add(Case(f"cosine_decay-{lr}-{d}-{alpha}",
                 lambda lr=lr, d=d, alpha=alpha: js.cosine_decay(lr, d, alpha=alpha),
                 _p(ref.cosine_decay, lr, d, alpha), max(d, 20), lr, (d,)))

    # ---- cosine decay with restarts
    for lr, first, t_mul, m_mul, alpha in ((0.1, 50, 2.0, 1.0, 0.0), (0.1, 20, 1.0, 0.9, 0.1),
                                           (1.0, 10, 1.5, 0.5, 0.0), (0.1, 7, 1.125, 1.0, 0.0),
                                           (1.0, 7, 3.0, 0.8, 0.05), (1.0, 1, 2.0, 1.0, 0.0),
                                           (1.0, 3, 1.0, 0.0, 0.0), (1.0, 9, 2.5, 1.0, 1.0)):
        add(Case(f"cosine_decay_restarts-{lr}-{first}-{t_mul}-{m_mul}-{alpha}",
                 lambda lr=lr, first=first, t_mul=t_mul, m_mul=m_mul, alpha=alpha:
                 js.cosine_decay_restarts(lr, first, t_mul, m_mul, alpha),
                 _p(ref.cosine_decay_restarts, lr, first, t_mul, m_mul, alpha),
                 max(4 * first, 50), lr, _restart_marks(first, t_mul, INT32_MAX),
                 # Non-integer t_mul computes period starts in floats: in float32 a
                 # restart near an integer can move by a step (documented) and the
                 # fraction done is only good to ~2e-6 (float32 period starts); see
                 # test_restarts_fractional_t_mul_below_2_24_float32 for t_mul 1.1.
                 INT32_MAX if t_mul == int(t_mul) else 2**16,
                 1e-6 if t_mul == int(t_mul) else 1e-5))

    # ---- linear cosine (and noisy with zero noise: equals the noiseless reference)
    for lr, d, periods, alpha, beta in ((0.1, 100, 0.5, 0.0, 0.001), (1.0, 200, 2.0, 0.1, 0.01),
                                        (0.5, 1, 0.0, 0.0, 0.0)):
        scale = lr * (1 + alpha + beta)
        add(Case(f"linear_cosine_decay-{lr}-{d}-{periods}-{alpha}-{beta}",
                 lambda lr=lr, d=d, periods=periods, alpha=alpha, beta=beta:
                 js.linear_cosine_decay(lr, d, periods, alpha, beta),
                 _p(ref.linear_cosine_decay, lr, d, periods, alpha, beta), max(d, 20), scale, (d,)))
        add(Case(f"noisy_linear_cosine_decay-novariance-{lr}-{d}-{periods}",
                 lambda lr=lr, d=d, periods=periods, alpha=alpha, beta=beta:
                 js.noisy_linear_cosine_decay(lr, d, initial_variance=0.0, num_periods=periods,
                                              alpha=alpha, beta=beta, seed=5),
                 _p(ref.noiseless_linear_cosine, lr, d, periods, alpha, beta), max(d, 20), scale,
                 (d,)))

    # ---- piecewise constant
    for b, v in (([100, 200], [1.0, 0.5, 0.1]), ([0, 5, 1000], [0.3, 0.2, 0.1, 0.05]),
                 ([], [0.3]), ([7], [0.0, 2.0]), ([10.5, 20.5], [1.0, 0.5, 0.25]),
                 ([2**20, 2**30], [1.0, 0.1, 0.01])):
        add(Case(f"piecewise_constant-{b}-{v}",
                 lambda b=b, v=v: js.piecewise_constant(b, v),
                 _p(ref.piecewise_constant, b, v), 250, max(v),
                 tuple(int(math.floor(x)) for x in b) + tuple(int(math.ceil(x)) for x in b)))

    # ---- one cycle (PyTorch OneCycleLR)
    for n, pct, strategy, div, fdiv, three in ((100, 0.3, "cos", 25.0, 1e4, False),
                                               (100, 0.3, "linear", 25.0, 1e4, False),
                                               (1000, 0.25, "cos", 10.0, 100.0, True),
                                               (1000, 0.25, "linear", 10.0, 100.0, True),
                                               (37, 0.5, "cos", 4.0, 2.0, False),
                                               (10, 0.55, "linear", 5.0, 1e3, True)):
        ends = [pct * n - 1, 2 * pct * n - 2, n - 1] if three else [pct * n - 1, n - 1]
        add(Case(f"one_cycle-{n}-{pct}-{strategy}-{'three' if three else 'two'}",
                 lambda n=n, pct=pct, strategy=strategy, div=div, fdiv=fdiv, three=three:
                 js.one_cycle(0.1, n, pct, strategy, div, fdiv, three),
                 _p(ref.one_cycle, 0.1, n, pct, strategy, div, fdiv, three), n, 0.1,
                 tuple(int(round(e)) for e in ends)))

    # ---- cyclic (PyTorch CyclicLR)
    for base, top, up, down, mode, gamma in ((0.01, 0.1, 20, None, "triangular", 1.0),
                                             (0.01, 0.1, 20, 30, "triangular", 1.0),
                                             (0.001, 0.1, 10, None, "triangular2", 1.0),
                                             (0.001, 0.1, 7, 13, "triangular2", 1.0),
                                             (0.0, 1.0, 25, None, "exp_range", 1 - 2**-7),
                                             (0.01, 0.1, 5, 15, "exp_range", 0.75),
                                             (0.5, 0.5, 3, None, "triangular", 1.0),
                                             (0.0, 1.0, 1, 1, "triangular", 1.0)):
        total = up + (up if down is None else down)
        add(Case(f"cyclic-{mode}-{base}-{top}-{up}-{down}-{gamma}",
                 lambda base=base, top=top, up=up, down=down, mode=mode, gamma=gamma:
                 js.cyclic(base, top, up, down, mode, gamma),
                 _p(ref.cyclic, base, top, up, down, mode, gamma), 2 * total, max(base, top),
                 (up, total, total + up, 2 * total, 100 * total + up)))

    # ---- constant
    for v in (0.5, 0.0, 3e-4):
        add(Case(f"constant-{v}", lambda v=v: js.constant(v), _p(ref.constant, v), 10,
                 max(v, 1e-30)))

    # ---- warmup
    for w, init in ((10, 0.0), (25, 0.01), (0, 0.0), (1, 0.5)):
        add(Case(f"warmup-cosine-{w}-{init}",
                 lambda w=w, init=init: js.warmup(js.cosine_decay(0.1, 100, 0.1), w, init),
                 lambda t, w=w, init=init: ref.warmup(
                     _p(ref.cosine_decay, 0.1, 100, 0.1), w, init, t),
                 100 + w, max(0.1, init), (w, w + 100)))
    add(Case("warmup-constant-50",
             lambda: js.warmup(js.constant(2.0), 50),
             lambda t: ref.warmup(_p(ref.constant, 2.0), 50, 0.0, t), 60, 2.0, (50,)))
    add(Case("warmup-restarts-8",
             lambda: js.warmup(js.cosine_decay_restarts(1.0, 10, 2.0, 0.5), 8, 0.1),
             lambda t: ref.warmup(_p(ref.cosine_decay_restarts, 1.0, 10, 2.0, 0.5, 0.0), 8, 0.1,
                                  t), 100, 1.0, (8, 18, 38, 78)))

    # ---- join
    add(Case("join-constant-cosine-linear",
             lambda: js.join([js.constant(0.1), js.cosine_decay(0.1, 100),
                              js.polynomial_decay(0.05, 50, 0.0)], [10, 110]),
             lambda t: ref.join([_p(ref.constant, 0.1), _p(ref.cosine_decay, 0.1, 100, 0.0),
                                 _p(ref.polynomial_decay, 0.05, 50, 0.0, 1.0, False)],
                                [10, 110], t), 200, 0.1, (10, 110, 160)))
    add(Case("join-warmup-cyclic",
             lambda: js.join([js.warmup(js.constant(1.0), 20), js.cyclic(0.1, 1.0, 5)], [20]),
             lambda t: ref.join([lambda s: ref.warmup(_p(ref.constant, 1.0), 20, 0.0, s),
                                 _p(ref.cyclic, 0.1, 1.0, 5, None, "triangular", 1.0)],
                                [20], t), 60, 1.0, (20, 25, 30)))
    add(Case("join-single", lambda: js.join([js.cosine_decay(0.2, 30)], []),
             _p(ref.cosine_decay, 0.2, 30, 0.0), 30, 0.2, (30,)))
    add(Case("join-at-zero",
             lambda: js.join([js.constant(1.0), js.exponential_decay(0.5, 10, 0.5, True)], [0]),
             lambda t: ref.join([_p(ref.constant, 1.0),
                                 _p(ref.exponential_decay, 0.5, 10, 0.5, True)], [0], t),
             40, 1.0, (0, 10, 20)))

    # ---- warmup-stable-decay, three shapes
    for decay in ("linear", "cosine", "sqrt"):
        for w, s, d, init, end in ((10, 20, 30, 0.0, 0.0), (5, 0, 40, 0.1, 0.01),
                                   (0, 10, 10, 0.0, 0.1), (7, 3, 0, 0.0, 0.2)):
            add(Case(f"warmup_stable_decay-{decay}-{w}-{s}-{d}-{init}-{end}",
                     lambda w=w, s=s, d=d, init=init, end=end, decay=decay:
                     js.warmup_stable_decay(1.0, w, s, d, init, end, decay),
                     _p(ref.warmup_stable_decay, 1.0, w, s, d, init, end, decay),
                     max(w + s + d, 10), 1.0, (w, w + s, w + s + d)))

    # ---- inverse sqrt
    for peak, w in ((1.0, 100), (0.5, 1), (0.01, 1000)):
        add(Case(f"inverse_sqrt-{peak}-{w}", lambda peak=peak, w=w: js.inverse_sqrt(peak, w),
                 _p(ref.inverse_sqrt, peak, w), w, peak, (w, 4 * w)))
    _new_shape_cases(add)
    return c


def _new_shape_cases(add) -> None:
    """Shapes added with schedule arithmetic and the by-name constructors."""
    # ---- cosine decay: num_cycles, exponent, periodic
    for lr, d, alpha, nc, ex, per in ((0.1, 100, 0.0, 0.5, 1.0, True), (0.1, 100, 0.1, 1.5, 1.0, True),
                                      (1.0, 37, 0.05, 0.5, 2.0, False), (1.0, 50, 0.0, 1.0, 0.5, False),
                                      (0.5, 1, 0.0, 0.5, 1.0, True), (1.0, 64, 0.2, 0.75, 3.0, True)):
        add(Case(f"cosine_decay-general-{lr}-{d}-{alpha}-{nc}-{ex}-{per}",
                 lambda lr=lr, d=d, alpha=alpha, nc=nc, ex=ex, per=per: js.cosine_decay(
                     lr, d, alpha, num_cycles=nc, exponent=ex, periodic=per),
                 _p(ref.cosine_decay_general, lr, d, alpha, nc, ex, per), max(d, 20), lr,
                 (d, 2 * d, 3 * d, 1001 * d),
                 # the whole periods' phase 2 * num_cycles * k is a float32 product
                 2**24 if per else INT32_MAX))
    # ---- warmup shapes
    for mode, w, init in (("cosine", 10, 0.0), ("sqrt", 25, 0.01), ("exponential", 20, 1e-4),
                          ("exponential", 1, 0.5), ("cosine", 0, 0.0)):
        add(Case(f"warmup-mode-{mode}-{w}-{init}",
                 lambda mode=mode, w=w, init=init: js.warmup(js.cosine_decay(0.1, 100, 0.1), w,
                                                              init, mode=mode),
                 lambda t, mode=mode, w=w, init=init: ref.warmup_shaped(
                     _p(ref.cosine_decay, 0.1, 100, 0.1), w, init, mode, t),
                 100 + w, max(0.1, init), (w, w + 100)))
    add(Case("warmup-exponential-to-zero",
             lambda: js.warmup(js.constant(0.0), 10, 0.1, mode="exponential"),
             lambda t: ref.warmup_shaped(_p(ref.constant, 0.0), 10, 0.1, "exponential", t),
             20, 0.1, (10,)))
    # ---- warmup-stable-decay: HF warmup/decay types, num_cycles, WSD-S cycles
    for w, s_, d, init, end, decay, warm, nc, cycles, rewarm in (
            (10, 20, 30, 0.1, 0.1, "cosine", "cosine", 0.5, 1, 0),
            (12, 5, 40, 0.05, 0.05, "sqrt", "sqrt", 0.5, 1, 0),
            (6, 10, 24, 0.2, 0.2, "cosine", "linear", 1.0, 1, 0),
            (5, 10, 10, 0.0, 0.01, "linear", "linear", 0.5, 3, 0),
            (5, 10, 10, 0.0, 0.0, "sqrt", "cosine", 0.5, 3, 4),
            (0, 0, 7, 0.0, 0.1, "cosine", "linear", 0.5, 4, 1)):
        period = rewarm + s_ + d
        marks = tuple(w + k * period + x for k in range(cycles + 1) for x in (0, rewarm, rewarm + s_))
        add(Case(f"warmup_stable_decay-general-{w}-{s_}-{d}-{decay}-{warm}-{nc}-{cycles}-{rewarm}",
                 lambda w=w, s_=s_, d=d, init=init, end=end, decay=decay, warm=warm, nc=nc,
                 cycles=cycles, rewarm=rewarm: js.warmup_stable_decay(
                     1.0, w, s_, d, init, end, decay, warmup=warm, num_cycles=nc, cycles=cycles,
                     rewarm_steps=rewarm),
                 _p(ref.warmup_stable_decay_general, 1.0, w, s_, d, init, end, decay, warm, nc,
                    cycles, rewarm),
                 max(w + cycles * period, 10), 1.0, marks))
    # ---- inverse sqrt: timescale, shift, minimum
    for peak, w, ts, sh, mn in ((1.0, 20, 50, None, 0.0), (0.1, 0, 10000, None, 0.0),
                                (1.0, 10, 10, 5, 0.0), (1.0, 16, 16, None, 0.3)):
        add(Case(f"inverse_sqrt-general-{peak}-{w}-{ts}-{sh}-{mn}",
                 lambda peak=peak, w=w, ts=ts, sh=sh, mn=mn: js.inverse_sqrt(
                     peak, w, timescale=ts, shift=sh, min_value=mn),
                 _p(ref.inverse_sqrt_general, peak, w, ts, sh, mn), max(w, 20), peak,
                 (w, 4 * w + 1)))
    # ---- piecewise interpolate (optax)
    for kind, init, bs in (("linear", 1.0, {4: 0.1, 8: 0.1}), ("cosine", 1.0, {4: 0.1, 8: 0.1}),
                           ("linear", 0.5, {0: 0.5, 10: 2.0, 11: 0.0}),
                           ("cosine", 0.1, {100: 10.0, 300: 0.01}), ("linear", 0.3, {})):
        add(Case(f"piecewise_interpolate-{kind}-{init}-{sorted(bs.items())}",
                 lambda kind=kind, init=init, bs=bs: js.piecewise_interpolate(
                     init, sorted(bs), [bs[b] for b in sorted(bs)], kind),
                 _p(ref.piecewise_interpolate, kind, init, bs), max(list(bs) + [10]),
                 max([init] + [init * 10]), tuple(bs)))
    # ---- shift, cooldown
    for off in (25, -10, 0):
        add(Case(f"shift-cosine-{off}",
                 lambda off=off: js.shift(js.cosine_decay(0.1, 100), off),
                 lambda t, off=off: ref.shift(_p(ref.cosine_decay, 0.1, 100, 0.0), off, t),
                 100, 0.1, (abs(off), 100 - off)))
    for total, n, shape in ((100, 20, "linear"), (100, 30, "sqrt"), (50, 0, "linear"),
                            (40, 40, "sqrt")):
        add(Case(f"cooldown-{total}-{n}-{shape}",
                 lambda total=total, n=n, shape=shape: js.cooldown(
                     js.warmup(js.cosine_decay(1.0, 200), 10), total, n, shape),
                 lambda t, total=total, n=n, shape=shape: ref.cooldown(
                     lambda u: ref.warmup(_p(ref.cosine_decay, 1.0, 200, 0.0), 10, 0.0, u),
                     total, n, shape, t),
                 total, 1.0, (total - n, total)))
    # ---- momentum companions (PyTorch cycle_momentum=True)
    for n, pct, strategy, three in ((100, 0.3, "cos", False), (100, 0.3, "linear", False),
                                    (1000, 0.25, "cos", True), (10, 0.55, "linear", True)):
        ends = [pct * n - 1, 2 * pct * n - 2, n - 1] if three else [pct * n - 1, n - 1]
        add(Case(f"one_cycle_momentum-{n}-{pct}-{strategy}-{three}",
                 lambda n=n, pct=pct, strategy=strategy, three=three: js.one_cycle_momentum(
                     n, pct, strategy, 0.85, 0.95, three),
                 _p(ref.one_cycle_momentum, n, pct, strategy, 0.85, 0.95, three), n, 0.95,
                 tuple(int(round(e)) for e in ends)))
    for up, down, mode, gamma in ((20, None, "triangular", 1.0), (7, 13, "triangular2", 1.0),
                                  (5, 15, "exp_range", 0.75)):
        total = up + (up if down is None else down)
        add(Case(f"cyclic_momentum-{mode}-{up}-{down}-{gamma}",
                 lambda up=up, down=down, mode=mode, gamma=gamma: js.cyclic_momentum(
                     0.8, 0.9, up, down, mode, gamma),
                 _p(ref.cyclic_momentum, 0.8, 0.9, up, down, mode, gamma), 2 * total, 0.9,
                 (up, total, 100 * total + up)))
    # ---- arithmetic
    add(Case("product-cosine-number",
             lambda: js.cosine_decay(1.0, 100) * 0.5,
             lambda t: ref.cosine_decay(1.0, 100, 0.0, t) * 0.5, 100, 0.5, (100,)))
    add(Case("product-two-schedules-and-numbers",
             lambda: 2.0 * js.warmup(js.constant(1.0), 10) * js.exponential_decay(0.1, 50, 0.5),
             lambda t: 2.0 * ref.warmup(_p(ref.constant, 1.0), 10, 0.0, t)
             * ref.exponential_decay(0.1, 50, 0.5, False, t), 100, 0.2, (10,)))
    add(Case("add-cosine-floor",
             lambda: js.cosine_decay(0.09, 100) + 0.01,
             lambda t: ref.cosine_decay(0.09, 100, 0.0, t) + 0.01, 100, 0.1, (100,)))
    add(Case("add-two-schedules",
             lambda: js.cyclic(0.0, 0.05, 10) + js.cosine_decay(0.1, 60) + 0.001,
             lambda t: ref.cyclic(0.0, 0.05, 10, None, "triangular", 1.0, t)
             + ref.cosine_decay(0.1, 60, 0.0, t) + 0.001, 60, 0.151, (10, 20, 60)))
    add(Case("product-maxtext-trailing-zero",
             lambda: js.join([js.warmup(js.cosine_decay(1.0, 90, 0.1), 10), js.constant(0.0)],
                             [100]) * 3e-4,
             lambda t: 3e-4 * ref.join([lambda u: ref.warmup(
                 _p(ref.cosine_decay, 1.0, 90, 0.1), 10, 0.0, u), _p(ref.constant, 0.0)],
                 [100], t), 100, 3e-4, (10, 100)))


CASES = _cases()
CASE_IDS = [case.id for case in CASES]
FAMILIES = sorted({case.id.split("-")[0] for case in CASES})


def _family_cases():
    """The first registry case of each family (for the slower transformation tests)."""
    seen, out = set(), []
    for case in CASES:
        fam = case.id.split("-")[0]
        if fam not in seen:
            seen.add(fam)
            out.append(case)
    return out


FAMILY_CASES = _family_cases()


def assert_close_to_scale(got, want, scale, tol, what=""):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape
    err = np.abs(got - want)
    bad = ~(err <= tol * scale)
    if bad.any():
        i = int(np.argmax(np.where(bad, err, -1)))
        raise AssertionError(f"{what}: {bad.sum()} mismatches; worst at index {i}: "
                             f"got {got.flat[i]!r}, want {want.flat[i]!r}, "
                             f"err {err.flat[i] / scale:.3g} * scale > {tol}")


_EVAL = jax.jit(lambda sched, steps: sched(steps))


def padded_call(sched, steps: np.ndarray) -> np.ndarray:
    """`sched(steps)` in one vectorised, jitted call, the steps zero-padded to a
    power of two so that schedules of one kind share a compilation."""
    n = len(steps)
    size = max(4096, 1 << (n - 1).bit_length())
    padded = np.zeros(size, steps.dtype)
    padded[:n] = steps
    return np.asarray(_EVAL(sched, jnp.asarray(padded)))[:n]


def check_case_values(case: Case, tol: float, limit: int = INT32_MAX):
    steps = case.steps(limit)
    sched = case.make()
    got = padded_call(sched, steps)
    assert np.isfinite(got).all(), case.id
    assert_close_to_scale(got, case.expected(steps), case.scale, tol, case.id)


RESTART_LR, RESTART_M_MUL, RESTART_ALPHA = 1.0, 0.9, 0.05


def restart_list(first, t_mul, limit, head=2000, tail=2000):
    """`reference.restart_steps` below `limit`; for t_mul == 1 the first `head`
    and the last `tail` of them (the rest are the same arithmetic)."""
    if t_mul == 1:
        count = (limit - 1) // first
        return (ref.restart_steps(first, t_mul, limit, max_count=head)
                + [first * k for k in range(max(head + 1, count - tail + 1), count + 1)])
    return ref.restart_steps(first, t_mul, limit)


def exact_starts(first, t_mul, limit):
    """Exact rational period starts S_i (i >= 1) below `limit` (Fraction walk)."""
    from fractions import Fraction
    start, length, out = Fraction(first), Fraction(first) * Fraction(t_mul), []
    while start < limit:
        out.append(start)
        start += length
        length *= Fraction(t_mul)
    return out


def check_restarts(first, t_mul, restarts, tol, ref_t_mul=None, window=0.0):
    """Compare at b-1, b, b+1 for every restart b, in one vectorised call.

    `window` > 0 (float32, non-integer t_mul): a step within `window * S` of an
    exact period start S may fall on either side of the restart (the start is
    not representable); there the value must equal one of the two sides.
    """
    ref_t_mul = t_mul if ref_t_mul is None else ref_t_mul
    b = np.asarray(restarts, np.int64)
    assert len(b) > 0 and (b < 2**31).all()
    steps = np.unique(np.concatenate([b - 1, b, b + 1]))
    steps = steps[(steps >= 0) & (steps <= INT32_MAX)]
    sched = js.cosine_decay_restarts(RESTART_LR, first, t_mul, RESTART_M_MUL, RESTART_ALPHA)
    got = padded_call(sched, steps)
    want = np.array([ref.cosine_decay_restarts(RESTART_LR, first, ref_t_mul, RESTART_M_MUL,
                                               RESTART_ALPHA, int(t)) for t in steps])
    ok = np.abs(got - want) <= tol * RESTART_LR
    if window:
        starts = exact_starts(first, ref_t_mul, int(steps.max()) + 2)
        floats = np.array([float(s) for s in starts])
        for k in np.nonzero(~ok)[0]:
            t = int(steps[k])
            j = int(np.argmin(np.abs(floats - t)))
            assert abs(t - floats[j]) <= window * floats[j], (first, t_mul, t, got[k], want[k])
            # other side: the end of period j (f = 1) or the start of period j + 1
            i = j + 1  # period index that starts at starts[j]
            end_of_previous = RESTART_LR * RESTART_ALPHA
            start_of_next = RESTART_LR * ((1 - RESTART_ALPHA) * RESTART_M_MUL**i + RESTART_ALPHA)
            other = end_of_previous if t >= starts[j] else start_of_next
            ok[k] = abs(got[k] - other) <= tol * RESTART_LR
    assert ok.all(), [(int(t), float(g), float(w)) for t, g, w in
                      zip(steps[~ok], got[~ok], want[~ok])][:5]
    return len(b)
