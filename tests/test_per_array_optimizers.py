"""Optimizers whose update reduces per array: lion, lamb, lars, adafactor, muon.

float32 parity with optax over 200 steps (a schedule on the learning rate
and on one other hyperparameter, given to optax through
`optax.inject_hyperparams` so both see schedule(k) at update k); state
structure and dtype stability; bfloat16 parameters; jit against eager;
vmap over a hyperparameter; argument errors. Gradients are fixed random
arrays (not functions of the parameters) so that float32 trajectories are
not chaotic and rtol 1e-6 is meaningful. The float64 comparisons with
PyTorch's Muon and Adafactor are in tests/x64/.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsched as js
from training import train_random, trajectory

STEPS = 200
SHAPES = {"w": (6, 5), "b": (5,), "k": (4, 5, 6), "s": ()}


def params_like(dtype=jnp.float32):
    rng = np.random.default_rng(0)
    return {k: jnp.asarray(rng.normal(size=s), dtype) for k, s in SHAPES.items()}


def random_grads(n, seed=1):
    rng = np.random.default_rng(seed)
    out = {}
    for k, shape in SHAPES.items():
        g = rng.normal(size=(n,) + shape) * np.exp(rng.normal(size=(n,) + (1,) * len(shape)))
        out[k] = g.astype(np.float32)
    return out


LR = js.cosine_decay(0.01, STEPS, alpha=0.1)
LR_OPTAX = optax.cosine_decay_schedule(0.01, STEPS, alpha=0.1)
DECAY = js.polynomial_decay(0.9, STEPS, 0.99)
DECAY_OPTAX = optax.polynomial_schedule(0.9, 0.99, 1.0, STEPS)

# name: (ours, optax's with the same schedules)
PARITY = {
    "lion": (lambda: js.lion(LR, b1=DECAY, weight_decay=0.1),
             lambda: optax.inject_hyperparams(optax.lion)(LR_OPTAX, b1=DECAY_OPTAX,
                                                          weight_decay=0.1)),
    "lamb": (lambda: js.lamb(LR, b2=DECAY, weight_decay=0.01),
             lambda: optax.inject_hyperparams(optax.lamb)(LR_OPTAX, b2=DECAY_OPTAX,
                                                          weight_decay=0.01)),
    "lars": (lambda: js.lars(LR, weight_decay=0.01, trust_coefficient=0.05, momentum=DECAY, nesterov=True,
                             trust_ratio_mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p)),
             lambda: optax.inject_hyperparams(optax.lars, static_args=("trust_ratio_mask",))(
                 LR_OPTAX, weight_decay=0.01, trust_coefficient=0.05, momentum=DECAY_OPTAX, nesterov=True,
                 trust_ratio_mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p))),
    "adafactor": (lambda: js.adafactor(LR, min_dim_size_to_factor=4, decay_rate=js.polynomial_decay(
                      0.8, STEPS, 0.6), momentum=0.9, weight_decay_rate=1e-3),
                  lambda: optax.inject_hyperparams(
                      optax.adafactor, static_args=("min_dim_size_to_factor", "dtype_momentum"))(
                      LR_OPTAX, min_dim_size_to_factor=4,
                      decay_rate=optax.polynomial_schedule(0.8, 0.6, 1.0, STEPS), momentum=0.9,
                      weight_decay_rate=1e-3)),
}


@pytest.mark.parametrize("name", PARITY)
def test_matches_optax_over_200_scheduled_steps(name):
    ours_tx, optax_tx = PARITY[name]
    p, g = params_like(), random_grads(STEPS)
    ours, state = trajectory(ours_tx(), p, g)
    theirs = trajectory(optax_tx(), p, g)[0]
    for k in SHAPES:
        e = np.asarray(theirs[k], np.float64)
        np.testing.assert_allclose(np.asarray(ours[k], np.float64), e, rtol=1e-6,
                                   atol=1e-6 * np.abs(e).max(), err_msg=k)
        assert np.abs(e[-1] - np.asarray(p[k])).max() > 1e-2, k  # the run moved
    np.testing.assert_allclose(float(js.hyperparams(state, "learning_rate")), LR(STEPS - 1),
                               rtol=1e-6)


def test_adafactor_optax_defaults_match_optax():
    """optax's defaults (only the two largest dims >= 128 are factored; learning rate 0.01)."""
    p = {"big": jax.random.normal(jax.random.key(0), (130, 140)), "v": jnp.ones(3)}
    g = {"big": np.asarray(jax.random.normal(jax.random.key(1), (5, 130, 140))),
         "v": np.asarray(jax.random.normal(jax.random.key(2), (5, 3)))}
    ours, state = trajectory(js.adafactor(0.01), p, g)
    theirs = trajectory(optax.adafactor(0.01), p, g)[0]
    for k in p:
        np.testing.assert_allclose(np.asarray(ours[k]), np.asarray(theirs[k]), rtol=1e-6,
                                   atol=1e-6)
    assert state[0].v_row["big"].shape == (130, 1) and state[0].v["big"].shape == (1,)


