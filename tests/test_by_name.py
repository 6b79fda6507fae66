"""`from_torch`, `from_hf`, `from_keras`, the momentum companions and schedule
arithmetic, against the libraries themselves (float32).

PyTorch 2.13 is driven live (torch is in the `test` extra). Hugging Face
transformers and Keras 3 are too heavy for CI, so their values come from the
JSON fixture tests/fixtures/hf_keras.json, recorded from the real libraries
(versions in the file) by tests/fixtures/make_hf_keras_fixtures.py. Every
comparison covers every step from 0 to 3x the schedule's length (PyTorch's
OneCycleLR raises past its length) at 1e-6 relative to the schedule's
largest value; tests/x64/test_by_name_x64.py repeats PyTorch and Hugging Face
at 1e-12 under x64.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxsched as js
from by_name_cases import (FIXTURE, TORCH_CASES, TORCH_IDS, close_to_scale, torch_lrs,
                           torch_length, values)

def _values(s, n):
    return values(s, n)


# --------------------------------------------------------------------------
# parity
# --------------------------------------------------------------------------


def test_every_torch_name_is_covered():
    from jaxsched._by_name import TORCH_NAMES
    assert {c[1] for c in TORCH_CASES} == set(TORCH_NAMES)


@pytest.mark.parametrize("case", TORCH_CASES, ids=TORCH_IDS)
def test_from_torch_matches_pytorch(case):
    _, name, lr, kwargs, torch_kwargs, _ = case
    n = torch_length(case)
    want = torch_lrs(name, lr, kwargs if torch_kwargs is None else torch_kwargs, n)
    s = js.from_torch(name, lr, **kwargs)
    assert isinstance(s, js.Schedule)
    close_to_scale(_values(s, n), want, 1e-6, name)


def test_cosine_annealing_is_periodic_past_t_max():
    want = torch_lrs("CosineAnnealingLR", 0.1, dict(T_max=10), 61)
    got = _values(js.from_torch("CosineAnnealingLR", 0.1, T_max=10), 61)
    close_to_scale(got, want, 1e-6)
    assert want[20] == pytest.approx(0.1) and got[20] == pytest.approx(0.1)  # back at the top
    assert want[30] == pytest.approx(0.0, abs=1e-12) and abs(got[30]) < 1e-7


def test_one_cycle_holds_its_last_value_past_total_steps():
    s = js.from_torch("OneCycleLR", 0.1, max_lr=0.5, total_steps=100)
    want = torch_lrs("OneCycleLR", 0.1, dict(max_lr=0.5, total_steps=100), 100)
    assert np.all(_values(s, 300)[99:] == np.float32(_values(s, 100)[99]))
    assert float(s(299)) == pytest.approx(want[-1], rel=1e-6)


def test_every_hf_name_is_in_the_fixture():
    from jaxsched._by_name import HF_NAMES
    assert {c["name"] for c in FIXTURE["hf"]} == set(HF_NAMES)
    assert FIXTURE["versions"]["transformers"]


@pytest.mark.parametrize("case", FIXTURE["hf"],
                         ids=[f"{c['name']}-{i}" for i, c in enumerate(FIXTURE["hf"])])
def test_from_hf_matches_transformers(case):
    """Values recorded from transformers.get_scheduler (see the fixture's versions)."""
    want = np.asarray(case["values"])
    s = js.from_hf(case["name"], case["lr"], case["num_warmup_steps"],
                   case["num_training_steps"], **case["kwargs"])
    close_to_scale(_values(s, len(want)), want, 1e-6, case["name"])


def test_every_keras_class_is_in_the_fixture():
    from jaxsched._by_name import KERAS_NAMES
    assert {c["config"]["class_name"] for c in FIXTURE["keras"]} == set(KERAS_NAMES)
    assert FIXTURE["versions"]["keras"].startswith("3.")


@pytest.mark.parametrize("case", FIXTURE["keras"],
                         ids=[f"{c['config']['class_name']}-{i}"
                              for i, c in enumerate(FIXTURE["keras"])])
def test_from_keras_matches_keras(case):
    """keras.optimizers.schedules.serialize(schedule) loaded with from_keras,
    against that schedule's own (float32) values, recorded in the fixture."""
    want = np.asarray(case["values"])
    s = js.from_keras(json.loads(json.dumps(case["config"])))
    close_to_scale(_values(s, len(want)), want, 1e-6, case["config"]["class_name"])


# --------------------------------------------------------------------------
# momentum companions: the optimizer's momentum / beta1 at every step
# --------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer,key", [("sgd", "momentum"), ("adam", "beta1")])
@pytest.mark.parametrize("strategy,three", [("cos", False), ("linear", False), ("cos", True)])
def test_one_cycle_momentum_matches_pytorch(optimizer, key, strategy, three):
    kw = dict(max_lr=0.1, total_steps=120, pct_start=0.25, anneal_strategy=strategy,
              three_phase=three, base_momentum=0.8, max_momentum=0.97)
    want = torch_lrs("OneCycleLR", 0.1, kw, 120, optimizer, key)
    m = js.one_cycle_momentum(120, 0.25, strategy, base_momentum=0.8, max_momentum=0.97,
                              three_phase=three)
    close_to_scale(_values(m, 120), want, 1e-6)
    lr = torch_lrs("OneCycleLR", 0.1, kw, 120, optimizer, "lr")
    close_to_scale(_values(js.from_torch("OneCycleLR", 0.1, **kw), 120), lr, 1e-6)


@pytest.mark.parametrize("optimizer,key", [("sgd", "momentum"), ("adam", "beta1")])
@pytest.mark.parametrize("mode,down,gamma", [("triangular", None, 1.0), ("triangular2", 15, 1.0),
                                             ("exp_range", 7, 0.98)])
def test_cyclic_momentum_matches_pytorch(optimizer, key, mode, down, gamma):
    kw = dict(base_lr=0.01, max_lr=0.1, step_size_up=10, step_size_down=down, mode=mode,
              gamma=gamma, base_momentum=0.85, max_momentum=0.95)
    n = 3 * (10 + (down or 10)) + 1
    want = torch_lrs("CyclicLR", 0.01, kw, n, optimizer, key)
    m = js.cyclic_momentum(0.85, 0.95, 10, down, mode, gamma)
    close_to_scale(_values(m, n), want, 1e-6)


def test_momentum_companion_drives_sgd_like_pytorch():
    """js.momentum(one_cycle(...), momentum=one_cycle_momentum(...)) and PyTorch's
    SGD with OneCycleLR(cycle_momentum=True) take the same steps."""
    import torch
    n, x0 = 60, np.array([1.0, -2.0, 0.5])
    p = torch.nn.Parameter(torch.tensor(x0))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=n)
    for _ in range(n):
        opt.zero_grad()
        (p ** 2).sum().backward()
        opt.step()
        sched.step()
    tx = js.momentum(js.one_cycle(0.1, n), momentum=js.one_cycle_momentum(n))
    x = jnp.asarray(x0, jnp.float32)
    state = tx.init(x)
    for _ in range(n):
        updates, state = tx.update(2 * x, state, x)
        x = x + updates
    np.testing.assert_allclose(np.asarray(x), p.detach().numpy(), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------
# the results are ordinary schedules
# --------------------------------------------------------------------------


def _by_name_examples():
    out = {f"torch-{c[0]}": (lambda c=c: js.from_torch(c[1], c[2], **c[3]))
           for c in TORCH_CASES if c[1] not in ("LambdaLR", "MultiplicativeLR")}
    out.update({f"hf-{i}-{c['name']}": (lambda c=c: js.from_hf(
        c["name"], c["lr"], c["num_warmup_steps"], c["num_training_steps"], **c["kwargs"]))
        for i, c in enumerate(FIXTURE["hf"])})
    out.update({f"keras-{i}": (lambda c=c: js.from_keras(c["config"]))
                for i, c in enumerate(FIXTURE["keras"])})
    return out


BY_NAME = _by_name_examples()


@pytest.mark.parametrize("key", list(BY_NAME))
def test_repr_is_the_jaxsched_call_and_config_round_trips(key):
    s = BY_NAME[key]()
    again = eval(repr(s), dict(vars(js)))  # the repr is a jaxsched call
    assert again == s and hash(again) == hash(s)
    rebuilt = js.schedule_from_config(json.loads(json.dumps(s.to_config())))
    assert rebuilt == s and repr(rebuilt) == repr(s)


def test_sweep_a_by_name_schedule_over_lr():
    lrs = jnp.asarray([0.1, 0.2, 0.4])
    swept = jax.vmap(lambda lr: js.from_hf("cosine", lr, 10, 100)(jnp.arange(120)))(lrs)
    one = _values(js.from_hf("cosine", 0.2, 10, 100), 120)
    np.testing.assert_allclose(np.asarray(swept[1]), one, rtol=1e-6)


def test_every_by_name_schedule_sweeps_over_lr():
    """`lr` may be traced (jax.vmap over it) for every name that uses it."""
    t = jnp.arange(0, 120, 7)
    # one configuration per name; restarts (slow to trace) are swept in
    # test_schedule_objects.py
    hf = {c["name"]: c for c in FIXTURE["hf"] if c["name"] != "cosine_with_restarts"}
    torch = {c[1]: c for c in TORCH_CASES if c[1] not in ("OneCycleLR", "CyclicLR")}
    makers = [lambda lr, c=c: js.from_hf(c["name"], lr, c["num_warmup_steps"],
                                         c["num_training_steps"], **c["kwargs"])
              for c in hf.values()]
    makers += [lambda lr, c=c: js.from_torch(c[1], lr, **c[3]) for c in torch.values()]
    for make in makers:
        swept = jax.vmap(lambda lr: make(lr)(t))(jnp.asarray([0.1, 0.2]))
        np.testing.assert_allclose(np.asarray(swept[1]), np.asarray(make(0.2)(t)), rtol=2e-6,
                                   atol=1e-9)


# --------------------------------------------------------------------------
# arithmetic
# --------------------------------------------------------------------------


def test_arithmetic_builds_products_and_sums():
    a, b = js.cosine_decay(1.0, 100), js.exponential_decay(0.5, 10, 0.5)
    assert a * 0.5 == js.product([a, 0.5]) and 0.5 * a == js.product([0.5, a])
    assert a * b == js.product([a, b]) and (a * b) * 2.0 == js.product([a, b, 2.0])
    assert a + 0.1 == js.add([a, 0.1]) and 0.1 + a == js.add([0.1, a])
    assert (a + b) + a == js.add([a, b, a])
    assert a * 0.5 != a * 0.25 and hash(a * 0.5) == hash(js.product([a, 0.5]))
    t = jnp.arange(200)
    np.testing.assert_allclose(((a + b) * 3.0)(t), (a(t) + b(t)) * 3.0, rtol=1e-6)
    assert float(js.product([js.constant(2.0), js.constant(3.0)])(5)) == 6.0


def test_vmap_and_grad_over_a_factor():
    s = js.cosine_decay(1.0, 100)
    t = jnp.arange(0, 100, 7)
    cs = jnp.asarray([0.5, 1.0, 2.0])
    np.testing.assert_allclose(jax.vmap(lambda c: (s * c)(t))(cs), cs[:, None] * s(t)[None],
                               rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(lambda c: (c + s)(t))(cs), cs[:, None] + s(t)[None],
                               rtol=1e-6)
    g = jax.grad(lambda c, lr: (js.cosine_decay(lr, 100) * c + c)(30), argnums=(0, 1))(2.0, 0.5)
    np.testing.assert_allclose(g, (float(s(30)) * 0.5 + 1.0, 2.0 * float(s(30))), rtol=1e-6)


@pytest.mark.parametrize("bad", ["a", None, [1.0], True, {"x": 1}, np.ones(3)],
                         ids=["str", "None", "list", "bool", "dict", "array"])
def test_arithmetic_with_a_non_number_is_a_type_error(bad):
    s = js.cosine_decay(1.0, 100)
    for op in (lambda: s * bad, lambda: bad * s, lambda: s + bad, lambda: bad + s):
        with pytest.raises(TypeError):
            op()
    with pytest.raises(TypeError, match="product"):
        js.product([s, bad])


def test_arithmetic_rejects_nan_and_empty():
    s = js.constant(1.0)
    with pytest.raises(ValueError, match=r"`product\(factors=...\)` must not be NaN"):
        s * float("nan")
    with pytest.raises(ValueError, match="must not be empty"):
        js.add([])


# --------------------------------------------------------------------------
# compile once in a 10,000-step scan (counted, never timed)
# --------------------------------------------------------------------------

SCAN_PAIRS = {  # two schedules of one structure with different values
    "piecewise_interpolate": (js.piecewise_interpolate(0.1, [1000, 5000], [0.5, 0.1], "cosine"),
                              js.piecewise_interpolate(0.2, [2000, 6000], [0.3, 0.2], "cosine")),
    "cosine_decay-periodic": (js.cosine_decay(0.1, 1000, 0.1, num_cycles=1.5, exponent=2.0,
                                              periodic=True),
                              js.cosine_decay(0.3, 700, 0.0, num_cycles=0.5, exponent=1.0,
                                              periodic=True)),
    "warmup-exponential": (js.warmup(js.constant(1.0), 100, 0.01, mode="exponential"),
                           js.warmup(js.constant(0.5), 300, 0.001, mode="exponential")),
    "wsd-s": (js.warmup_stable_decay(1.0, 100, 2000, 1000, 0.1, 0.1, "sqrt", warmup="cosine",
                                     num_cycles=0.5, cycles=3, rewarm_steps=50),
              js.warmup_stable_decay(0.5, 10, 200, 100, 0.0, 0.0, "sqrt", warmup="cosine",
                                     num_cycles=1.0, cycles=2, rewarm_steps=5)),
    "inverse_sqrt": (js.inverse_sqrt(1.0, 100, timescale=500, shift=10, min_value=0.1),
                     js.inverse_sqrt(0.5, 20, timescale=100, shift=3, min_value=0.05)),
    "cooldown": (js.cooldown(js.cosine_decay(1.0, 10000), 10000, 2000, "sqrt"),
                 js.cooldown(js.cosine_decay(0.5, 5000), 8000, 1000, "sqrt")),
    "shift": (js.shift(js.cosine_decay(1.0, 10000), 100), js.shift(js.cosine_decay(2.0, 500), 7)),
    "one_cycle_momentum": (js.one_cycle_momentum(10000), js.one_cycle_momentum(5000, 0.4)),
    "cyclic_momentum": (js.cyclic_momentum(0.8, 0.9, 500), js.cyclic_momentum(0.7, 0.95, 50)),
    "product": (js.cosine_decay(1.0, 10000) * 0.5, js.cosine_decay(0.3, 100) * 2.0),
    "product-schedules": (js.warmup(js.constant(1.0), 100) * js.cosine_decay(0.1, 10000),
                          js.warmup(js.constant(2.0), 10) * js.cosine_decay(0.3, 1000)),
    "add": (js.cosine_decay(0.09, 10000) + 0.01, js.cosine_decay(0.5, 1000) + 0.2),
    "add-product-mix": (0.5 * (js.cyclic(0.0, 0.1, 100) + js.exponential_decay(0.1, 1000, 0.5)),
                        0.2 * (js.cyclic(0.01, 0.2, 10) + js.exponential_decay(0.2, 10, 0.9))),
    "from_torch-sequential": (
        js.from_torch("SequentialLR", 0.1, schedulers=[("LinearLR", {}),
                                                       ("CosineAnnealingLR", dict(T_max=9000))],
                      milestones=[1000]),
        js.from_torch("SequentialLR", 0.3, schedulers=[("LinearLR", {}),
                                                       ("CosineAnnealingLR", dict(T_max=500))],
                      milestones=[100])),
    "from_hf-wsd": (js.from_hf("warmup_stable_decay", 0.1, 100, 10000, num_decay_steps=2000),
                    js.from_hf("warmup_stable_decay", 0.3, 10, 1000, num_decay_steps=20)),
}


@pytest.mark.parametrize("key", list(SCAN_PAIRS))
def test_compiles_once_in_a_10000_step_scan(key):
    traces = []

    @jax.jit
    def run(sched):
        traces.append(1)
        return lax.scan(lambda acc, t: (acc + 1, sched(t)), jnp.zeros((), jnp.int32),
                        jnp.arange(10_000))[1]

    for s in SCAN_PAIRS[key]:
        np.testing.assert_allclose(np.asarray(run(s)), np.asarray(s(jnp.arange(10_000))),
                                   rtol=1e-6, atol=1e-7)
    assert len(traces) == 1
    assert run._cache_size() == 1


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match=r"`from_torch\(name=...\)` must be one of .*'StepLR'"):
        js.from_torch("StepLr", 0.1, step_size=3)
    with pytest.raises(ValueError, match=r"`from_hf\(name=...\)` must be one of .*'cosine'"):
        js.from_hf("reduce_lr_on_plateau", 0.1, 10, 100)
    with pytest.raises(ValueError, match=r"not a Keras 3 schedule; known: .*'CosineDecay'"):
        js.from_keras({"class_name": "MySchedule", "config": {}})


