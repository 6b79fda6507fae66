"""The training loop's companions: skip_spikes, accumulate, ema_params/swa, monitor/log_values.

Spike skipping is checked bitwise against the run without the spiky step and
against the unwrapped optimizer, and its rule (window statistics over accepted
updates, the give-up count) against a plain-Python model written from its
docstring. Accumulation is checked against the large-batch update and
`optax.MultiSteps`; the averages against PyTorch's `swa_utils` in
tests/x64/test_averaging_x64.py and Keras's `use_ema` here (float32).
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsched as js
from training import compiled_step_entry, run_on_eight_cpu_devices


def _bitwise_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(np.atleast_1d(x).view(np.uint8),
                                      np.atleast_1d(y).view(np.uint8))


def _params():
    return {"w": jnp.array([[0.5, -0.3], [0.2, 0.8], [-0.1, 0.4]], jnp.float32),
            "b": jnp.array([0.1, -0.0], jnp.float32)}  # -0.0: a skipped update keeps its sign


def _data(n, batch=8, seed=0):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.standard_normal((n, batch, 3)), jnp.float32),
            jnp.asarray(rng.standard_normal((n, batch, 2)), jnp.float32))


def _loss(p, x, y):
    return jnp.mean(jnp.square(jnp.tanh(x @ p["w"] + p["b"]) - y))


def _stepper(opt):
    @jax.jit
    def step(params, state, x, y, scale):
        loss, grads = jax.value_and_grad(_loss)(params, x, y)
        loss, grads = loss * scale, jax.tree.map(lambda g: g * scale, grads)
        updates, state = opt.update(grads, state, params, value=loss)
        return optax.apply_updates(params, updates), state

    return step


def _run(opt, xs, ys, scales=None, step=None):
    step = step or _stepper(opt)
    params, state = _params(), opt.init(_params())
    for i in range(len(xs)):
        scale = 1.0 if scales is None else scales[i]
        params, state = step(params, state, xs[i], ys[i], jnp.float32(scale))
    return params, state


# ------------------------------------------------------------------ skip_spikes

@pytest.mark.parametrize("on", ["loss", "grad_norm", "both"])
def test_injected_spike_equals_the_run_without_that_step(on):
    opt = js.skip_spikes(js.adam(js.warmup(js.cosine_decay(1e-2, 30), 3)), on=on, window=6,
                         threshold=6.0, warmup=4)
    step = _stepper(opt)
    xs, ys = _data(12)
    spike_at = 8
    scales = [1.0] * 13
    scales[spike_at] = 1e3  # loss and gradients 1000x: a spike of both
    with_spike = (jnp.concatenate([xs[:spike_at], xs[spike_at:spike_at + 1], xs[spike_at:]]),
                  jnp.concatenate([ys[:spike_at], ys[spike_at:spike_at + 1], ys[spike_at:]]))
    p_spike, s_spike = _run(opt, *with_spike, scales=scales, step=step)
    p_clean, s_clean = _run(opt, xs, ys, step=step)
    _bitwise_equal(p_spike, p_clean)
    _bitwise_equal((s_spike.inner_state, s_spike.history, s_spike.position, s_spike.accepted),
                   (s_clean.inner_state, s_clean.history, s_clean.position, s_clean.accepted))
    assert int(s_spike.total_skips) == 1 and int(s_clean.total_skips) == 0
    assert int(s_spike.count) == 13 and int(s_spike.inner_state[0].count) == 12
    assert not np.array_equal(np.asarray(p_clean["w"]), np.asarray(_params()["w"]))


@pytest.mark.parametrize("make", [
    lambda: js.adamw(js.cosine_decay(1e-2, 20), weight_decay=0.1),
    lambda: optax.adam(optax.cosine_decay_schedule(1e-2, 20)),
], ids=["js.adamw", "optax.adam"])
def test_no_spike_is_bitwise_the_unwrapped_optimizer(make):
    xs, ys = _data(15, seed=3)
    wrapped = js.skip_spikes(make(), on="both", window=8, warmup=4, threshold=20.0)
    p_w, s_w = _run(wrapped, xs, ys)
    p_u, s_u = _run(make(), xs, ys)
    assert int(s_w.total_skips) == 0 and int(s_w.accepted) == 15
    _bitwise_equal(p_w, p_u)
    _bitwise_equal(s_w.inner_state, s_u)


def _reference_rule(values, window, threshold, warmup, max_consecutive):
    """The docstring's rule in plain Python: which updates are skipped, and the counters."""
    history, consecutive, total, out = [], 0, 0, []
    for v in values:
        h = history[-window:]
        n = len(h)
        mean = sum(h) / n if n else 0.0
        std = math.sqrt(sum((x - mean) ** 2 for x in h) / n) if n else 0.0
        finite = math.isfinite(v)
        spike = (not finite) or (len(history) >= warmup and v > mean + threshold * std)
        skip = spike and (max_consecutive is None or consecutive < max_consecutive)
        if skip:
            consecutive += 1
            total += 1
        else:
            consecutive = 0
            if finite:
                history.append(v)
        out.append((skip, total, consecutive))
    return out


