"""Parameter groups (`groups=`): parity with optax.multi_transform, state, tracing, errors.

The reference for the partition is `optax.multi_transform` with the same
labels (float32, rtol 1e-6); the float64 parity with PyTorch's
`param_groups` is in tests/x64/test_groups_torch_x64.py.
"""

from __future__ import annotations

import inspect
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsched as js
from training import assert_trees_close, scanned

STEPS = 8


def params_like(seed=0):
    k = jax.random.split(jax.random.key(seed), 6)
    return {"embed": {"w": jax.random.normal(k[0], (6, 4))},
            "body": {"w": jax.random.normal(k[1], (4, 5)), "bias": jax.random.normal(k[2], (5,)),
                     "norm": {"scale": jax.random.normal(k[3], (5,))}},
            "head": {"w": jax.random.normal(k[4], (5, 2)), "bias": jax.random.normal(k[5], (2,))}}


def grads_like(params, n, seed=1):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: jnp.asarray(rng.standard_normal((n,) + p.shape), p.dtype),
                        params)


def groups():
    return {"no_decay": js.group(r"(bias|scale)$", weight_decay=0.0),
            "head": js.group(r"^head/", learning_rate=js.cosine_decay(1e-2, 20), b1=0.8),
            "frozen": js.group(r"^embed/", frozen=True)}


def run(tx, params, grads):
    """Every update of a jitted scan (one compile), and the final state."""
    _, state, _, us = scanned(tx, params, grads)
    return us, state


def state_bytes(state):
    return sum(x.nbytes for x in jax.tree.leaves(state))


# ---------------------------------------------------------------- parity


def test_adamw_groups_equal_optax_multi_transform():
    params, g = params_like(), grads_like(params_like(), STEPS)
    ours, state = run(js.adamw(0.05, weight_decay=0.1, groups=groups()), params, g)
    labels = js.group_labels(groups())
    assert labels(params) == {"embed": {"w": "frozen"},
                              "body": {"w": "default", "bias": "no_decay",
                                       "norm": {"scale": "no_decay"}},
                              "head": {"w": "head", "bias": "no_decay"}}  # first match wins
    theirs, _ = run(optax.multi_transform({
        "default": optax.adamw(0.05, weight_decay=0.1),
        "no_decay": optax.adamw(0.05, weight_decay=0.0),
        "head": optax.adamw(optax.cosine_decay_schedule(1e-2, 20), b1=0.8, weight_decay=0.1),
        "frozen": optax.set_to_zero()}, labels), params, g)
    assert_trees_close(ours, theirs, rtol=1e-6)
    assert np.all(np.asarray(ours["embed"]["w"]) == 0.0)
    hp = js.hyperparams(state)
    np.testing.assert_allclose(float(hp["head/learning_rate"]),
                               float(optax.cosine_decay_schedule(1e-2, 20)(STEPS - 1)), rtol=1e-6)
    assert float(hp["learning_rate"]) == pytest.approx(0.05)
    assert float(hp["no_decay/weight_decay"]) == 0.0 and float(hp["head/b1"]) == pytest.approx(0.8)
    assert not any(k.startswith("frozen/") for k in hp)
    assert float(js.hyperparams(state, "head/b1")) == pytest.approx(0.8)


def test_transformation_groups_and_a_mask_equal_multi_transform():
    """A primitive with groups, in a chain; a weight-decay mask of the whole tree."""
    params, g = params_like(), grads_like(params_like(), STEPS)
    mask = jax.tree.map(lambda p: p.ndim > 1, params)
    head = {"head": js.group(lambda path, leaf: path.startswith("head"), max_norm=0.5)}
    h = {"h": js.group("^head", weight_decay=0.3)}
    tx = js.chain(js.clip_by_global_norm(1.0, groups=head),
                  js.adamw(0.05, weight_decay=0.1, mask=mask, groups=h))
    ours, state = run(tx, params, g)
    labels = js.group_labels(head)
    theirs, _ = run(optax.chain(
        optax.multi_transform({"default": optax.clip_by_global_norm(1.0),
                               "head": optax.clip_by_global_norm(0.5)}, labels),
        optax.multi_transform({"default": optax.adamw(0.05, weight_decay=0.1, mask=mask),
                               "h": optax.adamw(0.05, weight_decay=0.3, mask=mask)},
                              js.group_labels(h))), params, g)
    assert_trees_close(ours, theirs, rtol=1e-6)
    assert set(js.measurements(state)) == {"global_norm", "head/global_norm"}


