"""Schedules and optimizers of the LSTM benchmark: the one place that knows jaxsched and optax.

:func:`build_schedule` and :func:`build_optimizer` build the benchmarked
jaxsched optimizer (and optax's equivalent for ``--compare optax``);
:func:`recorded_values` reads what the jaxsched update recorded in its state
(the learning rate it used, the global norm it clipped with).
"""

from __future__ import annotations

OPTIMIZERS = ("adamw", "adam", "sgd", "momentum", "rmsprop", "adagrad", "nadam", "nadamw", "radam",
              "adamax", "amsgrad", "adopt", "prodigy", "schedule_free_adamw", "schedule_free_sgd",
              "lion", "lamb", "lars", "adafactor", "muon")
#: Default peak learning rate of each optimizer.
DEFAULT_LR = {"adamw": 2e-3, "adam": 2e-3, "sgd": 0.5, "momentum": 0.05,
              "rmsprop": 1e-3, "adagrad": 0.05, "nadam": 2e-3, "nadamw": 2e-3, "radam": 2e-3,
              "adamax": 2e-3, "amsgrad": 2e-3, "adopt": 2e-3, "prodigy": 1.0,
              "schedule_free_adamw": 2.5e-3, "schedule_free_sgd": 0.5, "lion": 2e-4,
              "lamb": 2e-3, "lars": 0.5, "adafactor": 1e-2, "muon": 2e-2}
#: Schedules that bring their own warmup (no ``js.warmup`` wrapper).
SELF_WARMING = ("one_cycle", "warmup_stable_decay", "inverse_sqrt", "cyclic", "constant")
SCHEDULES = ("cosine_decay", "exponential_decay", "natural_exp_decay", "inverse_time_decay",
             "polynomial_decay", "cosine_decay_restarts", "linear_cosine_decay", "one_cycle",
             "cyclic", "constant", "warmup_stable_decay", "inverse_sqrt", "piecewise_constant")


