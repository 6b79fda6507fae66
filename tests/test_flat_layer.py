"""The flat-buffer layer: per-array formulas stay per array, unknown ones are refused, and
the buffers shard across devices (ZeRO stage 1/2) with the numbers of one device."""

import textwrap
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsched as js
from jaxsched import _builder, _flat, _hyper
from training import (assert_trees_close, random_grads_like, run_on_eight_cpu_devices,
                      train_random)


def _tree():
    k = jax.random.split(jax.random.PRNGKey(3), 4)
    return {"w": jax.random.normal(k[0], (6, 5)), "b": jax.random.normal(k[1], (5,)) * 0.01,
            "s": jnp.asarray(2.5), "e": jnp.zeros((0, 2)),
            "many": [jax.random.normal(jax.random.fold_in(k[2], i), (i + 2,)) * (i + 1) / 5
                     for i in range(12)]}


def _run(tx, params, steps=6):
    return train_random(tx, params, steps)


class RowNormState(NamedTuple):
    count: jax.Array
    acc: object
    hyperparams: dict


_hyper.carries("row_norm")(RowNormState)


def row_normalise(scale):
    """A per-array formula that needs the array's shape: divide each row (last axis) by its
    norm, through a running sum of squares (a buffer)."""
    def step(hp, g, acc):
        acc = acc + jnp.square(g)
        rows = jnp.sqrt(jnp.sum(acc, axis=-1, keepdims=True)) if g.ndim else jnp.sqrt(acc)
        return hp.scale * g / jnp.maximum(rows, 1e-3), acc

    return _builder.transformation("row_norm", RowNormState, {"scale": scale}, step,
                                   buffers={"acc": _builder.Buffer()}, per_array=True)


PER_ARRAY = {
    "clip_by_norm then adamw": lambda: js.chain(js.clip_by_norm(0.7),
                                                js.adamw(1e-2, weight_decay=0.1)),
    "row normalise (views)": lambda: js.chain(row_normalise(-1e-2)),
    "lamb (trust ratio, segment sums)": lambda: js.lamb(1e-2, weight_decay=0.1),
    "lars (trust ratio, segment sums)": lambda: js.lars(0.1, weight_decay=0.1,
                                                        trust_coefficient=0.01),
}


@pytest.mark.parametrize("name", sorted(PER_ARRAY))
@pytest.mark.parametrize("align, multiple_of", [(1, 1), (16, 8)])
def test_per_array_on_flat_params_equals_per_array(name, align, multiple_of):
    tree = _tree()
    plain, _ = _run(PER_ARRAY[name](), tree)
    flat = js.flat_params(tree, align=align, multiple_of=multiple_of)
    trained, _ = _run(PER_ARRAY[name](), flat)
    assert_trees_close(trained.unflatten(), plain, rtol=1e-6)
    fused, _ = _run(js.fuse(PER_ARRAY[name](), bucket_size=5), tree)
    assert_trees_close(fused, plain, rtol=1e-6)


@pytest.mark.parametrize("coefficient", [0.5, np.array([0.5])])
def test_trust_ratio_with_a_scalar_or_an_array_hyperparameter(coefficient):
    # A scalar: the ratio is computed once per array; an array hyperparameter
    # (which could vary by element): on each element's copy of its array's sums.
    tree = {f"w{i}": jnp.cos(jnp.arange(300.0).reshape(3, 100) * (i + 1)) for i in range(4)}
    def make():
        return js.chain(js.scale_by_trust_ratio(trust_coefficient=coefficient), js.sgd(0.1))

    plain, _ = _run(make(), tree, steps=3)
    trained, _ = _run(make(), js.flat_params(tree, align=16), steps=3)
    assert_trees_close(trained.unflatten(), plain, rtol=1e-6)


