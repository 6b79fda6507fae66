"""Property-based layer (hypothesis), float64: for any accepted configuration
(hyperparameters drawn per family by tests/schedule_strategies.py), the
schedule matches its float64 reference at random steps in [0, 2**31 - 1],
to 1e-6 of its largest value (fractional step counts are multiples of 1/8
and >= 1; a float64 period position at a step near 2**31 is good to ~2e-7 of a step).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schedule_cases import padded_call
from schedule_strategies import FAMILIES

if not jax.config.jax_enable_x64:
    raise RuntimeError("tests/x64 must run with JAX_ENABLE_X64=1")

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
STEPS = st.lists(st.one_of(st.integers(0, 2**31 - 1), st.integers(0, 10**6),
                           st.integers(0, 1000)), min_size=8, max_size=8)


@pytest.mark.parametrize("family", sorted(f for f in FAMILIES if f != "noisy_linear_cosine_decay"))
@SETTINGS
@given(data=st.data())
def test_matches_float64_reference_at_random_steps(family, data):
    sched, reference, bound = FAMILIES[family](data.draw, False)
    steps = np.asarray(data.draw(STEPS, "steps") + [0, 2**31 - 1], np.int64)
    got = padded_call(sched, steps)
    want = np.asarray([reference(int(t)) for t in steps])
    assert np.isfinite(got).all()
    tol = 1e-6 * max(bound, 1e-300)
    bad = ~(np.abs(got - want) <= tol)
    assert not bad.any(), (sched, [(int(t), float(g), float(w)) for t, g, w in
                                   zip(steps[bad], got[bad], want[bad])][:3])
