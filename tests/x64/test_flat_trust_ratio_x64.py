"""LAMB and LARS on flat float64 buffers against optax on the tree (run with JAX_ENABLE_X64=1).

The per-array norms of a flat buffer come from row sums of 2-D views (a
product with a vector of ones for arrays of >= 64 elements) or block
segment sums; in float64 they must give optax's numbers to 1e-12.
"""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsched as js

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from training import train_random  # noqa: E402


def _layers():  # a run of layers: arrays of 96 and 2,000 elements
    return {**{f"l{i}b": jnp.linspace(-1.0, 2.0, 96) * (i + 1) for i in range(4)},
            **{f"l{i}w": jnp.sin(jnp.arange(2000.0).reshape(40, 50) / (i + 3))
               for i in range(4)}}


def _large():  # arrays of 6,300 elements: row sums in pieces
    return {f"h{i}": jnp.cos(jnp.arange(6300.0).reshape(70, 90) * (i + 1)) for i in range(3)}


def _no_pattern():  # sizes with no repeating pattern: block segment sums
    sizes = np.random.default_rng(2).integers(1, 300, 12)
    return {f"a{i:02d}": jnp.cos(jnp.arange(float(n)) * (i + 1)) for i, n in enumerate(sizes)}


OPTIMIZERS = {
    "lamb": (lambda: js.lamb(0.05, weight_decay=0.1),
             lambda: optax.lamb(0.05, weight_decay=0.1)),
    "lars": (lambda: js.lars(0.5, weight_decay=0.1, trust_coefficient=0.5),
             lambda: optax.lars(0.5, weight_decay=0.1, trust_coefficient=0.5)),
}


def test_x64_is_on():
    assert jax.config.jax_enable_x64, "tests/x64 must run with JAX_ENABLE_X64=1"


# (tree, flat_params(align=...)): each per-array sum path once.
LAYOUTS = [(_layers, 1), (_large, 1), (_no_pattern, 1), (_no_pattern, 16)]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_flat_trust_ratio_matches_optax_in_float64(name):
    ours, theirs = OPTIMIZERS[name]
    wants: dict = {}
    for tree, align in LAYOUTS:
        params = tree()
        assert all(x.dtype == jnp.float64 for x in jax.tree.leaves(params))
        if tree not in wants:
            wants[tree] = train_random(theirs(), params, 3)[0]
        want = wants[tree]
        got = train_random(ours(), js.flat_params(params, align=align), 3)[0].unflatten()
        for key in params:
            np.testing.assert_allclose(np.asarray(got[key]), np.asarray(want[key]), rtol=1e-12,
                                       atol=1e-14, err_msg=f"{tree.__name__} align={align} {key}")
        moved = max(float(jnp.abs(want[k] - params[k]).max()) for k in params)
        assert moved > 1e-3
