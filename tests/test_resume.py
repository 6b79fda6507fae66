"""Exact resume through real checkpoint libraries (orbax-checkpoint, flax.serialization).

N + M steps straight must be bitwise equal to: N steps, save to disk, restore
in a fresh Python process, M more steps. The fresh process imports this
module and runs `resume_main`; it writes its results with `numpy.savez`.
Every other optimizer (issue 15's, `adam(amsgrad=True)`, the registry's
other configurations) is saved with orbax in one checkpoint and restored in
this process (`test_orbax_resume_is_bitwise_exact`), to keep it fast.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import serialization

import jaxsched as js
from optimizer_registry import OPTIMIZERS as REGISTRY

N, M = 5, 6  # N odd: the plateau's accumulation (size 2) is mid-way at the checkpoint
POISON = {2, N + 1}  # steps where `skip_nonfinite` sees an inf gradient
TESTS_DIR = pathlib.Path(__file__).resolve().parent


def optimizers() -> dict[str, optax.GradientTransformation]:
    """Every optimizer, with schedules, the plateau and skip_nonfinite."""
    schedules = {"sgd": js.cosine_decay(0.1, 20),
                 "momentum_nesterov": js.piecewise_constant([3, 8], [0.1, 0.05, 0.01]),
                 "adagrad": js.exponential_decay(0.1, 4, 0.5),
                 "rmsprop_centered": js.inverse_sqrt(0.01, 3),
                 "adam": js.warmup(js.cosine_decay(0.05, 20), 3),
                 "adamw": js.warmup_stable_decay(0.05, 2, 3, 8)}
    return {
        **{name: REGISTRY[name].ours(lr, {"w": True, "b": False}) for name, lr in
           schedules.items()},
        "adamw(groups)": js.adamw(js.cosine_decay(0.05, 20), weight_decay=0.1, groups={
            "bias": js.group(r"^b$", weight_decay=0.0, b1=0.8,
                             learning_rate=js.warmup(js.cosine_decay(0.02, 20), 3))}),
        "adam+plateau": js.chain(js.adam(0.05), js.reduce_on_plateau(
            factor=0.5, patience=0, accumulation_size=2)),
        "skip(clip+adamw+plateau)": js.skip_nonfinite(js.chain(
            js.clip_by_global_norm(1.0), js.adamw(js.one_cycle(0.05, 20)),
            js.reduce_on_plateau(factor=0.5, patience=1, cooldown=1)), max_consecutive=3),
        # mid-accumulation at the checkpoint (N odd), spikes skipped (the poisoned steps)
        "skip_spikes(accumulate+ema+swa)": js.monitor(js.accumulate(js.skip_spikes(js.chain(
            js.clip_by_global_norm(1.0), js.adamw(js.cosine_decay(0.05, 20)),
            js.ema_params(0.9), js.swa(start=1)), on="both", window=3, warmup=2,
            max_consecutive=1), every=2), update_ratio=True),
    }


def params0():
    return {"w": jnp.array([[0.5, -0.3], [0.2, 0.8], [-0.1, 0.4]], jnp.float32),
            "b": jnp.array([0.1, -0.2], jnp.float32)}


def batches():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N + M, 8, 3)).astype(np.float32)
    y = rng.standard_normal((N + M, 8, 2)).astype(np.float32)
    return x, y


def make_step(opt):
    @jax.jit
    def step(params, state, x, y, poison):
        def loss_fn(p):
            return jnp.mean(jnp.square(jnp.tanh(x @ p["w"] + p["b"]) - y))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        grads = jax.tree.map(lambda g: g * poison, grads)
        updates, state = opt.update(grads, state, params, value=loss)
        return optax.apply_updates(params, updates), state

    return step


def run(name, step, params, state, start, stop):
    x, y = batches()
    for i in range(start, stop):
        poison = jnp.float32(jnp.inf if (i in POISON and name.startswith("skip")) else 1.0)
        params, state = step(params, state, jnp.asarray(x[i]), jnp.asarray(y[i]), poison)
    return params, state


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _fname(name):
    return "".join(c if c.isalnum() else "_" for c in name)


def save(ckpt_dir: pathlib.Path, name: str, params, state) -> None:
    tree = {"params": params, "opt_state": state}
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save((ckpt_dir / "orbax" / _fname(name)).absolute(), tree)
    (ckpt_dir / "flax").mkdir(parents=True, exist_ok=True)
    (ckpt_dir / "flax" / f"{_fname(name)}.msgpack").write_bytes(
        serialization.msgpack_serialize(serialization.to_state_dict(tree)))


def restore(ckpt_dir: pathlib.Path, lib: str, name: str, template):
    """Restore a checkpoint and check it against `template` (raises naming the path)."""
    if lib == "orbax":
        with ocp.StandardCheckpointer() as ckptr:
            raw = ckptr.restore((ckpt_dir / "orbax" / _fname(name)).absolute())
        return js.restore_state(template, raw)
    raw = serialization.msgpack_restore(
        (ckpt_dir / "flax" / f"{_fname(name)}.msgpack").read_bytes())
    if lib == "flax":
        return js.restore_state(template, raw)
    assert lib == "flax-from_state_dict"
    return js.restore_state(template, serialization.from_state_dict(template, raw))


def resume_main(ckpt_dir: str, out_dir: str) -> None:
    """In a fresh process: restore every optimizer, run M more steps, save the results."""
    ckpt_dir, out_dir = pathlib.Path(ckpt_dir), pathlib.Path(out_dir)
    for name, opt in optimizers().items():
        step = make_step(opt)
        template = jax.eval_shape(lambda: {"params": params0(), "opt_state": opt.init(params0())})
        for lib in ("orbax", "flax", "flax-from_state_dict"):
            tree = restore(ckpt_dir, lib, name, template)
            params, state = run(name, step, tree["params"], tree["opt_state"], N, N + M)
            np.savez(out_dir / f"{lib}-{_fname(name)}.npz", *leaves((params, state)))


# ------------------------------------------------------------------ tests


def _assert_bitwise(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.atleast_1d(a).view(np.uint8),
                                      np.atleast_1d(b).view(np.uint8))


def test_resume_in_fresh_process_is_bitwise_exact(tmp_path):
    ckpt_dir, out_dir = tmp_path / "ckpt", tmp_path / "out"
    out_dir.mkdir()
    at_checkpoint = {}
    for name, opt in optimizers().items():
        step = make_step(opt)
        params, state = run(name, step, params0(), opt.init(params0()), 0, N)
        save(ckpt_dir, name, params, state)
        at_checkpoint[name] = (step, params, state)

    script = tmp_path / "resume.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(TESTS_DIR)!r})\n"
        "import test_resume\n"
        f"test_resume.resume_main({str(ckpt_dir)!r}, {str(out_dir)!r})\n")
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_ENABLE_X64", "XLA_FLAGS")}
    env["JAX_PLATFORMS"] = "cpu"
    fresh = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        # Meanwhile, the straight run: the same N steps, then M more without a break.
        straight = {}
        for name, (step, params, state) in at_checkpoint.items():
            straight[name] = run(name, step, params, state, N, N + M)
            assert all(np.isfinite(x).all() for x in leaves(straight[name][0]))
        _, stderr = fresh.communicate(timeout=300)
    finally:
        if fresh.poll() is None:
            fresh.kill()
            fresh.communicate()
    assert fresh.returncode == 0, stderr[-3000:]

    for name, (params, state) in straight.items():
        want = leaves((params, state))
        for lib in ("orbax", "flax", "flax-from_state_dict"):
            with np.load(out_dir / f"{lib}-{_fname(name)}.npz") as f:
                got = [f[f"arr_{i}"] for i in range(len(f.files))]
            _assert_bitwise(got, want)

    # The run exercised what the checkpoint has to carry.
    plateau = straight["adam+plateau"][1][1]
    assert float(plateau.scale) < 1.0
    skip = straight["skip(clip+adamw+plateau)"][1]
    assert int(skip.total_skips) == 2 and int(skip.count) == N + M
    assert int(skip.inner_state[1][0].count) == N + M - 2  # adam's count skipped twice
    assert float(skip.inner_state[2].scale) < 1.0
    spikes = straight["skip_spikes(accumulate+ema+swa)"][1].inner_state
    assert int(spikes.count) == N + M and int(spikes.inner_state.total_skips) == 2
    assert int(spikes.inner_state.inner_state[1][0].count) == (N + M) // 2 - 2


@pytest.fixture(scope="module")
def saved_adam(tmp_path_factory):
    ckpt_dir = tmp_path_factory.mktemp("ckpt")
    opt = js.adam(js.cosine_decay(0.1, 20))
    params, state = run("adam", make_step(opt), params0(), opt.init(params0()), 0, 2)
    save(ckpt_dir, "adam", params, state)
    return ckpt_dir, params, state


@pytest.mark.parametrize("lib", ["orbax", "flax", "flax-from_state_dict"])
def test_restore_wrong_optimizer_names_the_path(saved_adam, lib):
    ckpt_dir, params, _ = saved_adam
    # sgd(0.1)'s state has no leaves (its learning rate, a number, is in its structure,
    # and it keeps no count): adam's count and moments are extra. restore_state names the
    # path as the template's keystr; flax's from_state_dict fails first, in its own words.
    sgd_template = {"params": params, "opt_state": js.sgd(0.1).init(params)}
    rms_template = {"params": params, "opt_state": js.rmsprop(0.1).init(params)}
    if lib == "flax-from_state_dict":
        for template in (sgd_template, rms_template):
            with pytest.raises((ValueError, TypeError)):
                restore(ckpt_dir, lib, "adam", template)
        return
    with pytest.raises(ValueError, match=(
            r"`restore_state\(restored=\.\.\.\)` has \['opt_state'\]\['?0'?\]\['count'\]"
            r" \(and 6 more\), which the template does not have")):
        restore(ckpt_dir, lib, "adam", sgd_template)
    with pytest.raises(ValueError, match=r"has \['opt_state'\]\['?0'?\]\['count'\] \(and 3 more\)"):
        restore(ckpt_dir, lib, "adam", rms_template)


@pytest.mark.parametrize("lib", ["orbax", "flax"])
def test_restore_wrong_dtype_or_shape_names_the_path(saved_adam, lib):
    ckpt_dir, params, state = saved_adam
    tree = {"params": params, "opt_state": state}
    wrong_dtype = jax.tree.map(lambda x: x, tree)
    wrong_dtype["opt_state"] = (state[0]._replace(count=jnp.zeros([], jnp.float32)), state[1])
    with pytest.raises(ValueError, match=re.escape(
            "`restore_state(restored=...)` has dtype int32 at ['opt_state'][0].count, "
            "expected float32.")):
        restore(ckpt_dir, lib, "adam", wrong_dtype)
    bf16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16) if x.dtype == jnp.float32 else x, tree)
    with pytest.raises(ValueError, match=r"has dtype float32 at \['opt_state'\]\[0\]\.mu"
                                         r"\['b'\], expected bfloat16"):
        restore(ckpt_dir, lib, "adam", bf16)
    bigger = {"params": {"w": jnp.zeros((4, 2)), "b": jnp.zeros(2)}}
    bigger["opt_state"] = js.adam(js.cosine_decay(0.1, 20)).init(bigger["params"])
    with pytest.raises(ValueError, match=re.escape(
            "`restore_state(restored=...)` has shape (3, 2) at ['opt_state'][0].mu['w'], "
            "expected (4, 2).")):
        restore(ckpt_dir, lib, "adam", bigger)


def test_restore_state_rebuilds_types_and_rejects_extra_leaves():
    opt = js.chain(js.adam(0.1), js.reduce_on_plateau())
    state = opt.init(params0())
    as_dicts = serialization.to_state_dict(state)  # NamedTuples become dicts
    back = js.restore_state(state, jax.tree.map(np.asarray, as_dicts))
    assert jax.tree.structure(back) == jax.tree.structure(state)
    assert isinstance(back[1], js.ReduceOnPlateauState)
    extra = dict(as_dicts)
    extra["1"] = dict(as_dicts["1"], surprise=np.zeros(()))
    with pytest.raises(ValueError, match=re.escape(
            "`restore_state(restored=...)` has ['1']['surprise'], which the template does not "
            "have")):
        js.restore_state(state, extra)


def test_restore_state_reads_hyperparameter_arrays_saved_beside_numbers():
    """A state with arrays beside numbers has them at `hyperparams/<name>`; what
    reads `state.hyperparams` (flax's `to_state_dict`, and checkpoints of states
    made before the numbers moved into the state's class) saves them at
    `hyperparams/arrays/<name>`: both restore, and the numbers are the template's."""
    opt = js.adam(0.1, b1=js.polynomial_decay(0.9, 0.5, 10))
    params = params0()
    _, state = opt.update(params, opt.init(params), params)
    b1 = float(js.hyperparams(state, "b1"))
    as_dicts = serialization.to_state_dict(state)
    assert set(as_dicts["0"]["hyperparams"]) == {"constants", "arrays"}  # `Mixed`'s fields
    assert set(as_dicts["0"]["hyperparams"]["arrays"]) == {"b1"}
    for saved in (jax.tree.map(np.asarray, state), as_dicts):
        back = js.restore_state(state, saved)
        assert jax.tree.structure(back) == jax.tree.structure(state)
        assert float(js.hyperparams(back, "b1")) == b1 != np.float32(0.9)
        assert float(js.hyperparams(back, "b2")) == np.float32(0.999)
    # A number saved where the template holds one is dropped: the optimizer's own stands.
    numbers = dict(as_dicts, **{"0": dict(as_dicts["0"], hyperparams={
        "b1": np.float32(b1), "b2": np.float32(0.5)})})
    assert float(js.hyperparams(js.restore_state(state, numbers), "b2")) == np.float32(0.999)


# ------------------------------------------------------------------ schedules and plateau

SCHEDULES = [
    js.cosine_decay(0.1, 1000, alpha=0.01),
    js.warmup(js.cosine_decay(0.1, 1000), 50),
    js.warmup_stable_decay(1e-3, 100, 500, 200, decay="cosine"),
    js.piecewise_constant([100, 200], [0.1, 0.01, 0.001]),
    js.join([js.constant(0.1), js.exponential_decay(0.1, 10, 0.5, staircase=True)], [30]),
    js.one_cycle(0.1, 500, three_phase=True),
    js.cosine_decay_restarts(0.1, 100, t_mul=2.0),
]


@jax.jit
def _jit_values(s):
    return jax.vmap(s)(jnp.arange(0, 1200, 7))


def _values(s):
    return np.asarray(_jit_values(s))


def test_schedules_save_and_restore_with_orbax(tmp_path):
    """As pytrees (their leaves) with StandardSave, and as configs with JsonSave."""
    templates = list(SCHEDULES)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save((tmp_path / "leaves").absolute(), templates)
        raw = ckptr.restore((tmp_path / "leaves").absolute())
    back = js.restore_state(templates, raw)
    for s, b in zip(SCHEDULES, back):
        assert type(b) is type(s) and b == s
        np.testing.assert_array_equal(_values(b), _values(s))

    with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as ckptr:
        configs = {str(i): s.to_config() for i, s in enumerate(SCHEDULES)}
        ckptr.save((tmp_path / "json").absolute(), args=ocp.args.JsonSave(configs))
        raw = ckptr.restore((tmp_path / "json").absolute(), args=ocp.args.JsonRestore())
    for i, config in raw.items():
        s = js.schedule_from_config(config)
        assert s == SCHEDULES[int(i)]
        np.testing.assert_array_equal(_values(s), _values(SCHEDULES[int(i)]))


def test_schedules_save_and_restore_with_flax_msgpack():
    """Pickle-free: the JSON-able config through msgpack, and the leaves as a state dict."""
    for s in SCHEDULES:
        blob = serialization.msgpack_serialize({"schedule": json.dumps(s.to_config())})
        back = js.schedule_from_config(json.loads(serialization.msgpack_restore(blob)["schedule"]))
        assert back == s
    for s in SCHEDULES:
        flat = {jax.tree_util.keystr(p): np.asarray(x)
                for p, x in jax.tree_util.tree_flatten_with_path(s)[0]}
        blob = serialization.msgpack_serialize(flat)
        leaves_back = serialization.msgpack_restore(blob)
        rebuilt = jax.tree_util.tree_unflatten(
            jax.tree.structure(s), [leaves_back[k] for k in flat])
        back = js.restore_state(s, rebuilt)
        assert back == s
        np.testing.assert_array_equal(_values(back), _values(s))


def test_plateau_state_round_trips_mid_accumulation(tmp_path):
    tx = js.reduce_on_plateau(factor=0.5, patience=0, cooldown=1, accumulation_size=3)
    state = tx.init(None)
    for v in [3.0, 2.0, 1.0, 5.0, 5.0, 5.0, 4.0]:
        _, state = tx.update(jnp.ones(1), state, value=v)
    assert int(state.acc_count) == 1 and float(state.scale) == 0.5
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save((tmp_path / "p").absolute(), state)
        back = js.restore_state(tx.init(None), ckptr.restore((tmp_path / "p").absolute()))
    flax_back = js.restore_state(tx.init(None), serialization.msgpack_restore(
        serialization.msgpack_serialize(serialization.to_state_dict(state))))
    for b in (back, flax_back):
        assert isinstance(b, js.ReduceOnPlateauState)
        _assert_bitwise(leaves(b), leaves(state))
        u1, s1 = tx.update(jnp.ones(1), state, value=9.0)
        u2, s2 = tx.update(jnp.ones(1), b, value=9.0)
        _assert_bitwise(leaves((u1, s1)), leaves((u2, s2)))


def test_empty_leaves_and_nonfinite_best_survive(tmp_path):
    """+inf `best` (before any value) and empty nodes (`hyperparams={}`) round-trip."""
    opt = js.skip_nonfinite(js.chain(js.rmsprop(0.1), js.reduce_on_plateau(mode="max")))
    state = opt.init(params0())
    assert math.isinf(float(state.inner_state[1].best))
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save((tmp_path / "s").absolute(), state)
        back = js.restore_state(state, ckptr.restore((tmp_path / "s").absolute()))
    _assert_bitwise(leaves(back), leaves(state))
    assert jax.tree.structure(back) == jax.tree.structure(state)


# ------------------------------------------------------------------ every other optimizer

def _every_other_optimizer() -> dict[str, optax.GradientTransformation]:
    """The optimizers `optimizers()` leaves out: issue 15's fourteen (with their
    tree-level scalars: NAdam's product, Prodigy's estimates, schedule-free's
    weights; Muon's matrices beside AdamW's vectors), adam/adamw(amsgrad=True)
    and the registry's other configurations. Schedules make the count matter."""
    cos = js.cosine_decay(0.05, 20)
    decay_mask = {"w": True, "b": False}
    return {
        "nadam": js.nadam(cos, weight_decay=0.01),
        "nadamw": js.nadamw(js.warmup(cos, 3), weight_decay=0.1,
                            momentum_decay=js.polynomial_decay(4e-3, 20, 1e-2)),
        "radam": js.radam(cos, b2=0.9, weight_decay=0.01, decoupled_weight_decay=True),
        "adamax": js.adamax(js.exponential_decay(0.05, 4, 0.5), weight_decay=0.01),
        "amsgrad": js.amsgrad(cos, weight_decay=0.01),
        "adam(amsgrad=True)": js.adam(js.warmup(cos, 3), b2=js.polynomial_decay(0.99, 20, 0.9),
                                      amsgrad=True),
        "adamw(amsgrad=True)": js.adamw(cos, weight_decay=0.1, mask=decay_mask, nesterov=True,
                                        amsgrad=True),
        "adopt": js.adopt(cos, nesterov=True),
        "prodigy": js.prodigy(js.cosine_decay(1.0, 20), weight_decay=0.01),
        "prodigy(coupled)": js.prodigy(js.warmup(js.cosine_decay(1.0, 20), 2), beta3=0.9,
                                       estim_lr0=1e-3, weight_decay=0.01, decouple=False,
                                       use_bias_correction=True, safeguard_warmup=True,
                                       growth_rate=1.05),
        "schedule_free_adamw": js.schedule_free_adamw(cos, 3, weight_decay=0.01, r=0.5),
        "schedule_free_sgd": js.schedule_free_sgd(js.cosine_decay(0.1, 20), 2, weight_decay=0.01,
                                                  r=1.0),
        "lion": js.lion(js.cosine_decay(0.01, 20), b1=js.polynomial_decay(0.9, 20, 0.95),
                        weight_decay=0.1, mask=decay_mask),
        "lamb": js.lamb(cos, weight_decay=0.01),
        "lars": js.lars(cos, weight_decay=0.01, trust_coefficient=0.05, nesterov=True),
        "adafactor": js.adafactor(cos, min_dim_size_to_factor=2, momentum=0.9,
                                  weight_decay_rate=1e-3),
        "adafactor(pytorch)": js.adafactor(cos, convention="pytorch", weight_decay_rate=0.01),
        "muon": js.muon(js.cosine_decay(0.02, 20), adam_learning_rate=cos),
        **{name: REGISTRY[name].ours(REGISTRY[name].lr, decay_mask)
           for name in REGISTRY if name not in _RESUMED_ABOVE},
    }


# The registry configurations `optimizers()` runs (by their registry names).
_RESUMED_ABOVE = {"sgd", "momentum_nesterov", "adagrad", "rmsprop_centered", "adam", "adamw"}
ISSUE_15 = {"muon", "lion", "adafactor", "lamb", "lars", "nadam", "nadamw", "radam", "adamax",
            "amsgrad", "adopt", "prodigy", "schedule_free_adamw", "schedule_free_sgd"}
OTHERS = _every_other_optimizer()


def test_every_optimizer_is_resumed():
    assert ISSUE_15 | set(REGISTRY) - _RESUMED_ABOVE <= set(OTHERS)
    assert _RESUMED_ABOVE <= set(optimizers())


def _committed(tree):
    return jax.device_put(tree, jax.devices()[0])


@pytest.fixture(scope="module")
def others_at_checkpoint(tmp_path_factory):
    """Every optimizer of OTHERS after N steps, saved in one orbax checkpoint, and restored.

    The arrays are committed to the device from the start, as orbax restores
    them, so that each step function compiles once (an uncommitted and a
    committed argument compile separately: the same program, twice the time).
    """
    ckpt = tmp_path_factory.mktemp("others") / "orbax"
    at_checkpoint = {}
    for name, opt in OTHERS.items():
        step = make_step(opt)
        params, state = run(name, step, _committed(params0()), _committed(opt.init(params0())),
                            0, N)
        at_checkpoint[name] = (step, params, state)
    tree = {_fname(n): {"params": p, "opt_state": s} for n, (_, p, s) in at_checkpoint.items()}
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(ckpt.absolute(), tree)
        raw = ckptr.restore(ckpt.absolute())
    return at_checkpoint, raw


@pytest.mark.parametrize("name", OTHERS)
def test_orbax_resume_is_bitwise_exact(name, others_at_checkpoint):
    at_checkpoint, raw = others_at_checkpoint
    step, params, state = at_checkpoint[name]
    opt = OTHERS[name]
    template = jax.eval_shape(lambda: {"params": params0(), "opt_state": opt.init(params0())})
    restored = js.restore_state(template, raw[_fname(name)])
    assert jax.tree.structure(restored) == jax.tree.structure(template)
    # and through flax's msgpack, as the fresh-process test does for the others
    flax_restored = _committed(js.restore_state(template, serialization.msgpack_restore(
        serialization.msgpack_serialize(serialization.to_state_dict(
            {"params": params, "opt_state": state})))))
    straight = run(name, step, params, state, N, N + M)
    want = leaves(straight)
    for tree in (restored, flax_restored):
        _assert_bitwise(leaves(run(name, step, tree["params"], tree["opt_state"], N, N + M)),
                        want)
    # The checkpoint was mid-run: the parameters moved after it.
    assert max(float(np.abs(a - b).max()) for a, b in
               zip(leaves(straight[0]), leaves(params))) > 1e-5
