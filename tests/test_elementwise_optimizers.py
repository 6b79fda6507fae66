"""NAdam, RAdam, Adamax, AMSGrad, ADOPT, Prodigy and schedule-free: float32 behaviour.

Parity with PyTorch, `schedulefree` and `prodigyopt` is in
tests/x64/test_elementwise_optimizers_x64.py (float64). Here: ADOPT against
`optax.contrib.adopt` in float32; the structural checks over one registry
(state structure and dtype stable under `lax.cond`, bfloat16 parameters with
float32 state, jit and eager agree, vmap over a hyperparameter, `fuse`);
schedules read back with `hyperparams`; update 0 of schedule-free uses
`schedule(0)`; bad arguments; optax's positional order.
"""

from __future__ import annotations

import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsched as js
from optimizer_registry import params_like, random_grads
from training import (assert_params_close, assert_trees_close, compiled_step_entry,
                      run_on_eight_cpu_devices, train_random, trajectory, tree_of_every_kind)

REGISTRY = {
    "nadam": lambda: js.nadam(0.01, weight_decay=0.01),
    "nadamw": lambda: js.nadamw(js.cosine_decay(0.01, 50), weight_decay=0.01),
    "radam": lambda: js.radam(0.01, weight_decay=0.01, decoupled_weight_decay=True),
    "adamax": lambda: js.adamax(0.01, weight_decay=0.01),
    "amsgrad": lambda: js.amsgrad(0.01),
    "adam_amsgrad": lambda: js.adam(0.01, amsgrad=True),
    "adamw_amsgrad": lambda: js.adamw(js.cosine_decay(0.01, 50), weight_decay=0.01,
                                      nesterov=True, amsgrad=True),
    "adopt": lambda: js.adopt(0.01, nesterov=True),
    "prodigy": lambda: js.prodigy(weight_decay=0.01),
    "prodigy_coupled": lambda: js.prodigy(weight_decay=0.01, decouple=False,
                                          use_bias_correction=True, growth_rate=1.02),
    "schedule_free_adamw": lambda: js.schedule_free_adamw(0.01, 3, weight_decay=0.01),
    "schedule_free_sgd": lambda: js.schedule_free_sgd(0.1, 3, weight_decay=0.01, r=1.0),
}

# Each optimizer with its learning rate (and one other hyperparameter) as a traced value.
SWEEPS = {
    "nadam": lambda lr, b: js.nadam(lr, b1=b),
    "nadamw": lambda lr, b: js.nadamw(lr, b2=b),
    "radam": lambda lr, b: js.radam(lr, b2=b),
    "adamax": lambda lr, b: js.adamax(lr, b1=b),
    "amsgrad": lambda lr, b: js.amsgrad(lr, b2=b),
    "adam_amsgrad": lambda lr, b: js.adam(lr, b2=b, amsgrad=True),
    "adamw_amsgrad": lambda lr, b: js.adamw(lr, b1=b, weight_decay=0.1, amsgrad=True),
    "adopt": lambda lr, b: js.adopt(lr, b1=b),
    "prodigy": lambda lr, b: js.prodigy(lr * 100, b1=b),
    "schedule_free_adamw": lambda lr, b: js.schedule_free_adamw(lr, b1=b),
    "schedule_free_sgd": lambda lr, b: js.schedule_free_sgd(lr, b1=b),
}


def first(grads, dtype=jnp.float32):
    return jax.tree.map(lambda x: jnp.asarray(x[0], dtype), grads)


# ---------------------------------------------------------------- ADOPT vs optax


@pytest.mark.parametrize("nesterov,use_clipping", [(False, True), (True, True), (False, False)])
def test_adopt_matches_optax_contrib_adopt_with_schedules(nesterov, use_clipping):
    lr = js.warmup(js.cosine_decay(0.01, 200), 10)
    b1 = js.polynomial_decay(0.95, 200, 0.8)
    ours = js.adopt(lr, b1, 0.999, 1e-6, nesterov=nesterov, use_clipping=use_clipping)
    theirs = optax.inject_hyperparams(
        optax.contrib.adopt, static_args=("nesterov", "use_clipping", "clip_value_fn"))(
        learning_rate=lr, b1=b1, b2=0.999, eps=1e-6, nesterov=nesterov,
        use_clipping=use_clipping)
    p, g = params_like(), random_grads(210)
    a, state = trajectory(ours, p, g)
    b, _ = trajectory(theirs, p, g)
    assert_params_close(a, b, rtol=1e-6)
    assert float(jnp.abs(a["w"][-1] - p["w"]).max()) > 1e-2
    assert float(js.hyperparams(state, "b1")) == pytest.approx(float(b1(209)), rel=1e-6)


