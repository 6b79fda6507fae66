"""Muon orthogonalizes matrices of one (reshaped) shape together, with each matrix's numbers.

`scale_by_muon` stacks the momenta of the matrices that share a matrix shape
and runs the Newton-Schulz iteration once per shape under `jax.vmap`. The
reference for every test here is the same optimizer on each matrix alone
(a tree holding that one matrix, which takes the unbatched path), so the
batching must change nothing but the program's size. The formula itself is
checked against PyTorch's Muon in tests/x64/test_per_array_optimizers_x64.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxsched as js
from training import random_grads_like, train_random


def _tree(n_same=6):
    """Same-shape matrices, a rank-3 array whose matrix shape is theirs' reshaped, others."""
    key = jax.random.key(7)
    tree = {f"w{i}": jax.random.normal(jax.random.fold_in(key, i), (4, 6)) for i in range(n_same)}
    tree["k"] = jax.random.normal(jax.random.fold_in(key, 100), (4, 2, 3))  # (4, 6) as a matrix
    tree["tall0"] = jax.random.normal(jax.random.fold_in(key, 101), (7, 3))
    tree["tall1"] = jax.random.normal(jax.random.fold_in(key, 102), (7, 3))
    tree["odd"] = jax.random.normal(jax.random.fold_in(key, 103), (5, 5))
    tree["b"] = jnp.linspace(-1.0, 1.0, 6)
    return tree


def _alone(make, tree, steps):
    """Each matrix trained in a tree of its own (with the vector, for the AdamW part)."""
    out = {}
    for name, p in tree.items():
        if p.ndim < 2:
            continue
        sub = {name: p, "b": tree["b"]}
        # The same gradients as in the whole tree: random_grads_like seeds by step, not path.
        out[name] = train_random(make(), sub, steps)[0][name]
    return out


def _assert_each_close(got, want, rtol=1e-6):
    for name, w in want.items():
        w = np.asarray(w, np.float64)
        np.testing.assert_allclose(np.asarray(got[name], np.float64), w, rtol=rtol,
                                   atol=rtol * np.abs(w).max(), err_msg=name)


def _make():
    return js.muon(js.cosine_decay(0.05, 10), weight_decay=0.1, beta=0.9)


def test_same_shape_matrices_give_each_matrix_alone_result():
    tree = _tree()
    whole = train_random(_make(), tree, 4)[0]
    alone = _alone(_make, tree, 4)
    _assert_each_close(whole, alone)
    for name in alone:
        assert np.abs(np.asarray(whole[name]) - np.asarray(tree[name])).max() > 1e-2, name
    # Same gradients everywhere, different starting points: the matrices moved differently.
    assert not np.allclose(np.asarray(whole["w0"] - tree["w0"]), np.asarray(whole["w1"] - tree["w1"]))


def test_reshape_last_and_match_rms_adamw_batch_too():
    tree = _tree(3)
    make = lambda: js.muon(0.05, reshape="last", adjust_lr_fn="match_rms_adamw",  # noqa: E731
                           nesterov=False)
    _assert_each_close(train_random(make(), tree, 3)[0], _alone(make, tree, 3))


def test_program_grows_with_shapes_not_matrices():
    """The Newton-Schulz iteration appears once per matrix shape in the traced program."""
    def dots(n):
        tree = {f"w{i:04d}": jnp.ones((3, 2)) * (i + 1) for i in range(n)}
        tree.update({f"v{i:04d}": jnp.ones((2, 5)) for i in range(n)})
        tx = js.scale_by_muon()
        jaxpr = jax.make_jaxpr(tx.update)(tree, tx.init(tree))
        return sum(e.primitive.name == "dot_general" for e in jaxpr.jaxpr.eqns)

    per_shape = 3 * js._muon.NS_STEPS  # X X^T, A A, (b A + c A A) X
    assert dots(1) == dots(1000) == 2 * per_shape


def test_a_thousand_matrix_tree_compiles_and_matches_alone():
    key = jax.random.key(3)
    tree = {f"w{i:04d}": jax.random.normal(jax.random.fold_in(key, i), (3, 2)) for i in range(1000)}
    grads = jax.tree.map(lambda p: jnp.cos(3.0 * p), tree)
    tx = js.scale_by_muon()
    update = jax.jit(tx.update)
    state = tx.init(tree)
    u, state = update(grads, state, tree)
    u, state = update(grads, state, tree)
    assert update._cache_size() == 1
    alone = jax.jit(tx.update)  # jitted like the tree (eager runs round differently)
    for name in ("w0000", "w0517", "w0999"):
        one = {name: tree[name]}
        s1 = tx.init(one)
        u1, s1 = alone({name: grads[name]}, s1, one)
        u1, s1 = alone({name: grads[name]}, s1, one)
        np.testing.assert_allclose(np.asarray(u[name]), np.asarray(u1[name]), rtol=1e-6,
                                   atol=1e-6 * float(jnp.abs(u1[name]).max()), err_msg=name)
        np.testing.assert_allclose(np.asarray(state.mu[name]), np.asarray(s1.mu[name]),
                                   rtol=1e-6)


