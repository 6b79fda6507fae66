"""Schedules as objects: pure, jittable, vmappable pytrees that print, pickle,
compare, save as configs and plug into optax."""

from __future__ import annotations

import dataclasses
import json
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsched as js
from schedule_cases import CASES, FAMILY_CASES, INT32_MAX

FAMILY_IDS = [c.id for c in FAMILY_CASES]
STEPS = jnp.asarray(np.concatenate([np.arange(0, 64), [99, 100, 101, 1000, 10**6, INT32_MAX]]),
                    jnp.int32)

# Extra objects for the config / pickle / equality tests: nesting and PRNG seeds.
NESTED = {
    "warmup-of-cosine": lambda: js.warmup(js.cosine_decay(0.1, 1000, 0.01), 100, 0.001),
    "join-nested": lambda: js.join([js.warmup(js.constant(1.0), 10),
                                    js.cosine_decay_restarts(1.0, 50, 2.0, 0.9),
                                    js.join([js.constant(0.5), js.constant(0.25)], [5])],
                                   [10, 500]),
    "noisy-int-seed": lambda: js.noisy_linear_cosine_decay(0.1, 100, 0.5, 0.3, seed=42),
    "noisy-key-seed": lambda: js.noisy_linear_cosine_decay(0.1, 100, seed=jax.random.key(42)),
    "cyclic-no-down": lambda: js.cyclic(0.01, 0.1, 20),
    "piecewise-array-values": lambda: js.piecewise_constant(np.array([10, 20]),
                                                            np.array([1.0, 0.5, 0.25])),
    # array hyperparameters of several dtypes and 64-bit or raw-key seeds (issue 12)
    "array-learning-rate-f32": lambda: js.cosine_decay(np.array([0.1], np.float32), 100),
    "jax-scalar-leaves": lambda: js.exponential_decay(jnp.float32(0.5), jnp.int32(10),
                                                      jnp.float32(0.25)),
    "bf16-array": lambda: js.constant(jnp.asarray([0.1], jnp.bfloat16)),
    "noisy-64bit-seed": lambda: js.noisy_linear_cosine_decay(0.1, 100, seed=2**40 + 3),
    "noisy-key-data-seed": lambda: js.noisy_linear_cosine_decay(
        0.1, 100, seed=np.array([1, 2], np.uint32)),
}
OBJECTS = {**{c.id: c.make for c in CASES}, **NESTED}


def _close(a, b, scale, tol=1e-6):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=0,
                               atol=tol * scale)


# --------------------------------------------------------------------------
# pure and jittable
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", FAMILY_CASES, ids=FAMILY_IDS)
def test_jit_eager_and_vmap_agree(case):
    s = case.make()
    eager = s(STEPS)
    _close(jax.jit(s)(STEPS), eager, case.scale)
    _close(jax.vmap(s)(STEPS), eager, case.scale)
    _close(s(100), eager[65], case.scale)  # a scalar call equals the vectorised one
    assert eager.shape == STEPS.shape and eager.dtype == jnp.float32


def test_vmap_over_learning_rate():
    t = jnp.int32(250)
    lrs = jnp.asarray([0.1, 0.2, 0.05, 1.0, 0.0])
    swept = jax.vmap(lambda lr: js.cosine_decay(lr, 1000)(t))(lrs)
    one_by_one = jnp.stack([js.cosine_decay(float(lr), 1000)(t) for lr in lrs])
    _close(swept, one_by_one, 1.0, 1e-7)
    both = jax.vmap(lambda lr: js.cosine_decay(lr, 1000)(STEPS))(lrs)
    assert both.shape == (5, STEPS.shape[0])
    _close(both[1], js.cosine_decay(0.2, 1000)(STEPS), 0.2)


