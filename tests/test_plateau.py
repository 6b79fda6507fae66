"""`reduce_on_plateau` against PyTorch's ReduceLROnPlateau and an independent loop.

Expected values come from three independent sources, named per test:

- hand-derived tables (`HAND_*`), worked out on paper from the rule in
  docs/formulas.md;
- `reference.plateau_reference`, a float64 Python loop written from
  docs/formulas.md with jaxsched's two documented deviations (NaN/inf never
  improve; the relative threshold uses |best|);
- PyTorch's `torch.optim.lr_scheduler.ReduceLROnPlateau` itself, run live on
  an SGD optimizer with lr 1.0 (its lr sequence divided by the initial lr 1.0
  is the scale), wherever the deviations do not apply (positive metrics,
  NaN, +inf in min mode).

The metric sequences are recorded data written into this file (noisy loss,
accuracy and log-likelihood curves rounded to 3 decimals). Every sequence is
checked not to sit within 1e-5 of a decision boundary, so float32 (ours) and
float64 (references) must take the same branches.
"""

from __future__ import annotations

import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import jaxsched as js
import reference as ref

# ------------------------------------------------------------------ recorded data

LOSS_NOISY = [2.504, 2.261, 2.077, 1.878, 1.697, 1.581, 1.484, 1.362, 1.215, 1.111, 1.054, 1.007,
              0.877, 0.887, 0.81, 0.785, 0.754, 0.729, 0.723, 0.717, 0.66, 0.686, 0.608, 0.623,
              0.627, 0.591, 0.555, 0.541, 0.547, 0.56, 0.517, 0.535, 0.532, 0.549, 0.535, 0.536,
              0.503, 0.516, 0.541, 0.56, 0.476, 0.557, 0.551, 0.533, 0.516, 0.498, 0.55, 0.564,
              0.559, 0.544, 0.515, 0.467, 0.503, 0.522, 0.464, 0.514, 0.515, 0.522, 0.466, 0.481]
ACC_NOISY = [0.496, 0.55, 0.631, 0.652, 0.698, 0.724, 0.769, 0.789, 0.801, 0.789, 0.825, 0.843,
             0.856, 0.848, 0.879, 0.854, 0.866, 0.886, 0.881, 0.903, 0.888, 0.882, 0.886, 0.88,
             0.88, 0.9, 0.901, 0.909, 0.889, 0.914, 0.894, 0.913, 0.894, 0.891, 0.901, 0.909,
             0.901, 0.893, 0.886, 0.885, 0.905, 0.909, 0.898, 0.889, 0.908, 0.887, 0.893, 0.906,
             0.877, 0.904, 0.894, 0.901, 0.899, 0.902, 0.907, 0.892, 0.914, 0.907, 0.908, 0.912]
# A validation log-likelihood (negative, higher is better).
LOGLIK = [-2.984, -2.717, -2.501, -2.331, -2.132, -1.994, -1.877, -1.731, -1.649, -1.574, -1.5,
          -1.41, -1.353, -1.286, -1.271, -1.214, -1.175, -1.153, -1.2, -1.108, -1.108, -1.091,
          -1.079, -1.067, -1.058, -1.063, -1.087, -1.044, -1.053, -1.01, -1.033, -1.022, -1.038,
          -1.028, -1.016, -1.043, -1.006, -1.012, -1.032, -1.056, -0.996, -1.012, -1.016, -1.009,
          -0.967, -1.004, -1.001, -1.032, -0.969, -0.983, -0.98, -1.0, -0.983, -0.994, -0.989,
          -1.004, -1.03, -0.98, -1.039, -1.005]
# A loss that drops then sits exactly flat (a true plateau).
LOSS_FLAT = [3.0, 2.0, 1.5, 1.25] + [1.25] * 30
# The noisy loss followed by a long exact plateau (for the default patience of 10).
LOSS_LONG = LOSS_NOISY + [0.466] * 40
LOSS_NAN = LOSS_NOISY[:20] + [math.nan] + LOSS_NOISY[20:35] + [math.nan, math.nan] + LOSS_NOISY[35:]
LOSS_POSINF = LOSS_NOISY[:15] + [math.inf] + LOSS_NOISY[15:]
LOSS_NEGINF = LOSS_NOISY[:15] + [-math.inf] + LOSS_NOISY[15:]

