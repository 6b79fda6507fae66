"""`fuse`: the bucketed flat update gives the per-array numbers on any tree."""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsched as js
from optimizer_registry import OPTIMIZERS as REGISTRY
from training import (assert_trees_close, random_grads_like, run_on_eight_cpu_devices,
                      tree_of_every_kind)


def _run(tx, params, steps=25, jit=True, **extra):
    def step(p, s, g):
        u, s = tx.update(g, s, p, **extra)
        return optax.apply_updates(p, u), s

    step = jax.jit(step) if jit else step
    state = tx.init(params)
    for i in range(steps):
        params, state = step(params, state, random_grads_like(params, i))
    return params, state


def _registered(name, scheduled=False):
    case = REGISTRY[name]
    lr = js.warmup(js.cosine_decay(case.lr, 50), 5) if scheduled else case.lr
    return lambda: case.ours(lr, None)


OPTIMIZERS = {
    "clip+adamw(schedule)": _registered("clip+adamw", scheduled=True),
    "adam": _registered("adam"),
    "rmsprop centered": _registered("rmsprop_centered"),
    "momentum nesterov": _registered("momentum_nesterov"),
    "adagrad": _registered("adagrad"),
    "sgd": _registered("sgd"),
    "adamw masked": _registered("adamw_mask_fn"),
    "optax inside": lambda: js.chain(optax.clip(0.5), js.adam(1e-2)),
    "optax adamw": lambda: optax.adamw(1e-2, weight_decay=0.1),
    "clip_by_norm, adam": lambda: js.chain(js.clip_by_norm(0.5), js.adam(1e-2)),
    "clip, ema, scale": lambda: js.chain(js.clip(0.5), js.ema(0.9), js.scale(-1e-2)),
}


CASES = [(name, 3) for name in sorted(OPTIMIZERS)] + [("clip+adamw(schedule)", 1),
                                                      ("clip+adamw(schedule)", 64)]


@pytest.mark.parametrize("name, bucket_size", CASES)
def test_fuse_matches_per_array(name, bucket_size):
    params = tree_of_every_kind()
    plain, _ = _run(OPTIMIZERS[name](), params, steps=12)
    fused, _ = _run(js.fuse(OPTIMIZERS[name](), bucket_size=bucket_size), params, steps=12)
    # float32 leaves to 1e-6; the bfloat16/float16 leaves round the same way
    # in both paths except for the rare last-bit tie, hence their looser bound.
    low = {"half", "f16"}
    assert_trees_close({k: v for k, v in fused.items() if k not in low},
                        {k: v for k, v in plain.items() if k not in low}, rtol=1e-6)
    assert_trees_close({k: fused[k] for k in low}, {k: plain[k] for k in low}, rtol=2e-2)


def test_fuse_state_is_one_buffer_per_bucket_and_stable():
    params = {f"w{i}": jnp.ones((i + 1,)) for i in range(10)}
    tx = js.fuse(js.adam(1e-3), bucket_size=4)
    state = tx.init(params)
    mu = state.inner[0].mu
    assert isinstance(mu, js.FlatParams)
    assert [m.shape for m in jax.tree.leaves(mu)] == [(10,), (26,), (19,)]
    _, new_state = tx.update(params, state, params)
    jax.lax.cond(True, lambda: state, lambda: new_state)  # same structure and dtypes


def test_fuse_reports_hyperparams_and_eager_equals_jit():
    params = tree_of_every_kind(1)
    tx = js.fuse(js.chain(js.clip_by_global_norm(1.0), js.adamw(js.cosine_decay(1e-2, 10))))
    p_jit, s_jit = _run(tx, params, steps=4)
    p_eager, s_eager = _run(tx, params, steps=4, jit=False)
    assert_trees_close(p_jit, p_eager, rtol=1e-6)
    hp = js.hyperparams(s_jit)
    np.testing.assert_allclose(hp["learning_rate"], js.cosine_decay(1e-2, 10)(3), rtol=1e-6)
    assert float(js.measurements(s_jit, "global_norm")) > 0


def test_fuse_forwards_extra_args():
    params = {"w": jnp.ones(3)}
    tx = js.fuse(optax.contrib.reduce_on_plateau(patience=0) if hasattr(optax, "contrib")
                 else js.adam(1e-3))
    u, _ = tx.update({"w": jnp.ones(3)}, tx.init(params), params, value=jnp.asarray(1.0))
    assert u["w"].shape == (3,)