# Every family built from (possibly traced) numeric arguments. The first argument
# is the one swept with vmap.
BUILDERS = {
    "exponential_decay": (lambda lr, d, r: js.exponential_decay(lr, d, r, staircase=True),
                          (0.1, 10, 0.5)),
    "natural_exp_decay": (lambda lr, d, r: js.natural_exp_decay(lr, d, r), (0.1, 10, 0.5)),
    "inverse_time_decay": (lambda lr, d, r: js.inverse_time_decay(lr, d, r), (0.1, 10, 0.5)),
    "polynomial_decay": (lambda lr, d, e, p: js.polynomial_decay(lr, d, e, p, cycle=True),
                         (0.1, 10, 0.01, 0.5)),
    "cosine_decay": (lambda lr, d, a: js.cosine_decay(lr, d, a), (0.1, 100, 0.1)),
    "cosine_decay_restarts": (lambda lr, d, tm, mm, a: js.cosine_decay_restarts(lr, d, tm, mm, a),
                              (0.1, 10, 2.0, 0.9, 0.1)),
    "linear_cosine_decay": (lambda lr, d, n, a, b: js.linear_cosine_decay(lr, d, n, a, b),
                            (0.1, 100, 2.0, 0.1, 0.01)),
    "noisy_linear_cosine_decay": (lambda lr, d, v, vd, seed: js.noisy_linear_cosine_decay(
        lr, d, v, vd, seed=seed), (0.1, 100, 0.5, 0.55, 3)),
    "piecewise_constant": (lambda v0, b0, v1: js.piecewise_constant([b0, 20], [v0, v1, 0.01]),
                           (0.1, 10, 0.05)),
    "one_cycle": (lambda lr, n, pct, div: js.one_cycle(lr, n, pct, div_factor=div),
                  (0.1, 100, 0.3, 25.0)),
    "cyclic": (lambda base, top, up, g: js.cyclic(base, top, up, mode="exp_range", gamma=g),
               (0.01, 0.1, 10, 0.99)),
    "constant": (lambda v: js.constant(v), (0.5,)),
    "warmup": (lambda lr, w, init: js.warmup(js.cosine_decay(lr, 100), w, init), (0.1, 10, 0.01)),
    "join": (lambda lr, b: js.join([js.constant(lr), js.cosine_decay(lr, 100)], [b]), (0.1, 10)),
    "warmup_stable_decay": (lambda p, w, s, d, i, e: js.warmup_stable_decay(p, w, s, d, i, e,
                                                                            "cosine"),
                            (1.0, 10, 10, 10, 0.1, 0.01)),
    "inverse_sqrt": (lambda p, w: js.inverse_sqrt(p, w), (1.0, 10)),
    "piecewise_interpolate": (lambda v0, b0, s1: js.piecewise_interpolate(v0, [b0, 20], [s1, 0.5],
                                                                          "cosine"),
                              (0.1, 10, 0.5)),
    "shift": (lambda lr, off: js.shift(js.cosine_decay(lr, 100), off), (0.1, 5)),
    "cooldown": (lambda lr, total, n: js.cooldown(js.constant(lr), total, n, "sqrt"),
                 (0.1, 100, 20)),
    "one_cycle_momentum": (lambda b, n, pct: js.one_cycle_momentum(n, pct, base_momentum=b),
                           (0.85, 100, 0.3)),
    "cyclic_momentum": (lambda b, m, up: js.cyclic_momentum(b, m, up, mode="triangular2"),
                        (0.8, 0.9, 10)),
    "product": (lambda c, lr: js.cosine_decay(lr, 100) * c, (0.5, 0.1)),
    "add": (lambda c, lr: c + js.cosine_decay(lr, 100), (0.01, 0.1)),
}


def test_builders_cover_every_family():
    assert set(BUILDERS) == {c.id.split("-")[0] for c in CASES}


@pytest.mark.parametrize("family", list(BUILDERS))
def test_build_with_traced_hyperparameters(family):
    """Constructing under jit and vmap (tracers reach __post_init__) must not raise."""
    build, args = BUILDERS[family]
    t = STEPS
    eager = build(*args)(t)
    _close(jax.jit(lambda *a: build(*a)(t))(*args), eager, 1.0)
    # vmap over the first argument (a rate), the others closed over
    firsts = jnp.asarray([args[0], args[0] / 2])
    swept = jax.jit(jax.vmap(lambda x: build(x, *args[1:])(t)))(firsts)
    _close(swept[0], eager, 1.0)
    _close(swept[1], build(args[0] / 2, *args[1:])(t), 1.0)


def test_traced_invalid_values_are_not_checked():
    """A traced negative (or otherwise bad) value passes the checks unchecked."""
    out = jax.jit(lambda lr, d: js.cosine_decay(lr, d)(3))(-1.0, -5)
    assert out.shape == ()
    jax.jit(lambda a: js.cosine_decay_restarts(1.0, 10, alpha=a)(3))(2.0)
    jax.jit(lambda n: js.one_cycle(0.1, n)(3))(0)
    jax.jit(lambda p: js.one_cycle(0.1, 10, p, three_phase=True)(3))(0.9)
    jax.jit(lambda w: js.warmup(js.constant(1.0), w)(3))(-2)
    jax.vmap(lambda r: js.exponential_decay(0.1, 10, r)(3))(jnp.asarray([-1.0, 2.0]))


def test_schedule_as_jit_argument_traces_once():
    traces = []

    @jax.jit
    def f(sched, t):
        traces.append(1)
        return sched(t)

    a, b = js.cosine_decay(0.1, 1000, 0.0), js.cosine_decay(0.3, 500, 0.1)
    va, vb = f(a, 10), f(b, 10)
    assert len(traces) == 1
    assert float(va) == pytest.approx(float(a(10)), rel=1e-6)
    assert float(vb) == pytest.approx(float(b(10)), rel=1e-6)
    # the same holds for nested schedules and for every registry family
    for case in FAMILY_CASES:
        count = []
        g = jax.jit(lambda s, t: (count.append(1), s(t))[1])
        g(case.make(), 3)
        g(case.make(), 4)
        assert len(count) == 1, case.id


