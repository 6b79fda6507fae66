"""Parameter groups against PyTorch's `param_groups`, float64, 200 steps (JAX_ENABLE_X64=1).

A small model (a frozen embedding, a hidden layer, a head) trains for 200
steps with three parameter groups: the default one, a "head" group with its
own learning rate, weight decay and betas (momentum for SGD), and a group
that PyTorch trains with lr 0 and weight decay 0, jaxsched with
`frozen=True`. Each framework computes its own gradients of the same loss on
the same batches; the trajectories agree to rtol 1e-10.

PyTorch's Adam and SGD add `weight_decay * p` to the gradient before the
moments (coupled L2): `js.chain(js.add_decayed_weights(wd, groups=...),
js.adam(lr, groups=...))`. AdamW decouples it: `js.adamw`.

Each runs on the parameter tree and on `js.flat_params(share=True)`, where
the trainable groups share one buffer and are updated in one pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxsched as js

STEPS = 200
SHAPES = {"embed": (6, 4), "body/w": (4, 8), "body/bias": (8,), "head/w": (8, 2),
          "head/bias": (2,)}
BATCH = 5


def _init():
    rng = np.random.default_rng(0)
    return {k: 0.5 * rng.standard_normal(s) for k, s in SHAPES.items()}


def _batches():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, SHAPES["embed"][0], size=(STEPS, BATCH))
    y = rng.standard_normal((STEPS, BATCH, 2))
    return ids, y


def _tree(flat):
    return {"embed": flat["embed"], "body": {"w": flat["body/w"], "bias": flat["body/bias"]},
            "head": {"w": flat["head/w"], "bias": flat["head/bias"]}}


def _loss_jax(p, ids, y):
    h = jnp.tanh(p["embed"][ids] @ p["body"]["w"] + p["body"]["bias"])
    return jnp.mean(jnp.square(h @ p["head"]["w"] + p["head"]["bias"] - y))


def _loss_torch(p, ids, y):
    h = torch.tanh(p["embed"][ids] @ p["body/w"] + p["body/bias"])
    return torch.mean(torch.square(h @ p["head/w"] + p["head/bias"] - y))


HEAD = {"adamw": dict(lr=3e-3, weight_decay=0.05, betas=(0.8, 0.99)),
        "adam": dict(lr=3e-3, weight_decay=0.02, betas=(0.8, 0.99)),
        "sgd": dict(lr=2e-2, weight_decay=0.01, momentum=0.5)}
DEFAULT = {"adamw": dict(lr=1e-2, weight_decay=0.1, betas=(0.9, 0.999)),
           "adam": dict(lr=1e-2, weight_decay=0.1, betas=(0.9, 0.999)),
           "sgd": dict(lr=5e-2, weight_decay=0.1, momentum=0.9)}


def _torch_run(kind):
    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
              for k, v in _init().items()}
    groups = [{"params": [params["body/w"], params["body/bias"]], **DEFAULT[kind]},
              {"params": [params["head/w"], params["head/bias"]], **HEAD[kind]},
              {"params": [params["embed"]], "lr": 0.0, "weight_decay": 0.0}]
    make = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}[kind]
    opt = make(groups, foreach=False)
    ids, y = _batches()
    out = []
    for t in range(STEPS):
        opt.zero_grad()
        _loss_torch(params, torch.tensor(ids[t]), torch.tensor(y[t])).backward()
        opt.step()
        out.append({k: v.detach().numpy().copy() for k, v in params.items()})
    return out


def _groups(kind, wd=False):
    h = HEAD[kind]
    if wd:
        head = dict(weight_decay=h["weight_decay"])
    elif kind == "sgd":
        head = dict(learning_rate=h["lr"], momentum=h["momentum"])
    else:
        head = dict(learning_rate=h["lr"], b1=h["betas"][0], b2=h["betas"][1])
        if kind == "adamw":
            head["weight_decay"] = h["weight_decay"]
    return {"head": js.group(r"^head/", **head), "frozen": js.group(r"^embed$", frozen=True)}


def _jaxsched_opt(kind):
    d = DEFAULT[kind]
    if kind == "adamw":
        return js.adamw(d["lr"], *d["betas"], weight_decay=d["weight_decay"],
                        groups=_groups(kind))
    decay = js.add_decayed_weights(d["weight_decay"], groups=_groups(kind, wd=True))
    if kind == "adam":
        return js.chain(decay, js.adam(d["lr"], *d["betas"], groups=_groups(kind)))
    return js.chain(decay, js.momentum(d["lr"], d["momentum"], groups=_groups(kind)))


def _jaxsched_run(kind, shared):
    opt = _jaxsched_opt(kind)
    ids, y = _batches()
    tree = jax.tree.map(jnp.asarray, _tree(_init()))
    if shared:
        params = js.flat_params(tree, group=js.group_labels(_groups(kind)), share=True)
        assert len(jax.tree.leaves(params)) == 2  # the trainable groups' buffer, the frozen one
        loss, view = (lambda f, *b: _loss_jax(f.unflatten(), *b)), (lambda f: f.unflatten())
    else:
        params, loss, view = tree, _loss_jax, (lambda p: p)

    @jax.jit
    def run(params):
        def body(carry, batch):
            p, s = carry
            g = jax.grad(loss)(p, *batch)
            u, s = opt.update(g, s, p)
            p = jax.tree.map(lambda a, b: a + b, p, u)
            return (p, s), view(p)
        return jax.lax.scan(body, (params, opt.init(params)), (jnp.asarray(ids), jnp.asarray(y)))

    (_, state), ps = run(params)
    return ps, state


@pytest.mark.parametrize("shared", [False, True], ids=["tree", "shared_buffer"])
@pytest.mark.parametrize("kind", ["adamw", "adam", "sgd"])
def test_three_param_groups_match_pytorch_for_200_steps(kind, shared):
    assert jax.config.jax_enable_x64
    theirs = _torch_run(kind)
    ours, state = _jaxsched_run(kind, shared)
    init = _init()
    for key in SHAPES:
        got = ours
        for part in key.split("/"):
            got = got[part]
        got = np.asarray(got)
        want = np.stack([t[key] for t in theirs])
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=key)
        moved = np.abs(want[-1] - init[key]).max()
        assert (moved == 0) if key == "embed" else (moved > 1e-3), key  # frozen, trained
    hp = js.hyperparams(state)
    if kind == "adamw":
        assert float(hp["head/b1"]) == 0.8 and float(hp["b1"]) == 0.9
        assert float(hp["head/learning_rate"]) == 3e-3 and float(hp["learning_rate"]) == 1e-2
