"""jaxsched: learning-rate schedules and optax-compatible optimizer transformations.

Every schedule is a pure, jittable pytree function of the step; every
transformation is an `optax.GradientTransformation`.
"""

from jaxsched._arithmetic import add, product
from jaxsched._by_name import from_hf, from_keras, from_torch
from jaxsched._checkpoint import restore_state
from jaxsched._combine import constant, join, piecewise_constant, piecewise_interpolate, shift
from jaxsched._cyclical import cyclic, cyclic_momentum, one_cycle, one_cycle_momentum
from jaxsched._decays import (cosine_decay, cosine_decay_restarts, exponential_decay,
                              inverse_time_decay, linear_cosine_decay, natural_exp_decay,
                              noisy_linear_cosine_decay, polynomial_decay)
from jaxsched._flat import FlatParams, flat_params
from jaxsched._fuse import FuseState, fuse
from jaxsched._hyper import hyperparams
from jaxsched._lr_finder import LRFinderResult, lr_finder, plot_lr_finder
from jaxsched._optimizers import adagrad, adam, adamw, momentum, rmsprop, sgd
from jaxsched._plateau import ReduceOnPlateauState, reduce_on_plateau
from jaxsched._plot import Table, plot, table
from jaxsched._schedule import Schedule, schedule_from_config
from jaxsched._skip import SkipNonfiniteState, skip_nonfinite
from jaxsched._transforms import (AddDecayedWeightsState, ClipByGlobalNormState, ClipByNormState,
                                  ClipState, EmaState, ScaleByAdagradState, ScaleByAdamState,
                                  ScaleByLearningRateState, ScaleByRmsState, ScaleByScheduleState,
                                  ScaleState, TraceState, add_decayed_weights, chain, clip,
                                  clip_by_global_norm, clip_by_norm, ema, global_norm, scale,
                                  scale_by_adagrad, scale_by_adam, scale_by_learning_rate,
                                  scale_by_rms, scale_by_schedule, trace)
from jaxsched._warmup import cooldown, inverse_sqrt, warmup, warmup_stable_decay

__version__ = "0.1.0"