@pytest.mark.parametrize("max_consecutive", [None, 0, 2])
def test_rule_and_give_up_count_match_the_reference_past_the_give_up_point(max_consecutive):
    rng = np.random.default_rng(5)
    values = list(1.0 + 0.05 * rng.standard_normal(10))
    values += [9.0] * 7 + [1.0, 1.02, float("nan"), float("inf"), 8.0, 0.98] + [7.5] * 5
    values += list(1.0 + 0.05 * rng.standard_normal(4))
    window, threshold, warmup = 8, 2.5, 5
    want = _reference_rule(values, window, threshold, warmup, max_consecutive)
    tx = js.skip_spikes(js.sgd(1.0), window=window, threshold=threshold, warmup=warmup,
                        max_consecutive=max_consecutive)
    update = jax.jit(tx.update)
    state = tx.init(jnp.zeros(2))
    got = []
    for v in values:
        u, state = update(jnp.ones(2), state, value=jnp.float32(v))
        skipped = bool(int(state.skipped))
        assert u.tolist() == ([-0.0] * 2 if skipped else [-1.0] * 2)
        assert np.all(np.signbit(u))  # -0.0 when skipped: p + u keeps every bit of p
        got.append((skipped, int(state.total_skips), int(state.consecutive_skips)))
    assert got == want
    skips = [s for s, _, _ in want]
    if max_consecutive == 2:  # gave up more than once, and skipped again after giving up
        runs = "".join("s" if s else "." for s in skips)
        assert runs.count("ss.ss") >= 1, runs
    assert sum(skips) >= 3 if max_consecutive != 0 else sum(skips) == 0


def test_statistics_hold_accepted_updates_only():
    tx = js.skip_spikes(js.sgd(1.0), window=4, threshold=1.0, warmup=2)
    state = tx.init(jnp.zeros(1))
    update = jax.jit(tx.update)
    for v in [1.0, 2.0, 100.0, 1.5]:
        _, state = update(jnp.ones(1), state, value=jnp.float32(v))
    hist = np.asarray(state.history[:, 0])
    assert sorted(hist[:int(state.accepted)].tolist()) == [1.0, 1.5, 2.0]  # 100 never entered
    assert int(state.total_skips) == 1


