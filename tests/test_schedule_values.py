"""Schedule values against the float64 reference, torch and optax (float32).

One registry, `CASES`, lists every schedule family in several configurations
with the matching `reference` function; the value tests run over all of it.
`tests/x64/test_schedules_exact.py` reuses the registry under x64 with a
1e-12 tolerance.

Hyperparameters that get raised to a large power (`decay_rate`, `gamma`) are
exactly representable in float32 (or harmless at the steps tested), so the
float32 comparison measures the schedule's arithmetic, not the rounding of
its inputs.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsched as js
import reference as ref

from schedule_cases import (CASES, CASE_IDS, FAMILIES, FAMILY_CASES, INT32_MAX, LOG_STEPS, assert_close_to_scale, check_case_values,
                            check_restarts, padded_call, restart_list)



# --------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------


def test_registry_covers_every_family():
    expected = {"exponential_decay", "natural_exp_decay", "inverse_time_decay", "polynomial_decay",
                "cosine_decay", "cosine_decay_restarts", "linear_cosine_decay",
                "noisy_linear_cosine_decay", "piecewise_constant", "one_cycle", "cyclic",
                "constant", "warmup", "join", "warmup_stable_decay", "inverse_sqrt",
                "piecewise_interpolate", "shift", "cooldown", "one_cycle_momentum",
                "cyclic_momentum", "product", "add"}
    assert set(FAMILIES) == expected
    assert len(CASE_IDS) == len(set(CASE_IDS))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_matches_reference_float32(case):
    assert jnp.zeros(()).dtype == jnp.float32
    check_case_values(case, case.f32_tol, case.f32_limit)


@pytest.mark.parametrize("case", [c for c in CASES if c.marks], ids=[c.id for c in CASES if c.marks])
def test_boundaries_float32(case):
    """Boundaries, restarts and milestones, at b-1, b and b+1 (also scalar calls)."""
    near = sorted({b + d for b in case.marks for d in (-1, 0, 1)
                   if 0 <= b + d <= min(case.f32_limit, INT32_MAX)})
    sched = case.make()
    want = case.expected(near)
    assert_close_to_scale(padded_call(sched, np.asarray(near, np.int64)), want, case.scale,
                          case.f32_tol, case.id)


# --------------------------------------------------------------------------
# cosine_decay_restarts: every restart below 2**31
# --------------------------------------------------------------------------

@pytest.mark.parametrize("first", [1, 7, 100])
@pytest.mark.parametrize("t_mul", [1.0, 2.0, 3.0])
def test_restarts_integer_t_mul_below_2_31_float32(first, t_mul):
    n = check_restarts(first, t_mul, restart_list(first, t_mul, 2**31), 1e-6)
    assert n >= (4000 if t_mul == 1 else 15)


@pytest.mark.parametrize("first", [1, 7, 100])
@pytest.mark.parametrize("t_mul", [1.1, 1.5])
def test_restarts_fractional_t_mul_below_2_24_float32(first, t_mul):
    """Non-integer t_mul in float32 below 2**24, against the reference with the
    float32 value of t_mul (what the schedule computes with)."""
    t32 = float(np.float32(t_mul))
    n = check_restarts(first, t_mul, ref.restart_steps(first, t32, 2**24), 1e-6,
                       ref_t_mul=t32, window=2.0**-20)
    assert n >= 20


def test_restarts_t_mul_1_last_restart_below_2_31():
    """With first=1 and t_mul=1 every step is a restart; the last ones below 2**31."""
    s = js.cosine_decay_restarts(1.0, 1, 1.0)
    got = padded_call(s, np.asarray([INT32_MAX - 2, INT32_MAX - 1, INT32_MAX]))
    np.testing.assert_array_equal(got, np.ones(3, np.float32))
    # first=3: 2**31 - 1 - 1 = 3 * 715827882 is a restart, 2**31 - 1 is one step in
    s3 = js.cosine_decay_restarts(1.0, 3, 1.0)
    got = padded_call(s3, np.asarray([INT32_MAX - 2, INT32_MAX - 1, INT32_MAX]))
    want = [ref.cosine_decay_restarts(1.0, 3, 1.0, 1.0, 0.0, t)
            for t in (INT32_MAX - 2, INT32_MAX - 1, INT32_MAX)]
    np.testing.assert_allclose(got, want, atol=1e-6)


# --------------------------------------------------------------------------
# noisy linear cosine decay
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 123, jax.random.key(7)], ids=["int0", "int123", "key7"])
def test_noise_is_a_pure_function_of_seed_and_step(seed):
    s = js.noisy_linear_cosine_decay(0.1, 1000, seed=seed)
    a = padded_call(s, np.arange(300))
    np.testing.assert_array_equal(padded_call(s, np.arange(300)), a)
    # a rebuilt schedule with the same seed gives the same noise
    np.testing.assert_array_equal(
        padded_call(js.noisy_linear_cosine_decay(0.1, 1000, seed=seed), np.arange(300)), a)
    if not isinstance(seed, int) or seed == 0:
        # eager equals jit, up to float32 rounding (XLA fuses differently)
        eager = np.asarray(s(jnp.arange(300)))
        np.testing.assert_allclose(eager, a, rtol=0, atol=1e-7)
        assert float(s(17)) == float(s(17))
        assert abs(float(s(17)) - float(a[17])) <= 1e-7
    assert np.isfinite(a).all()
    noiseless = np.array([ref.noiseless_linear_cosine(0.1, 1000, 0.5, 0.0, 0.001, t)
                          for t in range(300)])
    assert (np.abs(a - noiseless) > 1e-7).mean() > 0.9  # there is noise


def test_noise_differs_between_seeds():
    steps = jnp.arange(1, 200)
    values = [padded_call(js.noisy_linear_cosine_decay(0.1, 1000, seed=seed), np.asarray(steps))
              for seed in (0, 1, jax.random.key(0), jax.random.key(1))]
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            if (i, j) in ((0, 2), (1, 3)):  # int seed n and key(n) may agree
                continue
            assert (values[i] != values[j]).mean() > 0.9, (i, j)


@pytest.mark.parametrize("num_periods", [0.0, 0.5])
@pytest.mark.parametrize("variance_decay", [0.0, 0.55])
def test_noise_std_matches_reference(num_periods, variance_decay):
    """(value - noiseless) / (lr * c), divided by the reference std, is ~ N(0, 1)."""
    lr, d, var = 0.1, 10**6, 0.25
    n = 4000
    steps = np.arange(n)
    s = js.noisy_linear_cosine_decay(lr, d, initial_variance=var, variance_decay=variance_decay,
                                     num_periods=num_periods, alpha=0.0, beta=0.001, seed=2024)
    got = padded_call(s, steps).astype(np.float64)
    noiseless = np.array([ref.noiseless_linear_cosine(lr, d, num_periods, 0.0, 0.001, int(t))
                          for t in steps])
    c = 0.5 * (1 + np.cos(np.pi * 2 * num_periods * steps / d))
    std = np.array([ref.noisy_linear_cosine_decay_std(var, variance_decay, d, int(t))
                    for t in steps])
    z = (got - noiseless) / (lr * c) / std
    # float32 rounding of the value is ~1e-8; the noise is >= ~1e-3 here
    assert abs(z.mean()) < 0.1, z.mean()
    assert 0.9 < z.std() < 1.1, z.std()
    # and not just overall: early and late halves both have unit spread
    assert 0.85 < z[: n // 2].std() < 1.15 and 0.85 < z[n // 2:].std() < 1.15


def test_noise_clamps_at_decay_steps():
    """Past decay_steps the noise keeps the variance of t' = decay_steps."""
    s = js.noisy_linear_cosine_decay(1.0, 50, 1.0, 0.55, num_periods=0.0, beta=0.0, seed=3)
    # positional order is TensorFlow's: initial_variance, variance_decay, num_periods, ...
    assert (s.initial_variance, s.variance_decay, s.num_periods) == (1.0, 0.55, 0.0)
    steps = np.arange(100, 4100)
    z = padded_call(s, steps).astype(np.float64)  # linear part is 0 past decay_steps
    want_std = ref.noisy_linear_cosine_decay_std(1.0, 0.55, 50, 100)
    assert 0.9 < z.std() / want_std < 1.1


