"""`flat_params`: a tree held as flat buffers trains exactly as the tree does."""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsched as js
from optimizer_registry import OPTIMIZERS as REGISTRY
from training import (assert_trees_close, run_on_eight_cpu_devices, train_random,
                      tree_of_every_kind)


def _decay_mask(tree):
    return jax.tree.map(lambda x: jnp.ndim(x) > 1, tree)


def _registered(name, scheduled=False):
    case = REGISTRY[name]
    lr = js.warmup(js.cosine_decay(case.lr, 50), 5) if scheduled else case.lr
    return lambda mask: case.ours(lr, mask)


# Each entry builds the optimizer given the weight-decay mask for its params.
OPTIMIZERS = {
    "clip+adamw(schedule)": _registered("clip+adamw", scheduled=True),
    "adamw masked": _registered("adamw"),
    "rmsprop centered": _registered("rmsprop_centered"),
    "momentum nesterov": _registered("momentum_nesterov"),
    "adagrad": _registered("adagrad"),
    "optax clip then jaxsched adam": lambda mask: optax.chain(optax.clip(0.5), js.adam(1e-2)),
    "jaxsched clip then optax adamw": lambda mask: optax.chain(
        js.clip_by_global_norm(0.5), optax.adamw(1e-2, weight_decay=0.1, mask=mask)),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_flat_params_train_like_the_tree(name):
    params = tree_of_every_kind()
    mask = _decay_mask(params)
    plain, _ = train_random(OPTIMIZERS[name](mask), params, 12)
    flat = js.flat_params(params, group=mask)
    trained, state = train_random(OPTIMIZERS[name](flat.labels()), flat, 12)
    assert isinstance(trained, js.FlatParams)
    got = trained.unflatten()
    low = {"half", "f16"}  # last-bit ties round either way in bfloat16/float16
    assert_trees_close({k: v for k, v in got.items() if k not in low},
                        {k: v for k, v in plain.items() if k not in low}, rtol=1e-6)
    assert_trees_close({k: got[k] for k in low}, {k: plain[k] for k in low}, rtol=2e-2)
    # Every state array is one of the buffers' shapes: nothing per original array.
    buffer_shapes = {x.shape for x in jax.tree.leaves(flat)}
    assert {x.shape for x in jax.tree.leaves(state) if x.ndim} <= buffer_shapes


def test_buffers_group_by_dtype_and_label_and_pad():
    params = {"w": jnp.ones((3, 4)), "b": jnp.ones(5), "h": jnp.ones(2, jnp.bfloat16),
              "v": jnp.ones((2, 2))}
    flat = js.flat_params(params, group=_decay_mask, multiple_of=8)
    shapes = [(x.shape, str(x.dtype)) for x in jax.tree.leaves(flat)]
    # Buffers in order of first appearance in the (key-sorted) tree: b, h, then v and w.
    assert shapes == [((8,), "float32"), ((8,), "bfloat16"), ((16,), "float32")]
    assert flat.layout.labels == (False, False, True)
    assert jax.tree.leaves(flat.labels()) == [False, False, True]
    # The padding is zero and stays out of the tree.
    assert float(jnp.sum(flat.buffers[0])) == 5.0 and float(jnp.sum(flat.buffers[2])) == 16.0
    back = flat.unflatten()
    assert jax.tree.structure(back) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
    assert repr(flat) == "FlatParams(4 arrays in float32[5], bfloat16[2], float32[16])"


def test_gradient_through_unflatten_is_one_flat_buffer():
    params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.arange(3.0), "unused": jnp.ones(4)}
    flat = js.flat_params(params, multiple_of=4)

    def loss(tree):
        return jnp.sum(tree["w"] ** 2) + jnp.sum(jnp.sin(tree["b"]))

    expected = jax.grad(loss)(params)
    for fn in (jax.grad(lambda f: loss(f.unflatten())),
               jax.jit(jax.grad(lambda f: loss(f.unflatten())))):
        grads = fn(flat)
        assert [x.shape for x in jax.tree.leaves(grads)] == [(16,)]
        got = grads.unflatten()
        for key in ("w", "b"):
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-6)
        np.testing.assert_array_equal(got["unused"], np.zeros(4))
        np.testing.assert_array_equal(grads.buffers[0][13:], np.zeros(3))  # padding