def test_padding_and_gaps_never_enter_a_per_array_sum():
    tree = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([[1.0, 0.0, 0.0]])}
    flat = js.flat_params(tree, align=16, multiple_of=64)
    g = jax.tree.map(lambda x: x + 100.0, flat)  # non-zero gaps and padding
    layout = flat.layout
    exact = jax.tree.map(lambda x: x + 100.0, tree)
    g = js.FlatParams(tuple(
        jnp.where(jnp.asarray(np.isin(np.arange(layout.padded[0]), [0, 1, 16, 17, 18])),
                  buf, 7.0) for buf in g.buffers), layout)
    tx = js.clip_by_norm(1.0)
    u, _ = tx.update(g, tx.init(flat))
    ref, _ = tx.update(exact, tx.init(tree))
    assert_trees_close(u.unflatten(), ref, rtol=1e-6)


# Shapes of the arrays of one flat buffer, each laid out a different way: one run of
# equal arrays, model layers (a repeating pattern of 4 arrays), scalars and empty
# arrays between runs, and sizes with no pattern (the block segment sum).
ARRAY_SUM_LAYOUTS = {
    "equal arrays": [(37,)] * 40,
    "layers": [(5,), (3, 7), (7,), (2, 2, 3)] * 9 + [(11,)],
    "scalars and empty arrays": [(), (0, 2)] + [(9,)] * 12 + [(0,), ()] + [(4, 4)] * 4,
    "no pattern": [(int(n),) for n in np.random.default_rng(5).integers(1, 60, 70)],
    # Arrays of >= 64 elements: row sums by a matrix-vector product (in pieces past 4,096).
    "large arrays": [(16, 75)] * 4 + [(70, 90)] * 4,
    "large layers": [(96,), (40, 50)] * 4,
}


@pytest.mark.parametrize("name", sorted(ARRAY_SUM_LAYOUTS))
@pytest.mark.parametrize("align, multiple_of", [(1, 1), (16, 8), (3, 5)])
def test_array_sum_is_each_arrays_own_sum(name, align, multiple_of):
    shapes = ARRAY_SUM_LAYOUTS[name]
    tree = {f"a{i:03d}": jnp.zeros(shape) for i, shape in enumerate(shapes)}
    layout = js.flat_params(tree, align=align, multiple_of=multiple_of).layout
    segments = layout.segments(0)
    plan = _flat._run_plan(segments, layout.padded[0])
    # Each layout takes the path it is meant to test.
    if name == "no pattern":
        assert plan is None
    else:
        assert plan is not None
        if name == "layers":
            assert [len(columns) for *_, columns in plan][0] == 4
        if name.startswith("large"):
            assert all(_flat._row_piece(size) for *_, columns in plan for _, size in columns)
    x = np.random.default_rng(1).normal(size=layout.padded[0]).astype(np.float32) + 3.0
    sums = np.asarray(jax.jit(layout.array_sum(0))(jnp.asarray(x)))  # gaps hold values too
    for offset, size, _ in segments:
        want = np.sum(x[offset:offset + size], dtype=np.float64)
        np.testing.assert_allclose(sums[offset:offset + size], np.full(size, want), rtol=1e-6)


def test_one_fused_optimizer_for_several_trees():
    a, b = _tree(), {"x": jnp.ones((3, 3)), "y": jnp.arange(4.0)}
    tx = js.fuse(js.chain(js.clip_by_norm(0.5), js.adam(1e-2)))
    sa, sb = tx.init(a), tx.init(b)
    for i in range(3):
        ua, sa = tx.update(random_grads_like(a, i), sa, a)
        ub, sb = tx.update(random_grads_like(b, i), sb, b)
    ref = js.chain(js.clip_by_norm(0.5), js.adam(1e-2))
    ra, rb = ref.init(a), ref.init(b)
    for i in range(3):
        va, ra = ref.update(random_grads_like(a, i), ra, a)
        vb, rb = ref.update(random_grads_like(b, i), rb, b)
    assert_trees_close(ua, va, rtol=1e-6)
    assert_trees_close(ub, vb, rtol=1e-6)