# (name, values, kwargs, whether PyTorch gives the same sequence)
CASES = [
    ("noisy-min-rel-default", LOSS_LONG, {}, True),
    ("noisy-min-rel-p3", LOSS_NOISY, dict(factor=0.5, patience=3), True),
    ("noisy-min-abs-cooldown-floor", LOSS_NOISY,
     dict(factor=0.5, patience=2, threshold=0.0105, threshold_mode="abs", cooldown=2,
          min_scale=0.05), True),
    ("noisy-min-rel-big-threshold", LOSS_NOISY, dict(factor=0.3, patience=1, threshold=0.02),
     True),
    ("acc-max-rel", ACC_NOISY, dict(mode="max", factor=0.5, patience=3), True),
    ("acc-max-abs-cooldown-floor", ACC_NOISY,
     dict(mode="max", factor=0.3, patience=2, threshold=0.0025, threshold_mode="abs",
          cooldown=1, min_scale=0.1), True),
    ("flat-floor", LOSS_FLAT, dict(factor=0.5, patience=2, min_scale=0.1), True),
    ("flat-cooldown", LOSS_FLAT, dict(factor=0.1, patience=1, cooldown=3), True),
    ("flat-eps-skips-small-cuts", LOSS_FLAT, dict(factor=0.5, patience=0, eps=0.2), True),
    ("flat-patience0", LOSS_FLAT, dict(factor=0.9, patience=0), True),
    ("nan-min", LOSS_NAN, dict(factor=0.5, patience=3), True),
    ("nan-min-abs", LOSS_NAN, dict(factor=0.5, patience=2, threshold=0.0105,
                                   threshold_mode="abs"), True),
    ("posinf-min", LOSS_POSINF, dict(factor=0.5, patience=3), True),
    # Deviations: PyTorch makes -inf the best forever, and never sees a
    # negative log-likelihood improve with a relative threshold.
    ("neginf-min", LOSS_NEGINF, dict(factor=0.5, patience=3), False),
    ("loglik-max-rel", LOGLIK, dict(mode="max", factor=0.5, patience=3, threshold=0.01), False),
    ("loglik-max-abs", LOGLIK, dict(mode="max", factor=0.5, patience=3, threshold=0.0105,
                                    threshold_mode="abs"), True),
]
IDS = [c[0] for c in CASES]

# Worked out by hand from the rule (docs/formulas.md), one line per value:
# 1.0 beats +inf (best 1.0); 0.95 not < 0.9: bad 1; 0.95: bad 2 > 1, cut to
# 0.5, cooldown 1; 0.8 beats 0.9 (best 0.8), cooldown 1 -> 0; 0.8: bad 1;
# 0.8: bad 2, cut to 0.25, cooldown 1; 0.8: cooldown -> 0; 0.8: bad 1; 0.8:
# cut to max(0.125, 0.2) = 0.2; 0.8: cooldown; 0.8: bad 1; 0.8: cut to
# max(0.1, 0.2) = 0.2, a change of 0 <= eps: skipped.
HAND_VALUES = [1.0, 0.95, 0.95, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
HAND_KW = dict(factor=0.5, patience=1, threshold=0.1, threshold_mode="abs", cooldown=1,
               min_scale=0.2)
HAND_SCALES = [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2]

# Negative metric, max mode, rel threshold 0.1, patience 0, factor 0.5, by hand:
# -2.0 beats -inf; -1.5 > -2 + 0.2: best -1.5; -1.4 not > -1.35: cut 0.5;
# -1.3 > -1.35: best -1.3; -1.3 not > -1.17: cut 0.25.
# (PyTorch asks for a > best * 1.1, i.e. -1.65 after -1.5: it never cuts here.)
HAND_NEG_VALUES = [-2.0, -1.5, -1.4, -1.3, -1.3]
HAND_NEG_KW = dict(mode="max", factor=0.5, patience=0, threshold=0.1)
HAND_NEG_SCALES = [1.0, 1.0, 0.5, 0.5, 0.25]

# ------------------------------------------------------------------ helpers


def ours(values, **kw):
    """The scale applied to each update, and the updates of a gradient of ones."""
    return _ours(tuple(values), tuple(sorted(kw.items())))


@functools.lru_cache(maxsize=None)
def _ours(values, kw):
    kw = dict(kw)
    tx = js.reduce_on_plateau(**kw)

    @jax.jit
    def run(values):
        def body(state, v):
            u, state = tx.update({"w": jnp.ones(2)}, state, value=v)
            return state, (js.measurements(state)["scale"], u["w"])

        return jax.lax.scan(body, tx.init(None), values)[1]

    scales, updates = run(jnp.asarray(values, jnp.float32))
    return np.asarray(scales, np.float64), np.asarray(updates, np.float64)


def reference(values, **kw):
    r = ref.plateau_reference(**kw)
    return np.array([r.step(v) for v in values])


def pytorch(values, factor=0.1, patience=10, mode="min", threshold=1e-4,
            threshold_mode="rel", cooldown=0, min_scale=0.0, eps=1e-8):
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=mode, factor=factor, patience=patience, threshold=threshold,
        threshold_mode=threshold_mode, cooldown=cooldown, min_lr=min_scale, eps=eps)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for v in values:
            sched.step(v)
            out.append(opt.param_groups[0]["lr"])
    return np.array(out)