def test_two_restarts_schedules_share_one_compilation():
    traces = []
    f = jax.jit(lambda s, t: (traces.append(1), s(t))[1])
    f(js.cosine_decay_restarts(0.1, 10, 2.0), STEPS)
    f(js.cosine_decay_restarts(0.5, 30, 3.0, 0.5, 0.1), STEPS)
    assert len(traces) == 1


def test_one_compilation_serves_every_step():
    s = js.warmup(js.cosine_decay(0.1, 10_000), 100)
    traces_int32, traces_python = [], []

    @jax.jit
    def f(t):
        traces_int32.append(1)
        return s(t)

    @jax.jit
    def g(t):
        traces_python.append(1)
        return s(t)

    last = None
    for i in range(10_000):
        last = f(jnp.int32(i))
    for i in range(10_000):
        g(i)  # Python ints: weakly typed int32, one signature
    assert len(traces_int32) == 1 and len(traces_python) == 1
    assert float(last) == pytest.approx(float(s(9999)), rel=1e-6)


# --------------------------------------------------------------------------
# repr, pickle, equality, hashing, configs
# --------------------------------------------------------------------------


def test_repr_shows_the_call():
    assert repr(js.cosine_decay(0.1, 1000)) == (
        "cosine_decay(learning_rate=0.1, decay_steps=1000, alpha=0.0)")
    assert repr(js.exponential_decay(0.1, 10, 0.5, staircase=True)) == (
        "exponential_decay(learning_rate=0.1, decay_steps=10, decay_rate=0.5, staircase=True)")
    assert repr(js.warmup(js.constant(1.0), 10)) == (
        "warmup(schedule=constant(value=1.0), warmup_steps=10, init_value=0.0)")
    assert repr(js.piecewise_constant([10, 20], [1.0, 0.5, 0.1])) == (
        "piecewise_constant(boundaries=[10, 20], values=[1.0, 0.5, 0.1])")
    assert repr(js.noisy_linear_cosine_decay(0.1, 100, seed=3)) == (
        "noisy_linear_cosine_decay(learning_rate=0.1, decay_steps=100, initial_variance=1.0, "
        "variance_decay=0.55, num_periods=0.5, alpha=0.0, beta=0.001, seed=3)")


@pytest.mark.parametrize("name", list(OBJECTS))
def test_repr_pickle_equality_hash_config(name):
    s, same = OBJECTS[name](), OBJECTS[name]()
    family = type(s).name
    assert repr(s).startswith(family + "(") and repr(s) == repr(same)
    # equal configs compare and hash equal
    assert s == same and not (s != same)
    assert hash(s) == hash(same)
    assert s != js.constant(123.0) and s != "not a schedule"
    # pickle round-trip
    back = pickle.loads(pickle.dumps(s))
    assert back == s and hash(back) == hash(s) and type(back) is type(s)
    _close(back(STEPS), s(STEPS), 1.0, 0)
    # config: JSON-able and rebuilds an equal schedule
    text = json.dumps(s.to_config())
    rebuilt = js.schedule_from_config(json.loads(text))
    assert rebuilt == s, (rebuilt, s)
    assert repr(rebuilt) == repr(s)
    _close(rebuilt(STEPS), s(STEPS), 1.0, 0)


def _numeric_fields(s):
    return [f.name for f in dataclasses.fields(s)
            if not f.metadata.get("static") and isinstance(getattr(s, f.name), (int, float))
            and not isinstance(getattr(s, f.name), bool)]


@pytest.mark.parametrize("case", FAMILY_CASES, ids=FAMILY_IDS)
def test_different_values_are_unequal(case):
    s = case.make()
    fields = _numeric_fields(s)  # join / piecewise have none: changed below
    changed = 0
    for name in fields:
        v = getattr(s, name)
        for new in ((v + 1) if isinstance(v, int) else (v * 0.5 if v else 0.25), 0.125):
            try:
                other = dataclasses.replace(s, **{name: new})
            except (ValueError, TypeError):
                continue
            assert other != s, (name, new)
            changed += 1
            break
    if isinstance(s, type(js.join([js.constant(1.0)], []))):
        other = js.join([js.constant(0.2)] + list(s.schedules[1:]), s.boundaries)
        assert other != s
        changed += 1
    if isinstance(s, type(js.piecewise_constant([], [1.0]))):
        assert js.piecewise_constant(s.boundaries, [v * 0.5 for v in s.values]) != s
        changed += 1
    for cls, field in ((type(js.product([1.0])), "factors"), (type(js.add([1.0])), "terms")):
        if isinstance(s, cls):
            terms = getattr(s, field)
            assert cls(terms[:-1] + (0.125,)) != s and cls(terms[:-1]) != s
            changed += 1
    assert changed >= 1
    # static flags matter too
    if "staircase" in {f.name for f in dataclasses.fields(s)}:
        assert dataclasses.replace(s, staircase=not s.staircase) != s