def test_flat_params_orthogonalize_each_original_matrix():
    tree = _tree()
    by_rank = lambda t: jax.tree.map(lambda x: jnp.ndim(x) >= 2, t)  # noqa: E731
    plain = train_random(_make(), tree, 4)[0]
    for align in (1, 16):
        flat = js.flat_params(tree, group=by_rank, align=align)
        trained, state = train_random(_make(), flat, 4)
        got = trained.unflatten()
        _assert_each_close(got, {k: v for k, v in plain.items()})
        # The momentum is held in the flat buffers' shapes, not per matrix.
        assert {x.shape for x in jax.tree.leaves(state[0].inner_state.mu)} <= {
            x.shape for x in jax.tree.leaves(flat)}


def test_flat_params_need_matrices_and_vectors_apart():
    flat = js.flat_params(_tree(2))  # one buffer holding matrices and the vector
    try:
        _make().init(flat)
    except ValueError as e:
        assert "differs within one flat buffer" in str(e)
    else:
        raise AssertionError("a buffer mixing Muon's and AdamW's arrays was accepted")


def test_groups_batch_within_each_group():
    """With `groups=`, each group's matrices are batched among themselves: the head group
    equals Muon with the group's hyperparameters on those matrices alone."""
    tree = _tree(4)
    groups = {"head": js.group(r"^w[01]$", learning_rate=0.01, beta=0.5)}
    whole = train_random(js.muon(0.05, weight_decay=0.1, groups=groups), tree, 3)[0]
    head = lambda: js.muon(0.01, weight_decay=0.1, beta=0.5)  # noqa: E731
    rest = lambda: js.muon(0.05, weight_decay=0.1)  # noqa: E731
    want = {**_alone(rest, {k: v for k, v in tree.items() if k not in ("w0", "w1")}, 3),
            **_alone(head, {"w0": tree["w0"], "w1": tree["w1"], "b": tree["b"]}, 3)}
    _assert_each_close(whole, want)


def test_vmap_sweep_and_array_hyperparameters_with_batching():
    tree = {f"w{i}": jax.random.normal(jax.random.key(i), (5, 3)) for i in range(4)}
    g = [random_grads_like(tree, i) for i in range(2)]

    def second(beta):
        tx = js.scale_by_muon(beta=beta)
        state = tx.update(g[0], tx.init(tree))[1]
        return tx.update(g[1], state)[0]

    betas = jnp.asarray([0.5, 0.9])
    swept = jax.jit(jax.vmap(second))(betas)
    for i in range(2):
        one = jax.jit(second)(betas[i])
        for k in tree:
            np.testing.assert_allclose(np.asarray(swept[k][i]), np.asarray(one[k]), rtol=1e-5,
                                       atol=1e-7)
    # An array hyperparameter (each matrix runs alone then) gives the scalar's numbers.
    full = second(jnp.full((5, 3), 0.9))
    for k in tree:
        np.testing.assert_allclose(np.asarray(full[k]), np.asarray(second(0.9)[k]), rtol=1e-6,
                                   atol=1e-7)
    assert not np.allclose(np.asarray(swept["w0"][0]), np.asarray(swept["w0"][1]))


def test_chain_with_optax_masked_on_flat_buffers():
    """`optax.masked` drops a buffer from the tree; the other buffers keep their layout place."""
    tree = _tree(2)
    by_rank = lambda t: jax.tree.map(lambda x: jnp.ndim(x) >= 2, t)  # noqa: E731
    flat = js.flat_params(tree, group=by_rank)
    tx = optax.masked(js.scale_by_muon(), flat.labels())
    plain = optax.masked(js.scale_by_muon(), by_rank(tree))
    u_flat = tx.update(flat, tx.init(flat))[0].unflatten()
    u_tree = plain.update(tree, plain.init(tree))[0]
    _assert_each_close(u_flat, {k: v for k, v in u_tree.items()})