def assert_not_borderline(values, **kw):
    """The reference takes the same branches with every value moved by 1e-5."""
    base = reference(values, **kw)
    for sign in (1.0, -1.0):
        moved = [v + sign * 1e-5 * (-1) ** i for i, v in enumerate(values)]
        np.testing.assert_array_equal(reference(moved, **kw), base)


# ------------------------------------------------------------------ values


@pytest.mark.parametrize("name,values,kw,same_as_torch", CASES, ids=IDS)
def test_matches_reference(name, values, kw, same_as_torch):
    assert_not_borderline(values, **kw)
    expected = reference(values, **kw)
    scales, updates = ours(values, **kw)
    np.testing.assert_allclose(scales, expected, rtol=1e-6)
    np.testing.assert_allclose(updates, np.stack([expected] * 2, axis=1), rtol=1e-6)
    assert len(set(expected.tolist())) > 2  # the sequence exercises several cuts


@pytest.mark.parametrize("name,values,kw,same_as_torch", CASES, ids=IDS)
def test_matches_pytorch(name, values, kw, same_as_torch):
    scales, _ = ours(values, **kw)
    torch_scales = pytorch(values, **kw)
    if same_as_torch:
        np.testing.assert_allclose(scales, torch_scales, rtol=1e-6)
        literal = ref.plateau_pytorch_literal(**kw)
        np.testing.assert_allclose([literal.step(v) for v in values], torch_scales, rtol=1e-12)
    else:
        # The documented deviations change the outcome on these sequences.
        assert not np.allclose(scales, torch_scales, rtol=1e-6)


def test_hand_derived_table():
    scales, _ = ours(HAND_VALUES, **HAND_KW)
    np.testing.assert_array_equal(scales, np.float32(HAND_SCALES))
    np.testing.assert_array_equal(pytorch(HAND_VALUES, **HAND_KW), HAND_SCALES)


def test_negative_metric_hand_derived():
    scales, _ = ours(HAND_NEG_VALUES, **HAND_NEG_KW)
    np.testing.assert_array_equal(scales, np.float32(HAND_NEG_SCALES))
    np.testing.assert_array_equal(pytorch(HAND_NEG_VALUES, **HAND_NEG_KW), [1.0] * 5)


def test_nan_never_becomes_best():
    tx = js.reduce_on_plateau(patience=100)
    s = tx.init(None)
    update = jax.jit(lambda s, v: tx.update(jnp.zeros(1), s, value=v)[1])
    for v in [2.0, math.nan, -math.inf, math.inf, 1.0]:
        s = update(s, v)
    assert float(s.best) == 1.0 and int(s.num_bad) == 0


def test_eps_compares_scales():
    # factor 0.5 from 1.0 is a change of 0.5: skipped with eps 0.5, made with 0.49.
    assert ours([1.0, 1.0], factor=0.5, patience=0, eps=0.5)[0].tolist() == [1.0, 1.0]
    assert ours([1.0, 1.0], factor=0.5, patience=0, eps=0.49)[0].tolist() == [1.0, 0.5]


# ------------------------------------------------------------------ accumulation


def test_accumulation_averages_k_values():
    k = 3
    kw = dict(factor=0.5, patience=1)
    means = np.mean(np.reshape(LOSS_NOISY, (-1, k)), axis=1)
    assert_not_borderline(list(means), **kw)
    per_decision = reference(means, **kw)
    np.testing.assert_allclose(pytorch(means, **kw), per_decision, rtol=1e-12)
    # Update i uses the scale in force after its value: decided at i = 3j + 2.
    expected = [1.0 if (i + 1) // k == 0 else per_decision[(i + 1) // k - 1]
                for i in range(len(LOSS_NOISY))]
    scales, _ = ours(LOSS_NOISY, accumulation_size=k, **kw)
    np.testing.assert_allclose(scales, expected, rtol=1e-6)
    assert len(set(per_decision.tolist())) > 2


