"""Elementwise optimizers against their reference implementations, float64, 200+ steps.

PyTorch 2.13 (`NAdam` in both weight-decay modes, `RAdam` in both, `Adamax`,
`RMSprop` as `js.rmsprop(eps_in_sqrt=False)`, centered with momentum too,
`Adam(amsgrad=True)` as `js.amsgrad` and as `js.adam(amsgrad=True)`,
`AdamW(amsgrad=True)` as `js.adamw(amsgrad=True)`), the `schedulefree` package (`AdamWScheduleFree`,
`SGDScheduleFree`: train and eval parameters) and the `prodigyopt`
package (`Prodigy`), each driven step by step on the same small model
(tests/optim_parity.py) with a schedule on the learning rate and on one
other hyperparameter, the reference's param group set from the same
schedules before every step. Trajectories equal at rtol 1e-10.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any, Callable, NamedTuple

import jax
import pytest

import jaxsched as js

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import optim_parity as op  # noqa: E402

torch = pytest.importorskip("torch")

STEPS = 220
RTOL = 1e-10


def f(schedule, k):
    return float(schedule(k))


# Schedules shared by the cases: a warmup from 0 (update 0 uses lr(0) = 0) into
# a cosine decay, and decays on the second hyperparameter.
LR = js.warmup(js.cosine_decay(0.02, STEPS, alpha=0.1), 10)
# Prodigy's learning rate multiplies its estimate d: 1.0 is its default. With
# d unbounded (growth_rate=inf) this model's trajectory is chaotic above about
# 0.2 (float64 rounding grows past 1e-10 within 200 updates), so that case
# uses 0.1; the bounded-growth case uses 1.0.
LR_UNIT = js.warmup(js.cosine_decay(0.1, STEPS, alpha=0.1), 10)
LR_PRODIGY = js.warmup(js.cosine_decay(1.0, STEPS, alpha=0.1), 10)
B1 = js.polynomial_decay(0.95, STEPS, 0.8)
B2 = js.polynomial_decay(0.99, STEPS, 0.9)
WD = js.cosine_decay(0.05, STEPS)
MD = js.polynomial_decay(4e-3, STEPS, 1e-2)


class Case(NamedTuple):
    ours: Callable[[], Any]
    theirs: Callable[[list], Any]
    set_group: Callable[[dict, int], None]
    schedule_free: bool = False


def betas(b1, b2):
    def set_group(group, k):
        group["lr"] = f(LR, k)
        group["betas"] = (b1 if isinstance(b1, float) else f(b1, k),
                          b2 if isinstance(b2, float) else f(b2, k))
    return set_group


def lr_and(name, schedule, lr=LR):
    def set_group(group, k):
        group["lr"] = f(lr, k)
        group[name] = f(schedule, k)
    return set_group


def _adamw_group(b1, wd):
    def set_group(group, k):
        group["lr"] = f(LR, k)
        group["betas"] = (f(b1, k), 0.999)
        group["weight_decay"] = f(wd, k)
    return set_group


def _prodigy_group(b1, b2, lr=LR_UNIT):
    def set_group(group, k):
        group["lr"] = f(lr, k)
        group["betas"] = (b1 if isinstance(b1, float) else f(b1, k),
                          b2 if isinstance(b2, float) else f(b2, k))
    return set_group


def _sf_group(lr, b1, key="betas", b2=0.999):
    def set_group(group, k):
        group["lr"] = f(lr, k)
        if key == "betas":
            group["betas"] = (f(b1, k), b2)
        else:
            group["momentum"] = f(b1, k)
    return set_group


def _cases() -> dict[str, Case]:
    import prodigyopt
    import schedulefree
    optim = torch.optim
    return {
        "nadam_l2": Case(
            lambda: js.nadam(LR, B1, 0.999, 1e-8, weight_decay=0.01),
            lambda p: optim.NAdam(p, lr=0.0, weight_decay=0.01, foreach=False),
            betas(B1, 0.999)),
        "nadam_momentum_decay": Case(
            lambda: js.nadam(LR, momentum_decay=MD),
            lambda p: optim.NAdam(p, lr=0.0, foreach=False),
            lr_and("momentum_decay", MD)),
        "nadamw": Case(
            lambda: js.nadamw(LR, 0.9, 0.999, 1e-8, weight_decay=WD),
            lambda p: optim.NAdam(p, lr=0.0, weight_decay=0.0, decoupled_weight_decay=True,
                                  foreach=False),
            lr_and("weight_decay", WD)),
        "radam_l2": Case(
            lambda: js.radam(LR, 0.9, B2, weight_decay=0.01),
            lambda p: optim.RAdam(p, lr=0.0, weight_decay=0.01, foreach=False),
            betas(0.9, B2)),
        "radam_decoupled": Case(
            lambda: js.radam(LR, weight_decay=WD, decoupled_weight_decay=True),
            lambda p: optim.RAdam(p, lr=0.0, weight_decay=0.0, decoupled_weight_decay=True,
                                  foreach=False),
            lr_and("weight_decay", WD)),
        "adamax": Case(
            lambda: js.adamax(LR, B1, 0.999, 1e-8, weight_decay=0.01),
            lambda p: optim.Adamax(p, lr=0.0, weight_decay=0.01, foreach=False),
            betas(B1, 0.999)),
        "amsgrad": Case(
            lambda: js.amsgrad(LR, 0.9, B2, 1e-8, weight_decay=0.01),
            lambda p: optim.Adam(p, lr=0.0, weight_decay=0.01, amsgrad=True, foreach=False),
            betas(0.9, B2)),
        "amsgrad_wd_schedule": Case(
            lambda: js.amsgrad(LR, weight_decay=WD),
            lambda p: optim.Adam(p, lr=0.0, amsgrad=True, foreach=False),
            lr_and("weight_decay", WD)),
        "adam_amsgrad": Case(
            lambda: js.adam(LR, 0.9, B2, 1e-8, amsgrad=True),
            lambda p: optim.Adam(p, lr=0.0, amsgrad=True, foreach=False),
            betas(0.9, B2)),
        "adam_amsgrad_foreach": Case(
            lambda: js.adam(LR, B1, 0.99, 1e-6, amsgrad=True),
            lambda p: optim.Adam(p, lr=0.0, eps=1e-6, amsgrad=True, foreach=True),
            betas(B1, 0.99)),
        "adamw_amsgrad": Case(
            lambda: js.adamw(LR, B1, 0.999, 1e-8, weight_decay=WD, amsgrad=True),
            lambda p: optim.AdamW(p, lr=0.0, weight_decay=0.0, amsgrad=True, foreach=False),
            _adamw_group(B1, WD)),
        "rmsprop_eps_outside": Case(
            lambda: js.rmsprop(LR, B2, 1e-3, eps_in_sqrt=False),
            lambda p: optim.RMSprop(p, lr=0.0, eps=1e-3, foreach=False),
            lr_and("alpha", B2)),
        # With momentum the forms agree only at a constant rate: jaxsched's buffer
        # (optax's order) holds lr-scaled updates, PyTorch's unscaled ones.
        "rmsprop_centered_momentum": Case(
            lambda: js.rmsprop(0.01, B2, 1e-6, eps_in_sqrt=False, centered=True, momentum=0.9),
            lambda p: optim.RMSprop(p, lr=0.01, eps=1e-6, centered=True, momentum=0.9,
                                    foreach=False),
            lambda group, k: group.update(alpha=f(B2, k))),
        "prodigy": Case(
            lambda: js.prodigy(LR_UNIT, b2=B2, weight_decay=0.01),
            lambda p: prodigyopt.Prodigy(p, lr=1.0, weight_decay=0.01),
            _prodigy_group(0.9, B2)),
        "prodigy_coupled_options": Case(
            lambda: js.prodigy(LR_PRODIGY, b1=B1, b2=0.99, beta3=0.9, weight_decay=0.01,
                               decouple=False, use_bias_correction=True, safeguard_warmup=True,
                               growth_rate=1.1, estim_lr0=1e-4, estim_lr_coef=0.5),
            lambda p: prodigyopt.Prodigy(p, lr=1.0, beta3=0.9, weight_decay=0.01,
                                         decouple=False, use_bias_correction=True,
                                         safeguard_warmup=True, growth_rate=1.1, d0=1e-4,
                                         d_coef=0.5),
            _prodigy_group(B1, 0.99, lr=LR_PRODIGY)),
        "schedule_free_adamw": Case(
            lambda: js.schedule_free_adamw(js.cosine_decay(0.01, STEPS, 0.2), 10, B1, 0.999,
                                           1e-8, weight_decay=0.01, r=0.5),
            lambda p: schedulefree.AdamWScheduleFree(p, lr=0.0, warmup_steps=10,
                                                     weight_decay=0.01, r=0.5, foreach=False),
            _sf_group(js.cosine_decay(0.01, STEPS, 0.2), B1), True),
        "schedule_free_sgd": Case(
            lambda: js.schedule_free_sgd(LR, 5, B1, weight_decay=0.001, weight_lr_power=1.5,
                                         r=1.0),
            lambda p: schedulefree.SGDScheduleFree(p, lr=0.0, momentum=0.9, warmup_steps=5,
                                                   weight_decay=0.001, weight_lr_power=1.5,
                                                   r=1.0, foreach=False),
            _sf_group(LR, B1, key="momentum"), True),
    }


CASES = _cases()


def test_x64_is_on():
    assert jax.config.jax_enable_x64


@pytest.mark.parametrize("name", CASES)
def test_trajectory_equals_reference(name):
    case = CASES[name]
    theirs = op.run_torch(case.theirs, case.set_group, STEPS,
                          schedule_free=case.schedule_free)
    if case.schedule_free:
        ours, ours_eval = op.run_jax(case.ours(), STEPS, eval_fn=js.schedule_free_eval_params)
        theirs, theirs_eval = theirs
        op.assert_trajectories_close(ours_eval, theirs_eval, RTOL)
    else:
        ours = op.run_jax(case.ours(), STEPS)
    op.assert_trajectories_close(ours, theirs, RTOL)
    assert op.moved(theirs) > 0.02, "the run barely moved the parameters"


@pytest.mark.parametrize("name", ["prodigy", "prodigy_coupled_options"])
def test_prodigy_with_every_array_ordered_equals_the_reference(name, monkeypatch):
    """Arrays of `ORDERED_SIZE` elements or more update their moments after
    their sum of |s| (an ordering for XLA's schedule); with the threshold at 1
    every array of the small model takes that path, and still follows prodigyopt."""
    from jaxsched import _prodigy
    monkeypatch.setattr(_prodigy, "ORDERED_SIZE", 1)
    case = CASES[name]
    theirs = op.run_torch(case.theirs, case.set_group, STEPS)
    op.assert_trajectories_close(op.run_jax(case.ours(), STEPS), theirs, RTOL)


def test_prodigy_skips_a_zero_learning_rate_update_as_the_reference():
    """LR_UNIT(0) = 0: the first update moves nothing and takes no step."""
    opt = js.prodigy(LR_UNIT)
    _, _, p0 = op.data()
    p = {k: jax.numpy.asarray(v) for k, v in p0.items()}
    state = opt.init(p)
    g = jax.grad(op.jax_loss)(p, *op.data()[:2])
    update = jax.jit(opt.update)
    u, state = update(g, state, p)
    assert all(float(abs(x).max()) == 0.0 for x in jax.tree.leaves(u))
    assert int(js.measurements(state)["steps"]) == 0
    u, state = update(g, state, p)
    assert int(js.measurements(state)["steps"]) == 1
    assert any(float(abs(x).max()) > 0.0 for x in jax.tree.leaves(u))