def test_equality_details():
    assert js.cosine_decay(0.1, 1000) != js.cosine_decay(0.1, 1001)
    assert js.cosine_decay(0.1, 1000) != js.cosine_decay(0.1, 1000, 0.5)
    assert js.exponential_decay(0.1, 10, 0.5) != js.exponential_decay(0.1, 10, 0.5, True)
    assert js.cosine_decay(0.1, 1000) != js.linear_cosine_decay(0.1, 1000)
    k1, k2 = jax.random.key(1), jax.random.key(2)
    assert (js.noisy_linear_cosine_decay(0.1, 10, seed=k1)
            == js.noisy_linear_cosine_decay(0.1, 10, seed=jax.random.key(1)))
    assert (js.noisy_linear_cosine_decay(0.1, 10, seed=k1)
            != js.noisy_linear_cosine_decay(0.1, 10, seed=k2))
    assert js.noisy_linear_cosine_decay(0.1, 10, seed=1) != js.noisy_linear_cosine_decay(
        0.1, 10, seed=2)
    assert (js.warmup(js.cosine_decay(0.1, 10), 5) != js.warmup(js.cosine_decay(0.2, 10), 5))
    assert len({js.cosine_decay(0.1, 1000), js.cosine_decay(0.1, 1000),
                js.cosine_decay(0.2, 1000)}) == 2


def test_config_of_key_seed_keeps_the_noise():
    s = js.noisy_linear_cosine_decay(0.1, 100, seed=jax.random.key(9))
    config = json.loads(json.dumps(s.to_config()))
    back = js.schedule_from_config(config)
    np.testing.assert_array_equal(np.asarray(back(jnp.arange(50))), np.asarray(s(jnp.arange(50))))


def test_schedule_from_config_rejects_bad_configs():
    with pytest.raises(ValueError, match=r"`schedule_from_config\(config=\.\.\.\)`"):
        js.schedule_from_config({"no": "schedule"})
    config = js.cosine_decay(0.1, 10).to_config()
    name_key = next(k for k, v in config.items() if v == "cosine_decay")
    with pytest.raises(ValueError, match="unknown schedule 'nope'"):
        js.schedule_from_config({**config, name_key: "nope"})
    with pytest.raises(ValueError, match=r"`cosine_decay\(decay_steps=\.\.\.\)` must be > 0"):
        js.schedule_from_config({**config, "decay_steps": 0})


def test_traced_schedule_cannot_be_saved():
    def f(lr):
        with pytest.raises(TypeError, match="traced"):
            js.cosine_decay(lr, 10).to_config()
        return lr

    jax.jit(f)(0.1)


def test_schedule_is_frozen():
    s = js.cosine_decay(0.1, 10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.learning_rate = 0.2


# --------------------------------------------------------------------------
# optax
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", FAMILY_CASES, ids=FAMILY_IDS)
def test_optax_accepts_schedule(case):
    s = case.make()
    params = {"w": jnp.ones(3)}
    grads = {"w": jnp.asarray([0.5, -1.0, 2.0])}
    opts = [optax.adam(s), optax.sgd(s), optax.inject_hyperparams(optax.sgd)(learning_rate=s),
            optax.chain(optax.clip_by_global_norm(1.0), optax.scale_by_adam(),
                        optax.scale_by_learning_rate(s))]

    @jax.jit
    def run(params):
        out = []
        for opt in opts:
            p, state = params, opt.init(params)
            for _ in range(3):
                updates, state = opt.update(grads, state, p)
                p = optax.apply_updates(p, updates)
            out.append((p, state))
        return out

    results = run(params)
    for p, _ in results:
        assert np.isfinite(np.asarray(p["w"])).all()
    # sgd: three steps of -lr(t) * g, t = 0, 1, 2
    lrs = [float(s(t)) for t in range(3)]
    want = 1.0 - sum(lrs) * np.asarray(grads["w"])
    _close(results[1][0]["w"], want, max(1.0, sum(lrs) * 2), 1e-6)
    _close(results[2][0]["w"], want, max(1.0, sum(lrs) * 2), 1e-6)
    # inject_hyperparams records the scheduled learning rate of the last step
    injected = results[2][1].hyperparams["learning_rate"]
    _close(injected, lrs[2], case.scale)