def test_adamax_matches_optax_adamax_with_schedules():
    """optax's `update_infinity_moment` is max(|g| + eps, b2 * n), PyTorch's placement too."""
    lr = js.warmup(js.cosine_decay(0.01, 200), 10)
    b1 = js.polynomial_decay(0.95, 200, 0.8)
    p, g = params_like(), random_grads(210)
    a, state = trajectory(js.adamax(lr, b1, 0.999, 1e-2), p, g)
    b, _ = trajectory(optax.inject_hyperparams(optax.adamax)(
        learning_rate=lr, b1=b1, b2=0.999, eps=1e-2), p, g)
    assert_params_close(a, b, rtol=1e-6)
    assert float(jnp.abs(a["w"][-1] - p["w"]).max()) > 1e-2
    assert float(js.hyperparams(state, "b1")) == pytest.approx(float(b1(209)), rel=1e-6)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_prodigy_with_bias_correction_matches_optax_contrib_prodigy(weight_decay):
    """optax's contrib.prodigy always bias-corrects: it is prodigyopt's use_bias_correction=True.

    (No warmup from 0 here: optax's estimate divides by the learning rate.)"""
    lr = js.cosine_decay(1.0, 200, alpha=0.1)
    p, g = params_like(), random_grads(210)
    a, state = trajectory(js.prodigy(lr, estim_lr0=1e-3, weight_decay=weight_decay,
                                       use_bias_correction=True), p, g)
    b, _ = trajectory(optax.contrib.prodigy(lr, estim_lr0=1e-3, weight_decay=weight_decay), p, g)
    assert_params_close(a, b, rtol=1e-6)
    assert float(jnp.abs(a["w"][-1] - p["w"]).max()) > 1e-2
    c, _ = trajectory(js.prodigy(lr, estim_lr0=1e-3, weight_decay=weight_decay), p, g)  # default
    assert float(jnp.abs(c["w"][-1] - b["w"][-1]).max()) > 1e-3


def test_adopt_custom_clip_value_fn_matches_optax():
    fn = js.polynomial_decay(0.1, 100, 2.0)
    p, g = params_like(), random_grads(120)
    a, state = trajectory(js.adopt(0.01, clip_value_fn=fn), p, g)
    b, _ = trajectory(optax.contrib.adopt(0.01, clip_value_fn=fn), p, g)
    assert_params_close(a, b, rtol=1e-6)
    assert float(js.hyperparams(state, "clip_value")) == pytest.approx(float(fn(119)))