def test_skip_spikes_bad_input():
    sgd = js.sgd(0.1)
    cases = [
        (dict(window=1), ValueError, "`skip_spikes(window=...)` must be >= 2, got 1."),
        (dict(window=2.5), TypeError, "`skip_spikes(window=...)` must be an integer"),
        (dict(threshold=0.0), ValueError, "`skip_spikes(threshold=...)` must be > 0, got 0.0."),
        (dict(threshold=float("nan")), ValueError, "`skip_spikes(threshold=...)` must not be NaN"),
        (dict(warmup=1), ValueError, "`skip_spikes(warmup=...)` must be >= 2, got 1."),
        (dict(max_consecutive=-1), ValueError, "`skip_spikes(max_consecutive=...)` must be >= 0"),
        (dict(on="norm"), ValueError, "`skip_spikes(on=...)` must be one of 'loss', 'grad_norm', "
                                      "'both', got 'norm'."),
    ]
    for kwargs, err, msg in cases:
        with pytest.raises(err, match=re.escape(msg)):
            js.skip_spikes(sgd, **kwargs)
    with pytest.raises(TypeError, match=re.escape("`skip_spikes(inner=...)`")):
        js.skip_spikes(lambda g: g)
    for on in ("loss", "both"):
        tx = js.skip_spikes(sgd, on=on)
        with pytest.raises(TypeError, match=r"keyword argument `value`"):
            tx.update(jnp.ones(2), tx.init(jnp.zeros(2)))
        with pytest.raises(ValueError, match=re.escape(
                "`skip_spikes(...).update(value=...)` must be a scalar loss, got shape (2,).")):
            tx.update(jnp.ones(2), tx.init(jnp.zeros(2)), value=jnp.ones(2))
    tx = js.skip_spikes(sgd, on="grad_norm")
    tx.update(jnp.ones(2), tx.init(jnp.zeros(2)))  # no loss needed


@pytest.mark.parametrize("average", [lambda: js.ema_params(0.9),
                                     lambda: js.swa(start=2)], ids=["ema_params", "swa"])
def test_an_average_inside_skip_spikes_is_as_if_the_spike_never_happened(average):
    make = lambda: js.chain(js.adamw(js.cosine_decay(1e-2, 30), weight_decay=0.1), average())
    opt = js.skip_spikes(make(), on="both", window=6, threshold=6.0, warmup=4)
    xs, ys = _data(12)
    spike_at = 8
    scales = [1.0] * 13
    scales[spike_at] = 1e3
    with_spike = (jnp.concatenate([xs[:spike_at + 1], xs[spike_at:]]),
                  jnp.concatenate([ys[:spike_at + 1], ys[spike_at:]]))
    p_spike, s_spike = _run(opt, *with_spike, scales=scales)
    p_clean, s_clean = _run(opt, xs, ys)
    assert int(s_spike.total_skips) == 1
    _bitwise_equal((p_spike, s_spike.inner_state), (p_clean, s_clean.inner_state))
    # No spike: bitwise the unwrapped chain, its average included.
    p_u, s_u = _run(make(), xs, ys)
    _bitwise_equal((p_clean, s_clean.inner_state), (p_u, s_u))
    assert not np.array_equal(np.asarray(js.averaged_params(s_u)["w"]), np.asarray(p_u["w"]))


@pytest.mark.parametrize("wrap", [lambda tx: js.skip_spikes(tx, on="both"), js.skip_nonfinite],
                         ids=["skip_spikes", "skip_nonfinite"])
def test_ema_inside_a_skipping_wrapper_reads_the_updated_parameters_without_copying_them(wrap):
    """The average's `params + updates` is the train step's own sum (see
    `_spikes.applied_updates`), so XLA adds once and copies no parameter."""
    opt = wrap(js.chain(js.adamw(1e-3), js.ema_params(0.99)))
    entry = compiled_step_entry(opt, {"w": jnp.ones((64, 32)), "b": jnp.ones(32)},
                                value=jnp.float32(1.0))
    # The parameters are the first two leaves of the arguments: entry parameters 0 and 1.
    names = re.findall(r"%(\S+) = f32\[[0-9,]*\]\S* parameter\([01]\)", entry)
    assert len(names) == 2, names
    for name in names:
        assert f"copy(%{name})" not in entry, name