# --------------------------------------------------------------------------
# no NaN or inf, any accepted configuration, any step
# --------------------------------------------------------------------------

EDGE_CONFIGS = {
    "polynomial-power0.5-end": lambda: js.polynomial_decay(1.0, 10, 0.0, 0.5),
    "polynomial-power0.5-cycle": lambda: js.polynomial_decay(1.0, 10, 0.0, 0.5, cycle=True),
    "polynomial-tiny-power": lambda: js.polynomial_decay(1.0, 3, 0.1, 1e-3, cycle=True),
    "warmup-zero-length": lambda: js.warmup(js.cosine_decay(0.1, 10), 0),
    "warmup-of-function": lambda: js.warmup(optax.cosine_decay_schedule(0.1, 10), 5),
    "wsd-all-zero": lambda: js.warmup_stable_decay(1.0, 0, 0, 0),
    "wsd-no-stable-no-decay": lambda: js.warmup_stable_decay(1.0, 5, 0, 0, decay="sqrt"),
    "wsd-no-warmup-no-stable": lambda: js.warmup_stable_decay(1.0, 0, 0, 5, decay="cosine"),
    "wsd-only-stable": lambda: js.warmup_stable_decay(1.0, 0, 5, 0, end_value=0.1),
    "restarts-t_mul-0.5": lambda: js.cosine_decay_restarts(1.0, 10, 0.5),
    "restarts-t_mul-0.5-m0": lambda: js.cosine_decay_restarts(1.0, 10, 0.5, 0.0, 0.1),
    "restarts-t_mul-0.01": lambda: js.cosine_decay_restarts(1.0, 3, 0.01, 0.5),
    "restarts-m_mul-0": lambda: js.cosine_decay_restarts(1.0, 10, 2.0, 0.0),
    "restarts-alpha-1": lambda: js.cosine_decay_restarts(1.0, 10, 1.5, 0.5, 1.0),
    "restarts-t_mul-64": lambda: js.cosine_decay_restarts(1.0, 1, 64.0),
    "restarts-float-first": lambda: js.cosine_decay_restarts(1.0, 2.5, 2.0, 0.7),
    "restarts-huge-first": lambda: js.cosine_decay_restarts(1.0, 2.0**40, 3.0),
    "cosine-alpha-1": lambda: js.cosine_decay(0.1, 10, 1.0),
    "cosine-float-steps": lambda: js.cosine_decay(0.1, 10.5),
    "exponential-rate-0": lambda: js.exponential_decay(0.1, 10, 0.0),
    "exponential-rate-0-stair": lambda: js.exponential_decay(0.1, 10, 0.0, True),
    "natural-exp-big-rate": lambda: js.natural_exp_decay(0.1, 1, 1e30),
    "inverse-time-big-rate": lambda: js.inverse_time_decay(0.1, 1, 1e30, True),
    "one_cycle-1": lambda: js.one_cycle(0.1, 1),
    "one_cycle-2": lambda: js.one_cycle(0.1, 2),
    "one_cycle-2-three": lambda: js.one_cycle(0.1, 2, 0.5, three_phase=True),
    # pct_start * total_steps == 1 exactly: the first (and middle) phase has length 0
    "one_cycle-zero-up-phase": lambda: js.one_cycle(0.1, 8, 0.125),
    "one_cycle-zero-middle-phase": lambda: js.one_cycle(0.1, 4, 0.25, "linear",
                                                        three_phase=True),
    "one_cycle-tiny-pct": lambda: js.one_cycle(0.1, 5, 1e-9),
    "cyclic-exp-range-tiny-gamma": lambda: js.cyclic(0.0, 1.0, 1, mode="exp_range", gamma=1e-30),
    "cyclic-triangular2": lambda: js.cyclic(0.0, 1.0, 1, 1, mode="triangular2"),
    "cyclic-float-sizes": lambda: js.cyclic(0.1, 1.0, 2.5, 0.5),
    "piecewise-at-zero": lambda: js.piecewise_constant([0], [1.0, 0.0]),
    "piecewise-beyond-int32": lambda: js.piecewise_constant([2**31, 2**40], [1.0, 0.5, 0.1]),
    "join-at-zero": lambda: js.join([js.constant(1.0), js.cosine_decay(0.1, 10)], [0]),
    "join-beyond-int32": lambda: js.join([js.constant(1.0), js.cosine_decay(0.1, 10)], [2**40]),
    "inverse_sqrt-1": lambda: js.inverse_sqrt(1.0, 1),
    "noisy-no-decay": lambda: js.noisy_linear_cosine_decay(0.1, 10, 1.0, 0.0, seed=-3),
    "noisy-big-seed": lambda: js.noisy_linear_cosine_decay(0.1, 10, seed=2**40),
    "linear-cosine-zero-periods": lambda: js.linear_cosine_decay(0.1, 10, 0.0, 0.0, 0.0),
    "constant-zero": lambda: js.constant(0.0),
}