def test_tree_masks_on_flat_params_and_a_mask_that_splits_a_buffer():
    tree = {"w": jnp.ones((2, 2)), "b": jnp.ones(3)}
    mask = {"w": True, "b": False}
    flat = js.flat_params(tree, group=mask)
    tx = js.add_decayed_weights(0.5, mask=mask)  # a mask of the original tree
    u, _ = tx.update(jax.tree.map(jnp.zeros_like, flat), tx.init(flat), flat)
    np.testing.assert_array_equal(u.unflatten()["w"], np.full((2, 2), 0.5))
    np.testing.assert_array_equal(u.unflatten()["b"], np.zeros(3))
    fn = js.add_decayed_weights(0.5, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p))
    u2, _ = fn.update(jax.tree.map(jnp.zeros_like, flat), fn.init(flat), flat)
    np.testing.assert_array_equal(u2.buffers[0], u.buffers[0])
    one_buffer = js.flat_params(tree)
    with pytest.raises(ValueError, match=r"`add_decayed_weights\(mask=...\)` differs within "
                                         r"one flat buffer \(at \['w'\]\)"):
        tx.init(one_buffer)


SHARDED = textwrap.dedent("""
    import math
    import jax, jax.numpy as jnp, numpy as np, optax, jaxsched as js
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    assert len(jax.devices()) == 8
    mesh = Mesh(np.array(jax.devices()).reshape(8, 1), ("data", "model"))
    data = NamedSharding(mesh, P("data"))
    cols = NamedSharding(mesh, P(None, "data"))   # a tensor-parallel matrix
    key = jax.random.PRNGKey(0)
    small = {f"l{i}": jax.random.normal(jax.random.fold_in(key, i), (i % 7 + 3,)) for i in range(40)}
    tp = jax.device_put(jax.random.normal(key, (4, 16)), cols)
    params = {"small": small, "tp": tp}
    host = jax.tree.map(np.asarray, params)
    make = lambda: js.chain(js.clip_by_norm(0.5), js.adamw(1e-2, weight_decay=0.1))
    def run(tx, p, steps=4):
        step = jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(
            *tx.update(g, s, p)))
        s = tx.init(p)
        for i in range(steps):
            p, s = step(p, s, jax.tree.map(lambda x: jnp.cos(x * (i + 1)), p))
        return p, s
    ref, _ = run(make(), jax.tree.map(jnp.asarray, host))          # one device, per array
    got, state = run(js.fuse(make(), bucket_size=64, sharding=data), params)  # ZeRO, 8 devices
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    assert got["tp"].sharding.is_equivalent_to(cols, 2), got["tp"].sharding
    mu = state.inner[1][0].mu
    total = sum(x.size for x in jax.tree.leaves(small))          # 238: padded to 240
    flat = [x for x in mu.buffers if x.ndim == 1]
    assert sum(x.size for x in flat) == -(-total // 8) * 8 and sum(x.size for x in flat) > total
    for x in flat:
        shard_bytes = {s.data.nbytes for s in x.addressable_shards}
        assert shard_bytes == {x.nbytes // 8}, (shard_bytes, x.nbytes)
        assert x.sharding.is_equivalent_to(data, 1)
    tp_state = [x for x in mu.buffers if x.ndim == 2][0]
    assert tp_state.sharding.is_equivalent_to(cols, 2)
    # Each device concatenates only its own slice of the flat buffers (30 of 240).
    import re
    tx = js.fuse(make(), bucket_size=64, sharding=data)
    hlo = jax.jit(lambda g, s, p: tx.update(g, s, p)).lower(
        params, tx.init(params), params).compile().as_text()
    sizes = [int(n) for n in re.findall(r"f32\\[(\\d+)\\]\\{0\\} concatenate\\(", hlo)]
    assert sizes and max(sizes) <= 30, sizes
    # flat_params sharded with device_put: the state follows, 1/8 per device.
    tree = {"small": small, "w": jnp.ones((5, 3))}
    flatp = jax.device_put(js.flat_params(tree, multiple_of=8), data)
    tx = make()
    p2, s2 = run(tx, flatp)
    ref2, _ = run(make(), jax.tree.map(jnp.asarray, jax.tree.map(np.asarray, tree)))
    for a, b in zip(jax.tree.leaves(p2.unflatten()), jax.tree.leaves(ref2)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    for x in jax.tree.leaves(s2[1][0].mu):
        assert {s.data.nbytes for s in x.addressable_shards} == {x.nbytes // 8}
    print("OK")
""")


def test_fuse_sharded_over_eight_cpu_devices():
    run_on_eight_cpu_devices(SHARDED)