def test_fuse_rejects_unknown_transforms_and_bad_arguments():
    for tx, name in ((optax.lamb(0.1), "optax.scale_by_trust_ratio"),
                     (optax.adafactor(0.1), "optax.scale_by_factored_rms"),
                     (optax.chain(js.clip_by_norm(1.0), js.sgd(1.0)), "a jaxsched transformation"),
                     (js.chain(js.clip(1.0), optax.centralize()), "optax.centralize"),
                     (js.skip_nonfinite(optax.lars(0.1)), "optax.masked")):
        with pytest.raises(TypeError, match=r"`fuse\(transform=...\)` cannot be run on flat "
                                            r"buffers exactly: it holds " + name):
            js.fuse(tx)
    js.fuse(optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3)))  # known elementwise
    js.fuse(optax.lamb(0.1), elementwise=True)  # the user's declaration is taken
    with pytest.raises(TypeError, match=r"`fuse\(elementwise=...\)` must be a bool"):
        js.fuse(js.adam(1e-3), elementwise=1)
    with pytest.raises(TypeError, match=r"`fuse\(sharding=...\)` must be a jax.sharding"):
        js.fuse(js.adam(1e-3), sharding="data")
    with pytest.raises(TypeError, match=r"`fuse\(transform=...\)` must be an optax"):
        js.fuse(lambda g: g)
    with pytest.raises(ValueError, match=r"`fuse\(bucket_size=...\)` must be >= 1, got 0"):
        js.fuse(js.adam(1e-3), bucket_size=0)
    with pytest.raises(TypeError, match=r"`fuse\(bucket_size=...\)` must be an integer"):
        js.fuse(js.adam(1e-3), bucket_size=2.5)


def test_fuse_update_with_another_tree_names_the_difference():
    tx = js.fuse(js.adam(1e-3))
    state = tx.init({"a": jnp.ones(2), "b": jnp.ones(2)})
    with pytest.raises(ValueError, match=r"first difference at \['c'\] \(the layout has "
                                         r"\['b'\] there\)"):
        tx.update({"a": jnp.ones(2), "c": jnp.ones(2)}, state)
    with pytest.raises(ValueError, match=r"\['b'\] has shape \(3,\), the layout \(2,\)"):
        tx.update({"a": jnp.ones(2), "b": jnp.ones(3)}, state)


def test_fuse_mask_structure_mismatch_names_the_path():
    tx = js.fuse(js.adamw(1e-3, mask={"a": True}))
    with pytest.raises(ValueError, match=r"add_decayed_weights\(mask=...\).*\['b'\]"):
        tx.init({"a": jnp.ones(2), "b": jnp.ones(2)})


def test_fuse_compiles_once_over_many_steps():
    traces = []
    params = {f"w{i}": jnp.ones((3,)) for i in range(30)}
    tx = js.fuse(js.chain(js.clip_by_global_norm(1.0), js.adamw(js.cosine_decay(1e-3, 100))))

    @jax.jit
    def step(p, s, g):
        traces.append(1)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    state = tx.init(params)
    for _ in range(200):
        params, state = step(params, state, params)
    assert len(traces) == 1


SHARDED = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, optax, jaxsched as js
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    assert len(jax.devices()) == 8
    mesh = Mesh(jax.devices(), ("x",))
    row = NamedSharding(mesh, P("x"))
    params = {"w": jax.device_put(jnp.arange(64.0 * 4).reshape(64, 4) / 100, row),
              "b": jax.device_put(jnp.linspace(-1, 1, 16), row)}
    grads = jax.tree.map(lambda p: jnp.cos(p), params)
    host = jax.tree.map(np.asarray, params)
    def run(tx, p):
        step = jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(
            *tx.update(g, s, p)))
        s = tx.init(p)
        for _ in range(5):
            p, s = step(p, s, jax.tree.map(jnp.cos, p))
        return p, s
    for make in (lambda: js.chain(js.clip_by_global_norm(1.0), js.adamw(1e-2)),
                 lambda: js.fuse(js.chain(js.clip_by_global_norm(1.0), js.adamw(1e-2)))):
        p, s = run(make(), params)
        ref, _ = run(make(), jax.tree.map(jnp.asarray, host))
        for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(ref)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    # Per-array state is sharded like the parameters.
    p, s = run(js.chain(js.clip_by_global_norm(1.0), js.adamw(1e-2)), params)
    adam = s[1][0]
    for m, prm in ((adam.mu["w"], p["w"]), (adam.nu["b"], p["b"])):
        assert m.sharding.is_equivalent_to(prm.sharding, m.ndim), (m.sharding, prm.sharding)
    print("OK")
""")


def test_sharded_parameters_on_eight_cpu_devices():
    run_on_eight_cpu_devices(SHARDED)


def test_fuse_leaves_large_arrays_unconcatenated():
    params = {"big": jnp.ones((5000,)), "s1": jnp.ones((3,)), "s2": jnp.ones((2, 2))}
    state = js.fuse(js.adam(1e-3)).init(params)
    assert sorted(m.shape for m in jax.tree.leaves(state.inner[0].mu)) == [(7,), (5000,)]
    state = js.fuse(js.adam(1e-3), max_fused_size=0).init(params)
    # Arrays kept on their own are not copied: their buffers have their shapes.
    assert sorted(m.shape for m in jax.tree.leaves(state.inner[0].mu)) == [(2, 2), (3,), (5000,)]
    plain, _ = _run(js.adam(1e-2), params, steps=5)
    fused, _ = _run(js.fuse(js.adam(1e-2), max_fused_size=10), params, steps=5)
    assert_trees_close(fused, plain, rtol=1e-6)
    with pytest.raises(ValueError, match=r"`fuse\(max_fused_size=...\)` must be >= 0, got -1"):
        js.fuse(js.adam(1e-3), max_fused_size=-1)
