"""jaxsched: learning-rate schedules and optax-compatible optimizer transformations.

Every schedule is a pure, jittable pytree function of the step; every
transformation is an `optax.GradientTransformation`.
"""

from jaxsched._accumulate import (accumulate as accumulate, accumulated_grad as accumulated_grad,
                                  AccumulateState as AccumulateState)
from jaxsched._adafactor import (adafactor as adafactor, AdafactorStepState as AdafactorStepState,
                                 clip_by_block_rms as clip_by_block_rms,
                                 ClipByBlockRmsState as ClipByBlockRmsState,
                                 scale_by_factored_rms as scale_by_factored_rms,
                                 scale_by_param_block_rms as scale_by_param_block_rms,
                                 ScaleByFactoredRmsState as ScaleByFactoredRmsState,
                                 ScaleByParamBlockRmsState as ScaleByParamBlockRmsState)
from jaxsched._adam_family import (adamax as adamax, adopt as adopt, amsgrad as amsgrad,
                                   nadam as nadam, nadamw as nadamw, radam as radam,
                                   scale_by_adamax as scale_by_adamax,
                                   scale_by_adopt as scale_by_adopt,
                                   scale_by_amsgrad as scale_by_amsgrad,
                                   scale_by_nadam as scale_by_nadam,
                                   scale_by_radam as scale_by_radam,
                                   ScaleByAdamaxState as ScaleByAdamaxState,
                                   ScaleByAdoptState as ScaleByAdoptState,
                                   ScaleByAmsgradState as ScaleByAmsgradState,
                                   ScaleByNadamState as ScaleByNadamState,
                                   ScaleByRadamState as ScaleByRadamState)
from jaxsched._arithmetic import (add as add, product as product)
from jaxsched._averaging import (averaged_params as averaged_params, ema_params as ema_params,
                                 EmaParamsState as EmaParamsState, swa as swa, swa_lr as swa_lr,
                                 SwaState as SwaState)
from jaxsched._by_name import (from_hf as from_hf, from_keras as from_keras,
                               from_torch as from_torch)
from jaxsched._checkpoint import restore_state as restore_state
from jaxsched._combine import (constant as constant, join as join,
                               piecewise_constant as piecewise_constant,
                               piecewise_interpolate as piecewise_interpolate, shift as shift)
from jaxsched._cyclical import (cyclic as cyclic, cyclic_momentum as cyclic_momentum,
                                one_cycle as one_cycle, one_cycle_momentum as one_cycle_momentum)
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
from jaxsched._groups import (group as group, group_labels as group_labels,
                              GroupsState as GroupsState, reset_group as reset_group)
from jaxsched._hyper import (hyperparams as hyperparams, measurements as measurements)
from jaxsched._lion import (lion as lion, scale_by_lion as scale_by_lion,
                            ScaleByLionState as ScaleByLionState)
from jaxsched._logging import (log_values as log_values, monitor as monitor,
                               MonitorState as MonitorState)
from jaxsched._lr_finder import (lr_finder as lr_finder, LRFinderResult as LRFinderResult,
                                 plot_lr_finder as plot_lr_finder)
from jaxsched._muon import (muon as muon, orthogonalize as orthogonalize,
                            scale_by_muon as scale_by_muon, ScaleByMuonState as ScaleByMuonState)
from jaxsched._optimizers import (adagrad as adagrad, adam as adam, adamw as adamw,
                                  momentum as momentum, rmsprop as rmsprop, sgd as sgd)
from jaxsched._plateau import (reduce_on_plateau as reduce_on_plateau,
                               ReduceOnPlateauState as ReduceOnPlateauState)
from jaxsched._plot import (plot as plot, Table as Table, table as table)
from jaxsched._prodigy import (prodigy as prodigy, scale_by_prodigy as scale_by_prodigy,
                               ScaleByProdigyState as ScaleByProdigyState)
from jaxsched._schedule import (Schedule as Schedule, schedule_from_config as schedule_from_config)
from jaxsched._schedule_free import (scale_by_debiased_rms as scale_by_debiased_rms,
                                     scale_by_schedule_free as scale_by_schedule_free,
                                     ScaleByDebiasedRmsState as ScaleByDebiasedRmsState,
                                     schedule_free_adamw as schedule_free_adamw,
                                     schedule_free_eval_params as schedule_free_eval_params,
                                     schedule_free_sgd as schedule_free_sgd,
                                     ScheduleFreeState as ScheduleFreeState)
from jaxsched._skip import (skip_nonfinite as skip_nonfinite,
                            SkipNonfiniteState as SkipNonfiniteState)
from jaxsched._spikes import (skip_spikes as skip_spikes, SkipSpikesState as SkipSpikesState)
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
                                  ScaleByAdamAmsgradState as ScaleByAdamAmsgradState,
                                  ScaleByAdamState as ScaleByAdamState,
                                  ScaleByLearningRateState as ScaleByLearningRateState,
                                  ScaleByRmsState as ScaleByRmsState,
                                  ScaleByScheduleState as ScaleByScheduleState,
                                  ScaleState as ScaleState, trace as trace,
                                  TraceState as TraceState)
from jaxsched._trust_ratio import (lamb as lamb, lars as lars,
                                   scale_by_trust_ratio as scale_by_trust_ratio,
                                   ScaleByTrustRatioState as ScaleByTrustRatioState)
from jaxsched._warmup import (cooldown as cooldown, inverse_sqrt as inverse_sqrt, warmup as warmup,
                              warmup_stable_decay as warmup_stable_decay)

__version__ = "0.1.0"