def test_skip_spikes_vmaps_over_threshold_and_state_is_stable():
    def run(threshold):
        tx = js.skip_spikes(js.sgd(1.0), window=4, threshold=threshold, warmup=2)
        state = tx.init(jnp.zeros(1))
        for v in [1.0, 1.2, 0.8, 1.0, 1.5]:
            _, new = tx.update(jnp.ones(1), state, value=v)
            jax.lax.cond(True, lambda: new, lambda: state)  # structure and dtypes stable
            state = new
        return state.total_skips

    skips = jax.jit(jax.vmap(run))(jnp.array([0.5, 10.0], jnp.float32))
    assert skips.tolist() == [1, 0]


# ------------------------------------------------------------------ accumulate

def test_accumulate_equals_the_large_batch_update_and_counts_optimizer_updates():
    k, updates = 4, 5
    schedule = js.warmup(js.cosine_decay(5e-2, 10), 2)
    xs, ys = _data(k * updates, batch=4, seed=7)
    acc = js.accumulate(js.adamw(schedule, weight_decay=0.1), every=k)
    big = js.adamw(schedule, weight_decay=0.1)
    acc_step, big_step = _stepper(acc), _stepper(big)
    p_a, s_a = _params(), acc.init(_params())
    p_b, s_b = _params(), big.init(_params())
    phases = []
    for j in range(updates):
        for i in range(k):
            before = p_a
            p_a, s_a = acc_step(p_a, s_a, xs[j * k + i], ys[j * k + i], jnp.float32(1.0))
            phases.append(int(js.measurements(s_a)["micro_step"]))
            if i < k - 1:
                _bitwise_equal(p_a, before)  # mid-steps leave every bit in place
        x_big = xs[j * k:(j + 1) * k].reshape(-1, 3)
        y_big = ys[j * k:(j + 1) * k].reshape(-1, 2)
        p_b, s_b = big_step(p_b, s_b, x_big, y_big, jnp.float32(1.0))
        for name in p_b:
            np.testing.assert_allclose(p_a[name], p_b[name], rtol=1e-6, atol=1e-7)
        # the schedule value at optimizer update j is schedule(j)
        assert float(js.hyperparams(s_a, "learning_rate")) == float(schedule(j))
        assert int(s_a.inner_state[0].count) == j + 1
    assert phases == [1, 2, 3, 0] * updates


@pytest.mark.parametrize("inner", ["js", "optax"])
def test_accumulate_equals_optax_multisteps(inner):
    k = 3
    make = ((lambda: js.adam(js.cosine_decay(1e-2, 10))) if inner == "js"
            else (lambda: optax.adam(optax.cosine_decay_schedule(1e-2, 10))))
    ours, theirs = js.accumulate(make(), every=k), optax.MultiSteps(make(), every_k_schedule=k)
    xs, ys = _data(10, seed=2)
    s_o, s_t = ours.init(_params()), theirs.init(_params())
    p_o = p_t = _params()
    grad = jax.jit(jax.grad(_loss))
    ours_update, theirs_update = jax.jit(ours.update), jax.jit(theirs.update)
    for i in range(len(xs)):
        u_o, s_o = ours_update(grad(p_o, xs[i], ys[i]), s_o, p_o)
        u_t, s_t = theirs_update(grad(p_t, xs[i], ys[i]), s_t, p_t)
        for name in u_t:
            np.testing.assert_allclose(u_o[name], u_t[name], rtol=1e-6, atol=1e-9)
        p_o, p_t = optax.apply_updates(p_o, u_o), optax.apply_updates(p_t, u_t)
        assert int(s_o.micro_step) == int(s_t.mini_step)