def test_muon_matrices_match_pytorch_form_and_rest_is_adamw():
    """One step by hand: Muon's form (PyTorch's) for the matrix, AdamW for the vector."""
    p = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(6, 4)), jnp.float32),
         "b": jnp.ones(4)}
    g = jax.tree.map(lambda x: jnp.cos(3 * x), p)
    opt = js.muon(0.1, beta=0.9, weight_decay=0.5, adam_weight_decay=0.25)
    u, _ = opt.update(g, opt.init(p), p)
    x = 0.9 * (0.1 * g["w"]) + 0.1 * g["w"]  # Nesterov on the EMA
    o = js.orthogonalize(x)
    expected_w = -0.1 * (np.sqrt(6 / 4) * o + 0.5 * p["w"])
    np.testing.assert_allclose(np.asarray(u["w"]), np.asarray(expected_w), rtol=1e-5)
    adamw_u, _ = js.adamw(0.1, weight_decay=0.25).update(g["b"], js.adamw(0.1).init(p["b"]),
                                                          p["b"])
    np.testing.assert_allclose(np.asarray(u["b"]), np.asarray(adamw_u), rtol=1e-6)
    sv = np.linalg.svd(np.asarray(o), compute_uv=False)
    assert sv.min() > 0.6 and sv.max() < 1.25  # near-orthogonal, as the quintic gives


@pytest.mark.parametrize("reshape,matrix", [("first", (4, 30)), ("last", (20, 6))])
def test_muon_reshapes_higher_rank_arrays(reshape, matrix):
    k = jax.random.normal(jax.random.key(0), (4, 5, 6))
    g = jax.random.normal(jax.random.key(1), (4, 5, 6))
    tx = js.scale_by_muon(reshape=reshape)
    u, _ = tx.update(g, tx.init(k))
    flat = js.scale_by_muon().update(g.reshape(matrix), js.scale_by_muon().init(k.reshape(matrix)))
    np.testing.assert_allclose(np.asarray(u).reshape(matrix), np.asarray(flat[0]), rtol=1e-6)


def test_muon_without_a_matrix_is_an_error():
    with pytest.raises(ValueError, match=r"`muon`: the parameters have no matrix"):
        js.muon(0.1).init({"b": jnp.ones(3), "s": jnp.ones(())})
    with pytest.raises(ValueError, match=r"`muon\(muon_mask=...\)` selects the array of shape"):
        js.muon(0.1, muon_mask={"w": True, "b": True}).init({"w": jnp.ones((2, 2)),
                                                              "b": jnp.ones(2)})


def test_muon_mask_sends_a_matrix_to_adamw():
    p = {"emb": jnp.ones((3, 4)), "w": jnp.ones((4, 4)) + jnp.eye(4), "b": jnp.ones(4)}
    g = jax.tree.map(lambda x: jnp.sin(x + jnp.arange(x.shape[-1])), p)
    opt = js.muon(0.1, muon_mask={"emb": False, "w": True, "b": False}, adam_weight_decay=0.0)
    u, _ = opt.update(g, opt.init(p), p)
    adam = js.adam(0.1)
    np.testing.assert_allclose(np.asarray(u["emb"]),
                               np.asarray(adam.update(g["emb"], adam.init(p["emb"]))[0]),
                               rtol=1e-6)