DENSE_STEPS = np.unique(np.concatenate([
    np.arange(0, 2000), LOG_STEPS,
    [2**k + d for k in range(1, 31) for d in (-1, 0, 1)],
    [INT32_MAX - k for k in range(5)]])).astype(np.int64)
DENSE_STEPS = DENSE_STEPS[DENSE_STEPS <= INT32_MAX]
LARGE_PYTHON_STEPS = [INT32_MAX, 2**31, 2**32 + 7, 2**40, 10**12, 2**62, -1, -(2**40)]


def _all_schedules():
    out = {case.id: case.make for case in FAMILY_CASES}
    out.update(EDGE_CONFIGS)
    return out


ALL_SCHEDULES = _all_schedules()


# Python-int leaves beyond int32 cannot be jit arguments without x64: call eagerly
EAGER_ONLY = {"piecewise-beyond-int32", "join-beyond-int32", "noisy-big-seed"}


@pytest.mark.parametrize("name", list(ALL_SCHEDULES))
def test_finite_everywhere(name):
    s = ALL_SCHEDULES[name]()
    if name in EAGER_ONLY:
        steps = np.asarray([0, 1, 2, 1000, 2**31 - 2**20, INT32_MAX - 1, INT32_MAX])
        got = np.asarray(s(jnp.asarray(steps)))
    else:
        steps = DENSE_STEPS
        got = padded_call(s, steps)
    assert np.isfinite(got).all(), steps[~np.isfinite(got)][:5]
    if not name.startswith("noisy"):  # noise on the linear term can go below 0, as in TF
        assert (got >= 0).all(), steps[got < 0][:5]
    assert got.dtype == np.float32
    # Python ints beyond int32 (and negative ones) do not raise and stay finite
    big = [float(s(t)) for t in LARGE_PYTHON_STEPS]
    assert np.isfinite(big).all(), big
    # negative steps behave as step 0
    assert big[-1] == big[-2] == float(s(0))


