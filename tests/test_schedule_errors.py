"""Every bad schedule argument raises at construction, in one message format:

    ValueError: `cosine_decay(decay_steps=...)` must be > 0, got 0.

The message names the public function, the argument and the value. Traced
values are not checked (see also test_schedule_objects).
"""

from __future__ import annotations

import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsched as js

NAN = float("nan")

# (constructor, kwargs, exception type, regex the message must match)
BAD = [
    # decays: learning_rate / decay_steps
    (js.cosine_decay, dict(learning_rate=0.1, decay_steps=0), ValueError,
     r"^`cosine_decay\(decay_steps=\.\.\.\)` must be > 0, got 0\.$"),
    (js.cosine_decay, dict(learning_rate=0.1, decay_steps=-5), ValueError,
     r"^`cosine_decay\(decay_steps=\.\.\.\)` must be > 0, got -5\.$"),
    (js.cosine_decay, dict(learning_rate=0.1, decay_steps=math.inf), ValueError,
     r"`cosine_decay\(decay_steps=\.\.\.\)` must be finite, got inf\."),
    (js.cosine_decay, dict(learning_rate=-0.1, decay_steps=10), ValueError,
     r"^`cosine_decay\(learning_rate=\.\.\.\)` must be >= 0, got -0\.1\.$"),
    (js.cosine_decay, dict(learning_rate=NAN, decay_steps=10), ValueError,
     r"^`cosine_decay\(learning_rate=\.\.\.\)` must not be NaN, got nan\.$"),
    (js.cosine_decay, dict(learning_rate=0.1, decay_steps=10, alpha=1.5), ValueError,
     r"^`cosine_decay\(alpha=\.\.\.\)` must be <= 1, got 1\.5\.$"),
    (js.cosine_decay, dict(learning_rate=0.1, decay_steps=10, alpha=-0.1), ValueError,
     r"^`cosine_decay\(alpha=\.\.\.\)` must be >= 0, got -0\.1\.$"),
    (js.cosine_decay, dict(learning_rate="0.1", decay_steps=10), TypeError,
     r"^`cosine_decay\(learning_rate=\.\.\.\)` must be a number, got str '0\.1'\.$"),
    (js.cosine_decay, dict(learning_rate=True, decay_steps=10), TypeError,
     r"^`cosine_decay\(learning_rate=\.\.\.\)` must be a number, got True\.$"),
    (js.cosine_decay, dict(learning_rate=np.array([0.1, NAN]), decay_steps=10), ValueError,
     r"^`cosine_decay\(learning_rate=\.\.\.\)` must not be NaN, got \[0\.1 +nan\]\.$"),
    (js.cosine_decay, dict(learning_rate=np.array([0.1, -0.2]), decay_steps=10), ValueError,
     r"^`cosine_decay\(learning_rate=\.\.\.\)` must be >= 0, got \[ ?0\.1 -0\.2\]\.$"),
    (js.exponential_decay, dict(learning_rate=0.1, decay_steps=0, decay_rate=0.5), ValueError,
     r"^`exponential_decay\(decay_steps=\.\.\.\)` must be > 0, got 0\.$"),
    (js.exponential_decay, dict(learning_rate=0.1, decay_steps=10, decay_rate=-0.5), ValueError,
     r"^`exponential_decay\(decay_rate=\.\.\.\)` must be >= 0, got -0\.5\.$"),
    (js.exponential_decay, dict(learning_rate=0.1, decay_steps=10, decay_rate=NAN), ValueError,
     r"^`exponential_decay\(decay_rate=\.\.\.\)` must not be NaN, got nan\.$"),
    (js.exponential_decay, dict(learning_rate=0.1, decay_steps=10, decay_rate=0.5,
                                staircase="yes"), TypeError,
     r"^`exponential_decay\(staircase=\.\.\.\)` must be a bool, got 'yes'\.$"),
    (js.natural_exp_decay, dict(learning_rate=0.1, decay_steps=10, decay_rate=-1.0), ValueError,
     r"^`natural_exp_decay\(decay_rate=\.\.\.\)` must be >= 0, got -1\.0\.$"),
    (js.natural_exp_decay, dict(learning_rate=0.1, decay_steps=10, decay_rate=math.inf),
     ValueError, r"^`natural_exp_decay\(decay_rate=\.\.\.\)` must be finite, got inf\.$"),
    (js.inverse_time_decay, dict(learning_rate=0.1, decay_steps=-1, decay_rate=1.0), ValueError,
     r"^`inverse_time_decay\(decay_steps=\.\.\.\)` must be > 0, got -1\.$"),
    (js.inverse_time_decay, dict(learning_rate=0.1, decay_steps=10, decay_rate=False), TypeError,
     r"^`inverse_time_decay\(decay_rate=\.\.\.\)` must be a number, got False\.$"),
    (js.polynomial_decay, dict(learning_rate=0.1, decay_steps=10, power=0.0), ValueError,
     r"^`polynomial_decay\(power=\.\.\.\)` must be > 0, got 0\.0\.$"),
    (js.polynomial_decay, dict(learning_rate=0.1, decay_steps=10, power=-1.0), ValueError,
     r"^`polynomial_decay\(power=\.\.\.\)` must be > 0, got -1\.0\.$"),
    (js.polynomial_decay, dict(learning_rate=0.1, decay_steps=10, end_learning_rate=-0.1),
     ValueError, r"^`polynomial_decay\(end_learning_rate=\.\.\.\)` must be >= 0, got -0\.1\.$"),
    (js.polynomial_decay, dict(learning_rate=0.1, decay_steps=10, cycle=1), TypeError,
     r"^`polynomial_decay\(cycle=\.\.\.\)` must be a bool, got 1\.$"),
    (js.cosine_decay_restarts, dict(learning_rate=0.1, first_decay_steps=0), ValueError,
     r"^`cosine_decay_restarts\(first_decay_steps=\.\.\.\)` must be > 0, got 0\.$"),
    (js.cosine_decay_restarts, dict(learning_rate=0.1, first_decay_steps=10, t_mul=0.0),
     ValueError, r"^`cosine_decay_restarts\(t_mul=\.\.\.\)` must be > 0, got 0\.0\.$"),
    (js.cosine_decay_restarts, dict(learning_rate=0.1, first_decay_steps=10, t_mul=-2.0),
     ValueError, r"^`cosine_decay_restarts\(t_mul=\.\.\.\)` must be > 0, got -2\.0\.$"),
    (js.cosine_decay_restarts, dict(learning_rate=0.1, first_decay_steps=10, t_mul=math.inf),
     ValueError, r"^`cosine_decay_restarts\(t_mul=\.\.\.\)` must be finite, got inf\.$"),
    (js.cosine_decay_restarts, dict(learning_rate=0.1, first_decay_steps=10, m_mul=-0.5),
     ValueError, r"^`cosine_decay_restarts\(m_mul=\.\.\.\)` must be >= 0, got -0\.5\.$"),
    (js.cosine_decay_restarts, dict(learning_rate=0.1, first_decay_steps=10, m_mul=1.5),
     ValueError, r"^`cosine_decay_restarts\(m_mul=\.\.\.\)` must be <= 1, got 1\.5\.$"),
    (js.cosine_decay_restarts, dict(learning_rate=0.1, first_decay_steps=10, alpha=2.0),
     ValueError, r"^`cosine_decay_restarts\(alpha=\.\.\.\)` must be <= 1, got 2\.0\.$"),
    (js.linear_cosine_decay, dict(learning_rate=0.1, decay_steps=10, num_periods=-1.0),
     ValueError, r"^`linear_cosine_decay\(num_periods=\.\.\.\)` must be >= 0, got -1\.0\.$"),
    (js.linear_cosine_decay, dict(learning_rate=0.1, decay_steps=10, beta=NAN), ValueError,
     r"^`linear_cosine_decay\(beta=\.\.\.\)` must not be NaN, got nan\.$"),
    (js.noisy_linear_cosine_decay, dict(learning_rate=0.1, decay_steps=0), ValueError,
     r"^`noisy_linear_cosine_decay\(decay_steps=\.\.\.\)` must be > 0, got 0\.$"),
    (js.noisy_linear_cosine_decay, dict(learning_rate=0.1, decay_steps=10,
                                        initial_variance=-1.0), ValueError,
     r"^`noisy_linear_cosine_decay\(initial_variance=\.\.\.\)` must be >= 0, got -1\.0\.$"),
    (js.noisy_linear_cosine_decay, dict(learning_rate=0.1, decay_steps=10,
                                        variance_decay=-0.5), ValueError,
     r"^`noisy_linear_cosine_decay\(variance_decay=\.\.\.\)` must be >= 0, got -0\.5\.$"),
    (js.noisy_linear_cosine_decay, dict(learning_rate=0.1, decay_steps=10, seed=1.5), TypeError,
     r"^`noisy_linear_cosine_decay\(seed=\.\.\.\)` must be an integer, got float 1\.5\.$"),
    (js.noisy_linear_cosine_decay, dict(learning_rate=0.1, decay_steps=10, seed="a"), TypeError,
     r"^`noisy_linear_cosine_decay\(seed=\.\.\.\)` must be an integer, got str 'a'\.$"),
    # piecewise constant
    (js.piecewise_constant, dict(boundaries=[20, 10], values=[1.0, 0.5, 0.1]), ValueError,
     r"^`piecewise_constant\(boundaries=\.\.\.\)` must be strictly increasing "
     r"\(sorted, no duplicates\), got \[20, 10\]\.$"),
    (js.piecewise_constant, dict(boundaries=[10, 10], values=[1.0, 0.5, 0.1]), ValueError,
     r"^`piecewise_constant\(boundaries=\.\.\.\)` must be strictly increasing "
     r"\(sorted, no duplicates\), got \[10, 10\]\.$"),
    (js.piecewise_constant, dict(boundaries=[-1, 10], values=[1.0, 0.5, 0.1]), ValueError,
     r"^`piecewise_constant\(boundaries=\.\.\.\)` must be >= 0, got \[-1, 10\]\.$"),
    (js.piecewise_constant, dict(boundaries=[10, NAN], values=[1.0, 0.5, 0.1]), ValueError,
     r"^`piecewise_constant\(boundaries=\.\.\.\)` must be finite, got \[10, nan\]\.$"),
    (js.piecewise_constant, dict(boundaries=[10, 20], values=[1.0, 0.5]), ValueError,
     r"^`piecewise_constant\(values=\.\.\.\)` must have len\(boundaries\) \+ 1 = 3 entries, "
     r"got 2\.$"),
    (js.piecewise_constant, dict(boundaries=[10], values=[1.0, 0.5, 0.1]), ValueError,
     r"^`piecewise_constant\(values=\.\.\.\)` must have len\(boundaries\) \+ 1 = 2 entries, "
     r"got 3\.$"),
    (js.piecewise_constant, dict(boundaries=[10], values=[1.0, -0.5]), ValueError,
     r"^`piecewise_constant\(values=\.\.\.\)` must be >= 0, got -0\.5\.$"),
    (js.piecewise_constant, dict(boundaries=[10], values=[1.0, "x"]), TypeError,
     r"^`piecewise_constant\(values=\.\.\.\)` must be a number, got str 'x'\.$"),
    (js.piecewise_constant, dict(boundaries=10, values=[1.0, 0.5]), TypeError,
     r"^`piecewise_constant\(boundaries=\.\.\.\)` must be a list or tuple, got 10\.$"),
    (js.piecewise_constant, dict(boundaries=[True], values=[1.0, 0.5]), TypeError,
     r"^`piecewise_constant\(boundaries=\.\.\.\)` must be a number, got True\.$"),
    # one cycle
    (js.one_cycle, dict(max_lr=0.1, total_steps=100, anneal_strategy="cosine"), ValueError,
     r"^`one_cycle\(anneal_strategy=\.\.\.\)` must be one of 'cos', 'linear', got 'cosine'\.$"),
    (js.one_cycle, dict(max_lr=0.1, total_steps=100, pct_start=0.0), ValueError,
     r"^`one_cycle\(pct_start=\.\.\.\)` must be > 0, got 0\.0\.$"),
    (js.one_cycle, dict(max_lr=0.1, total_steps=100, pct_start=1.0), ValueError,
     r"^`one_cycle\(pct_start=\.\.\.\)` must be < 1, got 1\.0\.$"),
    (js.one_cycle, dict(max_lr=0.1, total_steps=100.0), TypeError,
     r"^`one_cycle\(total_steps=\.\.\.\)` must be an integer, got float 100\.0\.$"),
    (js.one_cycle, dict(max_lr=0.1, total_steps=0), ValueError,
     r"^`one_cycle\(total_steps=\.\.\.\)` must be >= 1, got 0\.$"),
    (js.one_cycle, dict(max_lr=0.1, total_steps=True), TypeError,
     r"^`one_cycle\(total_steps=\.\.\.\)` must be an integer, got bool True\.$"),
    (js.one_cycle, dict(max_lr=0.1, total_steps=100, div_factor=0.0), ValueError,
     r"^`one_cycle\(div_factor=\.\.\.\)` must be > 0, got 0\.0\.$"),
    (js.one_cycle, dict(max_lr=0.1, total_steps=100, final_div_factor=-1.0), ValueError,
     r"^`one_cycle\(final_div_factor=\.\.\.\)` must be > 0, got -1\.0\.$"),
    (js.one_cycle, dict(max_lr=0.1, total_steps=100, pct_start=0.6, three_phase=True),
     ValueError, r"^`one_cycle\(pct_start=\.\.\.\)` must be <= \(total_steps \+ 1\) / "
                 r"\(2 \* total_steps\) with three_phase, got 0\.6\.$"),
    # cyclic
    (js.cyclic, dict(base_lr=0.01, max_lr=0.1, step_size_up=10, mode="triangle"), ValueError,
     r"^`cyclic\(mode=\.\.\.\)` must be one of 'triangular', 'triangular2', 'exp_range', "
     r"got 'triangle'\.$"),
    (js.cyclic, dict(base_lr=0.01, max_lr=0.1, step_size_up=0), ValueError,
     r"^`cyclic\(step_size_up=\.\.\.\)` must be > 0, got 0\.$"),
    (js.cyclic, dict(base_lr=0.01, max_lr=0.1, step_size_up=10, step_size_down=-3), ValueError,
     r"^`cyclic\(step_size_down=\.\.\.\)` must be > 0, got -3\.$"),
    (js.cyclic, dict(base_lr=0.01, max_lr=0.1, step_size_up=10, gamma=0.0), ValueError,
     r"^`cyclic\(gamma=\.\.\.\)` must be > 0, got 0\.0\.$"),
    (js.cyclic, dict(base_lr=0.01, max_lr=0.1, step_size_up=10, gamma=1.5), ValueError,
     r"^`cyclic\(gamma=\.\.\.\)` must be <= 1, got 1\.5\.$"),
    (js.cyclic, dict(base_lr=-0.01, max_lr=0.1, step_size_up=10), ValueError,
     r"^`cyclic\(base_lr=\.\.\.\)` must be >= 0, got -0\.01\.$"),
    # constant
    (js.constant, dict(value=-1.0), ValueError,
     r"^`constant\(value=\.\.\.\)` must be >= 0, got -1\.0\.$"),
    (js.constant, dict(value=None), TypeError,
     r"^`constant\(value=\.\.\.\)` must be a number, got NoneType None\.$"),
    # warmup and friends
    (js.warmup, dict(schedule=0.1, warmup_steps=10), TypeError,
     r"^`warmup\(schedule=\.\.\.\)` must be a schedule \(a callable of the step\), "
     r"got float 0\.1\.$"),
    (js.warmup, dict(schedule=js.constant(1.0), warmup_steps=-1), ValueError,
     r"^`warmup\(warmup_steps=\.\.\.\)` must be >= 0, got -1\.$"),
    (js.warmup, dict(schedule=js.constant(1.0), warmup_steps=2.5), TypeError,
     r"^`warmup\(warmup_steps=\.\.\.\)` must be an integer, got float 2\.5\.$"),
    (js.warmup, dict(schedule=js.constant(1.0), warmup_steps=10, init_value=-0.1), ValueError,
     r"^`warmup\(init_value=\.\.\.\)` must be >= 0, got -0\.1\.$"),
    (js.warmup_stable_decay, dict(peak_value=1.0, warmup_steps=10, stable_steps=10,
                                  decay_steps=10, decay="exp"), ValueError,
     r"^`warmup_stable_decay\(decay=\.\.\.\)` must be one of 'linear', 'cosine', 'sqrt', "
     r"got 'exp'\.$"),
    (js.warmup_stable_decay, dict(peak_value=1.0, warmup_steps=10, stable_steps=-1,
                                  decay_steps=10), ValueError,
     r"^`warmup_stable_decay\(stable_steps=\.\.\.\)` must be >= 0, got -1\.$"),
    (js.warmup_stable_decay, dict(peak_value=1.0, warmup_steps=10, stable_steps=10,
                                  decay_steps=10.0), TypeError,
     r"^`warmup_stable_decay\(decay_steps=\.\.\.\)` must be an integer, got float 10\.0\.$"),
    (js.warmup_stable_decay, dict(peak_value=NAN, warmup_steps=10, stable_steps=10,
                                  decay_steps=10), ValueError,
     r"^`warmup_stable_decay\(peak_value=\.\.\.\)` must not be NaN, got nan\.$"),
    (js.inverse_sqrt, dict(peak_value=1.0, warmup_steps=0), ValueError,
     r"^`inverse_sqrt\(warmup_steps=\.\.\.\)` must be >= 1, got 0\.$"),
    (js.inverse_sqrt, dict(peak_value="1", warmup_steps=10), TypeError,
     r"^`inverse_sqrt\(peak_value=\.\.\.\)` must be a number, got str '1'\.$"),
    # join
    (js.join, dict(schedules=[js.constant(1.0), "cosine"], boundaries=[10]), TypeError,
     r"^`join\(schedules=\.\.\.\)` must be a schedule \(a callable of the step\), "
     r"got str 'cosine'\.$"),
    (js.join, dict(schedules=[js.constant(1.0), js.constant(0.5)], boundaries=[]), ValueError,
     r"^`join\(boundaries=\.\.\.\)` must have len\(schedules\) - 1 = 1 entries, got 0\.$"),
    (js.join, dict(schedules=[js.constant(1.0), js.constant(0.5), js.constant(0.1)],
                   boundaries=[20, 10]), ValueError,
     r"^`join\(boundaries=\.\.\.\)` must be strictly increasing \(sorted, no duplicates\), "
     r"got \[20, 10\]\.$"),
    (js.join, dict(schedules=[], boundaries=[]), ValueError,
     r"^`join\(schedules=\.\.\.\)` must not be empty, got \[\]\.$"),
    (js.join, dict(schedules=js.constant(1.0), boundaries=[]), TypeError,
     r"^`join\(schedules=\.\.\.\)` must be a list or tuple, got constant\(value=1\.0\)\.$"),

    # ---- extremes: beyond what float32 / int32 / 64-bit seeds can hold (issue 12)
    (js.cosine_decay, dict(learning_rate=1e39, decay_steps=10), ValueError,
     r"^`cosine_decay\(learning_rate=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 1e\+39\.$"),
    (js.cosine_decay, dict(learning_rate=0.1, decay_steps=1e-50), ValueError,
     r"^`cosine_decay\(decay_steps=\.\.\.\)` must be >= 1\.17549e-38 \(its reciprocal must be finite in float32\), got 1e-50\.$"),
    (js.cosine_decay, dict(learning_rate=0.1, decay_steps=10**40), ValueError,
     r"^`cosine_decay\(decay_steps=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 10000000000000000000000000000000000000000\.$"),
    (js.cosine_decay, dict(learning_rate=np.array([0.1, 1e39]), decay_steps=10), ValueError,
     r"^`cosine_decay\(learning_rate=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got \[1\.e-01 1\.e\+39\]\.$"),
    (js.cosine_decay, dict(learning_rate=0.1, decay_steps=10**400), ValueError,
     r"^`cosine_decay\(decay_steps=\.\.\.\)` must be finite, got 1000+\.$"),
    (js.exponential_decay, dict(learning_rate=0.1, decay_steps=1e-39, decay_rate=0.5),
     ValueError, r"^`exponential_decay\(decay_steps=\.\.\.\)` must be >= 1\.17549e-38 \(its reciprocal must be finite in float32\), got 1e-39\.$"),
    (js.natural_exp_decay, dict(learning_rate=0.1, decay_steps=10, decay_rate=1e39), ValueError,
     r"^`natural_exp_decay\(decay_rate=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 1e\+39\.$"),
    (js.inverse_time_decay, dict(learning_rate=0.1, decay_steps=10, decay_rate=3.5e38),
     ValueError, r"^`inverse_time_decay\(decay_rate=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 3\.5e\+38\.$"),
    (js.polynomial_decay, dict(learning_rate=0.1, decay_steps=10, power=1e40), ValueError,
     r"^`polynomial_decay\(power=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 1e\+40\.$"),
    (js.polynomial_decay, dict(learning_rate=0.1, decay_steps=10, end_learning_rate=1e39),
     ValueError, r"^`polynomial_decay\(end_learning_rate=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 1e\+39\.$"),
    (js.cosine_decay_restarts, dict(learning_rate=0.1, first_decay_steps=1e-45), ValueError,
     r"^`cosine_decay_restarts\(first_decay_steps=\.\.\.\)` must be >= 1\.17549e-38 \(its reciprocal must be finite in float32\), got 1e-45\.$"),
    (js.cosine_decay_restarts, dict(learning_rate=0.1, first_decay_steps=10, t_mul=1e-40),
     ValueError, r"^`cosine_decay_restarts\(t_mul=\.\.\.\)` must be >= 1\.17549e-38 \(its reciprocal must be finite in float32\), got 1e-40\.$"),
    (js.cosine_decay_restarts, dict(learning_rate=0.1, first_decay_steps=10, t_mul=1e39),
     ValueError, r"^`cosine_decay_restarts\(t_mul=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 1e\+39\.$"),
    (js.linear_cosine_decay, dict(learning_rate=1e38, decay_steps=10, alpha=10.0), ValueError,
     r"^`linear_cosine_decay\(learning_rate=\.\.\.\)` must keep learning_rate \* "
     r"\(1 \+ alpha \+ beta\) <= 3\.40282e\+38 \(float32\), got 1e\+38\.$"),
    (js.linear_cosine_decay, dict(learning_rate=0.1, decay_steps=10, num_periods=1e39),
     ValueError, r"^`linear_cosine_decay\(num_periods=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 1e\+39\.$"),
    (js.noisy_linear_cosine_decay, dict(learning_rate=0.1, decay_steps=10, seed=2**64),
     ValueError, r"^`noisy_linear_cosine_decay\(seed=\.\.\.\)` must be <= "
     r"18446744073709551615, got 18446744073709551616\.$"),
    (js.noisy_linear_cosine_decay, dict(learning_rate=0.1, decay_steps=10, seed=-(2**63) - 1),
     ValueError, r"^`noisy_linear_cosine_decay\(seed=\.\.\.\)` must be >= "
     r"-9223372036854775808, got -9223372036854775809\.$"),
    (js.noisy_linear_cosine_decay, dict(learning_rate=0.1, decay_steps=10,
                                        initial_variance=1e39), ValueError,
     r"^`noisy_linear_cosine_decay\(initial_variance=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 1e\+39\.$"),
    (js.piecewise_constant, dict(boundaries=[10, 1e39], values=[1.0, 0.5, 0.1]), ValueError,
     r"^`piecewise_constant\(boundaries=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 1e\+39\.$"),
    (js.piecewise_constant, dict(boundaries=[10], values=[1.0, 1e39]), ValueError,
     r"^`piecewise_constant\(values=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 1e\+39\.$"),
    (js.join, dict(schedules=[js.constant(1.0), js.constant(0.5)], boundaries=[1e39]),
     ValueError, r"^`join\(boundaries=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 1e\+39\.$"),
    (js.one_cycle, dict(max_lr=0.1, total_steps=2**31), ValueError,
     r"^`one_cycle\(total_steps=\.\.\.\)` must be <= 2147483647, got 2147483648\.$"),
    (js.one_cycle, dict(max_lr=1e39, total_steps=100), ValueError,
     r"^`one_cycle\(max_lr=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 1e\+39\.$"),
    (js.one_cycle, dict(max_lr=0.1, total_steps=100, div_factor=1e-40), ValueError,
     r"^`one_cycle\(div_factor=\.\.\.\)` must be >= 1\.17549e-38 \(its reciprocal must be finite in float32\), got 1e-40\.$"),
    (js.one_cycle, dict(max_lr=0.1, total_steps=100, final_div_factor=1e-39), ValueError,
     r"^`one_cycle\(final_div_factor=\.\.\.\)` must be >= 1\.17549e-38 \(its reciprocal must be finite in float32\), got 1e-39\.$"),
    (js.cyclic, dict(base_lr=1e39, max_lr=0.1, step_size_up=10), ValueError,
     r"^`cyclic\(base_lr=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 1e\+39\.$"),
    (js.cyclic, dict(base_lr=0.1, max_lr=1.0, step_size_up=1e-45), ValueError,
     r"^`cyclic\(step_size_up=\.\.\.\)` must be >= 1\.17549e-38 \(its reciprocal must be finite in float32\), got 1e-45\.$"),
    (js.cyclic, dict(base_lr=0.1, max_lr=1.0, step_size_up=2**31 - 1, step_size_down=10),
     ValueError, r"^`cyclic\(step_size_up=\.\.\.\)` must keep step_size_up \+ "
     r"step_size_down <= 2147483647 as integers"),
    (js.constant, dict(value=1e39), ValueError, r"^`constant\(value=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 1e\+39\.$"),
    (js.warmup, dict(schedule=js.constant(1.0), warmup_steps=2**31), ValueError,
     r"^`warmup\(warmup_steps=\.\.\.\)` must be <= 2147483647, got 2147483648\.$"),
    (js.warmup, dict(schedule=js.constant(1.0), warmup_steps=10, init_value=1e39), ValueError,
     r"^`warmup\(init_value=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 1e\+39\.$"),
    (js.warmup_stable_decay, dict(peak_value=1.0, warmup_steps=2**30, stable_steps=2**30,
                                  decay_steps=2**30), ValueError,
     r"^`warmup_stable_decay\(decay_steps=\.\.\.\)` must keep warmup_steps \+ stable_steps "
     r"\+ decay_steps <= 2147483647 \(the largest step count\), got 1073741824\.$"),
    (js.warmup_stable_decay, dict(peak_value=1e39, warmup_steps=1, stable_steps=1,
                                  decay_steps=1), ValueError,
     r"^`warmup_stable_decay\(peak_value=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 1e\+39\.$"),
    (js.inverse_sqrt, dict(peak_value=1.0, warmup_steps=2**40), ValueError,
     r"^`inverse_sqrt\(warmup_steps=\.\.\.\)` must be <= 2147483647, got 1099511627776\.$"),
    (js.inverse_sqrt, dict(peak_value=1e39, warmup_steps=10), ValueError,
     r"^`inverse_sqrt\(peak_value=\.\.\.\)` must be <= 3\.40282e\+38 in magnitude \(float32\), got 1e\+39\.$"),
    # nesting deeper than MAX_DEPTH = 32
    (js.warmup, dict(schedule=functools.reduce(lambda s, _: js.warmup(s, 1), range(31),
                                               js.constant(1.0)), warmup_steps=1), ValueError,
     r"^`warmup\(schedule=\.\.\.\)` must nest schedules at most MAX_DEPTH = 32 deep, "
     r"got 33 levels\.$"),
]