@pytest.mark.parametrize("nesterov", [False, True])
def test_adopt_updates_its_second_moment_in_place(nesterov):
    """ADOPT's first moment reads the old v. Written after it (`computed_after`),
    the donated v is updated in place; unordered, XLA copied v first (and
    optax's adopt still does)."""
    opt = js.adopt(0.01, nesterov=nesterov)
    entry = compiled_step_entry(opt, {"w": jnp.ones((64, 32)), "b": jnp.ones(32)})
    assert not re.findall(r"= f32\[[0-9,]+\]\S* copy\(", entry), entry
    a, _ = trajectory(opt, params_like(), random_grads(20))
    b, _ = trajectory(optax.contrib.adopt(0.01, nesterov=nesterov), params_like(), random_grads(20))
    assert_params_close(a, b, rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_computed_after_returns_the_value_exactly(dtype):
    from jaxsched._numerics import computed_after
    special = jnp.array([0.0, -0.0, 1.5, -2.0, jnp.inf, -jnp.inf, jnp.nan, 1e-30], dtype)
    for earlier in (special[::-1].astype(jnp.float32), special.astype(jnp.bfloat16),
                    jnp.float32(jnp.nan), jnp.float32(-0.0)):
        for f in (computed_after, jax.jit(computed_after)):
            out = f(special, earlier)
            assert out.dtype == special.dtype and out.shape == special.shape
            np.testing.assert_array_equal(np.asarray(out, np.float32),
                                          np.asarray(special, np.float32))
            assert np.array_equal(np.signbit(np.asarray(out, np.float32)),
                                  np.signbit(np.asarray(special, np.float32)))


def test_adopt_on_a_sharded_flat_buffer_needs_no_collective():
    """computed_after reads the first moment element by element: on a flat buffer split
    over 8 devices each device orders its own shard, with no collective and no copy."""
    run_on_eight_cpu_devices("""
import re
import numpy as np
import jax, jax.numpy as jnp, optax, jaxsched as js
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
data = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), P("data"))
tree = {"w": jnp.arange(64 * 32, dtype=jnp.float32).reshape(64, 32) / 1000, "b": jnp.ones(32)}
grads = jax.tree.map(lambda p: jnp.cos(p * 3.0), tree)
opt = js.adopt(1e-2)
flat = jax.device_put(js.flat_params(tree, multiple_of=8), data)
flat_g = jax.vjp(lambda f: f.unflatten(), flat)[1](grads)[0]
def step(p, s, g):
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s
jitted = jax.jit(step, donate_argnums=(0, 1))
p, s = flat, opt.init(flat)
entry = jitted.lower(p, s, flat_g).compile().as_text()
entry = entry[entry.index("ENTRY"):]
assert not re.findall(r"all-reduce|all-gather|collective-permute|all-to-all", entry), entry
assert not re.findall(r"= f32\\[[0-9,]+\\]\\S* copy\\(", entry), entry
tp, ts = tree, opt.init(tree)
for _ in range(5):
    p, s = jitted(p, s, flat_g)
    tp, ts = step(tp, ts, grads)
for a, b in zip(jax.tree.leaves(p.unflatten()), jax.tree.leaves(tp)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-8)
assert all(x.sharding.spec == P("data") for x in jax.tree.leaves(s[0].nu))
print("OK")
""")


def test_prodigy_order_on_a_sharded_flat_buffer_adds_no_collective():
    """The order for large arrays reads the sum of |s| that the estimate needs anyway
    (XLA computes it once): on a flat buffer split over 8 devices the update makes
    the same one all-reduce, three reductions and no copy as without the order."""
    run_on_eight_cpu_devices("""
import re
import numpy as np
import jax, jax.numpy as jnp, optax, jaxsched as js
from jaxsched import _prodigy
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
data = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), P("data"))
tree = {"w": jnp.linspace(-1, 1, 1024 * 512).reshape(1024, 512), "b": jnp.ones(32)}
grads = jax.tree.map(lambda p: jnp.cos(p * 3.0), tree)
counts = []
for size in (_prodigy.ORDERED_SIZE, 10 ** 9):
    _prodigy.ORDERED_SIZE = size
    opt = js.prodigy()
    flat = jax.device_put(js.flat_params(tree, multiple_of=8), data)
    flat_g = jax.vjp(lambda f: f.unflatten(), flat)[1](grads)[0]
    def step(p, s, g):
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s
    jaxpr = str(jax.make_jaxpr(step)(flat, opt.init(flat), flat_g))
    assert ("bitcast_convert_type" in jaxpr) == (size < 10 ** 9)
    entry = jax.jit(step, donate_argnums=(0, 1)).lower(flat, opt.init(flat), flat_g).compile().as_text()
    entry = entry[entry.index("ENTRY"):]
    counts.append((len(re.findall(r"all-reduce\\(", entry)),
                   len(re.findall(r"kind=kCustom|reduce\\(", entry)),
                   len(re.findall(r"= f32\\[[0-9,]+\\]\\S* copy\\(", entry))))
assert counts[0] == counts[1] and counts[0][0] == 1 and counts[0][2] == 0, counts
print("OK")
""")


# ---------------------------------------------------------------- structure and dtypes


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("name", REGISTRY)
def test_state_stable_and_low_precision_params(name, dtype):
    tx = REGISTRY[name]()
    p = params_like(dtype)
    state = tx.init(p)
    u, new_state = tx.update(first(random_grads(1), dtype), state, p)
    # Same structure, shapes and dtypes before and after an update.
    jax.lax.cond(True, lambda: state, lambda: new_state)
    assert all(x.dtype == dtype for x in jax.tree.leaves(u))
    for leaf in jax.tree.leaves(new_state):
        if jnp.ndim(leaf) > 0:  # buffers like the params
            assert leaf.dtype == jnp.float32, (name, leaf.dtype)
    zeros = jax.tree.map(jnp.zeros_like, p)
    for _ in range(3):
        u, state = tx.update(zeros, state, p)
        p = optax.apply_updates(p, u)
        assert all(np.isfinite(np.asarray(x, np.float32)).all() for x in jax.tree.leaves(u))
    # Buffers and carried values (the hyperparameters may hold growth_rate=inf).
    carried = [s._replace(hyperparams={}) for s in state]
    assert all(np.isfinite(np.asarray(x, np.float32)).all() for x in jax.tree.leaves(carried))


@pytest.mark.parametrize("name", REGISTRY)
def test_jit_and_eager_agree(name):
    tx = REGISTRY[name]()
    p, g = params_like(), random_grads(4)
    eager_p, eager_s = p, tx.init(p)
    jit_p, jit_s = p, tx.init(p)
    update = jax.jit(tx.update)
    for i in range(4):
        gi = jax.tree.map(lambda x: jnp.asarray(x[i]), g)
        u, eager_s = tx.update(gi, eager_s, eager_p)
        eager_p = optax.apply_updates(eager_p, u)
        u, jit_s = update(gi, jit_s, jit_p)
        jit_p = optax.apply_updates(jit_p, u)
    for k in p:
        np.testing.assert_allclose(np.asarray(jit_p[k]), np.asarray(eager_p[k]), rtol=1e-6,
                                   atol=1e-7)
    assert not np.allclose(np.asarray(jit_p["w"]), np.asarray(p["w"]))


@pytest.mark.parametrize("name", SWEEPS)
def test_vmap_over_learning_rate_and_a_beta(name):
    p, g = params_like(), random_grads(5)

    def final(lr, b):
        return trajectory(SWEEPS[name](lr, b), p, g)[0]["w"][-1]

    lrs, bs = jnp.asarray([0.1, 0.01, 0.001]), jnp.asarray([0.5, 0.8, 0.9])
    swept = jax.jit(jax.vmap(final))(lrs, bs)
    one = jax.jit(final)  # compiled once for the three values
    for i in range(3):
        np.testing.assert_allclose(np.asarray(swept[i]), np.asarray(one(lrs[i], bs[i])),
                                   rtol=2e-5, atol=1e-6)
    assert not np.allclose(np.asarray(swept[0]), np.asarray(swept[2]))


@pytest.mark.parametrize("name", ["nadam", "prodigy", "schedule_free_adamw"])
def test_fuse_gives_the_tree_result(name):
    """Tree-level scalars (NAdam's product, Prodigy's d, schedule-free weights) see every bucket."""
    p, g = params_like(), random_grads(6)
    a, _ = trajectory(REGISTRY[name](), p, g)
    b, _ = trajectory(js.fuse(REGISTRY[name](), bucket_size=1), p, g)
    assert_params_close(b, a, rtol=1e-5)


def test_integer_or_complex_params_raise_type_error_at_init():
    for name in REGISTRY:
        with pytest.raises(TypeError, match="real floating-point"):
            REGISTRY[name]().init({"w": jnp.zeros(3, jnp.int32)})
        with pytest.raises(TypeError, match="real floating-point"):
            REGISTRY[name]().init({"w": jnp.zeros(3, jnp.complex64)})


# ---------------------------------------------------------------- adam(amsgrad=True)


def test_adam_amsgrad_is_js_amsgrad_and_keeps_the_maximum():
    """adam(amsgrad=True) and js.amsgrad are PyTorch's AMSGrad; optax's differs early on."""
    lr = js.warmup(js.cosine_decay(0.01, 60), 5)
    b2 = js.polynomial_decay(0.99, 60, 0.9)
    p, g = params_like(), random_grads(60)
    ours, state = trajectory(js.adam(lr, b2=b2, amsgrad=True), p, g)
    alias, alias_state = trajectory(js.amsgrad(lr, b2=b2), p, g)
    assert_params_close(ours, alias, rtol=1e-6)
    for k in p:
        np.testing.assert_allclose(np.asarray(state[0].nu_max[k]),
                                   np.asarray(alias_state[0].nu_max[k]), rtol=1e-6)
    # The maximum is engaged: nu_max >= nu everywhere, > somewhere, and the run is not Adam's.
    nu, nu_max = np.asarray(state[0].nu["w"]), np.asarray(state[0].nu_max["w"])
    assert (nu_max >= nu).all() and (nu_max > 1.5 * nu).any()
    plain, plain_state = trajectory(js.adam(lr, b2=b2), p, g)
    assert type(plain_state[0]).__name__ == "ScaleByAdamState"
    assert type(state[0]).__name__ == "ScaleByAdamAmsgradState"
    assert np.abs(np.asarray(plain["w"][-1]) - np.asarray(ours["w"][-1])).max() > 1e-3
    # optax keeps the maximum of the bias-corrected moment: other numbers.
    theirs, _ = trajectory(optax.inject_hyperparams(optax.amsgrad)(lr, b2=b2), p, g)
    assert np.abs(np.asarray(theirs["w"][-1]) - np.asarray(ours["w"][-1])).max() > 1e-4
    assert float(js.hyperparams(state, "b2")) == pytest.approx(float(b2(59)), rel=1e-6)
    # (near the end of the cosine: float32 cancellation, hence 1e-5)
    assert float(js.hyperparams(state, "learning_rate")) == pytest.approx(float(lr(59)),
                                                                          rel=1e-5)


def test_adam_amsgrad_on_flat_params_equals_the_tree():
    params = tree_of_every_kind()
    mask = jax.tree.map(lambda x: jnp.ndim(x) > 1, params)
    make = lambda m: js.adamw(js.warmup(js.cosine_decay(0.01, 20), 3), weight_decay=0.1,
                              mask=m, amsgrad=True)
    plain, _ = train_random(make(mask), params, 8)
    flat = js.flat_params(params, group=mask)
    trained, state = train_random(make(flat.labels()), flat, 8)
    got = trained.unflatten()
    low = {"half", "f16"}  # last-bit ties round either way in bfloat16/float16
    assert_trees_close({k: v for k, v in got.items() if k not in low},
                       {k: v for k, v in plain.items() if k not in low}, rtol=1e-6)
    assert_trees_close({k: got[k] for k in low}, {k: plain[k] for k in low}, rtol=2e-2)
    assert {x.shape for x in jax.tree.leaves(state[0].nu_max)} <= {
        x.shape for x in jax.tree.leaves(flat)}


def test_adam_amsgrad_groups_run_each_group_as_alone():
    p, g = params_like(), random_grads(20)
    opt = js.adam(0.01, amsgrad=True, groups={
        "bias": js.group(r"^b$", learning_rate=js.cosine_decay(0.05, 20), b1=0.5),
        "plain": js.group(r"^s$", amsgrad=False)})
    p, g = {**p, "s": p["w"][0]}, {**g, "s": g["w"][:, 0]}
    ours, state = trajectory(opt, p, g)
    w, _ = trajectory(js.adam(0.01, amsgrad=True), p["w"], g["w"])
    b, _ = trajectory(js.adam(js.cosine_decay(0.05, 20), b1=0.5, amsgrad=True), p["b"], g["b"])
    s_, _ = trajectory(js.adam(0.01), p["s"], g["s"])
    np.testing.assert_array_equal(np.asarray(ours["s"]), np.asarray(s_))
    np.testing.assert_array_equal(np.asarray(ours["w"]), np.asarray(w))
    np.testing.assert_array_equal(np.asarray(ours["b"]), np.asarray(b))
    assert float(js.hyperparams(state, "bias/b1")) == 0.5


# ---------------------------------------------------------------- hyperparameters


def test_hyperparams_read_back_and_measured_values():
    p = params_like()
    keys = {
        "nadam": {"b1", "b2", "eps", "momentum_decay", "weight_decay", "learning_rate"},
        "radam": {"b1", "b2", "eps", "threshold", "weight_decay", "learning_rate"},
        "adamax": {"b1", "b2", "eps", "weight_decay", "learning_rate"},
        "amsgrad": {"b1", "b2", "eps", "learning_rate"},
        "adam_amsgrad": {"b1", "b2", "eps", "eps_root", "learning_rate"},
        "adamw_amsgrad": {"b1", "b2", "eps", "eps_root", "weight_decay", "learning_rate"},
        "adopt": {"b1", "b2", "eps", "clip_value", "learning_rate"},
        "prodigy": {"learning_rate", "b1", "b2", "eps", "estim_lr0", "estim_lr_coef",
                    "weight_decay", "growth_rate"},
        "schedule_free_adamw": {"b2", "eps", "weight_decay", "learning_rate", "b1", "r",
                                "weight_lr_power"},
        "schedule_free_sgd": {"weight_decay", "learning_rate", "b1", "r", "weight_lr_power"},
    }
    for name, expected in keys.items():
        assert set(js.hyperparams(REGISTRY[name]().init(p))) == expected, name
    sched = js.cosine_decay(0.5, 10)
    tx = js.radam(sched, b2=js.polynomial_decay(0.99, 10, 0.9))
    state = tx.init(p)
    for k in range(3):
        _, state = tx.update(first(random_grads(1)), state, p)
    assert float(js.hyperparams(state, "learning_rate")) == pytest.approx(float(sched(2)))
    assert float(js.hyperparams(state, "b2")) == pytest.approx(0.99 - 0.09 * 2 / 10)
    assert set(js.measurements(js.prodigy().init(p))) == {"d", "d_max", "d_numerator", "steps"}
    assert set(js.measurements(js.nadam(0.1).init(p))) == {"mu_product"}
    assert set(js.measurements(js.schedule_free_sgd().init(p))) == {"lr_max", "weight_sum"}


@pytest.mark.parametrize("make", [js.schedule_free_sgd, js.schedule_free_adamw])
def test_schedule_free_update_0_uses_schedule_of_0(make):
    """Update k uses schedule(k), update 0 included (optax's contrib.schedule_free weights
    update k by schedule(k + 1), optax PR 1744)."""
    values = [0.4, 0.2, 0.1, 0.05]
    sched = js.piecewise_constant([0, 1, 2], values)
    p = params_like()
    g = first(random_grads(1))
    s_sched = make(sched).init(p)
    for k, value in enumerate(values):
        u, s_next = make(sched).update(g, s_sched, p)
        u_fixed, _ = make(value).update(g, s_sched, p)
        assert float(js.hyperparams(s_next, "learning_rate")) == pytest.approx(value)
        for key in p:
            np.testing.assert_allclose(np.asarray(u[key]), np.asarray(u_fixed[key]), rtol=1e-6)
        s_sched = s_next
    # The first update of SGD: y moves to y - lr(0) * g (c_1 = 1, z = y), to one
    # rounding of y (the update is computed from the new z, see scale_by_schedule_free).
    if make is js.schedule_free_sgd:
        u, _ = make(sched).update(g, make(sched).init(p), p)
        np.testing.assert_allclose(np.asarray(p["w"] + u["w"]),
                                   np.asarray(p["w"]) - 0.4 * np.asarray(g["w"]), rtol=1e-6)


def test_schedule_free_eval_params_formula_and_error():
    tx = js.schedule_free_sgd(0.1, b1=0.8)
    p = params_like()
    state = tx.init(p)
    np.testing.assert_array_equal(np.asarray(js.schedule_free_eval_params(state, p)["w"]),
                                  np.asarray(p["w"]))
    for i in range(3):
        u, state = tx.update(first(random_grads(1, seed=i)), state, p)
        p = optax.apply_updates(p, u)
    z = state[-1].z
    x = js.schedule_free_eval_params(state, p)
    for k in p:  # x = y + (1 - 1/b1) (z - y)
        np.testing.assert_allclose(np.asarray(x[k]),
                                   np.asarray(p[k]) - 0.25 * (np.asarray(z[k]) - np.asarray(p[k])),
                                   rtol=1e-6)
    with pytest.raises(ValueError, match=r"`schedule_free_eval_params\(state=...\)`"):
        js.schedule_free_eval_params(js.adam(0.1).init(p), p)


# ---------------------------------------------------------------- bad input

NAN = float("nan")
BAD = [
    (lambda: js.nadam(0.1, b1=1.0), ValueError, "`nadam(b1=...)` must be < 1, got 1.0."),
    (lambda: js.nadam(0.1, eps=0.0), ValueError, "`nadam(eps=...)` must be > 0, got 0.0."),
    (lambda: js.nadam(0.1, momentum_decay=-1.0), ValueError,
     "`nadam(momentum_decay=...)` must be >= 0, got -1.0."),
    (lambda: js.nadam(0.1, weight_decay=-0.1), ValueError,
     "`nadam(weight_decay=...)` must be >= 0, got -0.1."),
    (lambda: js.nadamw(-0.1), ValueError, "`nadamw(learning_rate=...)` must be >= 0, got -0.1."),
    (lambda: js.nadam(0.1, b1=jnp.ones(3) * 0.9), ValueError,
     "`nadam(b1=...)` must be a scalar (it enters a value shared by the whole tree)"),
    (lambda: js.radam(0.1, b2=-0.1), ValueError, "`radam(b2=...)` must be >= 0, got -0.1."),
    (lambda: js.radam(0.1, threshold=3.0), ValueError,
     "`radam(threshold=...)` must be >= 4, got 3.0."),
    (lambda: js.radam(0.1, decoupled_weight_decay=1), TypeError,
     "`radam(decoupled_weight_decay=...)` must be a bool, got 1."),
    (lambda: js.adamax(0.1, eps=-1e-8), ValueError, "`adamax(eps=...)` must be > 0, got -1e-08."),
    (lambda: js.amsgrad(0.1, b2=NAN), ValueError, "`amsgrad(b2=...)` must not be NaN, got nan."),
    (lambda: js.adam(0.1, amsgrad=1), TypeError, "`adam(amsgrad=...)` must be a bool, got 1."),
    (lambda: js.adam(0.1, amsgrad=None), TypeError,
     "`adam(amsgrad=...)` must be a bool, got None."),
    (lambda: js.adamw(0.1, amsgrad="yes"), TypeError,
     "`adamw(amsgrad=...)` must be a bool, got 'yes'."),
    (lambda: js.adam(0.1, groups={"b": js.group("b", amsgrad=0)}), TypeError,
     "`adam(groups={'b': group(amsgrad=...)})` must be a bool, got 0."),
    (lambda: js.scale_by_adam(amsgrad=jnp.bool_(True)), TypeError,
     "`scale_by_adam(amsgrad=...)` must be a bool, got Array(True, dtype=bool)."),
    (lambda: js.adam(0.1, b2=1.0, amsgrad=True), ValueError,
     "`adam(b2=...)` must be < 1, got 1.0."),
    (lambda: js.adopt(0.1, b2=1.0), ValueError, "`adopt(b2=...)` must be < 1, got 1.0."),
    (lambda: js.adopt(0.1, clip_value_fn=2.0), TypeError,
     "`adopt(clip_value_fn=...)` must be a schedule (a callable of the step), got float 2.0."),
    (lambda: js.adopt(0.1, nesterov=None), TypeError, "`adopt(nesterov=...)` must be a bool, got None."),
    (lambda: js.prodigy(0.0, eps=0.0), ValueError, "`prodigy(eps=...)` must be > 0, got 0.0."),
    (lambda: js.prodigy(estim_lr0=0.0), ValueError,
     "`prodigy(estim_lr0=...)` must be > 0, got 0.0."),
    (lambda: js.prodigy(growth_rate=0.5), ValueError,
     "`prodigy(growth_rate=...)` must be >= 1, got 0.5."),
    (lambda: js.prodigy(beta3=1.0), ValueError, "`prodigy(beta3=...)` must be < 1, got 1.0."),
    (lambda: js.prodigy(decouple="yes"), TypeError,
     "`prodigy(decouple=...)` must be a bool, got 'yes'."),
    (lambda: js.prodigy(jnp.ones(2)), ValueError,
     "`prodigy(learning_rate=...)` must be a scalar (it enters a value shared by the whole tree)"),
    (lambda: js.schedule_free_adamw(b1=0.0), ValueError,
     "`schedule_free_adamw(b1=...)` must be > 0, got 0.0."),
    (lambda: js.schedule_free_sgd(b1=1.0), ValueError,
     "`schedule_free_sgd(b1=...)` must be < 1, got 1.0."),
    (lambda: js.schedule_free_sgd(warmup_steps=2.5), TypeError,
     "`schedule_free_sgd(warmup_steps=...)` must be an integer, got float 2.5."),
    (lambda: js.schedule_free_sgd(warmup_steps=-1), ValueError,
     "`schedule_free_sgd(warmup_steps=...)` must be >= 0, got -1."),
    (lambda: js.schedule_free_adamw(r=-1.0), ValueError,
     "`schedule_free_adamw(r=...)` must be >= 0, got -1.0."),
    (lambda: js.schedule_free_adamw(weight_lr_power=-2.0), ValueError,
     "`schedule_free_adamw(weight_lr_power=...)` must be >= 0, got -2.0."),
    (lambda: js.schedule_free_adamw(eps=0.0), ValueError,
     "`schedule_free_adamw(eps=...)` must be > 0, got 0.0."),
    (lambda: js.schedule_free_sgd(weight_decay=-1.0), ValueError,
     "`schedule_free_sgd(weight_decay=...)` must be >= 0, got -1.0."),
    (lambda: js.scale_by_radam(b1=True), TypeError,
     "`scale_by_radam(b1=...)` must be a number, got True."),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_arguments_raise_naming_the_optimizer(case):
    call, exc, message = BAD[case]
    with pytest.raises(exc) as info:
        call()
    assert str(info.value).startswith(message), str(info.value)


def test_traced_hyperparameters_pass_unchecked():
    @jax.jit
    def run(lr, b1):
        tx = js.schedule_free_adamw(lr, b1=b1)
        p = jnp.zeros(2)
        return tx.update(jnp.ones(2), tx.init(p), p)[0]

    assert np.isfinite(np.asarray(run(0.1, 0.9))).all()


# ---------------------------------------------------------------- signatures


@pytest.mark.parametrize("name,theirs", [
    ("nadam", optax.nadam), ("nadamw", optax.nadamw), ("radam", optax.radam),
    ("adamax", optax.adamax), ("amsgrad", optax.amsgrad), ("adopt", optax.contrib.adopt),
    ("prodigy", optax.contrib.prodigy),
    ("schedule_free_adamw", optax.contrib.schedule_free_adamw),
    ("schedule_free_sgd", optax.contrib.schedule_free_sgd),
    ("scale_by_radam", optax.scale_by_radam), ("scale_by_adamax", optax.scale_by_adamax),
    ("scale_by_amsgrad", optax.scale_by_amsgrad), ("scale_by_adopt", optax.contrib.scale_by_adopt),
])
def test_positional_order_is_optax(name, theirs):
    """Our positional arguments are the first ones of optax's namesake, in its order."""
    def positional(fn):
        return [n for n, q in inspect.signature(fn).parameters.items()
                if q.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]

    ours = positional(getattr(js, name))
    assert ours == positional(theirs)[:len(ours)], (ours, positional(theirs))


@pytest.mark.parametrize("make", [
    lambda: js.radam(0.1, b2=0.0),
    lambda: js.nadam(0.1, b1=0.0, momentum_decay=0.0),
    lambda: js.adamax(0.1, b1=0.0, b2=0.0),
    lambda: js.amsgrad(0.1, b1=0.0, b2=0.0),
    lambda: js.adam(0.1, b1=0.0, b2=0.0, amsgrad=True),
    lambda: js.adopt(0.1, b1=0.0, b2=0.0, use_clipping=False),
    lambda: js.prodigy(0.0),
    lambda: js.prodigy(b1=0.0, growth_rate=1.0),
    lambda: js.schedule_free_sgd(0.0, weight_lr_power=0.0),
    lambda: js.schedule_free_adamw(js.constant(0.0), 2, b2=0.0),
], ids=["radam_b2_0", "nadam_b1_0", "adamax_b_0", "amsgrad_b_0", "adam_amsgrad_b_0",
        "adopt_b_0_noclip",
        "prodigy_lr_0", "prodigy_b1_0", "sf_sgd_lr_0", "sf_adamw_lr_0"])
def test_edge_configurations_stay_finite(make):
    """Accepted edge values, zero and nonzero gradients: no NaN or inf in updates or state."""
    tx = make()
    p = params_like()
    state = tx.init(p)
    update = jax.jit(tx.update)
    zeros = jax.tree.map(jnp.zeros_like, p)
    for g in [zeros, first(random_grads(1)), zeros, first(random_grads(1, seed=2))]:
        u, state = update(g, state, p)
        p = optax.apply_updates(p, u)
        carried = [s._replace(hyperparams={}) for s in state]
        assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves((u, carried)))


def test_prodigy_skips_the_parameters_while_the_sum_of_s_is_zero():
    """The reference returns before the parameter update when its sum of |s| is 0:
    all-zero gradients leave the parameters (decay included) and d unchanged."""
    tx = js.prodigy(weight_decay=0.1)
    p = params_like()
    state = tx.init(p)
    zeros = jax.tree.map(jnp.zeros_like, p)
    for _ in range(2):
        u, state = jax.jit(tx.update)(zeros, state, p)
        assert all(float(jnp.abs(x).max()) == 0.0 for x in jax.tree.leaves(u))
        assert float(js.measurements(state)["d"]) == pytest.approx(1e-6)
    u, state = jax.jit(tx.update)(first(random_grads(1)), state, p)
    assert float(jnp.abs(u["w"]).max()) > 0


def test_prodigy_parameter_loops_do_not_read_every_array_sum():
    """The skip's test (sum of |s| > 0) is computed once: each array's loops read a
    handful of operands, not one per array of the tree (optax's read 6)."""
    p = {f"w{i:02d}": jnp.full((64,), 0.1) for i in range(30)}
    entry = compiled_step_entry(js.prodigy(weight_decay=0.01), p)
    operands = [len(m.group(1).split(","))
                for m in re.finditer(r"= f32\[64\]\S* fusion\((.*?)\), kind=kLoop", entry)]
    assert len(operands) >= 30 and max(operands) <= 8, sorted(operands)[-5:]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=lambda d: jnp.dtype(d).name)