@pytest.mark.parametrize("case", FAMILY_CASES, ids=[c.id for c in FAMILY_CASES])
def test_large_integer_steps_match_reference(case):
    """Python ints and int64 arrays beyond int32 become floats, not wrapped ints."""
    s = case.make()
    steps = [2**31, 2**33, 2**40, 10**12]
    wide = np.asarray(steps, np.int64)
    got = np.asarray(s(wide))
    assert got.dtype == np.float32 and got.shape == (4,)
    assert np.isfinite(got).all()
    # in float32 the step itself rounds: compare with the reference at the rounded step
    rounded = [int(np.float32(t)) for t in steps]
    want = case.expected(rounded)
    periodic = case.id.split("-")[0] in ("cyclic", "cosine_decay_restarts", "cyclic_momentum")
    if not periodic:
        assert_close_to_scale(got, want, case.scale, 1e-6, case.id)
    assert float(s(10**12)) == pytest.approx(float(got[3]), abs=1e-7 * case.scale)


STEP_KINDS = {
    "python-int": lambda: 5,
    "python-float": lambda: 5.0,
    "numpy-int64": lambda: np.asarray([0, 5, 2**40], np.int64),
    "int32": lambda: jnp.asarray([0, 5, 70], jnp.int32),
    "negative-int32": lambda: jnp.asarray([-5, -1, 0], jnp.int32),
    "uint32": lambda: jnp.asarray([0, 5, 2**32 - 1], jnp.uint32),
    "uint8": lambda: jnp.asarray([0, 5, 255], jnp.uint8),
    "int8": lambda: jnp.asarray([-128, 5, 127], jnp.int8),
    "int16": lambda: jnp.asarray([-5, 5, 32767], jnp.int16),
    "float32": lambda: jnp.asarray([0.0, 5.5, 1e9], jnp.float32),
    "negative-float32": lambda: jnp.asarray([-3.5, -0.0, 0.0], jnp.float32),
    "bfloat16": lambda: jnp.asarray([0.0, 5.0, 3e38], jnp.bfloat16),
    "float16": lambda: jnp.asarray([0.0, 5.0, 65504], jnp.float16),
    "numpy-float64": lambda: np.asarray([0.0, 5.0, 1e15]),
}