# the shapes added with schedule arithmetic and the by-name constructors
BAD += [
    (js.cosine_decay, dict(learning_rate=0.1, decay_steps=10, exponent=0.0), ValueError,
     r"^`cosine_decay\(exponent=\.\.\.\)` must be > 0, got 0\.0\.$"),
    (js.cosine_decay, dict(learning_rate=0.1, decay_steps=10, num_cycles=-1.0), ValueError,
     r"^`cosine_decay\(num_cycles=\.\.\.\)` must be >= 0, got -1\.0\.$"),
    (js.cosine_decay, dict(learning_rate=0.1, decay_steps=10, periodic=1), TypeError,
     r"^`cosine_decay\(periodic=\.\.\.\)` must be a bool, got 1\.$"),
    (js.warmup, dict(schedule=js.constant(1.0), warmup_steps=10, mode="exp"), ValueError,
     r"^`warmup\(mode=\.\.\.\)` must be one of 'linear', 'cosine', 'sqrt', 'exponential', "
     r"got 'exp'\.$"),
    (js.warmup, dict(schedule=js.constant(1.0), warmup_steps=10, init_value=0.0,
                     mode="exponential"), ValueError,
     r"^`warmup\(init_value=\.\.\.\)` must be > 0, got 0\.0\.$"),
    (js.warmup_stable_decay, dict(peak_value=1.0, warmup_steps=1, stable_steps=1, decay_steps=1,
                                  cycles=0), ValueError,
     r"^`warmup_stable_decay\(cycles=\.\.\.\)` must be >= 1, got 0\.$"),
    (js.warmup_stable_decay, dict(peak_value=1.0, warmup_steps=1, stable_steps=1, decay_steps=1,
                                  warmup="exponential"), ValueError,
     r"^`warmup_stable_decay\(warmup=\.\.\.\)` must be one of"),
    (js.warmup_stable_decay, dict(peak_value=1.0, warmup_steps=1, stable_steps=1, decay_steps=1,
                                  rewarm_steps=2.5), TypeError,
     r"^`warmup_stable_decay\(rewarm_steps=\.\.\.\)` must be an integer"),
    (js.inverse_sqrt, dict(peak_value=1.0, warmup_steps=0), ValueError,
     r"^`inverse_sqrt\(warmup_steps=\.\.\.\)` must be >= 1, got 0\.$"),
    (js.inverse_sqrt, dict(peak_value=1.0, warmup_steps=0, timescale=0), ValueError,
     r"^`inverse_sqrt\(timescale=\.\.\.\)` must be > 0, got 0\.$"),
    (js.inverse_sqrt, dict(peak_value=1.0, warmup_steps=10, shift=-10), ValueError,
     r"^`inverse_sqrt\(shift=\.\.\.\)` must be > -warmup_steps = -10, got -10\.$"),
    (js.inverse_sqrt, dict(peak_value=1.0, warmup_steps=10, min_value=-1.0), ValueError,
     r"^`inverse_sqrt\(min_value=\.\.\.\)` must be >= 0, got -1\.0\.$"),
    (js.piecewise_interpolate, dict(init_value=1.0, boundaries=[10, 20], scales=[0.5]),
     ValueError, r"^`piecewise_interpolate\(scales=\.\.\.\)` must have len\(boundaries\) = 2 "
                 r"entries, got 1\.$"),
    (js.piecewise_interpolate, dict(init_value=1.0, boundaries=[20, 10], scales=[0.5, 0.5]),
     ValueError, r"^`piecewise_interpolate\(boundaries=\.\.\.\)` must be strictly increasing"),
    (js.piecewise_interpolate, dict(init_value=1.0, boundaries=[10], scales=[-0.5]),
     ValueError, r"^`piecewise_interpolate\(scales=\.\.\.\)` must be >= 0, got -0\.5\.$"),
    (js.piecewise_interpolate, dict(init_value=1.0, boundaries=[10], scales=[0.5],
                                    interpolate_type="cubic"), ValueError,
     r"^`piecewise_interpolate\(interpolate_type=\.\.\.\)` must be one of 'linear', 'cosine'"),
    (js.shift, dict(schedule=js.constant(1.0), offset=1.5), TypeError,
     r"^`shift\(offset=\.\.\.\)` must be an integer, got float 1\.5\.$"),
    (js.shift, dict(schedule=3.0, offset=1), TypeError,
     r"^`shift\(schedule=\.\.\.\)` must be a schedule"),
    (js.cooldown, dict(schedule=js.constant(1.0), total_steps=10, cooldown_steps=11), ValueError,
     r"^`cooldown\(cooldown_steps=\.\.\.\)` must be <= total_steps = 10, got 11\.$"),
    (js.cooldown, dict(schedule=js.constant(1.0), total_steps=10, cooldown_steps=5,
                       shape="cosine"), ValueError,
     r"^`cooldown\(shape=\.\.\.\)` must be one of 'linear', 'sqrt', got 'cosine'\.$"),
    (js.one_cycle_momentum, dict(total_steps=100, base_momentum=1.5), ValueError,
     r"^`one_cycle_momentum\(base_momentum=\.\.\.\)` must be <= 1, got 1\.5\.$"),
    (js.one_cycle_momentum, dict(total_steps=0), ValueError,
     r"^`one_cycle_momentum\(total_steps=\.\.\.\)` must be >= 1, got 0\.$"),
    (js.cyclic_momentum, dict(base_momentum=0.8, max_momentum=0.9, step_size_up=0), ValueError,
     r"^`cyclic_momentum\(step_size_up=\.\.\.\)` must be > 0, got 0\.$"),
    (js.cyclic_momentum, dict(mode="sine"), ValueError,
     r"^`cyclic_momentum\(mode=\.\.\.\)` must be one of"),
    (js.product, dict(factors=[js.constant(1.0), "x"]), TypeError,
     r"^`product\(factors=\.\.\.\)` must hold schedules and numbers, got str 'x'\.$"),
    (js.product, dict(factors=[js.constant(1.0), math.inf]), ValueError,
     r"^`product\(factors=\.\.\.\)` must be finite, got inf\.$"),
    (js.add, dict(terms=[]), ValueError, r"^`add\(terms=\.\.\.\)` must not be empty, got \[\]\.$"),
    (js.add, dict(terms=js.constant(1.0)), TypeError,
     r"^`add\(terms=\.\.\.\)` must be a list or tuple"),
]


