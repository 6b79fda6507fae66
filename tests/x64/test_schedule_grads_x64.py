"""Every schedule is differentiable in each of its float hyperparameters.

Driven by the registry (tests/schedule_cases.py): for every case, every
numeric hyperparameter (nested schedules and table entries included) that the
constructor accepts as a float is made a float and differentiated with
`jax.jacfwd` at steps spread over the schedule, in float64, and compared with
finite differences of the same schedule. Where the value is not
differentiable in the hyperparameter (a restart or boundary that moves with
it) the forward and backward differences disagree and the point is left out;
the derivative must still be finite there (no NaN anywhere). At the edge of
an argument's range (decay_rate=0, alpha=0 or 1, m_mul=1, ...) a second-order
one-sided difference is used. Integer-only arguments (warmup_steps,
total_steps, ...: the constructor refuses a float) have no derivative.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsched as js
from schedule_cases import CASES, CASE_IDS

if not jax.config.jax_enable_x64:
    raise RuntimeError("tests/x64 must run with JAX_ENABLE_X64=1")

REL_H = 1e-5  # finite-difference step relative to the value (1e-3 at least)
RTOL = 1e-5
NSTEPS = 48  # steps are padded to this, so cases of one structure share a compilation


def _floated(s):
    """`s` with every integer hyperparameter that accepts a float made a float."""
    changes = {}
    for f in dataclasses.fields(s):
        v = getattr(s, f.name)
        if isinstance(v, js.Schedule):
            changes[f.name] = _floated(v)
        elif isinstance(v, tuple) and any(isinstance(x, js.Schedule) for x in v):
            changes[f.name] = tuple(_floated(x) if isinstance(x, js.Schedule) else x for x in v)
    s = dataclasses.replace(s, **changes) if changes else s
    for f in dataclasses.fields(s):
        v = getattr(s, f.name)
        if f.metadata.get("static") or isinstance(v, (bool, js.Schedule)) or v is None:
            continue
        if isinstance(v, int) or (isinstance(v, np.ndarray) and v.dtype.kind == "i"):
            as_float = float(v) if isinstance(v, int) else v.astype(np.float64)
            try:
                s = dataclasses.replace(s, **{f.name: as_float})
            except TypeError:
                pass  # an integer-only argument: no derivative
        elif isinstance(v, tuple) and v and all(isinstance(x, int) for x in v):
            try:
                s = dataclasses.replace(s, **{f.name: tuple(float(x) for x in v)})
            except TypeError:
                pass
    return s


def _replace(s, path, new):
    """A copy of schedule `s` with the leaf at key path `path` replaced (validated)."""
    key, rest = path[0], path[1:]
    if isinstance(key, jax.tree_util.GetAttrKey):
        child = getattr(s, key.name)
        return dataclasses.replace(s, **{key.name: _replace(child, rest, new) if rest else new})
    assert isinstance(key, jax.tree_util.SequenceKey), key
    items = list(s)
    items[key.idx] = _replace(items[key.idx], rest, new) if rest else new
    return tuple(items)


def _params(s):
    """(leaf index, element index or None, value, h, low side valid, high side valid)."""
    out = []
    flat = jax.tree_util.tree_flatten_with_path(s)[0]
    for li, (path, leaf) in enumerate(flat):
        arr = np.asarray(leaf) if not isinstance(leaf, jax.Array) or not jnp.issubdtype(
            leaf.dtype, jax.dtypes.prng_key) else None
        if arr is None or arr.dtype.kind != "f":
            continue
        for ei in ([None] if arr.ndim == 0 else range(arr.size)):
            x = float(arr if ei is None else arr[ei])
            h = REL_H * max(abs(x), 1e-3)
            ok = []
            for sign in (-1, 1):
                if ei is None:
                    new = x + 2 * sign * h
                else:
                    new = arr.copy()
                    new[ei] += 2 * sign * h
                try:
                    _replace(s, path, new)
                    ok.append(True)
                except ValueError:
                    ok.append(False)
            out.append((li, ei, x, h, ok[0], ok[1]))
    return out


def _steps(case):
    T = case.T
    base = np.unique(np.linspace(0, 3 * T, 23).round().astype(np.int64))
    near = [b + d for b in case.marks[:6] for d in (-1, 1)]
    far = [10**4 + 7, 10**6 + 3, 2**31 - 1]
    s = np.unique(np.concatenate([base, np.asarray(near + far, np.int64)]))
    # Up to 1000 natural lengths: beyond, a staircase's jumps in decay_steps lie
    # closer together than any finite-difference step, and the rounding of a
    # large step dominates the differences.
    s = s[(s >= 0) & (s <= 1000 * max(T, 1))]
    assert len(s) <= NSTEPS
    return s


def _run(leaves, x0, table, steps, weights, *, treedef=None, spots=None):
    def values(x):
        new = list(leaves)
        for j, (li, ei) in enumerate(spots):
            new[li] = x[j] if ei is None else new[li].at[ei].set(x[j])
        return jax.tree.unflatten(treedef, new)(steps)

    return (jax.jacfwd(values)(x0), jax.vmap(values)(table),
            jax.grad(lambda x: jnp.sum(values(x) * weights))(x0))


_run = jax.jit(_run, static_argnames=("treedef", "spots"))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gradients_match_finite_differences(case):
    sched = _floated(case.make())
    params = _params(sched)
    if not params:
        return
    leaves, treedef = jax.tree.flatten(sched)
    leaves = [jnp.asarray(x) for x in leaves]
    real = _steps(case)
    steps = jnp.asarray(np.concatenate([real, np.zeros(NSTEPS - len(real), np.int64)]))
    x0 = np.asarray([p[2] for p in params], np.float64)
    hs = np.asarray([p[3] for p in params])
    rows = [x0]
    for j in range(len(params)):
        for m in (1, -1, 2, -2):
            r = x0.copy()
            r[j] += m * hs[j]
            rows.append(r)
    n = len(real)
    weights = jnp.asarray(np.arange(NSTEPS) < n, jnp.float64)  # the real steps, not the padding
    jac, vals, rev = _run(leaves, jnp.asarray(x0), jnp.asarray(np.stack(rows)), steps, weights,
                          treedef=treedef, spots=tuple((p[0], p[1]) for p in params))
    jac, vals = np.asarray(jac)[:n], np.asarray(vals)[:, :n]
    assert np.isfinite(jac).all(), (case.id, np.nonzero(~np.isfinite(jac).all(0))[0])
    # reverse mode (jax.grad) agrees with forward mode, and is finite too
    np.testing.assert_allclose(np.asarray(rev), jac.sum(0), rtol=1e-9,
                               atol=1e-12 * case.scale / REL_H, err_msg=case.id)
    f0 = vals[0]
    compared = 0
    for j, (li, ei, x, h, lo_ok, hi_ok) in enumerate(params):
        fp, fm, f2p, f2m = (vals[1 + 4 * j + k] for k in range(4))
        if lo_ok and hi_ok:
            fwd, bwd = (fp - f0) / h, (f0 - fm) / h
            fd = (fp - fm) / (2 * h)
        elif hi_ok:
            fwd, bwd = (fp - f0) / h, (-3 * f0 + 4 * fp - f2p) / (2 * h)
            fd = bwd
        elif lo_ok:
            fwd, bwd = (f0 - fm) / h, (3 * f0 - 4 * fm + f2m) / (2 * h)
            fd = bwd
        else:
            continue
        atol = 1e-7 * case.scale / max(abs(x), 1e-3)
        smooth = np.abs(fwd - bwd) <= 1e-3 * (np.abs(fwd) + np.abs(bwd)) + atol
        err = np.abs(jac[:, j] - fd)
        bad = smooth & ~(err <= RTOL * np.abs(fd) + atol)
        assert not bad.any(), (case.id, li, ei, [(int(real[i]), float(jac[i, j]), float(fd[i]))
                                                  for i in np.nonzero(bad)[0][:4]])
        compared += int(smooth.sum())
    assert compared > 0, case.id


def test_integer_arguments_have_no_gradient_and_say_so():
    """The arguments refused as floats are the ones documented as integers."""
    integer_only = {
        ("one_cycle", "total_steps"), ("warmup", "warmup_steps"),
        ("warmup_stable_decay", "warmup_steps"), ("warmup_stable_decay", "stable_steps"),
        ("warmup_stable_decay", "decay_steps"), ("inverse_sqrt", "warmup_steps"),
        ("noisy_linear_cosine_decay", "seed"),
        # issue 16's shapes
        ("warmup_stable_decay", "cycles"), ("warmup_stable_decay", "rewarm_steps"),
        ("cooldown", "cooldown_steps"), ("cooldown", "total_steps"),
        ("one_cycle_momentum", "total_steps"), ("shift", "offset")}
    for case in CASES:
        s = case.make()
        for f in dataclasses.fields(s):
            v = getattr(s, f.name)
            if isinstance(v, int) and not isinstance(v, bool) and not f.metadata.get("static"):
                try:
                    dataclasses.replace(s, **{f.name: float(v)})
                    refused = False
                except TypeError:
                    refused = True
                assert refused == ((s.name, f.name) in integer_only), (case.id, f.name)
                if refused:  # the docstring's Args line for it says it is an int
                    lines = [line.split(":", 1)[1] for line in type(s).__doc__.splitlines()
                             if ":" in line and f.name in line.split(":", 1)[0]]
                    assert any("int" in line for line in lines), (s.name, f.name)