def test_accumulated_grad_equals_the_concatenated_batch_with_tree_and_flat_params():
    xs, ys = _data(4, batch=5, seed=9)
    loss_fn = lambda p, batch: _loss(p, *batch)  # noqa: E731
    loss, grads = jax.jit(lambda p: js.accumulated_grad(loss_fn, p, (xs, ys)))(_params())
    big_loss, big = jax.value_and_grad(_loss)(_params(), xs.reshape(-1, 3), ys.reshape(-1, 2))
    np.testing.assert_allclose(loss, big_loss, rtol=1e-6)
    for name in big:
        np.testing.assert_allclose(grads[name], big[name], rtol=1e-6, atol=1e-8)
    flat = js.flat_params(_params())
    (loss_f, aux), g_flat = js.accumulated_grad(
        lambda p, b: (_loss(p.unflatten(), *b), b[0].sum()), flat, (xs, ys), has_aux=True)
    assert aux.shape == (4,)
    for name in big:
        np.testing.assert_allclose(g_flat.unflatten()[name], big[name], rtol=1e-6, atol=1e-8)
    # with flat parameters the accumulation buffer is one array
    state = js.accumulate(js.adam(1e-3), every=4).init(flat)
    assert len(jax.tree.leaves(state.grad_sum)) == 1
    with pytest.raises(ValueError, match=re.escape("`accumulated_grad(batches=...)`")):
        js.accumulated_grad(loss_fn, _params(), (xs, ys[:2]))


def test_accumulate_averages_value_and_vmaps():
    def spy_update(updates, state, params=None, *, value=None, **kw):
        return updates, jnp.asarray(value, jnp.float32)  # remembers the value it was given

    spy = optax.GradientTransformationExtraArgs(lambda p: jnp.zeros([]), spy_update)
    tx = js.accumulate(spy, every=2)
    state = tx.init(jnp.zeros(1))
    for v in [1.0, 3.0]:
        _, state = tx.update(jnp.ones(1), state, value=v)
    assert float(state.inner_state) == 2.0  # the mean of the micro-steps' losses

    opt = js.accumulate(js.sgd(0.5), every=2)

    def run(g):
        s = opt.init(jnp.zeros(2))
        u1, s = opt.update(g, s)
        u2, s = opt.update(2 * g, s)
        return u1, u2

    u1, u2 = jax.jit(jax.vmap(run))(jnp.array([[1.0, 2.0], [4.0, 0.0]]))
    assert u1.tolist() == [[-0.0, -0.0], [-0.0, -0.0]] and u2.tolist() == [[-0.75, -1.5],
                                                                            [-3.0, 0.0]]


def test_accumulate_bad_input():
    with pytest.raises(ValueError, match=re.escape("`accumulate(every=...)` must be >= 1, got 0.")):
        js.accumulate(js.sgd(0.1), every=0)
    with pytest.raises(TypeError, match=re.escape("`accumulate(every=...)` must be an integer")):
        js.accumulate(js.sgd(0.1), every=2.0)
    tx = js.accumulate(js.sgd(0.1), every=2)
    with pytest.raises(ValueError, match=r"`accumulate`: the tree passed to update"):
        tx.update({"a": jnp.ones(1)}, tx.init({"b": jnp.ones(1)}))
    with pytest.raises(ValueError, match=r"must be a scalar"):
        tx.update(jnp.ones(1), tx.init(jnp.ones(1)), value=jnp.ones(3))


# ------------------------------------------------------------------ ema_params / swa

def test_ema_params_matches_keras_use_ema():
    """Keras 3 (JAX backend): SGD(use_ema=True, ema_momentum) after each `apply`."""
    import os
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras  # the `test` extra installs it; nothing else in the suite imports it
    assert keras.backend.backend() == "jax", keras.backend.backend()
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(5).astype(np.float32)
    grads = rng.standard_normal((8, 5)).astype(np.float32)
    var = keras.Variable(p0)
    kopt = keras.optimizers.SGD(learning_rate=0.1, use_ema=True, ema_momentum=0.9)
    kopt.build([var])
    opt = js.chain(js.sgd(0.1), js.ema_params(0.9))
    params = jnp.asarray(p0)
    state = opt.init(params)
    for g in grads:
        kopt.apply([keras.ops.convert_to_tensor(g)], [var])
        u, state = opt.update(jnp.asarray(g), state, params)
        params = optax.apply_updates(params, u)
        np.testing.assert_allclose(params, np.asarray(var.value), rtol=1e-6)
        np.testing.assert_allclose(js.averaged_params(state),
                                   np.asarray(kopt._model_variables_moving_average[0].value),
                                   rtol=1e-6)