def test_unknown_or_missing_keyword_arguments_are_named():
    with pytest.raises(TypeError, match=r"missing required keyword argument\(s\) 'step_size'"):
        js.from_torch("StepLR", 0.1)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) 'step'.*step_size"):
        js.from_torch("StepLR", 0.1, step=3)
    with pytest.raises(TypeError, match="'T_max'"):
        js.from_torch("CosineAnnealingLR", 0.1, eta_min=0.0)
    with pytest.raises(TypeError, match="unexpected keyword argument.*'min_lr'"):
        js.from_hf("cosine", 0.1, 10, 100, min_lr=0.01)
    with pytest.raises(TypeError, match="'num_decay_steps'"):
        js.from_hf("warmup_stable_decay", 0.1, 10, 100)
    with pytest.raises(ValueError, match="num_training_steps"):
        js.from_hf("linear", 0.1, 10)
    with pytest.raises(ValueError, match="min_lr or min_lr_rate"):
        js.from_hf("cosine_with_min_lr", 0.1, 10, 100)
    with pytest.raises(TypeError, match="unexpected keyword argument.*'decay'"):
        js.from_keras({"class_name": "ExponentialDecay",
                       "config": {"initial_learning_rate": 0.1, "decay_steps": 1,
                                  "decay_rate": 0.5, "decay": 0.0}})
    with pytest.raises(TypeError, match="class_name"):
        js.from_keras("ExponentialDecay")


