"""Parameter groups sharing one flat buffer (`flat_params(..., share=True)`).

The reference is the same grouped optimizer on the parameter tree (each
group its own transformation, as `optax.multi_transform` runs it; float32,
rtol 1e-6); the float64 parity with PyTorch's `param_groups` on a shared
buffer is in tests/x64/test_groups_torch_x64.py.
"""

from __future__ import annotations

import dataclasses
import pickle
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsched as js
from training import assert_trees_close, run_on_eight_cpu_devices, scanned

STEPS = 6


def params_like(dtype=jnp.float32):
    k = jax.random.split(jax.random.key(0), 6)
    return {"embed": {"w": jax.random.normal(k[0], (6, 4), dtype)},
            "body": {"w": jax.random.normal(k[1], (4, 5), dtype),
                     "bias": jax.random.normal(k[2], (5,), dtype),
                     "norm": {"scale": jax.random.normal(k[3], (5,), dtype)}},
            "head": {"w": jax.random.normal(k[4], (5, 2), dtype),
                     "bias": jax.random.normal(k[5], (2,), dtype)}}


def grads_like(params, n):
    rng = np.random.default_rng(1)
    return jax.tree.map(lambda p: jnp.asarray(rng.standard_normal((n,) + p.shape), p.dtype),
                        params)


def groups(**head):
    return {"no_decay": js.group(r"(bias|scale)$", learning_rate=0.02),
            "head": js.group(r"^head/", learning_rate=js.cosine_decay(1e-2, 20), **head),
            "frozen": js.group(r"^embed/", frozen=True)}


def shared(params, groups_):
    return js.flat_params(params, group=js.group_labels(groups_), share=True)


def flat_grads(flat, grads):
    """Per-step gradients of the tree as gradients of the flat buffers."""
    steps = [jax.vjp(lambda f: f.unflatten(), flat)[1](jax.tree.map(lambda x: x[i], grads))[0]
             for i in range(jax.tree.leaves(grads)[0].shape[0])]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *steps)


OPTIMIZERS = {
    "sgd": lambda g: js.sgd(0.05, momentum=0.9, groups=g),
    "adam": lambda g: js.adam(0.05, groups=g),
    "adamw": lambda g: js.chain(js.clip_by_global_norm(1.0),
                                js.adamw(0.05, weight_decay=0.1, groups=g)),
    "lion": lambda g: js.lion(0.01, groups=g),
    "radam": lambda g: js.radam(0.05, groups=g),
    "adopt": lambda g: js.adopt(0.05, groups=g),  # its formula orders two writes (computed_after)
}
HEAD = {"sgd": dict(momentum=0.5), "adam": dict(b1=0.8), "adamw": dict(b1=0.8, weight_decay=0.0),
        "lion": dict(b2=0.9), "radam": dict(b2=0.99), "adopt": dict(b1=0.8)}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_shared_buffer_equals_each_group_on_the_tree(name):
    groups_ = groups(**HEAD[name])
    opt = OPTIMIZERS[name](groups_)
    params = params_like()
    grads = grads_like(params, STEPS)
    flat = shared(params, groups_)
    assert len(jax.tree.leaves(flat)) == 2  # the trainable groups' buffer, the frozen one
    _, state, ps, _ = scanned(opt, flat, flat_grads(flat, grads))
    _, tree_state, tree_ps, _ = scanned(opt, params, grads)
    for i in (0, STEPS - 1):
        assert_trees_close(jax.tree.map(lambda x: x[i], ps).unflatten(),
                           jax.tree.map(lambda x: x[i], tree_ps), rtol=1e-6)
    want, got = js.hyperparams(tree_state), js.hyperparams(state)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, err_msg=k)


def test_one_pass_one_moment_buffer_and_no_state_for_the_frozen_group():
    params = params_like()
    params["embed"]["w"] = jnp.ones((500, 64))
    groups_ = groups(b1=0.8)
    opt = js.adamw(0.05, groups=groups_)
    flat = shared(params, groups_)
    state = opt.init(flat)
    mu = state.shared.states[0].mu
    assert [m.shape for m in mu] == [(5 * 4 + 5 + 5 + 5 * 2 + 2,)]  # every trainable array
    assert state.groups["frozen"] == ()
    _, new = opt.update(jax.tree.map(jnp.ones_like, flat), state, flat)
    jax.lax.cond(True, lambda: state, lambda: new)  # fails on any drift of structure or dtype
    assert sum(x.nbytes for x in jax.tree.leaves(state)) < 500 * 64 * 4
    # One loop per moment and one for the update: the compiled update's fusions
    # over the shared buffer are those of a single group's.
    g = jax.tree.map(jnp.ones_like, flat)
    text = jax.jit(lambda g, s, p: opt.update(g, s, p)).lower(g, state, flat).compile().as_text()
    single = js.adamw(0.05)
    one = js.flat_params(params)
    text1 = jax.jit(lambda g, s, p: single.update(g, s, p)).lower(
        jax.tree.map(jnp.ones_like, one), single.init(one), one).compile().as_text()
    n = mu[0].shape[0]

    def loops(t, size):
        return len(re.findall(rf"= f32\[{size}\]\{{0\}} fusion\(", t))

    assert loops(text, n) == loops(text1, one.buffers[0].shape[0]) == 3