def test_ema_warmup_and_schedule_decay_and_bfloat16():
    opt = js.chain(js.sgd(1.0), js.ema_params(js.piecewise_constant([2], [0.5, 0.0]), warmup=1))
    params = jnp.zeros(1)
    state = opt.init(params)
    averages = []
    for _ in range(4):
        u, state = opt.update(jnp.ones(1), state, params)
        params = optax.apply_updates(params, u)
        averages.append(float(js.averaged_params(state)[0]))
    # updates 1, 2 copy (warmup=1); update 3 uses decay(2) = 0.5; update 4 decay(3) = 0
    assert averages == [-1.0, -2.0, -2.5, -4.0]
    bf = js.chain(js.sgd(0.1), js.ema_params(0.9)).init({"w": jnp.ones(3, jnp.bfloat16)})
    assert js.averaged_params(bf)["w"].dtype == jnp.float32


def test_averaging_bad_input():
    for kwargs, err, msg in [
            (dict(decay=1.5), ValueError, "`ema_params(decay=...)` must be <= 1, got 1.5."),
            (dict(decay=-0.1), ValueError, "`ema_params(decay=...)` must be >= 0"),
            (dict(warmup=-1), ValueError, "`ema_params(warmup=...)` must be >= 0, got -1."),
            (dict(decay="x"), TypeError, "`ema_params(decay=...)` must be a number")]:
        with pytest.raises(err, match=re.escape(msg)):
            js.ema_params(**kwargs)
    with pytest.raises(ValueError, match=re.escape("`swa(start=...)` must be >= 0, got -1.")):
        js.swa(start=-1)
    with pytest.raises(ValueError, match=re.escape("`swa(every=...)` must be >= 1, got 0.")):
        js.swa(start=0, every=0)
    with pytest.raises(ValueError, match=re.escape("`swa_lr(strategy=...)` must be one of")):
        js.swa_lr(0.1, 0.05, start=3, strategy="cosine")
    with pytest.raises(ValueError, match=re.escape("`swa_lr(swa_lr=...)` must be >= 0")):
        js.swa_lr(0.1, -0.05, start=3)
    with pytest.raises(ValueError, match=re.escape("`swa_lr(anneal_steps=...)` must be >= 0")):
        js.swa_lr(0.1, 0.05, start=3, anneal_steps=-2)
    tx = js.ema_params(0.9)
    with pytest.raises(ValueError, match=r"`ema_params` needs the parameters"):
        tx.update(jnp.ones(1), tx.init(jnp.ones(1)))
    both = js.chain(js.sgd(0.1), js.ema_params(0.9), js.swa(start=2)).init(jnp.ones(1))
    with pytest.raises(ValueError, match=r"several averages \(ema_params, swa\)"):
        js.averaged_params(both)
    assert js.averaged_params(both, which="swa").tolist() == [1.0]
    with pytest.raises(ValueError, match=r"holds no `ema_params` or `swa` state"):
        js.averaged_params(js.sgd(0.1).init(jnp.ones(1)))


def test_swa_lr_is_a_schedule_that_round_trips():
    s = js.swa_lr(js.cosine_decay(0.1, 100), 0.02, start=30, anneal_steps=5)
    assert js.schedule_from_config(s.to_config()) == s
    vals = jax.jit(jax.vmap(s))(jnp.arange(0, 60))
    assert np.all(np.isfinite(vals)) and float(vals[-1]) == pytest.approx(0.02)


# ------------------------------------------------------------------ monitor / log_values

