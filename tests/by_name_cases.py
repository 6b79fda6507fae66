"""Cases for the by-name constructors (tests/test_by_name.py and tests/x64/).

`TORCH_CASES` drives PyTorch 2.13 itself (`torch_lrs`) and compares with
`js.from_torch`; `FIXTURE` holds the values recorded from Hugging Face
transformers and Keras 3 by tests/fixtures/make_hf_keras_fixtures.py.
"""

from __future__ import annotations

import json
import pathlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np

FIXTURE = json.loads((pathlib.Path(__file__).parent / "fixtures" / "hf_keras.json").read_text())


def _jnp_lambda(k):
    """A jittable LambdaLR factor: warm up over 5 steps, then 0.95 ** k."""
    return jnp.where(k < 5, (k + 1) / 5.0, 0.95 ** k)


def _jnp_multiplier(k):
    """A jittable MultiplicativeLR factor: 0.9 for the first 10 steps, then 0.99."""
    return jnp.where(k <= 10, 0.9, 0.99)


def _py_lambda(k):
    return (k + 1) / 5.0 if k < 5 else 0.95 ** k


def _py_multiplier(k):
    return 0.9 if k <= 10 else 0.99


# (id, name, lr, jaxsched kwargs, torch kwargs or None for the same, length T)
TORCH_CASES = [
    ("StepLR", "StepLR", 0.1, dict(step_size=7, gamma=0.5), None, 30),
    ("StepLR-default-gamma", "StepLR", 0.3, dict(step_size=10), None, 40),
    ("MultiStepLR", "MultiStepLR", 0.1, dict(milestones=[5, 12, 30]), None, 40),
    ("MultiStepLR-duplicates-and-0", "MultiStepLR", 0.1,
     dict(milestones=[0, 5, 5, 12], gamma=0.5), None, 20),
    ("ConstantLR-defaults", "ConstantLR", 0.1, dict(), None, 10),
    ("ConstantLR-0-iters", "ConstantLR", 0.1, dict(factor=0.5, total_iters=0), None, 10),
    ("LinearLR", "LinearLR", 0.1, dict(start_factor=0.25, end_factor=0.75, total_iters=10),
     None, 15),
    ("LinearLR-defaults", "LinearLR", 0.05, dict(), None, 10),
    ("ExponentialLR", "ExponentialLR", 0.1, dict(gamma=0.9), None, 40),
    ("PolynomialLR", "PolynomialLR", 0.1, dict(total_iters=20, power=2.0), None, 30),
    ("PolynomialLR-defaults", "PolynomialLR", 0.1, dict(), None, 10),
    ("CosineAnnealingLR-periodic", "CosineAnnealingLR", 0.1, dict(T_max=25, eta_min=0.001),
     None, 25),
    ("CosineAnnealingLR-eta0", "CosineAnnealingLR", 0.1, dict(T_max=40), None, 40),
    ("CosineAnnealingWarmRestarts", "CosineAnnealingWarmRestarts", 0.1,
     dict(T_0=5, T_mult=2, eta_min=0.01), None, 75),
    ("CosineAnnealingWarmRestarts-defaults", "CosineAnnealingWarmRestarts", 0.1, dict(T_0=9),
     None, 30),
    ("OneCycleLR", "OneCycleLR", 0.1, dict(max_lr=0.5, total_steps=100), None, 100),
    ("OneCycleLR-epochs-three-linear", "OneCycleLR", 0.1,
     dict(max_lr=0.2, epochs=4, steps_per_epoch=30, pct_start=0.25, anneal_strategy="linear",
          three_phase=True, div_factor=10.0, final_div_factor=100.0), None, 120),
    ("CyclicLR-triangular2", "CyclicLR", 0.1,
     dict(base_lr=0.01, max_lr=0.1, step_size_up=10, mode="triangular2"), None, 40),
    ("CyclicLR-exp_range", "CyclicLR", 0.1,
     dict(base_lr=0.01, max_lr=0.1, step_size_up=5, step_size_down=15, mode="exp_range",
          gamma=0.99), None, 40),
    ("SequentialLR-warmup-cosine", "SequentialLR", 0.1,
     dict(schedulers=[("LinearLR", dict(start_factor=0.1, total_iters=10)),
                      ("CosineAnnealingLR", dict(T_max=30))], milestones=[10]), None, 40),
    ("SequentialLR-three", "SequentialLR", 0.1,
     dict(schedulers=[("ConstantLR", dict(factor=0.5, total_iters=3)),
                      ("ExponentialLR", dict(gamma=0.9)), ("StepLR", dict(step_size=4))],
          milestones=[5, 15]), None, 30),
    ("SequentialLR-restarts", "SequentialLR", 0.1,
     dict(schedulers=[("LinearLR", dict(start_factor=0.1, total_iters=5)),
                      ("CosineAnnealingWarmRestarts", dict(T_0=5))], milestones=[5]), None, 30),
    ("ChainedScheduler-three", "ChainedScheduler", 0.1,
     dict(schedulers=[("ConstantLR", dict(factor=0.5, total_iters=3)),
                      ("ExponentialLR", dict(gamma=0.9)),
                      ("MultiStepLR", dict(milestones=[4, 9]))]), None, 20),
    ("ChainedScheduler-linear-poly-step", "ChainedScheduler", 0.1,
     dict(schedulers=[("LinearLR", dict(start_factor=0.2, total_iters=6)),
                      ("PolynomialLR", dict(total_iters=15, power=0.5)),
                      ("StepLR", dict(step_size=3, gamma=0.8))]), None, 20),
    ("LambdaLR", "LambdaLR", 0.1, dict(lr_lambda=_jnp_lambda), dict(lr_lambda=_py_lambda), 30),
    ("MultiplicativeLR", "MultiplicativeLR", 0.1, dict(lr_lambda=_jnp_multiplier),
     dict(lr_lambda=_py_multiplier), 30),
]
TORCH_IDS = [c[0] for c in TORCH_CASES]
# PyTorch's OneCycleLR raises past total_steps: compare only up to there.
NO_EXTENSION = {"OneCycleLR"}


