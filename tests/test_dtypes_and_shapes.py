"""Nothing silently wrong in the transformations: low precision, complex and
integer parameters, array hyperparameters of the wrong shape, several trees.

Low precision: the state of bfloat16/float16 parameters is float32, so Adam
over 1,000+ steps follows a float64 reference of the same algorithm (whose
parameters are rounded to the parameter dtype after every step, as the real
run's are) to within the rounding of the update to that dtype. optax keeps
the moments in the parameters' dtype, where `v` stops tracking in bfloat16
and `(1 - b2) * g**2` underflows in float16.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pytest
from training import scanned

import jaxsched as js


def _adam_reference(grads, p0, lr, b1, b2, eps, dtype):
    """float64 Adam whose parameters are stored in `dtype` between steps."""
    p = p0.astype(np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    updates = []
    for k, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        u = -lr * (m / (1 - b1**k)) / (np.sqrt(v / (1 - b2**k)) + eps)
        updates.append(u)
        p = (p + u.astype(dtype)).astype(dtype).astype(np.float64)
    return np.stack(updates), p


@pytest.mark.parametrize("dtype,scale", [(jnp.bfloat16, 1.0), (jnp.float16, 1e-4)],
                         ids=["bfloat16", "float16-small-gradients"])
def test_adam_in_low_precision_follows_float64_reference_over_1200_steps(dtype, scale):
    np_dtype = ml_dtypes.bfloat16 if dtype == jnp.bfloat16 else np.float16
    steps, lr, b1, b2, eps = 1200, 1e-3, 0.9, 0.999, 1e-8
    rng = np.random.default_rng(0)
    grads = (rng.normal(size=(steps, 256)) * scale).astype(np_dtype)
    p0 = np.zeros(256, np_dtype)
    opt = js.adam(lr, b1, b2, eps)
    p, state, _, updates = scanned(opt, jnp.asarray(p0), jnp.asarray(grads))
    assert state[0].nu.dtype == jnp.float32 and state[0].mu.dtype == jnp.float32
    want_u, want_p = _adam_reference(grads, p0, lr, b1, b2, eps, np_dtype)
    got_u = np.asarray(updates, np.float64)
    # One rounding of the update to the parameter dtype (2**-8 for bfloat16, 2**-11 float16).
    rel = 2.0**-7 if dtype == jnp.bfloat16 else 2.0**-10
    np.testing.assert_allclose(got_u, want_u, rtol=rel, atol=rel * lr)
    # Late in the run the step is still about the learning rate, not 1.5x it.
    assert np.abs(got_u[-100:]).mean() < 1.2 * lr
    assert np.isfinite(np.asarray(p, np.float32)).all()


def test_optax_bfloat16_adam_drifts_where_jaxsched_does_not():
    """The failure this guards against, measured on optax's own adam: its late
    steps are far from the float64 reference, jaxsched's within rounding."""
    rng = np.random.default_rng(1)
    grads = rng.normal(size=(1000, 64)).astype(ml_dtypes.bfloat16)
    p = jnp.zeros(64, jnp.bfloat16)
    want, _ = _adam_reference(grads, np.zeros(64, ml_dtypes.bfloat16), 1e-3, 0.9, 0.999, 1e-8,
                              ml_dtypes.bfloat16)

    def late_error(opt):
        def body(s, g):
            u, s = opt.update(g, s, p)
            return s, u
        _, us = jax.lax.scan(body, opt.init(p), jnp.asarray(grads))
        got = np.asarray(us[-100:], np.float64)
        return float(np.abs(got - want[-100:]).mean() / np.abs(want[-100:]).mean())

    assert late_error(optax.adam(1e-3)) > 0.05  # measured: 0.12 with optax 0.2.8
    assert late_error(js.adam(1e-3)) < 2.0**-7


TRANSFORMS = {
    "adam": lambda: js.adam(0.1),
    "adamw": lambda: js.adamw(0.1),
    "sgd": lambda: js.sgd(0.1),
    "clip": lambda: js.clip(1.0),
    "clip_by_global_norm": lambda: js.clip_by_global_norm(1.0),
    "ema": lambda: js.ema(0.9),
    "fuse(adam)": lambda: js.fuse(js.adam(0.1)),
}


@pytest.mark.parametrize("name", TRANSFORMS)
@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.int32, jnp.bool_],
                         ids=["complex64", "int32", "bool"])
def test_non_real_float_parameters_are_refused_at_init(name, dtype):
    params = {"w": jnp.ones(3, jnp.float32), "z": jnp.ones(2, dtype)}
    with pytest.raises(TypeError, match=r"must be real floating-point arrays, got .* at "
                                        r"\['z'\]"):
        TRANSFORMS[name]().init(params)


def test_complex_updates_are_refused_at_update():
    tx = js.scale(2.0)
    state = tx.init(None)
    with pytest.raises(TypeError, match=re.escape("`scale`: the updates must be real "
                                                  "floating-point arrays, got complex complex64")):
        tx.update({"z": jnp.ones(2, jnp.complex64)}, state)