def test_flat_params_each_group_is_one_buffer_with_the_tree_numbers():
    params, g = params_like(), grads_like(params_like(), STEPS)
    opt = js.adamw(0.05, weight_decay=0.1, groups=groups())
    flat = js.flat_params(params, group=js.group_labels(groups()))
    assert len(jax.tree.leaves(flat)) == 4  # default, no_decay, head, frozen
    state = opt.init(flat)
    for name in ("default", "no_decay", "head"):  # each group's moments: one buffer
        assert len(jax.tree.leaves(state.groups[name][0].mu)) == 1
    flat_grads = [jax.vjp(lambda f: f.unflatten(), flat)[1](jax.tree.map(lambda x: x[i], g))[0]
                  for i in range(STEPS)]
    flat_grads = jax.tree.map(lambda *xs: jnp.stack(xs), *flat_grads)
    us, _ = run(opt, flat, flat_grads)
    tree_us, _ = run(opt, params, g)
    for i in (0, STEPS - 1):
        step = jax.tree.map(lambda x: x[i], us).unflatten()
        assert_trees_close(step, jax.tree.map(lambda x: x[i], tree_us), rtol=1e-6)


def test_flat_params_buffers_without_group_labels_match_by_their_keys():
    params = params_like()
    flat = js.flat_params(params, group=jax.tree.map(lambda p: p.ndim > 1, params))
    opt = js.sgd(0.1, groups={"vectors": js.group(r"/False$", learning_rate=0.0)})
    u, _ = opt.update(jax.tree.map(jnp.ones_like, flat), opt.init(flat))
    u = u.unflatten()
    assert np.all(np.asarray(u["head"]["bias"]) == 0) and np.all(np.asarray(u["head"]["w"]) != 0)


# ---------------------------------------------------------------- state, memory, compiling


def test_frozen_group_uses_no_state_memory():
    params = params_like()
    params["embed"]["w"] = jnp.ones((1000, 64))  # a big frozen embedding
    opt = js.adam(0.1, groups={"frozen": js.group(r"^embed/", frozen=True)})
    without = {k: v for k, v in params.items() if k != "embed"}
    state = opt.init(params)
    assert state.groups["frozen"] == ()
    # Adam over the other parameters; the extra bytes are the reset flags only.
    assert state_bytes(state) == state_bytes(js.adam(0.1).init(without)) + 1
    assert state_bytes(state) < 1000 * 64 * 4


def test_state_structure_and_dtypes_are_stable_across_update():
    params = params_like()
    opt = js.adamw(0.05, groups=groups())
    state = opt.init(params)
    _, new = opt.update(params, state, params)
    jax.lax.cond(True, lambda: state, lambda: new)  # fails on any drift


@pytest.mark.parametrize("layout", ["tree", "shared_flat"])
def test_group_learning_rate_changing_every_step_compiles_once(layout):
    traces = []

    def make_opt(hp):
        return js.adamw(hp["lr"], weight_decay=hp["wd"], groups={
            "head": js.group(r"^head/", learning_rate=hp["head_lr"], b1=hp["head_b1"])})

    @jax.jit
    def train_step(hp, params, state, g):
        traces.append(1)
        updates, state = make_opt(hp).update(g, state, params)
        return optax.apply_updates(params, updates), state

    params = params_like()
    g = grads_like(params, 5)
    if layout == "shared_flat":  # the two groups in one buffer, updated in one pass
        params = js.flat_params(params, group=js.group_labels({"head": js.group(r"^head/")}),
                                share=True)
        g = jax.vmap(lambda x: jax.vjp(lambda f: f.unflatten(), params)[1](x)[0])(g)
    hp = {"lr": 0.01, "wd": 0.1, "head_lr": 0.02, "head_b1": 0.9}
    state = make_opt(jax.tree.map(jnp.float32, hp)).init(params)  # arrays, as the step gets
    for i in range(5):
        hp = {"lr": jnp.float32(0.01), "wd": jnp.float32(0.1),
              "head_lr": jnp.float32(0.001 * (i + 1)), "head_b1": jnp.float32(0.9)}
        params, state = train_step(hp, params, state, jax.tree.map(lambda x: x[i], g))
        assert float(js.hyperparams(state, "head/learning_rate")) == pytest.approx(0.001 * (i + 1))
    assert len(traces) == 1 and train_step._cache_size() == 1