def test_log_values_holds_every_value_for_the_last_update():
    opt = js.monitor(js.accumulate(js.skip_spikes(js.chain(
        js.clip_by_global_norm(0.5), js.adamw(js.cosine_decay(1e-2, 10)), js.ema_params(0.9)),
        on="both", window=4, warmup=2), every=2), update_ratio=True)
    xs, ys = _data(4)
    params = _params()
    state = opt.init(params)

    @jax.jit
    def step(params, state, x, y):
        loss, grads = jax.value_and_grad(_loss)(params, x, y)
        updates, state = opt.update(grads, state, params, value=loss)
        return optax.apply_updates(params, updates), state, js.log_values(state), grads, updates

    for i in range(4):
        before = params
        params, state, logs, grads, updates = step(params, state, xs[i], ys[i])
    expected = {"learning_rate", "b1", "b2", "eps", "eps_root", "weight_decay", "max_norm",
                "decay", "global_norm", "clipped_global_norm", "total_skips",
                "consecutive_skips", "skipped", "micro_step", "grad_norm", "update_norm",
                "param_norm", "update_ratio"}
    assert set(logs) == expected
    assert all(isinstance(v, jax.Array) and v.shape == () for v in logs.values())
    assert int(logs["micro_step"]) == 0 and int(logs["total_skips"]) == 0
    assert float(logs["learning_rate"]) == pytest.approx(float(js.cosine_decay(1e-2, 10)(1)))
    norm = lambda t: float(np.sqrt(sum(np.sum(np.square(x)) for x in jax.tree.leaves(t))))  # noqa
    np.testing.assert_allclose(logs["grad_norm"], norm(grads), rtol=1e-6)
    np.testing.assert_allclose(logs["update_norm"], norm(updates), rtol=1e-6)
    np.testing.assert_allclose(logs["update_ratio"], norm(updates) / norm(before), rtol=1e-6)
    # the norm after clipping is the norm of what clip_by_global_norm returns
    mean_grads = logs["global_norm"]
    assert float(mean_grads) > 0.5
    np.testing.assert_allclose(logs["clipped_global_norm"], 0.5, rtol=1e-6)
    # without update_ratio nothing is reported for it
    plain = js.monitor(js.sgd(0.1))
    _, s = plain.update(jnp.ones(2), plain.init(jnp.ones(2)), jnp.ones(2))
    assert set(js.measurements(s)) == {"grad_norm", "update_norm"}


def test_clipped_global_norm_below_the_bound_is_the_global_norm():
    opt = js.chain(js.clip_by_global_norm(10.0), js.sgd(0.1))
    _, state = opt.update(jnp.array([3.0, 4.0]), opt.init(jnp.zeros(2)))
    logs = js.log_values(state)
    assert float(logs["global_norm"]) == float(logs["clipped_global_norm"]) == 5.0


# ------------------------------------------------------------------ 8 devices

EIGHT_DEVICES = r'''
import jax, jax.numpy as jnp, numpy as np, optax, jaxsched as js
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
assert len(jax.devices()) == 8
mesh = Mesh(np.array(jax.devices()), ("x",))
rows = NamedSharding(mesh, P("x"))
rep = NamedSharding(mesh, P())
opt = js.monitor(js.accumulate(js.skip_spikes(js.chain(
    js.clip_by_global_norm(1.0), js.adamw(js.cosine_decay(1e-2, 20)), js.ema_params(0.9),
    js.swa(start=2)), on="both", window=4, warmup=2), every=2), update_ratio=True)
rng = np.random.default_rng(0)
params = {"w": jnp.asarray(rng.standard_normal((16, 4)), jnp.float32)}
xs = jnp.asarray(rng.standard_normal((6, 32, 16)), jnp.float32)

def loss_fn(p, x):
    return jnp.mean(jnp.tanh(x @ p["w"]) ** 2)

def step(params, state, x):
    loss, grads = jax.value_and_grad(loss_fn)(params, x)
    u, state = opt.update(grads, state, params, value=loss)
    return optax.apply_updates(params, u), state, js.log_values(state)

def run(params, step, init):
    state = init(params)
    for x in xs:
        params, state, logs = step(params, state, x)
    return params, state, logs

p1, s1, l1 = run(params, jax.jit(step), jax.jit(opt.init))
sharded = jax.device_put(params, {"w": rows})
state_sharding = jax.tree.map(lambda _: rep, jax.eval_shape(opt.init, params))
# every buffer like the parameters is sharded like them
shard_like = lambda st: jax.tree.map(lambda x: rows if x.shape == (16, 4) else rep, st)
state_sharding = shard_like(jax.eval_shape(opt.init, params))
init = jax.jit(opt.init, out_shardings=state_sharding)
step8 = jax.jit(step, in_shardings=({"w": rows}, state_sharding, rep),
                out_shardings=({"w": rows}, state_sharding, rep))
p8, s8, l8 = run(sharded, step8, init)
chain = s8.inner_state.inner_state.inner_state
for buf in (s8.inner_state.grad_sum["w"], chain[1][0].mu["w"], chain[2].average["w"],
            chain[3].average["w"]):
    assert buf.sharding.is_equivalent_to(p8["w"].sharding, 2), buf.sharding
np.testing.assert_allclose(p8["w"], p1["w"], rtol=2e-5, atol=1e-6)
np.testing.assert_allclose(js.averaged_params(s8, "swa")["w"], js.averaged_params(s1, "swa")["w"],
                           rtol=2e-5, atol=1e-6)
for k in l1:
    np.testing.assert_allclose(l8[k], l1[k], rtol=2e-5, atol=1e-7, err_msg=k)
assert int(l8["micro_step"]) == 0 and int(chain[1][0].count) == 3
print("OK")
'''