def _row_id(row):
    fn, kwargs, exc, _ = row
    return f"{fn.name}-{'-'.join(f'{k}={v!r}' for k, v in kwargs.items())}"[:80]


def test_table_is_large_and_covers_every_family():
    assert len(BAD) >= 40
    families = {row[0].name for row in BAD}
    assert families >= {"cosine_decay", "exponential_decay", "natural_exp_decay",
                        "inverse_time_decay", "polynomial_decay", "cosine_decay_restarts",
                        "linear_cosine_decay", "noisy_linear_cosine_decay", "piecewise_constant",
                        "one_cycle", "cyclic", "constant", "warmup", "warmup_stable_decay",
                        "inverse_sqrt", "join"}


@pytest.mark.parametrize("fn,kwargs,exc,pattern", BAD, ids=[_row_id(r) for r in BAD])
def test_bad_argument_raises(fn, kwargs, exc, pattern):
    with pytest.raises(exc) as info:
        fn(**kwargs)
    assert type(info.value) is exc
    message = str(info.value)
    assert re.search(pattern, message), message
    # the message names the public function and the argument, in backticks
    assert re.match(rf"^`{fn.name}\(\w+=\.\.\.\)` ", message), message


def test_replace_validates_too():
    import dataclasses
    with pytest.raises(ValueError, match=r"^`cosine_decay\(alpha=\.\.\.\)` must be <= 1, got 2\.0\.$"):
        dataclasses.replace(js.cosine_decay(0.1, 10), alpha=2.0)