@pytest.mark.parametrize("layout", ["tree", "shared_flat"])
def test_vmap_sweep_over_a_group_learning_rate_equals_separate_runs(layout):
    params, g = params_like(), grads_like(params_like(), 5)
    view = lambda p: p  # noqa: E731
    if layout == "shared_flat":  # the two groups in one buffer, updated in one pass
        params = js.flat_params(params, group=js.group_labels({"head": js.group(r"^head/")}),
                                share=True)
        g = jax.vmap(lambda x: jax.vjp(lambda f: f.unflatten(), params)[1](x)[0])(g)
        view = lambda p: p.unflatten()  # noqa: E731
    lrs = jnp.array([1e-3, 1e-2, 1e-1])

    def final(head_lr):
        opt = js.adam(0.01, groups={"head": js.group("^head/", learning_rate=head_lr)})
        state, p = opt.init(params), params
        for i in range(5):
            u, state = opt.update(jax.tree.map(lambda x: x[i], g), state, p)
            p = optax.apply_updates(p, u)
        return p

    swept = jax.jit(jax.vmap(final))(lrs)
    runs = [view(jax.tree.map(lambda x: x[j], swept)) for j in range(3)]
    for run, lr in zip(runs, [1e-3, 1e-2, 1e-1]):
        assert_trees_close(run, view(final(lr)), rtol=1e-6)
    assert not np.allclose(runs[0]["head"]["w"], runs[2]["head"]["w"])


def test_reset_group_restarts_one_group_and_not_the_others():
    params, g = params_like(), grads_like(params_like(), 6)
    groups_ = {"head": js.group("^head/", learning_rate=js.cosine_decay(0.1, 10))}
    opt = js.chain(js.clip_by_global_norm(1.0), js.adam(0.01, groups=groups_))
    step = jax.jit(lambda g, s, p: opt.update(g, s, p))
    state = opt.init(params)
    for i in range(3):
        _, state = step(jax.tree.map(lambda x: x[i], g), state, params)
    reset = js.reset_group(state, "head")
    g3 = jax.tree.map(lambda x: x[3], g)
    u_reset, s_reset = step(g3, reset, params)
    u_cont, s_cont = step(g3, state, params)
    assert step._cache_size() == 1
    # The head group's update is a fresh optimizer's first update (its count and
    # schedule restart); the rest continue as if nothing happened.
    fresh = js.adam(0.01, groups=groups_)
    u_fresh, _ = fresh.update(optax.clip_by_global_norm(1.0).update(g3, ())[0],
                              fresh.init(params), params)
    np.testing.assert_array_equal(u_reset["head"]["w"], u_fresh["head"]["w"])
    assert not np.allclose(u_reset["head"]["w"], u_cont["head"]["w"])
    np.testing.assert_array_equal(u_reset["body"]["w"], u_cont["body"]["w"])
    assert int(s_reset[1].groups["head"][0].count) == 1
    assert int(s_reset[1].groups["default"][0].count) == 4
    assert not bool(s_reset[1].reset["head"])
    with pytest.raises(ValueError, match=re.escape(
            "`reset_group(name=...)` must name a parameter group of the state, got 'hed'; "
            "its groups are default, head.")):
        js.reset_group(state, "hed")


# ---------------------------------------------------------------- composition


def test_groups_inside_multisteps_equal_averaged_gradients():
    params, g = params_like(), grads_like(params_like(), 4)
    opt = js.adamw(0.05, groups=groups())
    us, state = run(optax.MultiSteps(opt, 2), params, g)
    avg = jax.tree.map(lambda x: (x[0::2] + x[1::2]) / 2, g)
    ref, _ = run(opt, params, avg)
    assert_trees_close(jax.tree.map(lambda x: x[1::2], us), ref, rtol=1e-5)
    assert "head/learning_rate" in js.hyperparams(state)


