"""Bad arguments to transformations and optimizers raise, naming what is wrong.

Every message has the form ``\\`owner(arg=...)\\` must ..., got <value>.``: it names
the public function the user called, the argument and the value. Traced
hyperparameters (inside jit, vmap) pass unchecked.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsched as js

NAN, INF = float("nan"), float("inf")

# (id, call, exception, exact message)
BAD = [
    ("adam_b1_one", lambda: js.scale_by_adam(b1=1.0), ValueError,
     "`scale_by_adam(b1=...)` must be < 1, got 1.0."),
    ("adam_b1_negative", lambda: js.scale_by_adam(b1=-0.1), ValueError,
     "`scale_by_adam(b1=...)` must be >= 0, got -0.1."),
    ("adam_b2_above_one", lambda: js.scale_by_adam(b2=1.5), ValueError,
     "`scale_by_adam(b2=...)` must be < 1, got 1.5."),
    ("adam_b2_nan", lambda: js.scale_by_adam(b2=NAN), ValueError,
     "`scale_by_adam(b2=...)` must not be NaN, got nan."),
    ("adam_b2_array_element", lambda: js.scale_by_adam(b2=jnp.asarray([0.9, 1.0])), ValueError,
     "`scale_by_adam(b2=...)` must be < 1, got [0.9 1. ]."),
    ("adam_eps_negative", lambda: js.scale_by_adam(eps=-1e-8), ValueError,
     "`scale_by_adam(eps=...)` must be >= 0, got -1e-08."),
    ("adam_eps_root_negative", lambda: js.scale_by_adam(eps_root=-1.0), ValueError,
     "`scale_by_adam(eps_root=...)` must be >= 0, got -1.0."),
    ("adam_b1_bool", lambda: js.scale_by_adam(b1=False), TypeError,
     "`scale_by_adam(b1=...)` must be a number, got False."),
    ("adam_nesterov_not_bool", lambda: js.scale_by_adam(nesterov=1), TypeError,
     "`scale_by_adam(nesterov=...)` must be a bool, got 1."),
    ("opt_adam_b1", lambda: js.adam(1e-3, b1=1.0), ValueError,
     "`adam(b1=...)` must be < 1, got 1.0."),
    ("opt_adam_b2", lambda: js.adam(1e-3, b2=-0.5), ValueError,
     "`adam(b2=...)` must be >= 0, got -0.5."),
    ("opt_adam_eps", lambda: js.adam(1e-3, eps=-1.0), ValueError,
     "`adam(eps=...)` must be >= 0, got -1.0."),
    ("opt_adam_lr_negative", lambda: js.adam(-1e-3), ValueError,
     "`adam(learning_rate=...)` must be >= 0, got -0.001."),
    ("opt_adam_lr_bool", lambda: js.adam(True), TypeError,
     "`adam(learning_rate=...)` must be a number, got True."),
    ("opt_adam_lr_bool_array", lambda: js.adam(jnp.asarray(True)), TypeError,
     "`adam(learning_rate=...)` must be a number, got an array of dtype bool."),
    ("opt_adamw_b2", lambda: js.adamw(1e-3, b2=1.0), ValueError,
     "`adamw(b2=...)` must be < 1, got 1.0."),
    ("opt_adamw_weight_decay", lambda: js.adamw(1e-3, weight_decay=-1e-4), ValueError,
     "`adamw(weight_decay=...)` must be >= 0, got -0.0001."),
    ("opt_sgd_lr_string", lambda: js.sgd("0.1"), TypeError,
     "`sgd(learning_rate=...)` must be a number, got str '0.1'."),
    ("opt_sgd_lr_nan", lambda: js.sgd(NAN), ValueError,
     "`sgd(learning_rate=...)` must not be NaN, got nan."),
    ("opt_momentum_above_one", lambda: js.momentum(0.1, momentum=1.5), ValueError,
     "`momentum(momentum=...)` must be <= 1, got 1.5."),
    ("opt_momentum_nesterov", lambda: js.momentum(0.1, nesterov="yes"), TypeError,
     "`momentum(nesterov=...)` must be a bool, got 'yes'."),
    ("opt_rmsprop_decay", lambda: js.rmsprop(0.1, decay=1.5), ValueError,
     "`rmsprop(decay=...)` must be <= 1, got 1.5."),
    ("opt_rmsprop_eps", lambda: js.rmsprop(0.1, eps=-1e-8), ValueError,
     "`rmsprop(eps=...)` must be >= 0, got -1e-08."),
    ("opt_rmsprop_centered", lambda: js.rmsprop(0.1, centered=None), TypeError,
     "`rmsprop(centered=...)` must be a bool, got None."),
    ("opt_adagrad_initial", lambda: js.adagrad(0.1, initial_accumulator_value=-0.1), ValueError,
     "`adagrad(initial_accumulator_value=...)` must be >= 0, got -0.1."),
    ("opt_adagrad_eps", lambda: js.adagrad(0.1, eps=-1.0), ValueError,
     "`adagrad(eps=...)` must be >= 0, got -1.0."),
    ("add_decayed_weights_negative", lambda: js.add_decayed_weights(-0.1), ValueError,
     "`add_decayed_weights(weight_decay=...)` must be >= 0, got -0.1."),
    ("clip_by_norm_zero", lambda: js.clip_by_norm(0.0), ValueError,
     "`clip_by_norm(max_norm=...)` must be > 0, got 0.0."),
    ("clip_by_norm_nan", lambda: js.clip_by_norm(NAN), ValueError,
     "`clip_by_norm(max_norm=...)` must not be NaN, got nan."),
    ("clip_by_global_norm_negative", lambda: js.clip_by_global_norm(-1.0), ValueError,
     "`clip_by_global_norm(max_norm=...)` must be > 0, got -1.0."),
    ("clip_by_global_norm_nan", lambda: js.clip_by_global_norm(NAN), ValueError,
     "`clip_by_global_norm(max_norm=...)` must not be NaN, got nan."),
    ("clip_by_global_norm_numpy_zero", lambda: js.clip_by_global_norm(np.float32(0)), ValueError,
     "`clip_by_global_norm(max_norm=...)` must be > 0, got 0.0."),
    ("clip_negative", lambda: js.clip(-0.5), ValueError,
     "`clip(max_delta=...)` must be >= 0, got -0.5."),
    ("scale_inf", lambda: js.scale(INF), ValueError,
     "`scale(factor=...)` must be finite, got inf."),
    ("scale_string", lambda: js.scale("2"), TypeError,
     "`scale(factor=...)` must be a number, got str '2'."),
    ("trace_above_one", lambda: js.trace(1.5), ValueError,
     "`trace(decay=...)` must be <= 1, got 1.5."),
    ("trace_negative", lambda: js.trace(-0.1), ValueError,
     "`trace(decay=...)` must be >= 0, got -0.1."),
    ("trace_nesterov", lambda: js.trace(0.9, nesterov="yes"), TypeError,
     "`trace(nesterov=...)` must be a bool, got 'yes'."),
    ("ema_above_one", lambda: js.ema(1.01), ValueError,
     "`ema(decay=...)` must be <= 1, got 1.01."),
    ("ema_debias", lambda: js.ema(0.9, debias=None), TypeError,
     "`ema(debias=...)` must be a bool, got None."),
    ("rms_decay_negative", lambda: js.scale_by_rms(decay=-0.5), ValueError,
     "`scale_by_rms(decay=...)` must be >= 0, got -0.5."),
    ("rms_initial_scale", lambda: js.scale_by_rms(initial_scale=-1.0), ValueError,
     "`scale_by_rms(initial_scale=...)` must be >= 0, got -1.0."),
    ("rms_centered", lambda: js.scale_by_rms(centered=1), TypeError,
     "`scale_by_rms(centered=...)` must be a bool, got 1."),
    ("adagrad_initial", lambda: js.scale_by_adagrad(initial_accumulator_value=-0.1), ValueError,
     "`scale_by_adagrad(initial_accumulator_value=...)` must be >= 0, got -0.1."),
    ("lr_negative", lambda: js.scale_by_learning_rate(-0.1), ValueError,
     "`scale_by_learning_rate(learning_rate=...)` must be >= 0, got -0.1."),
    ("lr_string", lambda: js.scale_by_learning_rate("0.1"), TypeError,
     "`scale_by_learning_rate(learning_rate=...)` must be a number, got str '0.1'."),
    ("lr_flip_sign", lambda: js.scale_by_learning_rate(0.1, flip_sign=1), TypeError,
     "`scale_by_learning_rate(flip_sign=...)` must be a bool, got 1."),
    ("schedule_not_callable", lambda: js.scale_by_schedule(0.1), TypeError,
     "`scale_by_schedule(schedule=...)` must be a schedule (a callable of the step), "
     "got float 0.1."),
    ("chain_not_transform", lambda: js.chain(js.scale(1.0), "x"), TypeError,
     "`chain(transforms[1]=...)` must be an optax GradientTransformation, got str 'x'."),
    ("chain_function", lambda: js.chain(optax.sgd), TypeError,
     "`chain(transforms[0]=...)` must be an optax GradientTransformation, got function"),
]


@pytest.mark.parametrize("call,exc,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_argument_raises_naming_function_argument_and_value(call, exc, message):
    with pytest.raises(exc) as info:
        call()
    if message.endswith("."):
        assert str(info.value) == message
    else:
        assert str(info.value).startswith(message)


def test_table_is_large_enough():
    assert len(BAD) >= 25


# ---------------------------------------------------------------- masks


PARAMS = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}, "scale": jnp.ones(())}


@pytest.mark.parametrize("make,owner", [
    (lambda mask: js.add_decayed_weights(0.1, mask), "add_decayed_weights"),
    (lambda mask: js.adamw(0.1, mask=mask), "adamw"),
], ids=["add_decayed_weights", "adamw"])
@pytest.mark.parametrize("kind", ["tree", "function"])
def test_mask_structure_mismatch_raises_at_init_naming_path(make, owner, kind):
    bad = {"dense": {"kernel": True}, "scale": False}
    tx = make(bad if kind == "tree" else (lambda params: bad))  # construction does not raise
    with pytest.raises(ValueError) as info:
        tx.init(PARAMS)
    message = str(info.value)
    assert message.startswith(f"`{owner}(mask=...)` must have the structure of the parameters")
    assert "['dense']['bias']" in message
    assert "['dense']['kernel']" not in message


def test_mask_with_non_bool_leaf_raises_naming_path():
    tx = js.add_decayed_weights(0.1, {"dense": {"kernel": True, "bias": "no"}, "scale": False})
    with pytest.raises(TypeError, match=re.escape("`add_decayed_weights(mask=...)` must hold "
                                                  "bools, got 'no' at ['dense']['bias'].")):
        tx.init(PARAMS)


def test_add_decayed_weights_needs_params():
    tx = js.add_decayed_weights(0.1)
    with pytest.raises(ValueError, match=re.escape("`add_decayed_weights` needs the parameters")):
        tx.update(PARAMS, tx.init(PARAMS))


# ---------------------------------------------------------------- update trees


@pytest.mark.parametrize("make,owner", [
    (lambda: js.scale_by_adam(), "scale_by_adam"),
    (lambda: js.scale_by_rms(centered=True), "scale_by_rms"),
    (lambda: js.scale_by_adagrad(), "scale_by_adagrad"),
    (lambda: js.trace(0.9), "trace"),
    (lambda: js.ema(0.9), "ema"),
    (lambda: js.adam(0.1), "adam"),
    (lambda: js.momentum(0.1), "momentum"),
], ids=["scale_by_adam", "scale_by_rms", "scale_by_adagrad", "trace", "ema", "adam", "momentum"])
def test_update_tree_mismatch_names_the_difference(make, owner):
    tx = make()
    state = tx.init({"a": jnp.ones(2), "b": jnp.ones(2)})
    with pytest.raises(ValueError) as info:
        tx.update({"a": jnp.ones(2), "c": jnp.ones(2)}, state)
    message = str(info.value)
    assert message.startswith(f"`{owner}`: the tree passed to update does not match the one "
                              "given to init")
    assert "only in the updates: ['c']" in message
    assert "only in the state: ['b']" in message


def test_add_decayed_weights_params_mismatch_names_the_difference():
    tx = js.add_decayed_weights(0.1)
    state = tx.init({"a": jnp.ones(2)})
    with pytest.raises(ValueError) as info:
        tx.update({"a": jnp.ones(2)}, state, {"a": jnp.ones(2), "b": jnp.ones(2)})
    assert str(info.value).startswith("`add_decayed_weights`")
    assert "['b']" in str(info.value)


# ---------------------------------------------------------------- traced values pass


def test_traced_negative_learning_rate_passes_unchecked():
    p = jnp.ones(3)
    state = js.adam(jnp.float32(0.1)).init(p)  # an array, as the step passes

    @jax.jit
    def step(lr, state):
        return js.adam(lr).update(p, state)

    u, state = step(-0.1, state)  # a traced value is not checked, and not clamped
    np.testing.assert_allclose(np.asarray(u), 0.1, rtol=1e-5)
    assert float(js.hyperparams(state)["learning_rate"]) == np.float32(-0.1)


def test_traced_hyperparameters_pass_under_vmap():
    def first_update(b1, wd):
        tx = js.adamw(0.1, b1=b1, weight_decay=wd)
        return tx.update(jnp.ones(2), tx.init(jnp.ones(2)), jnp.ones(2))[0]

    out = jax.vmap(first_update)(jnp.asarray([0.9, 1.0]), jnp.asarray([0.1, -0.1]))
    assert out.shape == (2, 2)
    with pytest.raises(ValueError, match=re.escape("`adamw(b1=...)` must be < 1, got 1.0.")):
        first_update(jnp.asarray(1.0), 0.1)
