"""`from_torch`, `from_hf` and the momentum companions under x64: float64 values
within rtol 1e-12 of each value (1e-15 of the largest where it is 0) of PyTorch 2.13 itself
and of the values recorded from Hugging Face transformers
(tests/fixtures/hf_keras.json; Keras computes in float32, so it is compared in
tests/test_by_name.py only). Every step from 0 to 3x the schedule's length.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxsched as js
from by_name_cases import (FIXTURE, TORCH_CASES, TORCH_IDS, close_rel, torch_lrs,
                           torch_length, values)

if not jax.config.jax_enable_x64:
    raise RuntimeError("tests/x64 must run with JAX_ENABLE_X64=1")

def _values(s, n):
    out = values(s, n)
    assert out.dtype == np.float64
    return out


@pytest.mark.parametrize("case", TORCH_CASES, ids=TORCH_IDS)
def test_from_torch_matches_pytorch_x64(case):
    _, name, lr, kwargs, torch_kwargs, _ = case
    n = torch_length(case)
    want = torch_lrs(name, lr, kwargs if torch_kwargs is None else torch_kwargs, n)
    close_rel(_values(js.from_torch(name, lr, **kwargs), n), want, 1e-12, name)


@pytest.mark.parametrize("case", FIXTURE["hf"],
                         ids=[f"{c['name']}-{i}" for i, c in enumerate(FIXTURE["hf"])])
def test_from_hf_matches_transformers_x64(case):
    want = np.asarray(case["values"])
    s = js.from_hf(case["name"], case["lr"], case["num_warmup_steps"],
                   case["num_training_steps"], **case["kwargs"])
    close_rel(_values(s, len(want)), want, 1e-12, case["name"])


@pytest.mark.parametrize("three", [False, True])
def test_one_cycle_momentum_matches_pytorch_x64(three):
    kw = dict(max_lr=0.1, total_steps=120, pct_start=0.25, three_phase=three)
    want = torch_lrs("OneCycleLR", 0.1, kw, 120, "sgd", "momentum")
    close_rel(_values(js.one_cycle_momentum(120, 0.25, three_phase=three), 120), want, 1e-12)


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclic_momentum_matches_pytorch_x64(mode):
    kw = dict(base_lr=0.01, max_lr=0.1, step_size_up=10, step_size_down=15, mode=mode,
              gamma=0.98)
    want = torch_lrs("CyclicLR", 0.01, kw, 76, "adam", "beta1")
    close_rel(_values(js.cyclic_momentum(0.8, 0.9, 10, 15, mode, 0.98), 76), want, 1e-12)