def test_groups_in_flax_train_state_and_nnx_optimizer():
    from flax import nnx
    from flax.training import train_state

    params = params_like()
    ts = train_state.TrainState.create(apply_fn=None, params=params,
                                       tx=js.adamw(0.05, groups=groups()))
    ts = jax.jit(lambda ts, g: ts.apply_gradients(grads=g))(ts, params)
    assert np.array_equal(ts.params["embed"]["w"], params["embed"]["w"])
    assert not np.array_equal(ts.params["head"]["w"], params["head"]["w"])
    ts = ts.replace(opt_state=js.reset_group(ts.opt_state, "head"))
    assert bool(ts.opt_state.reset["head"])

    class Model(nnx.Module):
        def __init__(self, rngs):
            self.body = nnx.Linear(3, 4, rngs=rngs)
            self.head = nnx.Linear(4, 1, rngs=rngs)

        def __call__(self, x):
            return self.head(jnp.tanh(self.body(x)))

    model = Model(nnx.Rngs(0))
    before = {"body": np.asarray(model.body.kernel[...]),
              "head": np.asarray(model.head.kernel[...])}
    # nnx.Param paths end in "/value": body/kernel/value, head/bias/value.
    opt = js.adam(0.1, groups={"body": js.group(r"^body/", frozen=True)})
    optimizer = nnx.Optimizer(model, opt, wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x):
        grads = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)
        optimizer.update(model, grads)

    for _ in range(3):
        train_step(model, optimizer, jnp.ones((2, 3)))
    assert np.array_equal(model.body.kernel[...], before["body"])
    assert not np.array_equal(model.head.kernel[...], before["head"])


# ---------------------------------------------------------------- signatures and errors


@pytest.mark.parametrize("fn", [js.sgd, js.momentum, js.adagrad, js.rmsprop, js.adam, js.adamw,
                                js.scale_by_adam, js.trace, js.add_decayed_weights, js.clip,
                                js.scale_by_learning_rate, js.clip_by_global_norm])
def test_signature_keeps_the_arguments_and_adds_keyword_only_groups(fn):
    sig = inspect.signature(fn)
    original = inspect.signature(fn.__wrapped__)
    assert list(sig.parameters)[:-1] == list(original.parameters)
    groups_param = sig.parameters["groups"]
    assert groups_param.kind is inspect.Parameter.KEYWORD_ONLY and groups_param.default is None
    assert fn.__name__ == fn.__wrapped__.__name__ and fn.__doc__ == fn.__wrapped__.__doc__


def test_bad_groups_raise_at_construction():
    with pytest.raises(ValueError, match=re.escape(
            "`group(pattern=...)` must be a valid regular expression, got '(bias'")):
        js.group("(bias")
    with pytest.raises(TypeError, match=r"`group\(pattern=...\)` must be a regular expression"):
        js.group(3)
    with pytest.raises(ValueError, match=re.escape(
            "`group(frozen=...)` must be False when the group overrides hyperparameters, got "
            "True with learning_rate.")):
        js.group("x", frozen=True, learning_rate=0.1)
    with pytest.raises(ValueError, match=r"`adamw\(groups=...\)` keys must be non-empty and "
                                         r"contain no '/'.*got 'a/b'"):
        js.adamw(0.1, groups={"a/b": js.group("x")})
    with pytest.raises(ValueError, match=r"must not be 'default'"):
        js.adamw(0.1, groups={"default": js.group("x")})
    with pytest.raises(TypeError, match=r"`sgd\(groups=...\)` values must be js.group"):
        js.sgd(0.1, groups={"a": {"learning_rate": 0.1}})
    with pytest.raises(TypeError, match=r"`sgd\(groups=...\)` must be a mapping"):
        js.sgd(0.1, groups=[js.group("x")])
    with pytest.raises(ValueError, match=re.escape(
            "`adam(groups=...)`: group 'head' overrides weight_decay, which adam does not "
            "take; adam accepts learning_rate, b1, b2, eps, eps_root, mu_dtype, nu_dtype, "
            "nesterov, amsgrad.")):
        js.adam(0.1, groups={"head": js.group("head", weight_decay=0.1)})
    with pytest.raises(ValueError, match=re.escape(
            "`adamw(groups={'head': group(b1=...)})` must be < 1, got 1.5.")):
        js.adamw(0.1, groups={"head": js.group("head", b1=1.5)})
    with pytest.raises(ValueError, match=re.escape(
            "`momentum(groups={'head': group(momentum=...)})` must be <= 1, got 2.0.")):
        js.momentum(0.1, groups={"head": js.group("head", momentum=2.0)})