def test_optimizer_names_itself_when_refusing_a_dtype():
    with pytest.raises(TypeError, match=r"^`adamw`: the parameters must be real"):
        js.adamw(0.1).init({"step": jnp.zeros((), jnp.int32)})


@pytest.mark.parametrize("make,name", [
    (lambda lr: js.sgd(lr), "learning_rate"),
    (lambda b1: js.adam(0.1, b1=b1), "b1"),
    (lambda wd: js.adamw(0.1, weight_decay=wd), "weight_decay"),
], ids=["sgd.learning_rate", "adam.b1", "adamw.weight_decay"])
def test_array_hyperparameter_that_changes_a_shape_is_refused(make, name):
    params = {"w": jnp.ones((3, 4)), "b": jnp.ones(4)}
    grads = jax.tree.map(jnp.ones_like, params)
    good = make(jnp.full((4,), 0.5))  # broadcasts to (3, 4) and (4,) without changing them
    u, _ = good.update(grads, good.init(params), params)
    assert jax.tree.map(jnp.shape, u) == jax.tree.map(jnp.shape, params)
    bad = make(jnp.full((2, 3, 4), 0.5))
    owner = {"learning_rate": "sgd", "b1": "adam", "weight_decay": "adamw"}[name]
    with pytest.raises(ValueError, match=re.escape(
            f"`{owner}({name}=...)` has shape (2, 3, 4), which does not broadcast to the shape "
            f"(4,) of the parameter at ['b'].")):
        bad.update(grads, bad.init(params), params)


def test_fuse_serves_two_trees_like_the_plain_optimizer():
    """A generator and a discriminator updated by one fused optimizer."""
    gen = {"a": jnp.ones(3), "b": jnp.ones((2, 2))}
    disc = {"c": jnp.ones(5)}
    for opt in (js.adam(0.1), js.fuse(js.adam(0.1))):
        s_gen, s_disc = opt.init(gen), opt.init(disc)
        u_gen, s_gen = opt.update(jax.tree.map(jnp.ones_like, gen), s_gen)
        u_disc, s_disc = opt.update(jax.tree.map(jnp.ones_like, disc), s_disc)
        u_gen, _ = opt.update(jax.tree.map(jnp.ones_like, gen), s_gen)
        np.testing.assert_allclose(np.asarray(u_gen["b"]), -0.1, rtol=1e-5)
        np.testing.assert_allclose(np.asarray(u_disc["c"]), -0.1, rtol=1e-5)
    opt = js.fuse(js.adam(0.1))
    state = opt.init(gen)
    with pytest.raises(ValueError, match=r"does not match the layout: first difference at "
                                         r"\['x'\]"):
        opt.update({"x": jnp.ones(3)}, state)


@pytest.mark.parametrize("call,message", [
    (lambda: js.reduce_on_plateau(patience=2**40),
     "`reduce_on_plateau(patience=...)` must be <= 2147483647, got 1099511627776."),
    (lambda: js.reduce_on_plateau(cooldown=2**31),
     "`reduce_on_plateau(cooldown=...)` must be <= 2147483647, got 2147483648."),
    (lambda: js.reduce_on_plateau(accumulation_size=2**33),
     "`reduce_on_plateau(accumulation_size=...)` must be <= 2147483647, got 8589934592."),
    (lambda: js.skip_nonfinite(js.sgd(0.1), max_consecutive=2**40),
     "`skip_nonfinite(max_consecutive=...)` must be <= 2147483647, got 1099511627776."),
    (lambda: js.schedule_free_sgd(0.1, warmup_steps=2**31),
     "`schedule_free_sgd(warmup_steps=...)` must be <= 2147483647, got 2147483648."),
    (lambda: js.muon(0.1, ns_steps=2**32),
     "`muon(ns_steps=...)` must be <= 2147483647, got 4294967296."),
    (lambda: js.scale_by_factored_rms(step_offset=2**31),
     "`scale_by_factored_rms(step_offset=...)` must be <= 2147483647, got 2147483648."),
    (lambda: js.cooldown(js.constant(0.1), 2**40, 10),
     "`cooldown(total_steps=...)` must be <= 2147483647, got 1099511627776."),
], ids=["patience", "cooldown", "accumulation_size", "skip_nonfinite.max_consecutive",
        "schedule_free_sgd.warmup_steps", "muon.ns_steps", "scale_by_factored_rms.step_offset",
        "cooldown.total_steps"])
def test_counts_beyond_int32_are_refused_at_construction(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


@pytest.mark.parametrize("call,message", [
    (lambda: js.adam(1e39), "`adam(learning_rate=...)` must be <= 3.40282e+38 in magnitude"),
    (lambda: js.sgd(0.1, momentum=2e39),
     "`sgd(momentum=...)` must be <= 1, got 2e+39."),
    (lambda: js.clip(1e40), "`clip(max_delta=...)` must be <= 3.40282e+38 in magnitude"),
    (lambda: js.scale(-1e39), "`scale(factor=...)` must be <= 3.40282e+38 in magnitude"),
], ids=["adam.learning_rate", "sgd.momentum", "clip.max_delta", "scale.factor"])
def test_hyperparameters_beyond_float32_are_refused_at_construction(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