def test_traced_values_are_not_checked():
    # constructing inside jit with a traced negative or NaN value does not raise
    jax.jit(lambda lr: js.cosine_decay(lr, 10)(1))(-1.0)
    jax.jit(lambda d: js.exponential_decay(0.1, d, 0.5)(1))(0)
    jax.jit(lambda m: js.cosine_decay_restarts(0.1, 10, 2.0, m)(1))(jnp.float32(5.0))
    jax.jit(lambda b: js.piecewise_constant([b, 5], [1.0, 0.5, 0.1])(1))(10)
    jax.jit(lambda v: js.piecewise_constant([5], [v, 0.5])(1))(jnp.nan)
    jax.jit(lambda n: js.warmup_stable_decay(1.0, n, 0, 0)(1))(-3)
    jax.vmap(lambda lr: js.constant(lr)(1))(jnp.asarray([-1.0, jnp.nan]))
    # while the same concrete values raise
    with pytest.raises(ValueError):
        js.cosine_decay(-1.0, 10)


def test_concrete_arrays_are_checked_elementwise():
    js.cosine_decay(np.array([0.1, 0.2]), 10)  # fine
    js.cosine_decay(jnp.asarray([0.1, 0.2]), 10)
    with pytest.raises(ValueError, match=r"must be >= 0"):
        js.cosine_decay(jnp.asarray([0.1, -0.2]), 10)
    with pytest.raises(ValueError, match=r"must not be NaN"):
        js.cosine_decay(0.1, 10, alpha=jnp.asarray([0.1, jnp.nan]))
    with pytest.raises(TypeError, match=r"must be a number, got an array of dtype bool"):
        js.cosine_decay(np.array([True]), 10)


def test_bad_steps_raise_type_error():
    s = js.cosine_decay(0.1, 10)
    with pytest.raises(TypeError, match="step must be a number"):
        s(True)
    with pytest.raises(TypeError, match="step must be a number"):
        s("3")
    with pytest.raises(TypeError, match="step must be a number"):
        s(jnp.asarray([True, False]))
