"""`ema_params`, `swa` and `swa_lr` against PyTorch's `torch.optim.swa_utils`, float64.

PyTorch is driven step by step as its documentation writes the training loop
(`optimizer.step()`, then `AveragedModel.update_parameters(model)`, then the
scheduler); jaxsched runs the same loop as one optimizer chain. Parameters,
learning rates and averages agree at every step to rtol 1e-12.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from torch.optim import swa_utils

import jaxsched as js

RTOL = 1e-12
assert jax.config.read("jax_enable_x64")


def _problem(seed=0, n=16):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3)), rng.standard_normal((n, 2)), rng.standard_normal((3, 2))


def _torch_model(w0):
    model = torch.nn.Linear(3, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor(w0.T))
    return model


def _loss_jax(w, x, y):
    return jnp.mean(jnp.square(jnp.tanh(x @ w) - y))


def _torch_step(model, opt, x, y):
    opt.zero_grad()
    loss = torch.mean(torch.square(torch.tanh(model(torch.tensor(x))) - torch.tensor(y)))
    loss.backward()
    opt.step()


@pytest.mark.parametrize("decay,warmup", [(0.9, 0), (0.75, 3), (0.999, 1)])
def test_ema_params_matches_averaged_model_with_ema_avg_fn(decay, warmup):
    x, y, w0 = _problem()
    steps = 12
    model = _torch_model(w0)
    topt = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.5)
    ema = swa_utils.AveragedModel(model, multi_avg_fn=swa_utils.get_ema_multi_avg_fn(decay))

    opt = js.chain(js.sgd(0.3, momentum=0.5), js.ema_params(decay, warmup=warmup))
    w = jnp.asarray(w0)
    state = opt.init(w)
    step = jax.jit(lambda w, s: (lambda u, s: (optax.apply_updates(w, u), s))(
        *opt.update(jax.grad(_loss_jax)(w, x, y), s, w)))
    for k in range(1, steps + 1):
        _torch_step(model, topt, x, y)
        if k > warmup:  # PyTorch's loop starts averaging after `warmup` steps
            ema.update_parameters(model)
        w, state = step(w, state)
        np.testing.assert_allclose(w, model.weight.detach().numpy().T, rtol=RTOL)
        if k > warmup:
            np.testing.assert_allclose(js.averaged_params(state),
                                       ema.module.weight.detach().numpy().T, rtol=RTOL)
        else:  # until the average starts it follows the parameters
            np.testing.assert_array_equal(js.averaged_params(state), w)


def _cosine(lr0, total):
    return lambda e: lr0 * 0.5 * (1 + math.cos(math.pi * min(e, total) / total))


@pytest.mark.parametrize("strategy,anneal", [("cos", 4), ("linear", 3), ("cos", 0)])
def test_swa_and_swa_lr_match_the_pytorch_swa_training_loop(strategy, anneal):
    """The loop of PyTorch's SWA docs: LambdaLR until swa_start, then SWALR and averaging."""
    x, y, w0 = _problem(seed=1)
    epochs, swa_start, lr0, swa_lr, total = 16, 5, 0.4, 0.05, 20
    base = _cosine(lr0, total)
    model = _torch_model(w0)
    topt = torch.optim.SGD(model.parameters(), lr=lr0, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(topt, lambda e: base(e) / lr0)
    swa_model = swa_utils.AveragedModel(model)
    swa_scheduler = swa_utils.SWALR(topt, swa_lr=swa_lr, anneal_epochs=anneal,
                                    anneal_strategy=strategy)

    schedule = js.swa_lr(js.cosine_decay(lr0, total), swa_lr, start=swa_start + 1,
                         anneal_steps=anneal, strategy=strategy)
    opt = js.chain(js.sgd(schedule, momentum=0.9), js.swa(start=swa_start + 1))
    w = jnp.asarray(w0)
    state = opt.init(w)
    step = jax.jit(lambda w, s: (lambda u, s: (optax.apply_updates(w, u), s))(
        *opt.update(jax.grad(_loss_jax)(w, x, y), s, w)))
    if anneal == 0:  # SWALR(anneal_epochs=0) sets swa_lr at construction; the loop's
        topt.param_groups[0]["lr"] = lr0  # first epoch uses LambdaLR's value (documented)
    for epoch in range(epochs):
        lr_torch = topt.param_groups[0]["lr"]
        _torch_step(model, topt, x, y)
        if epoch > swa_start:
            swa_model.update_parameters(model)
            swa_scheduler.step()
        else:
            scheduler.step()
        w, state = step(w, state)
        np.testing.assert_allclose(float(js.hyperparams(state, "learning_rate")), lr_torch,
                                   rtol=RTOL, err_msg=f"epoch {epoch}")
        np.testing.assert_allclose(w, model.weight.detach().numpy().T, rtol=RTOL)
        n = int(swa_model.n_averaged)
        assert int(js.measurements(state)["n_averaged"]) == n
        if n:
            np.testing.assert_allclose(js.averaged_params(state),
                                       swa_model.module.weight.detach().numpy().T, rtol=RTOL)
    assert int(swa_model.n_averaged) == epochs - swa_start - 1


@pytest.mark.parametrize("strategy,anneal", [("cos", 10), ("linear", 7), ("cos", 1),
                                             ("linear", 0)])
def test_swa_lr_matches_swalr_alone(strategy, anneal):
    lr0, swa_lr = 0.3, 0.02
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    topt = torch.optim.SGD([p], lr=lr0)
    sched = swa_utils.SWALR(topt, swa_lr=swa_lr, anneal_epochs=anneal, anneal_strategy=strategy)
    ours = js.swa_lr(lr0, swa_lr, start=0, anneal_steps=anneal, strategy=strategy)
    for t in range(15):
        if t > 0 or anneal > 0:  # anneal_epochs=0: PyTorch jumps at construction
            np.testing.assert_allclose(float(ours(t)), topt.param_groups[0]["lr"], rtol=RTOL,
                                       err_msg=f"t={t}")
        sched.step()