def test_bad_values_name_the_by_name_call():
    with pytest.raises(ValueError, match=r"^`from_torch\('ExponentialLR', ...\)`: .*decay_rate"):
        js.from_torch("ExponentialLR", 0.1, gamma=-0.5)
    with pytest.raises(ValueError, match=r"last_epoch"):
        js.from_torch("StepLR", 0.1, step_size=3, last_epoch=4)
    with pytest.raises(ValueError, match="ChainedScheduler.*'CosineAnnealingLR'"):
        js.from_torch("ChainedScheduler", 0.1, schedulers=[("CosineAnnealingLR", dict(T_max=5))])
    with pytest.raises(ValueError, match="scale_fn"):
        js.from_torch("CyclicLR", 0.1, base_lr=0.01, max_lr=0.1, scale_fn=lambda x: 1.0)
    with pytest.raises(ValueError, match="OneCycleLR.*epochs"):
        js.from_torch("OneCycleLR", 0.1, max_lr=0.1)
    with pytest.raises(TypeError, match="pairs"):
        js.from_torch("SequentialLR", 0.1, schedulers=[1], milestones=[])


def _python_lambda(k):
    return 1.0 if k < 5 else 0.5  # Python `if` on the step: not jittable


@pytest.mark.parametrize("name", ["LambdaLR", "MultiplicativeLR"])
def test_non_jittable_lambda_points_to_a_jittable_function(name):
    with pytest.raises(TypeError, match=r"must be a jittable function of the step.*jnp.where"):
        js.from_torch(name, 0.1, lr_lambda=_python_lambda)
    with pytest.raises(TypeError, match="function of the step"):
        js.from_torch(name, 0.1, lr_lambda=3.0)
    s = js.from_torch(name, 0.1, lr_lambda=lambda k: jnp.where(k < 5, 1.0, 0.5))
    assert float(s(0)) == pytest.approx(0.1)