def test_unflatten_under_vmap_sweeps_buffers():
    flat = js.flat_params({"w": jnp.ones((2, 2)), "b": jnp.zeros(3)})
    stacked = jax.tree.map(lambda x: jnp.stack([x, 2 * x, 3 * x]), flat)

    def loss(f):
        tree = f.unflatten()
        return jnp.sum(tree["w"] ** 2) + jnp.sum(tree["b"])

    losses = jax.vmap(loss)(stacked)
    np.testing.assert_allclose(losses, [4.0, 16.0, 36.0])
    grads = jax.jit(jax.vmap(jax.grad(loss)))(stacked)
    np.testing.assert_allclose(grads.buffers[0][:, :3], np.ones((3, 3)))  # "b" comes first
    np.testing.assert_allclose(grads.buffers[0][:, 3:], [[2] * 4, [4] * 4, [6] * 4])


def test_flat_update_compiles_once_and_state_keeps_its_structure():
    traces = []
    flat = js.flat_params({f"w{i}": jnp.ones((i + 1,)) for i in range(50)})
    tx = js.chain(js.clip_by_global_norm(1.0), js.adamw(js.cosine_decay(1e-3, 100)))

    @jax.jit
    def step(f, s):
        traces.append(1)
        g = jax.grad(lambda f: sum(jnp.sum(x ** 2) for x in jax.tree.leaves(f.unflatten())))(f)
        u, new = tx.update(g, s, f)
        return optax.apply_updates(f, u), new

    state = tx.init(flat)
    first = state
    for _ in range(100):
        flat, state = step(flat, state)
    assert len(traces) == 1
    jax.lax.cond(True, lambda: first, lambda: state)  # same structure and dtypes


def test_empty_and_none_only_trees():
    for tree in ({}, {"a": None, "b": optax.MaskedNode()}):
        flat = js.flat_params(tree)
        assert jax.tree.leaves(flat) == []
        assert jax.tree.structure(flat.unflatten()) == jax.tree.structure(tree)


def test_bad_input_names_the_argument():
    with pytest.raises(TypeError, match=r"`flat_params\(tree=...\)` holds only floating-point "
                                        r"arrays, got int32 at \['step'\]"):
        js.flat_params({"w": jnp.ones(2), "step": jnp.int32(0)})
    with pytest.raises(TypeError, match=r"`flat_params\(group=...\)` must have the structure"):
        js.flat_params({"w": jnp.ones(2), "b": jnp.ones(2)}, group={"w": True})
    with pytest.raises(TypeError, match=r"labels must be hashable, got set at \['w'\]"):
        js.flat_params({"w": jnp.ones(2)}, group={"w": {1, 2}})
    # Labels computed with jnp (scalar arrays) work like Python bools.
    flat = js.flat_params({"w": jnp.ones((2, 2)), "b": jnp.ones(2)},
                          group=lambda t: jax.tree.map(lambda x: jnp.ndim(x) > jnp.array(1), t))
    assert flat.layout.labels == (False, True)
    with pytest.raises(ValueError, match=r"`flat_params\(multiple_of=...\)` must be >= 1, got 0"):
        js.flat_params({"w": jnp.ones(2)}, multiple_of=0)
    with pytest.raises(TypeError, match=r"already a FlatParams"):
        js.flat_params(js.flat_params({"w": jnp.ones(2)}))


