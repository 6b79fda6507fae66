"""jaxsched: learning-rate schedules and optax-compatible optimizer transformations.

Every schedule is a pure, jittable pytree function of the step; every
transformation is an `optax.GradientTransformation`.
"""

from jaxsched._accumulate import (accumulate as accumulate,
                                  accumulated_grad as accumulated_grad,
                                  AccumulateState as AccumulateState)
from jaxsched._averaging import (averaged_params as averaged_params,
                                 ema_params as ema_params, EmaParamsState as EmaParamsState,
                                 swa as swa, swa_lr as swa_lr, SwaState as SwaState)
from jaxsched._checkpoint import restore_state as restore_state
from jaxsched._combine import (constant as constant, join as join,
                               piecewise_constant as piecewise_constant)
from jaxsched._cyclical import (cyclic as cyclic, one_cycle as one_cycle)
from jaxsched._decays import (cosine_decay as cosine_decay,
                              cosine_decay_restarts as cosine_decay_restarts,
                              exponential_decay as exponential_decay,
                              inverse_time_decay as inverse_time_decay,
                              linear_cosine_decay as linear_cosine_decay,
                              natural_exp_decay as natural_exp_decay,
                              noisy_linear_cosine_decay as noisy_linear_cosine_decay,
                              polynomial_decay as polynomial_decay)
from jaxsched._flat import (flat_params as flat_params, FlatParams as FlatParams)
from jaxsched._fuse import (fuse as fuse, FuseState as FuseState)
from jaxsched._hyper import (hyperparams as hyperparams, measurements as measurements)
from jaxsched._logging import (log_values as log_values, monitor as monitor,
                               MonitorState as MonitorState)
from jaxsched._lr_finder import (lr_finder as lr_finder, LRFinderResult as LRFinderResult,
                                 plot_lr_finder as plot_lr_finder)
from jaxsched._optimizers import (adagrad as adagrad, adam as adam, adamw as adamw,
                                  momentum as momentum, rmsprop as rmsprop, sgd as sgd)
from jaxsched._plateau import (reduce_on_plateau as reduce_on_plateau,
                               ReduceOnPlateauState as ReduceOnPlateauState)
from jaxsched._plot import (plot as plot, Table as Table, table as table)
from jaxsched._schedule import (Schedule as Schedule, schedule_from_config as schedule_from_config)
from jaxsched._skip import (skip_nonfinite as skip_nonfinite,
                            SkipNonfiniteState as SkipNonfiniteState)
from jaxsched._spikes import (skip_spikes as skip_spikes,
                              SkipSpikesState as SkipSpikesState)
from jaxsched._transforms import (add_decayed_weights as add_decayed_weights,
                                  AddDecayedWeightsState as AddDecayedWeightsState, chain as chain,
                                  clip as clip, clip_by_global_norm as clip_by_global_norm,
                                  clip_by_norm as clip_by_norm,
                                  ClipByGlobalNormState as ClipByGlobalNormState,
                                  ClipByNormState as ClipByNormState, ClipState as ClipState,
                                  ema as ema, EmaState as EmaState, global_norm as global_norm,
                                  scale as scale, scale_by_adagrad as scale_by_adagrad,
                                  scale_by_adam as scale_by_adam,
                                  scale_by_learning_rate as scale_by_learning_rate,
                                  scale_by_rms as scale_by_rms,
                                  scale_by_schedule as scale_by_schedule,
                                  ScaleByAdagradState as ScaleByAdagradState,
                                  ScaleByAdamState as ScaleByAdamState,
                                  ScaleByLearningRateState as ScaleByLearningRateState,
                                  ScaleByRmsState as ScaleByRmsState,
                                  ScaleByScheduleState as ScaleByScheduleState,
                                  ScaleState as ScaleState, trace as trace,
                                  TraceState as TraceState)
from jaxsched._warmup import (inverse_sqrt as inverse_sqrt, warmup as warmup,
                              warmup_stable_decay as warmup_stable_decay)

__version__ = "0.1.0"
