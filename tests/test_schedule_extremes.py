"""Nothing silently wrong (issue 12): values at unusual inputs, equality and
hashing across dtypes, and inputs that are hostile by size.

Value rows compare with the float64 reference (tests/reference.py) at the
float32 tolerance of the registry (1e-6 of the schedule's scale).
"""

from __future__ import annotations

import functools
import json
import pickle
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsched as js
import reference as ref
from jaxsched._schedule import MAX_DEPTH

# (id, schedule, steps, reference at a step). Steps may be floats.
VALUES = [
    # polynomial_decay(cycle=True): TF's D' = D * ceil(t / D) for fractional D or steps
    ("poly-cycle-fractional-D", js.polynomial_decay(1.0, 2.5, 0.0, 1.0, cycle=True),
     [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 1000, 10**6 + 1],
     functools.partial(ref.polynomial_decay, 1.0, 2.5, 0.0, 1.0, True)),
    ("poly-cycle-float-steps", js.polynomial_decay(1.0, 10, 0.1, 2.0, cycle=True),
     [0.0, 0.5, 9.5, 10.0, 10.25, 19.75, 20.5, 1e4 + 0.5],
     functools.partial(ref.polynomial_decay, 1.0, 10, 0.1, 2.0, True)),
    ("poly-cycle-fractional-D-sqrt", js.polynomial_decay(0.5, 7.25, 0.01, 0.5, cycle=True),
     [0, 7, 8, 14, 15, 21, 22, 7250, 7251, 7252],
     functools.partial(ref.polynomial_decay, 0.5, 7.25, 0.01, 0.5, True)),
    ("poly-cycle-tiny-D", js.polynomial_decay(1.0, 1e-30, 0.0, 1.0, cycle=True),
     [0, 1, 2**31 - 1], functools.partial(ref.polynomial_decay, 1.0, 1e-30, 0.0, 1.0, True)),
    # a tiny decay_steps: t / D overflows float32, a zero rate must not make NaN
    ("natural-exp-tiny-D-zero-rate", js.natural_exp_decay(0.1, 1e-30, 0.0),
     [0, 1, 2**31 - 1], functools.partial(ref.natural_exp_decay, 0.1, 1e-30, 0.0, False)),
    ("inverse-time-tiny-D-zero-rate", js.inverse_time_decay(0.1, 1e-30, 0.0, staircase=True),
     [0, 1, 2**31 - 1], functools.partial(ref.inverse_time_decay, 0.1, 1e-30, 0.0, True)),
    ("exponential-tiny-D", js.exponential_decay(0.1, 1e-30, 0.5),
     [0, 1, 2**31 - 1], functools.partial(ref.exponential_decay, 0.1, 1e-30, 0.5, False)),
    # piecewise_constant with its tables: integer boundaries compared exactly
    ("piecewise-near-int32", js.piecewise_constant([2**31 - 3, 2**31 - 2], [1.0, 0.5, 0.25]),
     [2**31 - 4, 2**31 - 3, 2**31 - 2, 2**31 - 1],
     functools.partial(ref.piecewise_constant, [2**31 - 3, 2**31 - 2], [1.0, 0.5, 0.25])),
    ("piecewise-float-boundaries-float-steps",
     js.piecewise_constant([10.5, 20.25], [1.0, 0.5, 0.25]),
     [10, 10.5, 10.75, 20.25, 20.5],
     functools.partial(ref.piecewise_constant, [10.5, 20.25], [1.0, 0.5, 0.25])),
]


@pytest.mark.parametrize("name,sched,steps,want", VALUES, ids=[v[0] for v in VALUES])
def test_values_match_reference(name, sched, steps, want):
    for t in steps:
        got = float(sched(t))
        assert np.isfinite(got), (name, t)
        expected = want(t)
        assert abs(got - expected) <= 1e-6 * max(abs(expected), 1.0), (name, t, got, expected)


def test_big_seeds_are_kept_whole():
    steps = jnp.arange(50)
    noisy = lambda seed: np.asarray(  # noqa: E731
        js.noisy_linear_cosine_decay(1.0, 100, seed=seed)(steps))
    small = noisy(5)
    for seed in (2**32 + 5, 2**40 + 5, 2**64 - 2**32 + 5, -(2**63) + 5):
        assert not np.array_equal(noisy(seed), small), seed  # never wrapped to 5
    assert not np.array_equal(noisy(2**40), noisy(2**41))
    # a seed beyond int32 is the threefry key of its 64 bits, high word first
    s = js.noisy_linear_cosine_decay(1.0, 100, seed=2**40 + 7)
    np.testing.assert_array_equal(jax.random.key_data(s.seed), [256, 7])
    # and it passes through jit as an argument
    np.testing.assert_allclose(jax.jit(lambda s: s(steps))(s), s(steps), rtol=1e-6)