def test_hyperparams_of_each_optimizer():
    p = params_like()
    keys = {
        "lion": {"b1", "b2", "weight_decay", "learning_rate"},
        "lamb": {"b1", "b2", "scale_by_adam/eps", "eps_root", "weight_decay", "min_norm",
                 "trust_coefficient", "scale_by_trust_ratio/eps", "learning_rate"},
        "lars": {"weight_decay", "min_norm", "trust_coefficient", "eps", "learning_rate",
                 "decay"},
        "adafactor": {"decay_rate", "threshold", "learning_rate", "min_scale", "factor"},
    }
    for name, expected in keys.items():
        assert set(js.hyperparams(getattr(js, name)(0.1).init(p))) == expected, name
    pm = {"w": p["w"], "b": p["b"]}
    hp = js.hyperparams(js.muon(0.02, adam_learning_rate=0.003).init(pm))
    assert set(hp) == {"beta", "eps", "ns_a", "ns_b", "ns_c", "weight_decay", "learning_rate",
                       "adam_b1", "adam_b2", "adam_eps", "adam_eps_root", "adam_weight_decay",
                       "adam_learning_rate"}
    assert float(hp["adam_learning_rate"]) == np.float32(0.003)
    assert float(hp["ns_b"]) == np.float32(-4.775)


# ---------------------------------------------------------------- structure, dtypes, tracing

CASES = {
    "lion": lambda: js.lion(LR),
    "lamb": lambda: js.lamb(LR, weight_decay=0.1),
    "lars": lambda: js.lars(LR, weight_decay=0.1),
    "adafactor": lambda: js.adafactor(LR, min_dim_size_to_factor=2, momentum=0.9),
    "adafactor_pytorch": lambda: js.adafactor(LR, weight_decay_rate=0.1, convention="pytorch"),
    "muon": lambda: js.muon(LR, nesterov=False, adjust_lr_fn="match_rms_adamw"),
}