def test_reset_group_on_a_shared_buffer_restarts_that_group_only():
    groups_ = {"head": js.group("^head/", learning_rate=js.cosine_decay(0.1, 10), b1=0.5)}
    opt = js.adam(0.01, groups=groups_)
    params = params_like()
    flat = shared(params, groups_)
    grads = grads_like(params, 6)
    fg = flat_grads(flat, grads)
    step = jax.jit(lambda g, s, p: opt.update(g, s, p))
    tstep = jax.jit(lambda g, s, p: opt.update(g, s, p))
    state, tstate = opt.init(flat), opt.init(params)
    for i in range(3):
        _, state = step(jax.tree.map(lambda x: x[i], fg), state, flat)
        _, tstate = tstep(jax.tree.map(lambda x: x[i], grads), tstate, params)
    state, tstate = js.reset_group(state, "head"), js.reset_group(tstate, "head")
    for i in range(3, 6):  # the reset step and two more, against the tree's
        u, state = step(jax.tree.map(lambda x: x[i], fg), state, flat)
        tu, tstate = tstep(jax.tree.map(lambda x: x[i], grads), tstate, params)
        assert_trees_close(u.unflatten(), tu, rtol=1e-6)
    counts = js.hyperparams(state)  # noqa: F841 - readable after the reset
    assert int(state.shared.states[0].count[1]) == 3 and int(state.shared.states[0].count[0]) == 6
    # A reset makes the counts differ: one more compile, then none for later resets.
    _, state = step(jax.tree.map(lambda x: x[0], fg), js.reset_group(state, "head"), flat)
    assert step._cache_size() == 2


def test_bfloat16_and_float32_arrays_share_a_buffer_per_dtype():
    params = params_like()
    params["body"]["w"] = params["body"]["w"].astype(jnp.bfloat16)
    params["head"]["bias"] = params["head"]["bias"].astype(jnp.bfloat16)
    groups_ = groups(b1=0.8)
    opt = js.adamw(0.05, groups=groups_)
    flat = shared(params, groups_)
    assert sorted(str(b.dtype) for b in flat.buffers) == ["bfloat16", "float32", "float32"]
    grads = grads_like(params, 3)
    _, state, ps, us = scanned(opt, flat, flat_grads(flat, grads))
    _, _, tree_ps, tree_us = scanned(opt, params, grads)
    assert all(m.dtype == jnp.float32 for m in state.shared.states[0].mu)  # moments in float32
    for i in range(3):
        got = jax.tree.map(lambda x: x[i], us).unflatten()
        want = jax.tree.map(lambda x: x[i], tree_us)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            assert a.dtype == b.dtype
            np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                                       rtol=1e-2 if a.dtype == jnp.bfloat16 else 1e-6)


def test_count_saturates_at_int32_max_on_a_shared_buffer():
    params = params_like()
    groups_ = {"head": js.group("^head/", learning_rate=0.5)}
    opt = js.adam(0.01, groups=groups_)
    flat = shared(params, groups_)
    state = opt.init(flat)
    top = np.iinfo(np.int32).max
    states = tuple(s._replace(count=jnp.full_like(s.count, top - 1))
                   for s in state.shared.states)
    state = state._replace(shared=dataclasses.replace(state.shared, states=states))
    g = jax.tree.map(jnp.ones_like, flat)
    for _ in range(2):
        u, state = opt.update(g, state, flat)
    assert state.shared.states[0].count.tolist() == [top, top]
    assert np.all(np.isfinite(np.asarray(u.buffers[0])))


def test_shared_state_survives_pickle_and_multisteps():
    params = params_like()
    groups_ = groups(b1=0.8)
    opt = optax.MultiSteps(js.adamw(0.05, groups=groups_), 2)
    flat = shared(params, groups_)
    grads = flat_grads(flat, grads_like(params, 4))
    state = opt.init(flat)
    step = jax.jit(lambda g, s, p: opt.update(g, s, p))
    for i in range(2):
        _, state = step(jax.tree.map(lambda x: x[i], grads), state, flat)
    again = pickle.loads(pickle.dumps(jax.device_get(state)))
    a, _ = step(jax.tree.map(lambda x: x[2], grads), state, flat)
    b, _ = step(jax.tree.map(lambda x: x[2], grads), again, flat)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    assert "head/learning_rate" in js.hyperparams(state)


# ---------------------------------------------------------------- refused


def test_share_needs_group_labels_and_a_bool():
    params = params_like()
    with pytest.raises(ValueError, match=re.escape(
            "`flat_params(share=...)` must be False without `group=`, got True.")):
        js.flat_params(params, share=True)
    with pytest.raises(TypeError, match=r"flat_params\(share=\.\.\.\)"):
        js.flat_params(params, group=js.group_labels(groups()), share="yes")


