"""Property-based layer (hypothesis) over every family's hyperparameters and steps.

For any accepted configuration, including values far towards float32's
limits, the float32 schedule is finite and within its value range at random
steps in [0, 2**31 - 1] (float steps up to 1e12 too). Matching the float64
reference at random steps runs in float64 in tests/x64/ (a float32 step
beyond 2**24 is itself rounded). Bounded and reproducible: derandomized, no
example database, a modest number of examples per family.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schedule_cases import padded_call
from schedule_strategies import FAMILIES

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
STEPS = st.lists(st.one_of(st.integers(0, 2**31 - 1), st.integers(0, 1000)),
                 min_size=6, max_size=6)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@SETTINGS
@given(data=st.data())
def test_accepted_configs_are_finite_and_in_range(family, data):
    extreme = data.draw(st.booleans(), "extreme")
    sched, _, bound = FAMILIES[family](data.draw, extreme)
    steps = np.asarray(data.draw(STEPS, "steps") + [0, 1, 2**31 - 1], np.int64)
    got = padded_call(sched, steps)
    assert np.isfinite(got).all(), (sched, steps[~np.isfinite(got)])
    floats = np.asarray(data.draw(st.lists(st.floats(0.0, 1e12), min_size=2, max_size=2),
                                  "float steps") + [0.5, 2.0**31 + 0.5])
    got_f = padded_call(sched, floats)
    assert np.isfinite(got_f).all(), (sched, floats[~np.isfinite(got_f)])
    if bound is not None:
        both = np.concatenate([got, got_f])
        assert (both >= 0).all(), sched
        assert (both <= np.float32(bound) * (1 + 1e-5) + 1e-37).all(), (sched, both.max(), bound)