# one representative per family plus a few edge configurations
KIND_SCHEDULES = {case.id: case.make for case in FAMILY_CASES}
KIND_SCHEDULES.update({k: EDGE_CONFIGS[k] for k in (
    "polynomial-power0.5-cycle", "restarts-t_mul-0.5", "wsd-all-zero", "one_cycle-1")})


@pytest.mark.parametrize("kind", list(STEP_KINDS))
def test_every_step_dtype_gives_finite_float32(kind):
    step = STEP_KINDS[kind]()
    for name, make in KIND_SCHEDULES.items():
        s = make()
        got = s(step)
        assert got.dtype == jnp.float32, (name, got.dtype)
        assert got.shape == np.shape(step), name
        assert np.isfinite(np.asarray(got)).all(), (name, got)
        if kind in ("negative-int32", "negative-float32"):
            zero = float(s(0))
            np.testing.assert_allclose(np.asarray(got), zero, rtol=0, atol=1e-7, err_msg=name)
        if kind in ("python-int", "python-float", "uint8", "int8", "int16"):
            ref5 = float(s(jnp.int32(5)))
            got5 = float(np.ravel(np.asarray(got))[1] if np.ndim(got) else got)
            assert got5 == pytest.approx(ref5, abs=1e-7), name


def test_integer_steps_do_not_wrap():
    s = js.cosine_decay(1.0, 100)
    assert float(s(np.uint32(2**32 - 1))) == 0.0  # not -1, not a wrapped small step
    assert float(s(np.int64(2**32 + 1))) == 0.0
    assert float(s(jnp.asarray(2**31 - 1, jnp.int32))) == 0.0
    c = js.cyclic(0.0, 1.0, 10)
    assert float(c(jnp.asarray(2**32 - 1, jnp.uint32))) == float(c(INT32_MAX))  # saturates