def test_prodigy_orders_large_arrays_without_changing_a_value(monkeypatch, dtype):
    """An array of `ORDERED_SIZE` elements updates its moments after its sum of
    |s| (a data dependency for XLA's schedule, value * 1): bitwise the values
    of the same updates without it, jitted, float32 and bfloat16 parameters."""
    from jaxsched import _prodigy
    n = _prodigy.ORDERED_SIZE
    params = {"big": jnp.linspace(-1.0, 1.0, n, dtype=dtype),
              "small": jnp.linspace(0.5, 1.5, 7, dtype=dtype)}

    def run(opt):
        update = jax.jit(opt.update)
        p, state, out = params, opt.init(params), []
        for k in range(6):
            g = jax.tree.map(lambda x: jnp.sin(3.0 * x + k) * 0.01, p)
            u, state = update(g, state, p)
            p = optax.apply_updates(p, u)
            out.append((p, state))
        return out, jax.make_jaxpr(opt.update)(params, opt.init(params), params)

    ordered, jaxpr = run(js.prodigy(weight_decay=0.01))
    assert "bitcast_convert_type" in str(jaxpr)  # the order is there
    assert float(jnp.max(jnp.abs(ordered[-1][0]["big"].astype(jnp.float32)
                                 - params["big"].astype(jnp.float32)))) > 0
    monkeypatch.setattr(_prodigy, "ORDERED_SIZE", n + 1)
    plain, jaxpr = run(js.prodigy(weight_decay=0.01))
    assert "bitcast_convert_type" not in str(jaxpr)
    for a, b in zip(jax.tree.leaves(ordered), jax.tree.leaves(plain)):
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
