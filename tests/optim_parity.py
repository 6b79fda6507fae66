"""Drive a jaxsched optimizer and a PyTorch-style reference step by step on one small model.

The model is a two-layer tanh network (two matrices, two vectors) on fixed
data; each side computes its own gradient at its own parameters (JAX with
`jax.grad`, the reference with torch autograd), so the trajectories are
compared as a user would see them. Before each reference step the
hyperparameters of its param group are set from the same schedules
(`set_group(group, k)`), as a user's training loop would.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

SHAPES = {"w1": (5, 4), "b1": (4,), "w2": (4, 3), "b2": (3,)}


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, 5))
    y = rng.normal(size=(16, 3))
    params = {k: rng.normal(size=s) * 0.5 for k, s in SHAPES.items()}
    return x, y, params


def jax_loss(p, x, y):
    h = jnp.tanh(x @ p["w1"] + p["b1"])
    return jnp.mean(jnp.square(h @ p["w2"] + p["b2"] - y))


def torch_loss(p, x, y):
    import torch
    h = torch.tanh(x @ p["w1"] + p["b1"])
    return torch.mean(torch.square(h @ p["w2"] + p["b2"] - y))


def run_jax(opt: optax.GradientTransformation, steps: int, seed: int = 0,
            eval_fn: Callable[[Any, Any], Any] | None = None):
    """Parameters after each update (and evaluation parameters if `eval_fn`)."""
    x, y, p0 = data(seed)
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    p = {k: jnp.asarray(v, dtype) for k, v in p0.items()}
    xj, yj = jnp.asarray(x, dtype), jnp.asarray(y, dtype)

    @jax.jit
    def step(p, state):  # one update: gradient at p, update, apply (and evaluation params)
        u, state = opt.update(jax.grad(jax_loss)(p, xj, yj), state, p)
        p = optax.apply_updates(p, u)
        return p, state, (eval_fn(state, p) if eval_fn is not None else None)

    state = opt.init(p)
    traj: dict = {k: [] for k in p}
    evals: dict = {k: [] for k in p}
    for _ in range(steps):
        p, state, e = step(p, state)
        for k in p:
            traj[k].append(p[k])
            if e is not None:
                evals[k].append(e[k])
    out = {k: np.asarray(jnp.stack(v)) for k, v in traj.items()}
    return (out, {k: np.asarray(jnp.stack(v)) for k, v in evals.items()}) if eval_fn else out


def run_torch(make: Callable[[list], Any], set_group: Callable[[dict, int], None], steps: int,
              seed: int = 0, schedule_free: bool = False):
    """The same for a torch optimizer `make(list of tensors)`."""
    import torch
    x, y, p0 = data(seed)
    xt, yt = torch.tensor(x), torch.tensor(y)
    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in p0.items()}
    # The reference's own scalar state (step counts, NAdam's mu_product) is
    # float32 unless the default dtype is float64.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return _drive(make, set_group, steps, params, xt, yt, schedule_free)
    finally:
        torch.set_default_dtype(previous)


def _drive(make, set_group, steps, params, xt, yt, schedule_free):
    opt = make(list(params.values()))
    if schedule_free:
        opt.train()
    traj, evals = {k: [] for k in params}, {k: [] for k in params}
    for k in range(steps):
        for group in opt.param_groups:
            set_group(group, k)
        opt.zero_grad()
        torch_loss(params, xt, yt).backward()
        opt.step()
        for name, t in params.items():
            traj[name].append(t.detach().numpy().copy())
        if schedule_free:
            opt.eval()
            for name, t in params.items():
                evals[name].append(t.detach().numpy().copy())
            opt.train()
    out = {k: np.stack(v) for k, v in traj.items()}
    return (out, {k: np.stack(v) for k, v in evals.items()}) if schedule_free else out


def assert_trajectories_close(actual: dict, expected: dict, rtol: float) -> None:
    for k in expected:
        e = np.asarray(expected[k], np.float64)
        np.testing.assert_allclose(np.asarray(actual[k], np.float64), e, rtol=rtol,
                                   atol=rtol * np.abs(e).max(), err_msg=k)


def moved(traj: dict, seed: int = 0) -> float:
    """The largest distance any parameter moved from its start (the run is not trivial)."""
    _, _, p0 = data(seed)
    return max(float(np.abs(traj[k][-1] - p0[k]).max()) for k in p0)