def build_schedule(js, name: str, lr: float, steps: int, warmup: int):
    """A jaxsched schedule ``name`` peaking at ``lr`` with defaults from the run length.

    Decaying schedules are wrapped in ``js.warmup`` (``warmup`` steps from 0)
    and decay over the remaining ``steps - warmup`` steps; the schedules in
    :data:`SELF_WARMING` use their own warmup or none.
    """
    n = max(1, steps - warmup)
    if name == "cosine_decay":
        s = js.cosine_decay(lr, n, alpha=0.0)
    elif name == "exponential_decay":
        s = js.exponential_decay(lr, n, decay_rate=0.05)       # ends at 5% of peak
    elif name == "natural_exp_decay":
        s = js.natural_exp_decay(lr, n, decay_rate=3.0)        # exp(-3) ~ 5% at the end
    elif name == "inverse_time_decay":
        s = js.inverse_time_decay(lr, n, decay_rate=9.0)       # 10% at the end
    elif name == "polynomial_decay":
        s = js.polynomial_decay(lr, n, end_learning_rate=lr * 0.01, power=1.0)
    elif name == "cosine_decay_restarts":
        s = js.cosine_decay_restarts(lr, max(1, n // 7), t_mul=2.0)  # periods 1, 2, 4 /7
    elif name == "linear_cosine_decay":
        s = js.linear_cosine_decay(lr, n)
    elif name == "piecewise_constant":
        s = js.piecewise_constant((int(n * 0.5), int(n * 0.75)), (lr, lr * 0.1, lr * 0.01))
    elif name == "one_cycle":
        return js.one_cycle(lr, steps)
    elif name == "cyclic":
        return js.cyclic(lr * 0.1, lr, max(1, steps // 8))
    elif name == "constant":
        return js.constant(lr)
    elif name == "warmup_stable_decay":
        decay = max(1, (steps - warmup) // 5)
        return js.warmup_stable_decay(lr, warmup, steps - warmup - decay, decay)
    elif name == "inverse_sqrt":
        return js.inverse_sqrt(lr, max(1, warmup))
    else:  # validated by the command line
        raise ValueError(f"unknown schedule {name!r}")
    return js.warmup(s, warmup, init_value=0.0) if warmup > 0 else s


def _optimizer(lib, name: str, schedule, args, optax_style: bool):
    """``name`` from ``lib`` (jaxsched, or optax with ``optax_style``)."""
    if name == "adamw":
        return lib.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=args.weight_decay)
    if name == "adam":
        return lib.adam(schedule, b1=0.9, b2=0.999, eps=1e-8)
    if name == "sgd":
        return lib.sgd(schedule)
    if name == "momentum":
        if optax_style:
            return lib.sgd(schedule, momentum=0.9, nesterov=False)
        return lib.momentum(schedule, momentum=0.9)
    if name == "rmsprop":
        return lib.rmsprop(schedule, decay=0.9, eps=1e-8)
    if name == "adagrad":
        return lib.adagrad(schedule, initial_accumulator_value=0.1, eps=1e-7)
    if name in ("adopt", "prodigy", "schedule_free_adamw", "schedule_free_sgd", "muon"):
        lib = lib.contrib if optax_style else lib  # optax keeps these in optax.contrib
    if name in ("schedule_free_adamw", "schedule_free_sgd") and type(schedule).__name__ == "Constant":
        # Schedule-free is meant for a constant learning rate with its own warmup.
        extra = {"weight_decay": args.weight_decay} if name == "schedule_free_adamw" else {}
        return getattr(lib, name)(schedule, warmup_steps=args.warmup_steps, **extra)
    if name in ("nadamw", "schedule_free_adamw", "lion", "lamb"):
        return getattr(lib, name)(schedule, weight_decay=args.weight_decay)
    if name == "prodigy":
        return lib.prodigy(schedule, weight_decay=args.weight_decay)
    if name in OPTIMIZERS:
        return getattr(lib, name)(schedule)
    raise ValueError(f"unknown optimizer {name!r}")


def build_optimizer(args, schedule, library: str = "jaxsched", companions: bool = True):
    """``clip_by_global_norm(--clip)`` then ``--optimizer`` (then reduce_on_plateau).

    ``library="jaxsched"`` is the benchmarked path; ``library="optax"`` builds
    the equivalent optimizer from optax for ``--compare optax`` (same schedule
    object as learning rate). With ``companions`` (the default) the training-loop
    flags wrap the jaxsched optimizer, innermost first::

        accumulate(skip_spikes(chain(clip, optimizer, [plateau], [ema_params])), every=K)

    so ``ema_params`` sees the final updates, a skipped update moves nothing
    (the average included), and ``skip_spikes``, the schedule and the average
    act once per optimizer update, on the mean gradient and mean loss of its K
    micro-batches. optax's side gets ``optax.MultiSteps(every_k_schedule=K)``
    with ``--accumulate K`` (the command line refuses optax with the others).
    """
    accumulate = getattr(args, "accumulate", 1) if companions else 1
    if library == "jaxsched":
        import jaxsched as js
        parts = [js.clip_by_global_norm(args.clip)] if args.clip > 0 else []
        parts.append(_optimizer(js, args.optimizer, schedule, args, optax_style=False))
        if args.plateau:
            parts.append(js.reduce_on_plateau(factor=0.5, patience=2))
        if companions and getattr(args, "ema", None) is not None:
            parts.append(js.ema_params(args.ema))
        tx = js.chain(*parts)
        if companions and getattr(args, "skip_spikes", None) is not None:
            tx = js.skip_spikes(tx, on=args.skip_spikes, window=args.spike_window,
                                threshold=args.spike_threshold)
        if accumulate > 1:
            tx = js.accumulate(tx, every=accumulate)
        return tx
    import optax
    parts = [optax.clip_by_global_norm(args.clip)] if args.clip > 0 else []
    parts.append(_optimizer(optax, args.optimizer, schedule, args, optax_style=True))
    if args.plateau:
        parts.append(optax.contrib.reduce_on_plateau(factor=0.5, patience=2))
    tx = optax.chain(*parts)
    return optax.MultiSteps(tx, every_k_schedule=accumulate) if accumulate > 1 else tx


def update_value(args, loss, last_eval_loss, companions: bool = True):
    """The ``value=`` keyword of the update, or None: the training loss for
    ``--skip-spikes loss|both``, else the last validation loss for ``--plateau``."""
    if companions and getattr(args, "skip_spikes", None) in ("loss", "both"):
        return loss
    if args.plateau:
        return last_eval_loss
    return None


def log_floats(js, opt_state) -> dict:
    """``js.log_values(opt_state)`` as plain floats, keys as jaxsched gives them.

    Every hyperparameter of the last update, the global gradient norm before
    (``global_norm``) and after (``clipped_global_norm``) clipping, the skip
    counts of ``--skip-spikes``, the accumulation phase (``micro_step``) of
    ``--accumulate``, ... (array-valued entries, which the benchmark's
    optimizers do not have, are stored as lists).
    """
    import numpy as np
    out = {}
    for key, value in js.log_values(opt_state).items():
        v = np.asarray(value, dtype=np.float64)
        out[key] = float(v) if v.ndim == 0 else v.tolist()
    return out


def recorded_values(js, opt_state) -> dict:
    """The learning rate and global norm the jaxsched update recorded in ``opt_state``.

    The one place the benchmark reads jaxsched's record of an update: from
    ``js.log_values`` (hyperparameters and measured values in one dict, no key
    parsing). Returns ``{"learning_rate": value or None, "global_norm": value or None}``.
    """
    logs = js.log_values(opt_state)
    return {"learning_rate": logs.get("learning_rate"), "global_norm": logs.get("global_norm")}