def test_hyperparameters_in_bfloat16_compute_in_float32():
    b = jnp.asarray(0.999, jnp.bfloat16)  # bfloat16(0.999) == 1.0
    assert float(b) == 1.0
    s = js.exponential_decay(jnp.asarray(0.1, jnp.bfloat16), jnp.asarray(100, jnp.bfloat16),
                             jnp.asarray(0.5, jnp.bfloat16))
    assert s(10).dtype == jnp.float32
    assert float(s(100)) == pytest.approx(float(jnp.asarray(0.1, jnp.bfloat16)) * 0.5, rel=1e-6)
    c = js.cosine_decay(jnp.asarray(1.0, jnp.bfloat16), 1000, jnp.asarray(0.5, jnp.bfloat16))
    got = c(jnp.arange(1000))
    assert got.dtype == jnp.float32
    want = [ref.cosine_decay(1.0, 1000, 0.5, t) for t in range(1000)]
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-6)
    # distinct values that bfloat16 would merge stay distinct
    assert len(np.unique(np.asarray(got))) > 900


# --------------------------------------------------------------------------
# torch and optax
# --------------------------------------------------------------------------


def _torch_lrs(make_scheduler, lr, n):
    import torch
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = make_scheduler(opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.asarray(out)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_matches_torch(strategy, three_phase):
    import torch
    n = 300
    want = _torch_lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.1, total_steps=n, pct_start=0.3, anneal_strategy=strategy,
        cycle_momentum=False, div_factor=25.0, final_div_factor=1e4, three_phase=three_phase),
        0.1, n)
    got = padded_call(js.one_cycle(0.1, n, 0.3, strategy, 25.0, 1e4, three_phase), np.arange(n))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7 * 0.1)


@pytest.mark.parametrize("mode,down,gamma", [("triangular", None, 1.0), ("triangular", 30, 1.0),
                                             ("triangular2", None, 1.0),
                                             ("exp_range", 15, 0.995)])
def test_cyclic_matches_torch(mode, down, gamma):
    import torch
    n = 400
    want = _torch_lrs(lambda o: torch.optim.lr_scheduler.CyclicLR(
        o, base_lr=0.01, max_lr=0.1, step_size_up=20, step_size_down=down, mode=mode,
        gamma=gamma, cycle_momentum=False), 0.01, n)
    got = padded_call(js.cyclic(0.01, 0.1, 20, down, mode, gamma), np.arange(n))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("t0,t_mult,eta_min", [(10, 1, 0.0), (10, 2, 0.001), (7, 3, 0.01)])
def test_cosine_restarts_matches_torch_warm_restarts(t0, t_mult, eta_min):
    import torch
    n = 300
    lr = 0.1
    want = _torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        o, T_0=t0, T_mult=t_mult, eta_min=eta_min), lr, n)
    got = padded_call(js.cosine_decay_restarts(lr, t0, float(t_mult), 1.0, eta_min / lr),
                      np.arange(n))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)


OPTAX_PAIRS = {
    "cosine": (lambda: js.cosine_decay(0.1, 500, 0.05),
               lambda: optax.cosine_decay_schedule(0.1, 500, 0.05)),
    "exponential": (lambda: js.exponential_decay(0.1, 50, 0.5),
                    lambda: optax.exponential_decay(0.1, 50, 0.5)),
    "exponential-staircase": (lambda: js.exponential_decay(0.1, 50, 0.5, staircase=True),
                              lambda: optax.exponential_decay(0.1, 50, 0.5, staircase=True)),
    "polynomial": (lambda: js.polynomial_decay(0.1, 300, 0.001, 2.0),
                   lambda: optax.polynomial_schedule(0.1, 0.001, 2.0, 300)),
    "join": (lambda: js.join([js.constant(0.1), js.cosine_decay(0.05, 100)], [50]),
             lambda: optax.join_schedules([optax.constant_schedule(0.1),
                                           optax.cosine_decay_schedule(0.05, 100)], [50])),
}


@pytest.mark.parametrize("name", list(OPTAX_PAIRS))
def test_matches_optax_equivalent(name):
    ours, theirs = (f() for f in OPTAX_PAIRS[name])
    steps = np.arange(0, 600)
    got = padded_call(ours, steps)
    want = np.asarray(jax.vmap(theirs)(jnp.asarray(steps)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)