def test_companions_on_eight_devices_shard_their_state_like_the_params():
    run_on_eight_cpu_devices(EIGHT_DEVICES)


def test_states_can_be_donated_with_the_params():
    """No two leaves of params + state share a buffer, so `donate_argnums=(0, 1)` works."""
    opt = js.monitor(js.accumulate(js.skip_spikes(js.chain(
        js.adamw(1e-2), js.ema_params(0.9), js.swa(start=1)), on="both"), every=2),
        update_ratio=True)

    @jax.jit
    def make(p):
        return opt.init(p)

    step = jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(
        *opt.update(g, s, p, value=jnp.sum(g))), donate_argnums=(0, 1))
    for init in (opt.init, make):
        params = jnp.ones(4)
        state = init(params)
        for _ in range(3):
            params, state = step(params, state, jnp.full(4, 0.5))
        assert np.all(np.isfinite(params))


def test_ema_decay_and_accumulation_sweep_under_vmap():
    def run(decay):
        opt = js.accumulate(js.chain(js.sgd(1.0), js.ema_params(decay)), every=2)
        params = jnp.zeros(1)
        state = opt.init(params)
        for g in (1.0, 1.0, 2.0, 2.0):
            u, state = opt.update(jnp.full(1, g), state, params)
            params = optax.apply_updates(params, u)
        return js.averaged_params(state)[0]

    # updates: p = -1 (copied), then p = -3: average = decay * -1 + (1 - decay) * -3
    got = jax.jit(jax.vmap(run))(jnp.array([0.0, 0.5, 1.0], jnp.float32))
    np.testing.assert_allclose(got, [-3.0, -2.0, -1.0], rtol=1e-6)


def test_companions_benchmark_reports_every_side(tmp_path):
    """benchmarks/companions.py runs (a tiny MLP) and reports memory, bytes and ratios."""
    import json
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from benchmarks import companions

    out = tmp_path / "companions.json"
    result = companions.main(["--model", "mlp", "--hidden", "8", "--layers", "1", "--batch",
                              "4", "--k", "2", "--steps", "2", "--rounds", "1", "--out",
                              str(out)])
    sides = {"plain", "accumulate", "multisteps", "accumulated_grad_scan", "skip_spikes",
             "ema_params", "monitor_ratio"}
    assert set(result["memory"]) == sides == set(json.loads(out.read_text())["ratio_to_plain"])
    for name, m in result["memory"].items():
        assert m["peak_bytes"] > 0 and m["bytes_accessed_xla"] > 0, name
        assert result["seconds_per_micro_step"][name]["cpu_median"] >= 0, name
    assert result["ratio_to_plain"]["plain"] == 1.0
    assert result["memory_ratio_to_multisteps"]["multisteps"] == 1.0