# Equal schedules whose leaves differ in type or dtype hash equal.
EQUAL_PAIRS = [
    (js.cosine_decay(0.5, 100), js.cosine_decay(np.float32(0.5), 100)),
    (js.cosine_decay(0.5, 100), js.cosine_decay(jnp.float32(0.5), 100.0)),
    (js.cosine_decay(np.array([0.5, 0.25], np.float32), 100),
     js.cosine_decay(np.array([0.5, 0.25], np.float64), 100)),
    (js.cosine_decay(jnp.asarray([0.5, 0.25], jnp.bfloat16), 100),
     js.cosine_decay(np.array([0.5, 0.25]), np.int64(100))),
    (js.exponential_decay(1, 10, 0.5), js.exponential_decay(1.0, np.int32(10), np.float16(0.5))),
    (js.piecewise_constant([10, 20], [1.0, 0.5, 0.25]),
     js.piecewise_constant(np.array([10, 20], np.int32), (1, 0.5, np.float32(0.25)))),
    (js.warmup(js.constant(np.float32(0.5)), 10), js.warmup(js.constant(0.5), np.int64(10))),
    (js.noisy_linear_cosine_decay(0.1, 10, seed=jax.random.key(3)),
     js.noisy_linear_cosine_decay(0.1, 10, seed=np.array([0, 3], np.uint32))),
]


@pytest.mark.parametrize("a,b", EQUAL_PAIRS, ids=[str(i) for i in range(len(EQUAL_PAIRS))])
def test_equal_implies_equal_hash(a, b):
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


def test_unequal_arrays_of_equal_bytes_or_shape():
    assert js.cosine_decay(np.array([0.5, 0.25]), 10) != js.cosine_decay(np.array([0.25, 0.5]),
                                                                           10)
    assert js.cosine_decay(np.array([0.5]), 10) != js.cosine_decay(0.5, 10)


def _chain(depth):
    s = js.constant(1.0)
    for _ in range(depth - 1):
        s = js.warmup(s, 1)
    return s


def test_max_depth_chain_survives_every_operation():
    s = _chain(MAX_DEPTH)
    limit = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(1000)  # Python's default, whatever the test runner set
        text = repr(s)
        assert text.count("warmup(") == MAX_DEPTH - 1
        assert hash(s) == hash(_chain(MAX_DEPTH)) and s == _chain(MAX_DEPTH)
        assert pickle.loads(pickle.dumps(s)) == s
        assert js.schedule_from_config(json.loads(json.dumps(s.to_config()))) == s
    finally:
        sys.setrecursionlimit(limit)


def test_deeper_nesting_is_refused_everywhere():
    s = _chain(MAX_DEPTH)
    with pytest.raises(ValueError, match=r"^`warmup\(schedule=\.\.\.\)` must nest schedules "
                                         r"at most MAX_DEPTH = 32 deep, got 33 levels\.$"):
        js.warmup(s, 1)
    with pytest.raises(ValueError, match=r"^`join\(schedules=\.\.\.\)` must nest"):
        js.join([js.constant(1.0), s], [5])
    # a config nested 10,000 deep is refused without recursing through it
    config = {"type": "constant", "value": 1.0}
    for _ in range(10_000):
        config = {"type": "warmup", "schedule": config, "warmup_steps": 1}
    with pytest.raises(ValueError, match=r"^`schedule_from_config\(config=\.\.\.\)` nests "
                                         r"schedules more than MAX_DEPTH = 32 deep\.$"):
        js.schedule_from_config(config)


def test_each_level_calls_its_inner_schedule_once():
    calls = []

    def inner(t):
        calls.append(1)
        return jnp.ones_like(t, jnp.float32)

    s = js.warmup(inner, 1)
    for _ in range(24):
        s = js.warmup(s, 1)
    jax.make_jaxpr(lambda t: s(t))(jnp.int32(5))
    assert len(calls) == 1  # 2**25 before: each level called its inner schedule twice


def test_piecewise_tables_do_not_grow_the_program():
    def program(n):
        s = js.piecewise_constant(list(range(1, n + 1)), [1.0 / (k + 1) for k in range(n + 1)])
        assert len(jax.tree.leaves(s)) == 2  # two tables, not 2n + 1 leaves
        return jax.make_jaxpr(lambda s, t: s(t))(s, jnp.int32(5))

    small, large = program(10), program(10_000)
    assert len(small.eqns) == len(large.eqns)
    # exact TF semantics at the boundaries of the large table
    s = js.piecewise_constant(list(range(1, 10_001)), [1.0 / (k + 1) for k in range(10_001)])
    steps = np.array([0, 1, 2, 4999, 5000, 5001, 10_000, 10_001, 2**31 - 1])
    want = [ref.piecewise_constant(range(1, 10_001), [1.0 / (k + 1) for k in range(10_001)],
                                   int(t)) for t in steps]
    np.testing.assert_allclose(np.asarray(jax.jit(lambda s, t: s(t))(s, jnp.asarray(steps))),
                               want, rtol=1e-7)