# --------------------------------------------------------------------------
# the new shapes are differentiable in their float hyperparameters
# --------------------------------------------------------------------------

def _new_cases():
    from schedule_cases import CASES
    keys = ("general", "mode", "interpolate", "shift", "cooldown", "momentum", "product",
            "add", "to-zero")
    seen, out = set(), []
    for c in CASES:  # one configuration per family and variant keeps this fast
        kind = (c.id.split("-")[0], "general" in c.id, "mode" in c.id)
        if any(k in c.id for k in keys) and kind not in seen:
            seen.add(kind)
            out.append(c)
    return out + [c for c in CASES if c.id == "warmup_stable_decay-general-5-10-10-sqrt-cosine-0.5-3-4"]


NEW_CASES = _new_cases()


@pytest.mark.parametrize("case", NEW_CASES, ids=[c.id for c in NEW_CASES])
def test_new_shapes_have_finite_gradients(case):
    """d value / d every float leaf is finite at every checked step (the
    boundaries included): no NaN leaks from an untaken jnp.where branch."""
    s = case.make()
    leaves, tree = jax.tree.flatten(s)
    floats = [i for i, leaf in enumerate(leaves) if isinstance(leaf, float)]
    assert floats, case.id
    near = [b + d for b in case.marks for d in (-1, 0, 1) if b + d >= 0]
    steps = np.unique(np.concatenate([np.arange(0, 3 * case.T + 1, max(1, case.T // 25)),
                                      np.asarray(near, np.int64)]))

    def value(vals, t):
        new = list(leaves)
        for i, v in zip(floats, vals):
            new[i] = v
        return jax.tree.unflatten(tree, new)(t)

    grads = jax.jit(jax.vmap(jax.grad(value), in_axes=(None, 0)))(
        [jnp.float32(leaves[i]) for i in floats], jnp.asarray(steps))
    assert all(np.isfinite(np.asarray(g)).all() for g in grads), case.id