def test_accumulation_state_resets():
    tx = js.reduce_on_plateau(accumulation_size=3)
    s = tx.init(None)
    for v in [1.0, 2.0]:
        _, s = tx.update(jnp.zeros(1), s, value=v)
    assert float(s.acc_sum) == 3.0 and int(s.acc_count) == 2 and float(s.best) == math.inf
    _, s = tx.update(jnp.zeros(1), s, value=6.0)
    assert float(s.acc_sum) == 0.0 and int(s.acc_count) == 0 and float(s.best) == 3.0


# ------------------------------------------------------------------ composition


def _scan_chain(opt, values):
    def body(state, v):
        u, state = opt.update({"w": jnp.ones(2)}, state, {"w": jnp.zeros(2)}, value=v)
        return state, (u["w"][0], js.measurements(state)["scale"])

    state, (u, scale) = jax.jit(lambda vs: jax.lax.scan(body, opt.init({"w": jnp.zeros(2)}),
                                                        vs))(jnp.asarray(values))
    return state, np.asarray(u, np.float64), np.asarray(scale, np.float64)


@pytest.mark.parametrize("make", [
    lambda p: js.chain(js.sgd(0.1), p),
    lambda p: optax.chain(optax.sgd(0.1), p),
    lambda p: optax.chain(js.chain(p, js.clip(5.0)), optax.scale(-0.1)),
    lambda p: js.chain(optax.chain(js.sgd(0.1), optax.chain(p))),
    lambda p: js.skip_nonfinite(js.chain(js.sgd(0.1), p)),
], ids=["js.chain", "optax.chain", "nested-first", "nested-deep", "skip_nonfinite"])
def test_value_forwarded_through_chains(make):
    kw = dict(factor=0.5, patience=3)
    expected = reference(LOSS_NOISY, **kw)
    state, u, scale = _scan_chain(make(js.reduce_on_plateau(**kw)), LOSS_NOISY)
    np.testing.assert_allclose(scale, expected, rtol=1e-6)
    np.testing.assert_allclose(u, -0.1 * expected, rtol=1e-6)
    assert float(js.measurements(state, "scale")) == pytest.approx(expected[-1], rel=1e-6)


def test_measurements_report_scale_in_force():
    opt = js.chain(js.adam(1e-3), js.reduce_on_plateau(factor=0.5, patience=0))
    s = opt.init(jnp.zeros(1))
    assert float(js.measurements(s)["scale"]) == 1.0
    _, s = opt.update(jnp.ones(1), s, value=1.0)
    assert float(js.measurements(s)["scale"]) == 1.0
    u, s = opt.update(jnp.ones(1), s, value=1.0)
    assert float(js.measurements(s)["scale"]) == 0.5
    assert set(js.hyperparams(s)) == {"learning_rate", "b1", "b2", "eps", "eps_root"}
    assert set(js.measurements(s)) == {"scale"}


def test_inject_hyperparams_and_vmap_over_factor():
    kw = dict(patience=3)
    opt = optax.inject_hyperparams(js.reduce_on_plateau, static_args=("mode", "threshold_mode"))(
        factor=0.5, **kw)
    _, _, scale = _scan_chain(opt, LOSS_NOISY)
    np.testing.assert_allclose(scale, reference(LOSS_NOISY, factor=0.5, **kw), rtol=1e-6)

    def run(factor):
        tx = js.reduce_on_plateau(factor=factor, **kw)  # built with a traced factor

        def body(state, v):
            _, state = tx.update(jnp.ones(1), state, value=v)
            return state, state.scale

        return jax.lax.scan(body, tx.init(None), jnp.asarray(LOSS_NOISY))[1]

    factors = jnp.array([0.1, 0.3, 0.5, 0.9])
    scales = jax.jit(jax.vmap(run))(factors)
    for f, got in zip(factors.tolist(), np.asarray(scales)):
        np.testing.assert_allclose(got, reference(LOSS_NOISY, factor=f, **kw), rtol=1e-6)


def test_state_structure_and_dtype_stable():
    for kw in [{}, dict(accumulation_size=3, mode="max", threshold_mode="abs")]:
        tx = js.reduce_on_plateau(**kw)
        s0 = tx.init(None)

        @jax.jit
        def step(s, v):
            _, new = tx.update(jnp.ones(3, jnp.bfloat16), s, value=v)
            return jax.lax.cond(True, lambda: s, lambda: new)  # fails on any drift

        step(s0, 1.0)
        assert [x.dtype for x in jax.tree.leaves(s0)] == [
            jnp.int32, jnp.float32, jnp.int32, jnp.int32, jnp.float32, jnp.float32, jnp.int32]
    u, _ = js.reduce_on_plateau().update(jnp.ones(3, jnp.bfloat16), s0, value=1)
    assert u.dtype == jnp.bfloat16