@pytest.mark.parametrize("name", CASES)
def test_state_dtypes_jit_and_eager(name):
    """bfloat16 params: updates in bfloat16, state in float32, structure and dtypes stable
    (`lax.cond`), zero gradients finite; float32: jit and eager agree; integer params refused.

    (The float32 trajectories above run in `lax.scan`, which also fails on any state drift.)
    """
    tx = CASES[name]()
    update = jax.jit(tx.update)
    p = params_like(jnp.bfloat16)
    state = tx.init(p)
    g = jax.tree.map(lambda x: jnp.asarray(x[0], jnp.bfloat16), random_grads(1))
    u, new_state = update(g, state, p)
    jax.lax.cond(True, lambda: state, lambda: new_state)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(u))
    floats = [x for x in jax.tree.leaves(new_state) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert floats and all(x.dtype == jnp.float32 for x in floats)
    for _ in range(2):
        u, new_state = update(jax.tree.map(jnp.zeros_like, p), new_state, p)
        assert all(np.isfinite(np.asarray(x, np.float32)).all() for x in jax.tree.leaves(u))
    with pytest.raises(TypeError, match="real floating-point"):
        tx.init({**p, "w": jnp.ones((6, 5), jnp.int32)})

    p32 = params_like()
    g32 = jax.tree.map(lambda x: jnp.asarray(x[0]), random_grads(1, seed=3))
    state = tx.init(p32)
    u_eager, _ = tx.update(g32, state, p32)
    u_jit, _ = jax.jit(tx.update)(g32, state, p32)
    for k in p32:
        np.testing.assert_allclose(np.asarray(u_eager[k]), np.asarray(u_jit[k]), rtol=2e-6,
                                   atol=1e-7, err_msg=k)


@pytest.mark.parametrize("name,make", [
    ("lion", lambda lr: js.lion(lr)), ("lamb", lambda lr: js.lamb(lr)),
    ("lars", lambda lr: js.lars(lr)), ("adafactor", lambda d: js.adafactor(0.1, decay_rate=d)),
    ("muon", lambda b: js.muon(0.1, beta=b))])
def test_vmap_over_a_hyperparameter(name, make):
    p = params_like()
    g = [jax.tree.map(lambda x: jnp.asarray(x[i]), random_grads(2)) for i in range(2)]

    def second_update(v):
        tx = make(v)
        state = tx.update(g[0], tx.init(p), p)[1]
        return tx.update(g[1], state, p)[0]["w"]

    values = jnp.asarray([0.5, 0.7, 0.9])
    swept = jax.jit(jax.vmap(second_update))(values)
    np.testing.assert_allclose(np.asarray(swept[1]),
                               np.asarray(jax.jit(second_update)(values[1])), rtol=1e-5,
                               atol=1e-7)
    assert not np.allclose(np.asarray(swept[0]), np.asarray(swept[2]))


@pytest.mark.parametrize("ours,theirs", [
    (js.lion, optax.lion), (js.lamb, optax.lamb), (js.lars, optax.lars),
    (js.adafactor, optax.adafactor), (js.muon, optax.contrib.muon),
    (js.scale_by_lion, optax.scale_by_lion), (js.scale_by_trust_ratio, optax.scale_by_trust_ratio),
    (js.clip_by_block_rms, optax.clip_by_block_rms),
    (js.scale_by_factored_rms, optax.scale_by_factored_rms),
    (js.scale_by_param_block_rms, optax.scale_by_param_block_rms)])
def test_positional_order_is_optax(ours, theirs):
    def positional(f):
        return [n for n, q in inspect.signature(f).parameters.items()
                if q.kind == q.POSITIONAL_OR_KEYWORD]

    assert positional(ours) == positional(theirs)[:len(positional(ours))]
    assert len(positional(ours)) >= min(len(positional(theirs)), 5)


def test_per_array_marks():
    for make in (js.scale_by_muon, js.scale_by_trust_ratio, js.scale_by_factored_rms,
                 lambda: js.clip_by_block_rms(1.0), js.scale_by_param_block_rms):
        assert make().per_array
    assert not js.scale_by_lion().per_array
    for make in (js.lamb, js.lars, js.adafactor, js.muon):
        assert make(0.1).per_array
    assert not js.lion(0.1).per_array


# ---------------------------------------------------------------- bad arguments

BAD = [
    (lambda: js.lion(0.1, b1=1.0), ValueError, "`lion(b1=...)` must be < 1, got 1.0."),
    (lambda: js.lion(0.1, b2=-0.1), ValueError, "`lion(b2=...)` must be >= 0, got -0.1."),
    (lambda: js.lion(-0.1), ValueError, "`lion(learning_rate=...)` must be >= 0, got -0.1."),
    (lambda: js.lion(0.1, weight_decay=-1.0), ValueError,
     "`lion(weight_decay=...)` must be >= 0, got -1.0."),
    (lambda: js.scale_by_lion(mode="soft"), ValueError,
     "`scale_by_lion(mode=...)` must be one of 'hard', 'smooth', 'refined', got 'soft'."),
    (lambda: js.lamb(0.1, b2=1.0), ValueError, "`lamb(b2=...)` must be < 1, got 1.0."),
    (lambda: js.lamb(0.1, eps=-1e-6), ValueError, "`lamb(eps=...)` must be >= 0, got -1e-06."),
    (lambda: js.lars(0.1, trust_coefficient=-1.0), ValueError,
     "`lars(trust_coefficient=...)` must be >= 0, got -1.0."),
    (lambda: js.lars(0.1, momentum=1.5), ValueError, "`lars(momentum=...)` must be <= 1, got 1.5."),
    (lambda: js.lars(0.1, nesterov=1), TypeError, "`lars(nesterov=...)` must be a bool, got 1."),
    (lambda: js.scale_by_trust_ratio(min_norm=-1.0), ValueError,
     "`scale_by_trust_ratio(min_norm=...)` must be >= 0, got -1.0."),
    (lambda: js.adafactor(decay_rate=-0.8), ValueError,
     "`adafactor(decay_rate=...)` must be >= 0, got -0.8."),
    (lambda: js.adafactor(eps=0.0), ValueError, "`adafactor(eps=...)` must be > 0, got 0.0."),
    (lambda: js.adafactor(clipping_threshold=0.0), ValueError,
     "`adafactor(clipping_threshold=...)` must be > 0, got 0.0."),
    (lambda: js.adafactor(decay_offset=1.5), TypeError,
     "`adafactor(decay_offset=...)` must be an integer, got float 1.5."),
    (lambda: js.adafactor(min_dim_size_to_factor=-1), ValueError,
     "`adafactor(min_dim_size_to_factor=...)` must be >= 0, got -1."),
    (lambda: js.adafactor(momentum=1.5), ValueError,
     "`adafactor(momentum=...)` must be <= 1, got 1.5."),
    (lambda: js.adafactor(0.1, weight_decay_rate=-1.0, convention="pytorch"), ValueError,
     "`adafactor(weight_decay_rate=...)` must be >= 0, got -1.0."),
    (lambda: js.adafactor(convention="keras"), ValueError,
     "`adafactor(convention=...)` must be one of 'optax', 'pytorch', got 'keras'."),
    (lambda: js.adafactor(momentum=0.9, convention="pytorch"), ValueError,
     "`adafactor(momentum=...)` must be None with convention='pytorch' (PyTorch's Adafactor "
     "has none), got 0.9."),
    (lambda: js.muon(0.1, beta=1.0), ValueError, "`muon(beta=...)` must be < 1, got 1.0."),
    (lambda: js.muon(0.1, eps=0.0), ValueError, "`muon(eps=...)` must be > 0, got 0.0."),
    (lambda: js.muon(0.1, ns_steps=0), ValueError, "`muon(ns_steps=...)` must be >= 1, got 0."),
    (lambda: js.muon(0.1, ns_steps=5.0), TypeError,
     "`muon(ns_steps=...)` must be an integer, got float 5.0."),
    (lambda: js.muon(0.1, ns_coeffs=(1.0, 2.0)), ValueError,
     "`muon(ns_coeffs=...)` must have one entry per coefficient a, b, c (3), got 2."),
    (lambda: js.muon(0.1, ns_coeffs=(1.0, float("nan"), 2.0)), ValueError,
     "`muon(ns_coeffs=...)` must not be NaN, got nan."),
    (lambda: js.muon(0.1, adjust_lr_fn="rms"), ValueError,
     "`muon(adjust_lr_fn=...)` must be one of 'original', 'match_rms_adamw', got 'rms'."),
    (lambda: js.muon(0.1, reshape="middle"), ValueError,
     "`muon(reshape=...)` must be one of 'first', 'last', got 'middle'."),
    (lambda: js.muon(0.1, weight_decay=-0.1), ValueError,
     "`muon(weight_decay=...)` must be >= 0, got -0.1."),
    (lambda: js.muon(0.1, adam_b1=1.0), ValueError, "`muon(adam_b1=...)` must be < 1, got 1.0."),
    (lambda: js.muon(0.1, adam_eps=-1.0), ValueError,
     "`muon(adam_eps=...)` must be >= 0, got -1.0."),
    (lambda: js.muon(0.1, adam_weight_decay=-1.0), ValueError,
     "`muon(adam_weight_decay=...)` must be >= 0, got -1.0."),
    (lambda: js.muon(0.1, adam_learning_rate=-1.0), ValueError,
     "`muon(adam_learning_rate=...)` must be >= 0, got -1.0."),
    (lambda: js.muon(-0.1), ValueError, "`muon(learning_rate=...)` must be >= 0, got -0.1."),
    (lambda: js.scale_by_muon(ns_steps=0), ValueError,
     "`scale_by_muon(ns_steps=...)` must be >= 1, got 0."),
    (lambda: js.scale_by_factored_rms(epsilon=-1.0), ValueError,
     "`scale_by_factored_rms(epsilon=...)` must be > 0, got -1.0."),
]


@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_arguments(i):
    call, exc, message = BAD[i]
    with pytest.raises(exc) as info:
        call()
    assert str(info.value) == message


def test_scale_by_muon_refuses_a_vector():
    tx = js.scale_by_muon()
    with pytest.raises(ValueError, match=r"`scale_by_muon` orthogonalizes matrices"):
        tx.update(jnp.ones(3), tx.init(jnp.ones(3)))


def test_adafactor_on_flat_params_refuses_factored_arrays_and_is_exact_otherwise():
    """A flat buffer is one vector to the factored moments: a factored array in it is refused
    (its row and column moments would be those of the buffer, not of the array)."""
    p = params_like()
    with pytest.raises(ValueError, match=r"`adafactor` factors the second moment of the array "
                                         r"of shape \(4, 5, 6\) at \['k'\]"):
        js.adafactor(0.01, min_dim_size_to_factor=4).init(js.flat_params(p))
    # Nothing factored (every dim < 128, optax's default): the flat run is the tree's.
    g = random_grads(3)
    plain = p
    flat = js.flat_params(p)
    opt = js.adafactor(0.01, momentum=0.9)
    s_tree, s_flat = opt.init(plain), opt.init(flat)
    for i in range(3):
        gi = {k: jnp.asarray(v[i]) for k, v in g.items()}
        u, s_tree = opt.update(gi, s_tree, plain)
        plain = optax.apply_updates(plain, u)
        uf, s_flat = opt.update(js.flat_params(gi), s_flat, flat)
        flat = optax.apply_updates(flat, uf)
    for k in p:
        np.testing.assert_allclose(np.asarray(flat.unflatten()[k]), np.asarray(plain[k]),
                                   rtol=1e-6, atol=1e-7, err_msg=k)


@pytest.mark.parametrize("name", ["lamb", "lars"])
def test_trust_ratios_on_flat_params_are_each_arrays(name):
    """On flat buffers the trust ratios are segment sums over each original array (no view
    per array): the run equals the tree's, with alignment gaps and padding in the buffers."""
    mixed = {**params_like(), "many": [jnp.linspace(-1.0, 1.0, i + 2) * (i + 1) for i in range(9)],
             "zero": jnp.zeros((3, 2))}  # a zero norm: ratio 1
    # Equal sizes: every array starts at a multiple of 12, so the sums are block sums.
    equal = {f"m{i}": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4) * (i + 1) for i in range(5)}
    # Arrays of >= 64 elements in runs (the row sums of a 2-D view go through a
    # matrix-vector product, in pieces for 6,300 elements), one run of layers.
    large = {f"h{i}": jnp.cos(jnp.arange(6300.0).reshape(70, 90) * (i + 1)) for i in range(3)}
    layers = {**{f"l{i}b": jnp.linspace(-1.0, 2.0, 96) * (i + 1) for i in range(4)},
              **{f"l{i}w": jnp.sin(jnp.arange(2000.0).reshape(40, 50) / (i + 3))
                 for i in range(4)}}
    for p in (mixed, equal, large, layers):
        _trust_ratio_flat_equals_tree(name, p)


def _trust_ratio_flat_equals_tree(name, p):
    make = {"lamb": lambda: js.lamb(0.05, weight_decay=0.1),
            "lars": lambda: js.lars(0.5, weight_decay=0.1, trust_coefficient=0.5)}[name]
    plain = train_random(make(), p, 5)[0]
    for align, multiple_of in ((1, 1), (16, 8)):
        flat = js.flat_params(p, align=align, multiple_of=multiple_of)
        got = train_random(make(), flat, 5)[0].unflatten()
        for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(got)[0],
                                jax.tree.leaves(plain)):
            y = np.asarray(y, np.float64)
            np.testing.assert_allclose(np.asarray(x, np.float64), y, rtol=1e-6,
                                       atol=1e-6 * max(1.0, np.abs(y).max()),
                                       err_msg=jax.tree_util.keystr(path))
    first = sorted(p)[-1]
    assert np.abs(np.asarray(plain[first]) - np.asarray(p[first])).max() > 1e-3
