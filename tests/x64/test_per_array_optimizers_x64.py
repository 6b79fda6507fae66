"""Muon and Adafactor against PyTorch 2.13, float64, 200 steps of a small MLP (x64 process).

Both sides train the same model (two matrices, two vectors, and for
Adafactor a rank-3 array) on the same batches, driven step by step, with a
schedule on the learning rate and on one other hyperparameter: PyTorch's
param groups get the schedule's value at each step. jaxsched runs the 200
steps in one `lax.scan` (one compile per optimizer).

PyTorch's Muon computes its Newton-Schulz iteration in bfloat16 whatever
the parameter dtype; for a float64 comparison the test runs PyTorch's own
`_zeropower_via_newtonschulz` with `Tensor.bfloat16` made the identity
(jaxsched's iteration runs in the computation dtype by default). The
bfloat16 path itself is compared at bfloat16 tolerance over a few steps.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import jaxsched as js

STEPS = 200


def _problem(rank3: bool):
    rng = np.random.default_rng(0)
    shapes = {"w1": (6, 5), "b1": (5,), "w2": (5, 3), "b2": (3,)}
    if rank3:
        shapes["k"] = (2, 3, 4)
    params = {k: rng.normal(size=s) * 0.5 for k, s in shapes.items()}
    x = rng.normal(size=(STEPS, 16, 6))
    y = np.sin(x.sum(-1, keepdims=True)) * np.ones((1, 1, 3))
    return params, x, y


def _forward(p, x, tanh, einsum):
    h = tanh(x @ p["w1"] + p["b1"])
    out = h @ p["w2"] + p["b2"]
    if "k" in p:  # a rank-3 parameter: a bilinear correction
        out = out + 0.1 * einsum("bi,aij,bj->ba", out[:, :3], p["k"], h[:, :4])[:, :1]
    return out


def _jax_trajectory(opt, params, x, y):
    def loss(p, x, y):
        return jnp.mean((_forward(p, x, jnp.tanh, jnp.einsum) - y) ** 2)

    @jax.jit
    def run(p):
        def body(carry, xy):
            p, s = carry
            u, s = opt.update(jax.grad(loss)(p, *xy), s, p)
            p = optax.apply_updates(p, u)
            return (p, s), p

        return jax.lax.scan(body, (p, opt.init(p)), (x, y))

    (_, state), traj = run(jax.tree.map(jnp.asarray, params))
    return {k: np.asarray(v) for k, v in traj.items()}, state


def _torch_trajectory(params, x, y, optimizers, set_hypers, wrap=contextlib.nullcontext):
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opts = optimizers(tp)
    out = {k: [] for k in params}
    for step in range(len(x)):
        set_hypers(opts, step)
        pred = _forward(tp, torch.tensor(x[step]), torch.tanh, torch.einsum)
        loss = torch.mean((pred - torch.tensor(y[step])) ** 2)
        for o in opts:
            o.zero_grad()
        loss.backward()
        with wrap():
            for o in opts:
                o.step()
        for k, v in tp.items():
            out[k].append(v.detach().numpy().copy())
    return {k: np.stack(v) for k, v in out.items()}


@contextlib.contextmanager
def _no_bfloat16():
    """PyTorch's Newton-Schulz code, run in the tensors' own dtype."""
    original = torch.Tensor.bfloat16
    torch.Tensor.bfloat16 = lambda self, *args, **kwargs: self.clone()  # a copy, as a cast
    try:
        yield
    finally:
        torch.Tensor.bfloat16 = original


def _assert_trajectories(ours, theirs, params, rtol):
    for k in theirs:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=rtol,
                                   atol=rtol * np.abs(theirs[k]).max(), err_msg=k)
        # the run moved every parameter far beyond the tolerance
        assert np.abs(theirs[k][-1] - params[k]).max() > 1e-2, k


LR = js.cosine_decay(0.01, STEPS, alpha=0.1)


@pytest.mark.parametrize("nesterov,adjust", [(True, "original"), (False, "match_rms_adamw")])
def test_muon_matches_pytorch_muon_and_adamw(nesterov, adjust):
    assert jax.config.jax_enable_x64
    params, x, y = _problem(rank3=False)
    beta = js.polynomial_decay(0.9, STEPS, 0.97)
    adam_lr = js.exponential_decay(0.01, 50, 0.5)
    opt = js.muon(LR, beta=beta, weight_decay=0.1, nesterov=nesterov, adjust_lr_fn=adjust,
                  adam_learning_rate=adam_lr, adam_b1=0.8, adam_weight_decay=0.02)
    ours, state = _jax_trajectory(opt, params, x, y)

    def optimizers(tp):
        return [torch.optim.Muon([tp["w1"], tp["w2"]], lr=0.01, weight_decay=0.1,
                                 nesterov=nesterov, adjust_lr_fn=adjust),
                torch.optim.AdamW([tp["b1"], tp["b2"]], lr=0.01, betas=(0.8, 0.999),
                                  weight_decay=0.02)]

    def set_hypers(opts, k):
        opts[0].param_groups[0]["lr"] = float(LR(k))
        opts[0].param_groups[0]["momentum"] = float(beta(k))
        opts[1].param_groups[0]["lr"] = float(adam_lr(k))

    theirs = _torch_trajectory(params, x, y, optimizers, set_hypers, _no_bfloat16)
    _assert_trajectories(ours, theirs, params, 1e-10)
    hp = js.hyperparams(state)
    assert float(hp["learning_rate"]) == pytest.approx(float(LR(STEPS - 1)), rel=1e-15)
    assert float(hp["beta"]) == pytest.approx(float(beta(STEPS - 1)), rel=1e-15)
    assert float(hp["adam_learning_rate"]) == pytest.approx(float(adam_lr(STEPS - 1)))


def test_muon_bfloat16_iteration_matches_pytorch_default():
    params, x, y = _problem(rank3=False)
    params = {k: v for k, v in params.items()}
    x, y = x[:5], y[:5]
    opt = js.muon(0.01, ns_dtype=jnp.bfloat16, adam_weight_decay=0.01)
    ours, _ = _jax_trajectory(opt, params, x, y)

    def optimizers(tp):
        return [torch.optim.Muon([tp["w1"], tp["w2"]], lr=0.01),
                torch.optim.AdamW([tp["b1"], tp["b2"]], lr=0.01)]

    theirs = _torch_trajectory(params, x, y, optimizers, lambda opts, k: None)
    for k in ("w1", "w2"):
        step_ours, step_theirs = ours[k] - params[k], theirs[k] - params[k]
        # bfloat16 has 8 bits of mantissa; the two iterations round differently
        np.testing.assert_allclose(step_ours, step_theirs, atol=0.05 * np.abs(step_theirs).max())


def test_adafactor_matches_pytorch_adafactor():
    weight_decay = 0.1
    params, x, y = _problem(rank3=True)
    lr = js.cosine_decay(0.05, STEPS, alpha=0.1)
    decay_rate = js.polynomial_decay(0.8, STEPS, 0.6)
    opt = js.adafactor(lr, decay_rate=decay_rate, weight_decay_rate=weight_decay,
                       convention="pytorch")
    ours, state = _jax_trajectory(opt, params, x, y)

    def optimizers(tp):
        return [torch.optim.Adafactor(list(tp.values()), lr=0.05, weight_decay=weight_decay)]

    def set_hypers(opts, k):
        opts[0].param_groups[0]["lr"] = float(lr(k))
        opts[0].param_groups[0]["beta2_decay"] = -float(decay_rate(k))

    theirs = _torch_trajectory(params, x, y, optimizers, set_hypers)
    _assert_trajectories(ours, theirs, params, 1e-10)
    factored = state[0]
    assert factored.v_row["k"].shape == (2, 3, 1) and factored.v_col["k"].shape == (2, 1, 4)
    assert factored.v["k"].shape == (1,) and factored.v["b1"].shape == (5,)
    assert float(js.hyperparams(state)["decay_rate"]) == pytest.approx(
        float(decay_rate(STEPS - 1)), rel=1e-15)
