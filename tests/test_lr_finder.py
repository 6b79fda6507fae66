"""The learning-rate range test on a least-squares problem with a known good range.

`loss(w) = mean((X w - y)^2)` with `X^T X / n = diag(0.5 .. 1)` has the Hessian
`2 X^T X / n`, largest eigenvalue L = 2, so gradient descent is stable (the
loss never rises) exactly for lr < 2 / L = 1, and makes no progress in 100
steps below about 1e-3. A range test must therefore suggest a rate in
[1e-3, 1) and cannot detect divergence before lr = 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
import pytest

import jaxsched as js

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

N, D, STEPS = 64, 8, 100
STABLE_LIMIT = 1.0  # 2 / largest Hessian eigenvalue


def _problem():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(N, D)))
    x = q * np.sqrt(N) * np.sqrt(np.linspace(0.5, 1.0, D))
    y = x @ rng.normal(size=D) + 0.01 * rng.normal(size=N)
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)


X, Y = _problem()
BATCHES = (jnp.broadcast_to(X, (STEPS, N, D)), jnp.broadcast_to(Y, (STEPS, N)))


def loss_fn(w, batch):
    x, y = batch
    return jnp.mean((x @ w - y) ** 2)


def _run(factory, **kw):
    kw = {"min_lr": 1e-4, "max_lr": 10.0, "num_steps": STEPS, **kw}
    return js.lr_finder(loss_fn, jnp.zeros(D), factory, BATCHES, **kw)


def test_hessian_bound_of_the_problem():
    eig = np.linalg.eigvalsh(2 * np.asarray(X).T @ np.asarray(X) / N)
    assert eig.max() == pytest.approx(2.0, rel=1e-4)


@pytest.mark.parametrize("smoothing", [0.98, 0.0])
@pytest.mark.parametrize("factory", [optax.sgd, js.sgd], ids=["optax.sgd", "js.sgd"])
def test_sgd_suggestion_in_known_good_range(factory, smoothing):
    r = _run(factory, smoothing=smoothing)
    assert isinstance(r, js.LRFinderResult)
    assert 1e-3 <= r.suggestion < STABLE_LIMIT
    # Divergence is found, and never where gradient descent is still stable.
    assert r.num_valid < STEPS
    assert r.learning_rates[r.num_valid] > STABLE_LIMIT
    # The suggestion is a rate that was tried before divergence.
    assert r.suggestion in r.learning_rates[:r.num_valid].tolist()


def test_both_sgd_implementations_agree():
    a, b = _run(optax.sgd), _run(js.sgd)
    assert a.num_valid == b.num_valid
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-5, equal_nan=True)


def test_momentum_shifts_the_suggestion_down():
    # Heavy ball with momentum 0.9 takes ~10x larger effective steps.
    plain = _run(optax.sgd)
    heavy = _run(lambda lr: optax.sgd(lr, momentum=0.9))
    assert 1e-4 <= heavy.suggestion < plain.suggestion


def test_adam_and_jaxsched_optimizer_with_state():
    r = _run(lambda lr: js.adam(lr))
    assert 1e-3 <= r.suggestion <= 1.0
    assert np.isfinite(r.losses[:r.num_valid]).all()


def test_result_arrays_and_masking():
    r = _run(optax.sgd)
    lrs = r.learning_rates
    assert lrs.shape == r.losses.shape == r.raw_losses.shape == (STEPS,)
    assert lrs[0] == 1e-4 and lrs[-1] == 10.0
    np.testing.assert_allclose(np.diff(np.log(lrs)), np.log(1e5) / (STEPS - 1), rtol=1e-9)
    valid = slice(0, r.num_valid)
    assert np.isfinite(r.losses[valid]).all() and np.isfinite(r.raw_losses[valid]).all()
    assert np.isnan(r.losses[r.num_valid:]).all() and np.isnan(r.raw_losses[r.num_valid:]).all()
    # First raw loss is the loss at the initial parameters.
    assert r.raw_losses[0] == pytest.approx(float(loss_fn(jnp.zeros(D), (X, Y))), rel=1e-6)
    # Smoothed loss: bias-corrected exponential moving average of the raw losses.
    beta, avg = 0.98, 0.0
    expected = []
    for k, loss in enumerate(r.raw_losses[valid]):
        avg = beta * avg + (1 - beta) * loss
        expected.append(avg / (1 - beta ** (k + 1)))
    np.testing.assert_allclose(r.losses[valid], expected, rtol=1e-4)
    # Before divergence the smoothed loss never exceeded 4x its best value.
    best = np.minimum.accumulate(r.losses[valid])
    assert (r.losses[valid] <= 4 * best).all()


def test_no_smoothing_means_smoothed_equals_raw():
    r = _run(optax.sgd, smoothing=0.0)
    np.testing.assert_allclose(r.losses[:r.num_valid], r.raw_losses[:r.num_valid], rtol=1e-6)


def test_callable_batches_match_stacked_batches():
    calls = []

    def get(step):
        calls.append(step)
        return X + 0 * step, Y
    a = js.lr_finder(loss_fn, jnp.zeros(D), optax.sgd, get, 1e-4, 10.0, STEPS)
    b = _run(optax.sgd)
    assert a.num_valid == b.num_valid
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-5, equal_nan=True)
    # Traced inside one scan, not called once per step from Python.
    assert len(calls) <= 2 and all(isinstance(c, jax.core.Tracer) for c in calls)


def test_loss_fn_is_traced_not_called_per_step():
    calls = []

    def counting_loss(w, batch):
        calls.append(1)
        return loss_fn(w, batch)
    js.lr_finder(counting_loss, jnp.zeros(D), optax.sgd, BATCHES, 1e-4, 10.0, STEPS)
    assert len(calls) <= 2


def test_pytree_params():
    def loss(p, batch):
        x, y = batch
        return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)
    r = js.lr_finder(loss, {"w": jnp.zeros(D), "b": jnp.zeros(())}, optax.sgd, BATCHES,
                     1e-4, 10.0, STEPS)
    assert 1e-3 <= r.suggestion < STABLE_LIMIT


def test_nan_from_the_start_gives_no_valid_points():
    r = js.lr_finder(lambda w, b: jnp.nan * jnp.sum(w), jnp.zeros(2), optax.sgd,
                     jnp.zeros((10, 1)), num_steps=10)
    assert r.num_valid == 0
    assert np.isnan(r.suggestion) and np.isnan(r.losses).all()


@pytest.mark.parametrize("kwargs, error, message", [
    ({"min_lr": 0.0}, ValueError, "`lr_finder(min_lr=...)` must be > 0, got 0.0."),
    ({"min_lr": 1.0, "max_lr": 0.5}, ValueError, "`lr_finder(max_lr=...)` must be > min_lr"),
    ({"num_steps": 1}, ValueError, "`lr_finder(num_steps=...)` must be >= 2, got 1."),
    ({"num_steps": 10.0}, TypeError, "`lr_finder(num_steps=...)` must be an integer"),
    ({"smoothing": 1.0}, ValueError, "`lr_finder(smoothing=...)` must be < 1, got 1.0."),
    ({"diverge_factor": 1.0}, ValueError, "`lr_finder(diverge_factor=...)` must be > 1"),
    ({"num_steps": 200}, ValueError, "leading axis of at least num_steps = 200"),
    # extremes: beyond float32 / int32
    ({"min_lr": 1e-50}, ValueError, "`lr_finder(min_lr=...)` must be >= 1.17549e-38"),
    ({"max_lr": 1e39}, ValueError, "`lr_finder(max_lr=...)` must be <= 3.40282e+38"),
    ({"diverge_factor": 1e300}, ValueError, "`lr_finder(diverge_factor=...)` must be <= 3.4"),
    ({"num_steps": 2**40}, ValueError, "`lr_finder(num_steps=...)` must be <= 2147483647"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error) as info:
        js.lr_finder(loss_fn, jnp.zeros(D), optax.sgd, BATCHES, **kwargs)
    assert message in str(info.value)


def test_plot_helper():
    r = _run(optax.sgd)
    fig = r.plot()
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "learning rate (log scale)"
    labels = [l.get_label() for l in ax.get_lines()]
    assert labels[0] == "smoothed loss" and labels[1].startswith("suggestion ")
    assert len(ax.get_lines()[0].get_xdata()) == r.num_valid
    fig2, ax2 = plt.subplots()
    assert js.plot_lr_finder(r, ax2, show_raw=True) is fig2
    assert [l.get_label() for l in ax2.get_lines()][:2] == ["raw loss", "smoothed loss"]
    plt.close("all")


# The divergence rule for a loss of either sign: the same problem with the loss
# shifted by a constant keeps its known good range and its divergence point
# (the smoothed loss is shifted by the same constant; the rule scales with |best|).
@pytest.mark.parametrize("shift", [-1e4, -1.0, 1e4])
def test_divergence_rule_for_shifted_losses(shift):
    shifted = lambda w, batch: loss_fn(w, batch) + shift  # noqa: E731
    r = js.lr_finder(shifted, jnp.zeros(D), optax.sgd, BATCHES, min_lr=1e-4, max_lr=10.0,
                     num_steps=STEPS)
    assert r.num_valid >= 10  # never at the first steps
    assert r.num_valid < STEPS  # and still found
    assert r.learning_rates[r.num_valid] > STABLE_LIMIT  # never while stable
    assert 1e-3 <= r.suggestion < STABLE_LIMIT
    # the recorded losses are the shifted ones
    np.testing.assert_allclose(r.raw_losses[0], float(loss_fn(jnp.zeros(D), (X, Y))) + shift,
                               rtol=1e-6)


def test_negative_loss_is_not_divergence():
    # A loss that decreases steadily below zero never diverges.
    r = js.lr_finder(lambda w, b: -jnp.sum(w) * b, jnp.zeros(()), optax.sgd,
                     jnp.ones((30,)), min_lr=1e-3, max_lr=1e-2, num_steps=30)
    assert r.num_valid == 30
    assert (np.diff(r.raw_losses) < 0).all()