def test_one_compilation_for_1000_steps():
    """A whole jitted train step with reduce_on_plateau traces once over 1,000 steps."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((64, 4)), jnp.float32)
    y = x @ jnp.array([1.0, -2.0, 0.5, 3.0]) + 0.3 * jnp.asarray(rng.standard_normal(64))
    opt = js.chain(js.momentum(0.05, 0.9), js.reduce_on_plateau(factor=0.5, patience=20))
    traces = []

    @jax.jit
    def train_step(params, state, batch):
        traces.append(1)
        xb, yb = batch

        def loss_fn(p):
            return jnp.mean(jnp.square(xb @ p - yb))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = opt.update(grads, state, params, value=loss)
        return optax.apply_updates(params, updates), state, loss

    params = jnp.zeros(4)
    state = opt.init(params)
    scales = []
    for i in range(1000):
        idx = (i * 16) % 64
        params, state, loss = train_step(params, state, (x[idx:idx + 16], y[idx:idx + 16]))
        scales.append(state[1].scale)
    assert len(traces) == 1
    assert train_step._cache_size() == 1
    scales = np.asarray(jnp.stack(scales))
    assert scales[0] == 1.0 and scales[-1] < 0.1  # it did cut, several times
    assert np.all(np.diff(scales) <= 0)
    assert np.isfinite(np.asarray(params)).all()


# ------------------------------------------------------------------ bad input

BAD = [
    (dict(factor=1.0), ValueError, "`reduce_on_plateau(factor=...)` must be < 1, got 1.0."),
    (dict(factor=0.0), ValueError, "`reduce_on_plateau(factor=...)` must be > 0, got 0.0."),
    (dict(factor=1.5), ValueError, "`reduce_on_plateau(factor=...)` must be < 1, got 1.5."),
    (dict(factor="0.1"), TypeError, "`reduce_on_plateau(factor=...)` must be a number"),
    (dict(patience=-1), ValueError, "`reduce_on_plateau(patience=...)` must be >= 0, got -1."),
    (dict(patience=2.5), TypeError, "`reduce_on_plateau(patience=...)` must be an integer"),
    (dict(cooldown=-2), ValueError, "`reduce_on_plateau(cooldown=...)` must be >= 0, got -2."),
    (dict(min_scale=-0.1), ValueError,
     "`reduce_on_plateau(min_scale=...)` must be >= 0, got -0.1."),
    (dict(threshold=-1e-4), ValueError,
     "`reduce_on_plateau(threshold=...)` must be >= 0, got -0.0001."),
    (dict(eps=-1.0), ValueError, "`reduce_on_plateau(eps=...)` must be >= 0, got -1.0."),
    (dict(mode="mean"), ValueError,
     "`reduce_on_plateau(mode=...)` must be one of 'min', 'max', got 'mean'."),
    (dict(threshold_mode="relative"), ValueError,
     "`reduce_on_plateau(threshold_mode=...)` must be one of 'rel', 'abs', got 'relative'."),
    (dict(accumulation_size=0), ValueError,
     "`reduce_on_plateau(accumulation_size=...)` must be >= 1, got 0."),
    (dict(accumulation_size=2.0), TypeError,
     "`reduce_on_plateau(accumulation_size=...)` must be an integer"),
]


@pytest.mark.parametrize("kw,exc,message", BAD, ids=[str(b[0]) for b in BAD])
def test_bad_arguments(kw, exc, message):
    with pytest.raises(exc) as info:
        js.reduce_on_plateau(**kw)
    assert str(info.value).startswith(message)


def test_missing_value_is_a_clear_type_error():
    for opt in [js.reduce_on_plateau(), js.chain(js.sgd(0.1), js.reduce_on_plateau())]:
        s = opt.init(jnp.zeros(1))
        with pytest.raises(TypeError, match=r"`reduce_on_plateau\(\.\.\.\)\.update` needs the "
                                            r"metric as the keyword argument `value`"):
            opt.update(jnp.ones(1), s, jnp.zeros(1))
    with pytest.raises(ValueError, match=r"update\(value=\.\.\.\)` must be a scalar, got "
                                         r"shape \(3,\)"):
        js.reduce_on_plateau().update(jnp.ones(1), s[1], value=jnp.ones(3))