def test_what_cannot_share_a_buffer_exactly_is_refused_at_init():
    params = params_like()
    groups_ = groups()
    flat = shared(params, groups_)
    with pytest.raises(ValueError, match=r"`lamb\(groups=\.\.\.\)`: the groups 'default', "
                                         r"'no_decay', 'head' cannot share a flat buffer exactly: "
                                         r"`scale_by_trust_ratio` reduces over each array"):
        js.lamb(0.01, groups=groups_).init(flat)
    nesterov = {"head": js.group("^head/", nesterov=True)}
    with pytest.raises(ValueError, match=r"group 'head' runs other primitives, or the same ones "
                                         r"with other arguments than hyperparameter values"):
        js.sgd(0.1, momentum=0.9, groups=nesterov).init(shared(params, nesterov))
    # A labels tree (not group_labels) that puts a frozen group in the shared buffer.
    labels = jax.tree.map(lambda _: "default", params)
    labels["embed"]["w"] = "frozen"
    mixed = js.flat_params(params, group=labels, share=True)
    with pytest.raises(ValueError, match=r"the frozen group 'frozen' shares a flat buffer"):
        js.adam(0.1, groups={"frozen": js.group("^embed/", frozen=True)}).init(mixed)
    # A group with parameters both in the shared buffer and on the tree.
    both = {"flat": shared(params, groups_), "extra": {"bias": jnp.ones(3)}}
    with pytest.raises(ValueError, match=r"group 'no_decay' has parameters both in a shared flat "
                                         r"buffer and outside it"):
        js.adam(0.1, groups=groups_).init(both)


def test_update_with_another_layout_raises():
    params = params_like()
    groups_ = groups()
    opt = js.adam(0.1, groups=groups_)
    state = opt.init(shared(params, groups_))
    other = js.flat_params(params, group=js.group_labels(groups_))  # one buffer per group
    with pytest.raises(ValueError, match=r"does not match the one given to init"):
        opt.update(jax.tree.map(jnp.ones_like, other), state, other)


def test_orbax_resume_of_a_shared_state_is_bitwise(tmp_path):
    import orbax.checkpoint as ocp

    params = params_like()
    groups_ = groups(b1=0.8)
    opt = js.adamw(js.cosine_decay(0.05, 20), groups=groups_)
    flat = shared(params, groups_)
    grads = flat_grads(flat, grads_like(params, 4))
    step = jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(
        *opt.update(g, s, p)))
    p, state = flat, js.reset_group(opt.init(flat), "head")  # not uniform: a (3,) count
    for i in range(2):
        p, state = step(p, state, jax.tree.map(lambda x: x[i], grads))
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save((tmp_path / "ckpt").absolute(), {"params": p, "opt_state": state})
    with ocp.StandardCheckpointer() as ckptr:
        raw = ckptr.restore((tmp_path / "ckpt").absolute())
    template = jax.eval_shape(lambda: {"params": p, "opt_state": state})
    tree = js.restore_state(template, raw)
    a, b = (p, state), (tree["params"], tree["opt_state"])
    for i in range(2, 4):
        a = step(*a, jax.tree.map(lambda x: x[i], grads))
        b = step(*b, jax.tree.map(lambda x: x[i], grads))
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


SHARDED = """
import jax, jax.numpy as jnp, numpy as np, optax, jaxsched as js
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
assert len(jax.devices()) == 8
data = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), P("data"))
rng = np.random.default_rng(0)
tree = {"body": {"w": rng.normal(size=(6, 5)), "bias": rng.normal(size=5)},
        "head": {"w": rng.normal(size=(5, 3)), "bias": rng.normal(size=3)}}
tree = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree)
groups = {"no_decay": js.group(r"bias$", weight_decay=0.0),
          "head": js.group(r"^head/", learning_rate=js.cosine_decay(3e-2, 10), b1=0.8)}
opt = js.adamw(1e-2, weight_decay=0.1, groups=groups)
step = jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(*opt.update(g, s, p)))
flat = js.flat_params(tree, group=js.group_labels(groups), share=True, multiple_of=8)
flat = jax.device_put(flat, data)          # the one shared buffer split over 8 devices
p, s, t, ts = flat, opt.init(flat), tree, opt.init(tree)
for i in range(4):
    g = jax.tree.map(lambda x: jnp.cos(x * (i + 1)), t)
    p, s = step(p, s, jax.vjp(lambda f: f.unflatten(), p)[1](g)[0])
    t, ts = step(t, ts, g)
for a, b in zip(jax.tree.leaves(p.unflatten()), jax.tree.leaves(t)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
(mu,) = s.shared.states[0].mu
assert mu.sharding.is_equivalent_to(data, 1), mu.sharding
assert {x.data.nbytes for x in mu.addressable_shards} == {mu.nbytes // 8}
print("OK")
"""


def test_a_shared_buffer_sharded_over_eight_cpu_devices():
    """ZeRO-style: the shared buffer and its moments split over 8 devices, the numbers
    those of one device on the tree."""
    run_on_eight_cpu_devices(SHARDED)
