"""jaxsched: learning-rate schedules and optax-compatible optimizer transformations.

Every schedule is a pure, jittable pytree function of the step; every
transformation is an `optax.GradientTransformation`.
"""

from jaxsched._combine import constant, join, piecewise_constant
from jaxsched._cyclical import cyclic, one_cycle
from jaxsched._decays import (cosine_decay, cosine_decay_restarts, exponential_decay,
                              inverse_time_decay, linear_cosine_decay, natural_exp_decay,
                              noisy_linear_cosine_decay, polynomial_decay)
from jaxsched._schedule import Schedule, schedule_from_config
from jaxsched._warmup import inverse_sqrt, warmup, warmup_stable_decay

__version__ = "0.1.0"