def test_a_group_matching_nothing_raises_at_init_or_warns_when_allowed():
    params = params_like()
    opt = js.adam(0.1, groups={"heads": js.group(r"^heads/", learning_rate=0.5)})
    with pytest.raises(ValueError, match=r"`adam\(groups=...\)`: group 'heads' .* matches no "
                                         r"parameter; the parameter paths are 'body/bias'"):
        opt.init(params)
    lenient = js.adam(0.1, groups={"heads": js.group(r"^heads/", must_match=False, b1=0.5)})
    with pytest.warns(UserWarning, match="group 'heads'"):
        lenient.init(params)


def test_unspellable_paths_and_non_bool_callables_raise():
    class Key:
        pass

    @jax.tree_util.register_pytree_with_keys_class
    class Odd:
        def __init__(self, x):
            self.x = x

        def tree_flatten_with_keys(self):
            return [(Key(), self.x)], None

        def tree_flatten(self):
            return [self.x], None

        @classmethod
        def tree_unflatten(cls, aux, children):
            return cls(*children)

    opt = js.sgd(0.1, groups={"a": js.group("x")})
    with pytest.raises(TypeError, match=r"`sgd\(groups=...\)` cannot spell the path "
                                        r"\['w'\].*its key .* is a Key"):
        opt.init({"w": Odd(jnp.ones(2))})
    bad = js.sgd(0.1, groups={"a": js.group(lambda path, leaf: jnp.sum(leaf) > 0)})
    with pytest.raises(TypeError, match="group 'a' must return a Python bool"):
        jax.jit(bad.init)({"w": jnp.ones(2)})
    numpy_bool = js.sgd(0.1, groups={"a": js.group(lambda path, leaf: np.any(leaf > 0))})
    assert numpy_bool.init({"w": jnp.ones(2)}).labels == {"w": {"a": None}}


def test_update_with_another_tree_or_other_groups_raises():
    params = params_like()
    state = js.adam(0.1, groups={"head": js.group("^head/")}).init(params)
    with pytest.raises(ValueError, match=r"`adam`: the tree passed to update does not match"):
        js.adam(0.1, groups={"head": js.group("^head/")}).update({"w": jnp.ones(2)}, state)
    with pytest.raises(ValueError, match=r"`adam`: the state has the groups default, head, "
                                         r"this optimizer default, top"):
        js.adam(0.1, groups={"top": js.group("^head/")}).update(params, state)


def test_paths_spell_dict_sequence_attribute_and_flattened_keys():
    seen = []

    def record(path, leaf):
        seen.append(path)
        return False

    from flax import struct

    @struct.dataclass
    class Box:
        inner: jax.Array

    tree = {"t": {"a": [jnp.ones(1), (jnp.ones(1),)], "b": Box(jnp.ones(1))},
            "n": {3: jnp.ones(1)}, "leafless": None}
    with pytest.warns(UserWarning, match="group 'x'"):
        js.sgd(0.1, groups={"x": js.group(record, must_match=False)}).init(tree)
    assert seen == ["n/3", "t/a/0", "t/a/1/0", "t/b/inner"]
    seen.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        js.sgd(0.1, groups={"x": js.group(record, must_match=False)}).init(jnp.ones(2))
    assert seen == [""]
    keys = jax.tree_util
    assert js._groups.spell("t", (keys.FlattenedIndexKey(2), keys.GetAttrKey("w"),
                                  keys.SequenceKey(1), keys.DictKey(0))) == "2/w/1/0"