SHARDED = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, optax, jaxsched as js
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    assert len(jax.devices()) == 8
    mesh = Mesh(jax.devices(), ("x",))
    row = NamedSharding(mesh, P("x"))
    tree = {"w": jnp.arange(30.0).reshape(6, 5) / 10, "b": jnp.linspace(-1, 1, 7)}
    tx = js.chain(js.clip_by_global_norm(1.0), js.adamw(1e-2, weight_decay=0.1))
    def loss(f):
        t = f.unflatten()
        return jnp.sum(jnp.sin(t["w"])) + jnp.sum(t["b"] ** 2)
    @jax.jit
    def step(f, s):
        u, s = tx.update(jax.grad(loss)(f), s, f)
        return optax.apply_updates(f, u), s
    def run(flat):
        s = jax.jit(tx.init)(flat)
        for _ in range(5):
            flat, s = step(flat, s)
        return flat, s
    flat = js.flat_params(tree, multiple_of=8)
    ref, _ = run(flat)
    sharded, state = run(jax.device_put(flat, row))
    np.testing.assert_allclose(np.asarray(sharded.buffers[0]), np.asarray(ref.buffers[0]),
                               rtol=1e-6, atol=1e-7)
    adam = state[1][0]
    for buf in (sharded.buffers[0], adam.mu.buffers[0], adam.nu.buffers[0]):
        assert buf.sharding.is_equivalent_to(row, 1), buf.sharding
    print("OK")
""")


def test_sharded_buffers_on_eight_cpu_devices():
    run_on_eight_cpu_devices(SHARDED)


def test_layout_is_shared_so_jit_keys_cheaply_and_pickles():
    import pickle

    # numpy leaves: 300 shapes built with jnp would compile 300 times before the test begins
    tree = {f"w{i}": np.ones((i + 1,), np.float32) for i in range(300)}
    flat = js.flat_params(tree)
    assert js.flat_params(jax.tree.map(np.zeros_like, tree)).layout is flat.layout
    back = pickle.loads(pickle.dumps(flat))
    assert back.layout is flat.layout
    np.testing.assert_array_equal(back.buffers[0], flat.buffers[0])
    assert js.flat_params({"w": jnp.ones(3)}).layout is not flat.layout


def test_interop_train_state_multisteps_inject_and_checkpoint(tmp_path):
    import orbax.checkpoint as ocp
    from flax.training import train_state

    tree = {"w": jnp.full((3, 3), 0.5), "b": jnp.zeros(3), "h": jnp.ones(2, jnp.bfloat16)}
    flat = js.flat_params(tree, group=_decay_mask)
    keys = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(flat)[0]]
    assert keys == ["['float32/False']", "['bfloat16/False']", "['float32/True']"]
    assert "w" in flat and "missing" not in flat
    grads = jax.tree.map(jnp.ones_like, flat)
    opt = js.adamw(1e-2, weight_decay=0.1, mask=flat.labels())

    state = train_state.TrainState.create(apply_fn=None, params=flat, tx=opt)
    state = jax.jit(lambda s, g: s.apply_gradients(grads=g))(state, grads)
    updates, _ = opt.update(grads, opt.init(flat), flat)
    expected = optax.apply_updates(flat, updates)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))

    for tx in (optax.MultiSteps(opt, 2), optax.inject_hyperparams(optax.adamw)(1e-2)):
        u, _ = jax.jit(tx.update)(grads, tx.init(flat), flat)
        assert isinstance(u, js.FlatParams) and u.layout is flat.layout

    ckptr = ocp.StandardCheckpointer()
    ckptr.save(tmp_path / "ckpt", {"params": flat, "opt": opt.init(flat)})
    ckptr.wait_until_finished()
    back = ckptr.restore(tmp_path / "ckpt", {"params": flat, "opt": opt.init(flat)})
    assert isinstance(back["params"], js.FlatParams)
    js.restore_state(opt.init(flat), back["opt"])
    for a, b in zip(jax.tree.leaves(back["params"]), jax.tree.leaves(flat)):
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
    bad = jax.tree.map(lambda x: x[:1] if x.ndim else x, back["opt"])
    with pytest.raises(ValueError, match=r"shape \(1,\) at \[0\]\.mu\['float32/False'\]"):
        js.restore_state(opt.init(flat), bad)