def _torch_scheduler(opt, name, kwargs):
    from torch.optim import lr_scheduler as L
    if name == "SequentialLR":
        subs = [_torch_scheduler(opt, n, kw) for n, kw in kwargs["schedulers"]]
        return L.SequentialLR(opt, subs, kwargs["milestones"])
    if name == "ChainedScheduler":
        return L.ChainedScheduler([_torch_scheduler(opt, n, kw) for n, kw in kwargs["schedulers"]])
    return getattr(L, name)(opt, **kwargs)


def torch_lrs(name, lr, kwargs, n, optimizer="sgd", key="lr"):
    """The optimizer's `key` ("lr", "momentum" or "beta1") before each of n updates,
    calling `scheduler.step()` after each `optimizer.step()`."""
    import torch
    p = torch.nn.Parameter(torch.zeros(1))
    opt = (torch.optim.SGD([p], lr=lr, momentum=0.9) if optimizer == "sgd"
           else torch.optim.Adam([p], lr=lr))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = _torch_scheduler(opt, name, kwargs)
        out = []
        for _ in range(n):
            g = opt.param_groups[0]
            out.append(g["betas"][0] if key == "beta1" else g[key])
            opt.step()
            sched.step()
    return np.asarray(out, np.float64)


def torch_length(case) -> int:
    """Steps compared: 3x the schedule's length (OneCycleLR: its length)."""
    _, name, _, _, _, T = case
    return T if name in NO_EXTENSION else 3 * T + 1


def close_rel(got, want, rtol, what=""):
    """|got - want| <= rtol * |want| at every step, plus 1e-15 of the largest
    value for steps where the value is (nearly) 0."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    err = np.abs(got - want)
    bad = err > rtol * np.abs(want) + 1e-15 * np.max(np.abs(want))
    i = int(np.argmax(bad)) if bad.any() else 0
    assert not bad.any(), f"{what}: step {i}: got {got[i]!r}, want {want[i]!r}"


def close_to_scale(got, want, tol, what=""):
    """|got - want| <= tol * max|want| at every step (rtol relative to the
    schedule's scale, as the registry tests)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = np.max(np.abs(want))
    err = np.abs(got - want)
    i = int(np.argmax(err))
    assert err[i] <= tol * scale, (f"{what}: step {i}: got {got[i]!r}, want {want[i]!r}, "
                                   f"err {err[i] / scale:.3g} * scale > {tol}")


_EVAL = jax.jit(lambda s, t: s(t))


def values(sched, n: int) -> np.ndarray:
    """`sched` at steps 0..n-1 in one jitted call; the steps are padded to 1024
    (or the next power of two) so that schedules of one structure share a
    compilation across tests."""
    size = max(1024, 1 << (n - 1).bit_length())
    steps = np.zeros(size, np.int64 if jax.config.jax_enable_x64 else np.int32)
    steps[:n] = np.arange(n)
    return np.asarray(_EVAL(sched, jnp.asarray(steps)))[:n]
