"""Schedules by the names PyTorch, Hugging Face and Keras users already know.

`from_torch`, `from_hf` and `from_keras` translate a scheduler named as in
`torch.optim.lr_scheduler`, `transformers.get_scheduler` or a serialized
Keras 3 schedule into an ordinary jaxsched schedule (it prints as the
jaxsched call, plots, sweeps and saves like any other). Nothing here is
imported from those libraries.

Step convention: `s(k)` is the learning rate of update k (from 0): the rate
PyTorch's optimizer has after k calls of `scheduler.step()`, the factor
Hugging Face's `LambdaLR` applies at step k, Keras' `schedule(k)`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

from jaxsched import _checks
from jaxsched._arithmetic import Product
from jaxsched._combine import Constant, Join, PiecewiseConstant, Shift
from jaxsched._cyclical import Cyclic, OneCycle
from jaxsched._decays import (CosineDecay, CosineDecayRestarts, ExponentialDecay,
                              InverseTimeDecay, PolynomialDecay)
from jaxsched._numerics import float_dtype
from jaxsched._schedule import FunctionSchedule, Schedule
from jaxsched._warmup import InverseSqrt, Warmup, WarmupStableDecay

_REQUIRED = object()  # marks a keyword argument without a default


def _listed(names) -> str:
    return ", ".join(repr(n) for n in names)


def _resolve(owner: str, name: str, spec: dict[str, Any], kwargs: dict[str, Any]) -> dict:
    """Fill `kwargs` with `spec`'s defaults; TypeError naming unknown or missing ones."""
    unknown = [k for k in kwargs if k not in spec]
    if unknown:
        raise TypeError(f"`{owner}({name!r}, ...)` got unexpected keyword argument(s) "
                        f"{_listed(unknown)}; {name} takes {_listed(spec) or 'none'}.")
    missing = [k for k, v in spec.items() if v is _REQUIRED and k not in kwargs]
    if missing:
        raise TypeError(f"`{owner}({name!r}, ...)` is missing required keyword argument(s) "
                        f"{_listed(missing)}.")
    return {k: kwargs.get(k, v) for k, v in spec.items()}


def _build(owner: str, name: str, make: Callable[[], Schedule]) -> Schedule:
    """Call `make`, naming the by-name call in any argument error."""
    try:
        return make()
    except (TypeError, ValueError) as e:
        if str(e).startswith(f"`{owner}("):
            raise
        raise type(e)(f"`{owner}({name!r}, ...)`: {e}") from e


def _ratio(num: float, den: float) -> float:
    return 0.0 if num == 0 else num / den


def _jittable(owner: str, name: str, arg: str, fn: Any) -> None:
    """TypeError unless `fn` is a function of a traced integer step giving a scalar."""
    if not callable(fn):
        raise TypeError(f"`{owner}({name!r}, {arg}=...)` must be a function of the step, "
                        f"got {type(fn).__name__} {fn!r}.")
    try:
        out = jax.eval_shape(fn, jax.ShapeDtypeStruct((), jnp.int32))
    except Exception as e:  # any failure to trace means "not jittable"
        raise TypeError(
            f"`{owner}({name!r}, {arg}=...)` must be a jittable function of the step (jnp "
            f"operations; jnp.where or lax.cond instead of Python `if`, `max` or `math` on "
            f"the step), but tracing {fn!r} failed: {type(e).__name__}: {e}") from None
    if getattr(out, "shape", None) != ():
        raise TypeError(f"`{owner}({name!r}, {arg}=...)` must return a scalar, got shape "
                        f"{getattr(out, 'shape', out)}.")


def _cumulative(fn: Callable) -> Callable:
    """k -> fn(1) * fn(2) * ... * fn(k), evaluated with a loop (O(k))."""
    def one(k):
        return lax.fori_loop(1, k + 1, lambda i, acc: acc * jnp.asarray(fn(i), acc.dtype),
                             jnp.ones((), float_dtype()))

    def cumulative(t):
        t = jnp.asarray(t)
        return jax.vmap(one)(t.reshape(-1)).reshape(t.shape)

    cumulative.__qualname__ = cumulative.__name__ = f"cumulative_product_of_{getattr(fn, '__name__', 'fn')}"
    return cumulative


# ----------------------------------------------------------------------------
# PyTorch
# ----------------------------------------------------------------------------

_TORCH_SPECS: dict[str, dict[str, Any]] = {
    "StepLR": {"step_size": _REQUIRED, "gamma": 0.1},
    "MultiStepLR": {"milestones": _REQUIRED, "gamma": 0.1},
    "ConstantLR": {"factor": 1.0 / 3, "total_iters": 5},
    "LinearLR": {"start_factor": 1.0 / 3, "end_factor": 1.0, "total_iters": 5},
    "ExponentialLR": {"gamma": _REQUIRED},
    "PolynomialLR": {"total_iters": 5, "power": 1.0},
    "CosineAnnealingLR": {"T_max": _REQUIRED, "eta_min": 0.0},
    "CosineAnnealingWarmRestarts": {"T_0": _REQUIRED, "T_mult": 1, "eta_min": 0.0},
    "OneCycleLR": {"max_lr": _REQUIRED, "total_steps": None, "epochs": None,
                   "steps_per_epoch": None, "pct_start": 0.3, "anneal_strategy": "cos",
                   "cycle_momentum": True, "base_momentum": 0.85, "max_momentum": 0.95,
                   "div_factor": 25.0, "final_div_factor": 1e4, "three_phase": False},
    "CyclicLR": {"base_lr": _REQUIRED, "max_lr": _REQUIRED, "step_size_up": 2000,
                 "step_size_down": None, "mode": "triangular", "gamma": 1.0, "scale_fn": None,
                 "scale_mode": "cycle", "cycle_momentum": True, "base_momentum": 0.8,
                 "max_momentum": 0.9},
    "SequentialLR": {"schedulers": _REQUIRED, "milestones": _REQUIRED},
    "ChainedScheduler": {"schedulers": _REQUIRED, "optimizer": None},
    "LambdaLR": {"lr_lambda": _REQUIRED},
    "MultiplicativeLR": {"lr_lambda": _REQUIRED},
}
for _spec in _TORCH_SPECS.values():
    _spec["last_epoch"] = -1

# Schedulers whose PyTorch update multiplies the current rate by a factor that
# depends only on the step: in a ChainedScheduler their factors multiply.
_MULTIPLICATIVE = ("StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR",
                   "PolynomialLR", "MultiplicativeLR")


def _torch_list(name: str, schedulers: Any) -> list[tuple[str, dict]]:
    if not isinstance(schedulers, (list, tuple)) or not schedulers:
        raise TypeError(f"`from_torch({name!r}, schedulers=...)` must be a non-empty list of "
                        f"(name, kwargs) pairs, got {schedulers!r}.")
    out = []
    for item in schedulers:
        if isinstance(item, str):
            item = (item, {})
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], dict)):
            raise TypeError(f"`from_torch({name!r}, schedulers=...)` must hold (name, kwargs) "
                            f"pairs, got {item!r}.")
        out.append((item[0], item[1]))
    return out


def from_torch(name: str, lr: float, **kwargs: Any) -> Schedule:
    """The jaxsched schedule of a `torch.optim.lr_scheduler` class, by its name.

    `s(k)` is the learning rate PyTorch's optimizer has after k calls of
    `scheduler.step()` (s(0) is the rate of the first update), for an
    optimizer created with learning rate `lr`:

    StepLR(step_size, gamma=0.1)               exponential_decay(lr, step_size, gamma, staircase=True)
    MultiStepLR(milestones, gamma=0.1)         piecewise_constant: lr * gamma ** (milestones <= k)
    ConstantLR(factor=1/3, total_iters=5)      lr * factor before total_iters, lr after
    LinearLR(start_factor=1/3, end_factor=1, total_iters=5)
                                               polynomial_decay(lr * start, total_iters, lr * end, 1)
    ExponentialLR(gamma)                       exponential_decay(lr, 1, gamma)
    PolynomialLR(total_iters=5, power=1)       polynomial_decay(lr, total_iters, 0, power)
    CosineAnnealingLR(T_max, eta_min=0)        cosine_decay(lr, T_max, eta_min / lr, periodic=True)
    CosineAnnealingWarmRestarts(T_0, T_mult=1, eta_min=0)
                                               cosine_decay_restarts(lr, T_0, T_mult, 1, eta_min / lr)
    OneCycleLR(max_lr, total_steps | epochs and steps_per_epoch, ...)   one_cycle(...)
    CyclicLR(base_lr, max_lr, step_size_up=2000, ...)                   cyclic(...)
    SequentialLR(schedulers, milestones)       join([...], milestones)
    ChainedScheduler(schedulers)               product of lr and each scheduler's factor
    LambdaLR(lr_lambda)                        product(lr, lr_lambda) for a jittable lr_lambda
    MultiplicativeLR(lr_lambda)                lr * lr_lambda(1) * ... * lr_lambda(k) (a loop)

    `schedulers` is a list of `(name, kwargs)` pairs (the optimizer is
    implied). `CosineAnnealingLR` is periodic past `T_max`, as in PyTorch.
    OneCycleLR and CyclicLR set the rate themselves (`lr` is unused);
    their `cycle_momentum` companions are `one_cycle_momentum` and
    `cyclic_momentum`. Differences: OneCycleLR holds its last value past
    `total_steps - 1` (PyTorch extrapolates at `total_steps` and raises
    after); a ChainedScheduler takes only schedulers
    that multiply the rate by a factor of the step (listed in the error),
    since PyTorch's chained result is not a function of the step otherwise.

    Args:
      name: the class name in `torch.optim.lr_scheduler`.
      lr: the optimizer's initial learning rate.
      **kwargs: the scheduler's keyword arguments, with PyTorch's defaults
        (`last_epoch` only as -1).

    Returns:
      A jaxsched schedule.

    Raises:
      ValueError: an unknown name (the message lists the known ones) or a bad value.
      TypeError: an unknown or missing keyword argument, a non-jittable `lr_lambda`.

    Example:
        >>> import jaxsched as js
        >>> s = js.from_torch("StepLR", 0.1, step_size=30)
        >>> s
        exponential_decay(learning_rate=0.1, decay_steps=30, decay_rate=0.1, staircase=True)
        >>> [round(float(s(k)), 6) for k in (29, 30)]
        [0.1, 0.01]
    """
    owner = "from_torch"
    if name not in _TORCH_SPECS:
        raise ValueError(f"`{owner}(name=...)` must be one of {_listed(_TORCH_SPECS)}, "
                         f"got {name!r}.")
    a = _resolve(owner, name, _TORCH_SPECS[name], kwargs)
    if a["last_epoch"] != -1:
        raise ValueError(f"`{owner}({name!r}, last_epoch=...)` must be -1 (to resume, "
                         f"evaluate the schedule at a later step), got {a['last_epoch']!r}.")
    return _build(owner, name, lambda: _torch(name, lr, a))


def _torch(name: str, lr: Any, a: dict) -> Schedule:
    if name == "StepLR":
        return ExponentialDecay(lr, a["step_size"], a["gamma"], staircase=True)
    if name == "MultiStepLR":
        counts = Counter(a["milestones"])
        if any(not isinstance(m, int) or m < 0 for m in counts):
            raise ValueError(f"`from_torch('MultiStepLR', milestones=...)` must be ints >= 0, "
                             f"got {a['milestones']!r}.")
        gamma, value = a["gamma"], lr * a["gamma"] ** counts.get(0, 0)
        bounds, values = [], [value]
        for m in sorted(m for m in counts if m > 0):
            value = value * gamma ** counts[m]
            bounds.append(m - 1)  # piecewise_constant switches after its boundary
            values.append(value)
        return PiecewiseConstant(tuple(bounds), tuple(values))
    if name == "ConstantLR":
        if a["total_iters"] == 0:  # PyTorch never restores the rate then
            return Constant(lr * a["factor"])
        return PiecewiseConstant((a["total_iters"] - 1,), (lr * a["factor"], lr))
    if name == "LinearLR":
        if a["total_iters"] == 0:
            return Constant(lr * a["start_factor"])
        return PolynomialDecay(lr * a["start_factor"], a["total_iters"], lr * a["end_factor"], 1.0)
    if name == "ExponentialLR":
        return ExponentialDecay(lr, 1, a["gamma"])
    if name == "PolynomialLR":
        if a["total_iters"] == 0:
            return Constant(lr)
        return PolynomialDecay(lr, a["total_iters"], 0.0, a["power"])
    if name == "CosineAnnealingLR":
        return CosineDecay(lr, a["T_max"], _ratio(a["eta_min"], lr), periodic=True)
    if name == "CosineAnnealingWarmRestarts":
        return CosineDecayRestarts(lr, a["T_0"], float(a["T_mult"]), 1.0,
                                   _ratio(a["eta_min"], lr))
    if name == "OneCycleLR":
        total = a["total_steps"]
        if total is None:
            if a["epochs"] is None or a["steps_per_epoch"] is None:
                raise ValueError("`from_torch('OneCycleLR', ...)` needs total_steps, or epochs "
                                 "and steps_per_epoch.")
            total = a["epochs"] * a["steps_per_epoch"]
        return OneCycle(a["max_lr"], total, a["pct_start"], a["anneal_strategy"],
                        a["div_factor"], a["final_div_factor"], a["three_phase"])
    if name == "CyclicLR":
        if a["scale_fn"] is not None:
            raise ValueError("`from_torch('CyclicLR', scale_fn=...)` is not supported; use "
                             "mode='triangular', 'triangular2' or 'exp_range', or build the "
                             "shape with js.cyclic and schedule arithmetic.")
        return Cyclic(a["base_lr"], a["max_lr"], a["step_size_up"], a["step_size_down"],
                      a["mode"], a["gamma"])
    if name == "SequentialLR":
        parts = _torch_list(name, a["schedulers"])
        return Join(tuple(from_torch(n, lr, **kw) for n, kw in parts), tuple(a["milestones"]))
    if name == "ChainedScheduler":
        parts = _torch_list(name, a["schedulers"])
        bad = [n for n, _ in parts if n not in _MULTIPLICATIVE]
        if bad:
            raise ValueError(
                f"`from_torch('ChainedScheduler', schedulers=...)` takes only schedulers that "
                f"multiply the rate by a factor of the step ({_listed(_MULTIPLICATIVE)}), got "
                f"{_listed(bad)}; PyTorch's chained rate with those is not a function of the "
                f"step. Multiply jaxsched schedules instead (js.product, `*`).")
        return Product((lr,) + tuple(from_torch(n, 1.0, **kw) for n, kw in parts))
    if name == "LambdaLR":
        _jittable("from_torch", name, "lr_lambda", a["lr_lambda"])
        return Product((lr, FunctionSchedule(a["lr_lambda"])))
    if name == "MultiplicativeLR":
        _jittable("from_torch", name, "lr_lambda", a["lr_lambda"])
        return Product((lr, FunctionSchedule(_cumulative(a["lr_lambda"]))))
    raise AssertionError(name)


# ----------------------------------------------------------------------------
# Hugging Face transformers
# ----------------------------------------------------------------------------

_HF_SPECS: dict[str, dict[str, Any]] = {
    "linear": {},
    "cosine": {"num_cycles": 0.5},
    "cosine_with_restarts": {"num_cycles": 1},
    "polynomial": {"lr_end": 1e-7, "power": 1.0},
    "constant": {},
    "constant_with_warmup": {},
    "inverse_sqrt": {"timescale": None},
    "cosine_with_min_lr": {"num_cycles": 0.5, "min_lr": None, "min_lr_rate": None},
    "cosine_warmup_with_min_lr": {"num_cycles": 0.5, "min_lr": None, "min_lr_rate": None,
                                  "warmup_lr_rate": None},
    "warmup_stable_decay": {"num_decay_steps": _REQUIRED, "num_stable_steps": None,
                            "warmup_type": "linear", "decay_type": "cosine",
                            "min_lr_ratio": 0.0, "num_cycles": 0.5},
}
_HF_SHAPES = {"linear": "linear", "cosine": "cosine", "1-sqrt": "sqrt"}


def from_hf(name: str, lr: float, num_warmup_steps: int | None = None,
            num_training_steps: int | None = None, **kwargs: Any) -> Schedule:
    """The jaxsched schedule of `transformers.get_scheduler(name, ...)`.

    `s(k)` is `lr` times the factor Hugging Face's `LambdaLR` applies at
    step k. The keyword arguments are `get_scheduler`'s
    `scheduler_specific_kwargs`. W = num_warmup_steps, N = num_training_steps;
    every warmup is linear from 0 (`warmup`) unless noted:

    linear                  warmup(polynomial_decay(lr, N - W, 0, 1), W)
    cosine                  warmup(cosine_decay(lr, N - W, num_cycles=..., periodic=True), W)
    cosine_with_restarts    warmup(cosine_decay_restarts(lr, (N - W) / num_cycles, 1), W), 0 from N
    polynomial              warmup(polynomial_decay(lr, N - W, lr_end, power), W)
    constant                constant(lr)
    constant_with_warmup    warmup(constant(lr), W)
    inverse_sqrt            inverse_sqrt(lr, W, timescale or W or 10000)
    cosine_with_min_lr      as cosine with alpha = min_lr_rate (or min_lr / lr)
    cosine_warmup_with_min_lr  a warmup reaching lr at step W - 1, then that cosine one step ahead
    warmup_stable_decay     warmup_stable_decay(lr, W, S, D, r * lr, r * lr, ...) with
                            r = min_lr_ratio and HF's warmup_type / decay_type

    Hugging Face's cosine schedules are periodic past N (they come back up),
    and so are these.

    Args:
      name: a name of `transformers.get_scheduler` (all but the plateau and
        greedy ones, which need the loss).
      lr: the optimizer's initial learning rate.
      num_warmup_steps: W, an int >= 0 (not used by "constant").
      num_training_steps: N, an int > W (used by the decays).
      **kwargs: the scheduler-specific keyword arguments, with HF's defaults.

    Returns:
      A jaxsched schedule.

    Raises:
      ValueError: an unknown name (the message lists the known ones), a missing
        W or N, or a bad value.
      TypeError: an unknown or missing keyword argument.

    Example:
        >>> import jaxsched as js
        >>> s = js.from_hf("linear", 1.0, 10, 110)
        >>> [float(s(k)) for k in (5, 10, 60, 110)]
        [0.5, 1.0, 0.5, 0.0]
    """
    owner = "from_hf"
    if name not in _HF_SPECS:
        raise ValueError(f"`{owner}(name=...)` must be one of {_listed(_HF_SPECS)}, got {name!r}.")
    a = _resolve(owner, name, _HF_SPECS[name], kwargs)
    if name == "constant":
        return _build(owner, name, lambda: Constant(lr))
    W, N = num_warmup_steps, num_training_steps
    if W is None:
        raise ValueError(f"`{owner}({name!r}, num_warmup_steps=...)` is required.")
    needs_n = name not in ("constant_with_warmup", "inverse_sqrt", "warmup_stable_decay")
    if needs_n or (name == "warmup_stable_decay" and a["num_stable_steps"] is None):
        if N is None:
            raise ValueError(f"`{owner}({name!r}, num_training_steps=...)` is required.")
        if needs_n and not (isinstance(N, int) and isinstance(W, int) and N > W):
            raise ValueError(f"`{owner}({name!r}, num_training_steps=...)` must be an int > "
                             f"num_warmup_steps = {W!r}, got {N!r}.")
    return _build(owner, name, lambda: _hf(name, lr, W, N, a))  # type: ignore[arg-type]


def _min_rate(name: str, lr: float, a: dict) -> float:
    if a["min_lr"] is not None and a["min_lr_rate"] is not None:
        raise ValueError(f"`from_hf({name!r}, ...)` takes only one of min_lr and min_lr_rate.")
    if a["min_lr"] is not None:
        return _ratio(a["min_lr"], lr)
    if a["min_lr_rate"] is None:
        raise ValueError(f"`from_hf({name!r}, ...)` needs min_lr or min_lr_rate.")
    return a["min_lr_rate"]


def _hf(name: str, lr: Any, W: int, N: int, a: dict) -> Schedule:
    if name == "linear":
        return Warmup(PolynomialDecay(lr, N - W, 0.0, 1.0), W)
    if name == "cosine":
        return Warmup(CosineDecay(lr, N - W, num_cycles=a["num_cycles"], periodic=True), W)
    if name == "cosine_with_restarts":
        cycles = a["num_cycles"]
        if not cycles > 0:
            raise ValueError(f"`from_hf('cosine_with_restarts', num_cycles=...)` must be > 0, "
                             f"got {cycles!r}.")
        period = (N - W) // cycles if (N - W) % cycles == 0 else (N - W) / cycles
        return Join((Warmup(CosineDecayRestarts(lr, period, 1.0), W), Constant(0.0)), (N,))
    if name == "polynomial":
        if not (_checks.is_traced(lr) or _checks.is_traced(a["lr_end"]) or lr > a["lr_end"]):
            raise ValueError(f"`from_hf('polynomial', lr_end=...)` must be < lr = {lr!r}, got "
                             f"{a['lr_end']!r}.")
        return Warmup(PolynomialDecay(lr, N - W, a["lr_end"], a["power"]), W)
    if name == "constant_with_warmup":
        return Warmup(Constant(lr), W)
    if name == "inverse_sqrt":
        timescale = a["timescale"] if a["timescale"] is not None else (W or 10_000)
        return InverseSqrt(lr, W, timescale=timescale)
    if name == "cosine_with_min_lr":
        rate = _min_rate(name, lr, a)
        return Warmup(CosineDecay(lr, N - W, rate, num_cycles=a["num_cycles"], periodic=True), W)
    if name == "cosine_warmup_with_min_lr":
        rate = _min_rate(name, lr, a)
        # After the warmup HF's progress is (k - W + 1) / (N - W): one step ahead.
        decay = Shift(CosineDecay(lr, N - W, rate, num_cycles=a["num_cycles"], periodic=True), 1)
        if W == 0:
            return decay
        r0 = a["warmup_lr_rate"]
        if r0 is None:  # (k + 1) / W: lr / W at 0, lr at W - 1
            ramp = PolynomialDecay(lr / W, W, lr * (W + 1) / W, 1.0)
        else:  # r0 + (1 - r0) * k / max(1, W - 1)
            ramp = PolynomialDecay(lr * r0, max(1, W - 1), lr, 1.0)
        return Join((ramp, decay), (W,))
    if name == "warmup_stable_decay":
        for key in ("warmup_type", "decay_type"):
            if a[key] not in _HF_SHAPES:
                raise ValueError(f"`from_hf('warmup_stable_decay', {key}=...)` must be one of "
                                 f"{_listed(_HF_SHAPES)}, got {a[key]!r}.")
        D = a["num_decay_steps"]
        S = a["num_stable_steps"] if a["num_stable_steps"] is not None else N - W - D
        floor = lr * a["min_lr_ratio"]
        return WarmupStableDecay(lr, W, S, D, floor, floor, _HF_SHAPES[a["decay_type"]],
                                 warmup=_HF_SHAPES[a["warmup_type"]],
                                 num_cycles=a["num_cycles"])
    raise AssertionError(name)


# ----------------------------------------------------------------------------
# Keras 3
# ----------------------------------------------------------------------------

_KERAS_SPECS: dict[str, dict[str, Any]] = {
    "ExponentialDecay": {"initial_learning_rate": _REQUIRED, "decay_steps": _REQUIRED,
                         "decay_rate": _REQUIRED, "staircase": False, "name": None},
    "PiecewiseConstantDecay": {"boundaries": _REQUIRED, "values": _REQUIRED, "name": None},
    "PolynomialDecay": {"initial_learning_rate": _REQUIRED, "decay_steps": _REQUIRED,
                        "end_learning_rate": 0.0001, "power": 1.0, "cycle": False, "name": None},
    "InverseTimeDecay": {"initial_learning_rate": _REQUIRED, "decay_steps": _REQUIRED,
                         "decay_rate": _REQUIRED, "staircase": False, "name": None},
    "CosineDecay": {"initial_learning_rate": _REQUIRED, "decay_steps": _REQUIRED, "alpha": 0.0,
                    "name": None, "warmup_target": None, "warmup_steps": 0},
    "CosineDecayRestarts": {"initial_learning_rate": _REQUIRED, "first_decay_steps": _REQUIRED,
                            "t_mul": 2.0, "m_mul": 1.0, "alpha": 0.0, "name": None},
}


def from_keras(config: dict[str, Any]) -> Schedule:
    """The jaxsched schedule of a serialized Keras 3 learning-rate schedule.

    `config` is what `keras.optimizers.schedules.serialize(schedule)` returns
    (`{"class_name": ..., "config": {...}, ...}`), for every Keras 3 schedule:

    ExponentialDecay         exponential_decay(initial_learning_rate, decay_steps, decay_rate, staircase)
    InverseTimeDecay         inverse_time_decay(...)
    PolynomialDecay          polynomial_decay(..., end_learning_rate, power, cycle)
    PiecewiseConstantDecay   piecewise_constant(boundaries, values)
    CosineDecay              cosine_decay(initial, decay_steps, alpha), or with a
                             warmup_target: warmup(cosine_decay(warmup_target, decay_steps,
                             alpha), warmup_steps, init_value=initial)
    CosineDecayRestarts      cosine_decay_restarts(initial, first_decay_steps, t_mul, m_mul, alpha)

    The Keras `name` is dropped.

    Args:
      config: the serialized schedule.

    Returns:
      A jaxsched schedule.

    Raises:
      ValueError: a class that is not a Keras 3 schedule (the message lists them).
      TypeError: not a serialized schedule, or an unknown or missing config key.

    Example:
        >>> import jaxsched as js
        >>> config = {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay",
        ...           "config": {"initial_learning_rate": 0.1, "decay_steps": 10,
        ...                      "decay_rate": 0.5, "staircase": False, "name": None},
        ...           "registered_name": None}
        >>> js.from_keras(config)
        exponential_decay(learning_rate=0.1, decay_steps=10, decay_rate=0.5, staircase=False)
    """
    owner = "from_keras"
    if not (isinstance(config, dict) and isinstance(config.get("class_name"), str)
            and isinstance(config.get("config"), dict)):
        raise TypeError(f"`{owner}(config=...)` must be a dict with 'class_name' and 'config' "
                        f"(what keras.optimizers.schedules.serialize returns), got {config!r}.")
    name = config["class_name"]
    if name not in _KERAS_SPECS:
        raise ValueError(f"`{owner}(config=...)` names the class {name!r}, which is not a Keras 3 "
                         f"schedule; known: {_listed(_KERAS_SPECS)}.")
    a = _resolve(owner, name, _KERAS_SPECS[name], config["config"])
    return _build(owner, name, lambda: _keras(name, a))


def _keras(name: str, a: dict) -> Schedule:
    if name == "ExponentialDecay":
        return ExponentialDecay(a["initial_learning_rate"], a["decay_steps"], a["decay_rate"],
                                bool(a["staircase"]))
    if name == "InverseTimeDecay":
        return InverseTimeDecay(a["initial_learning_rate"], a["decay_steps"], a["decay_rate"],
                                bool(a["staircase"]))
    if name == "PolynomialDecay":
        return PolynomialDecay(a["initial_learning_rate"], a["decay_steps"],
                               a["end_learning_rate"], a["power"], bool(a["cycle"]))
    if name == "PiecewiseConstantDecay":
        return PiecewiseConstant(tuple(a["boundaries"]), tuple(a["values"]))
    if name == "CosineDecay":
        cosine = CosineDecay(a["warmup_target"] if a["warmup_target"] is not None
                             else a["initial_learning_rate"], a["decay_steps"], a["alpha"])
        if a["warmup_target"] is None:
            return cosine
        return Warmup(cosine, a["warmup_steps"], a["initial_learning_rate"])
    if name == "CosineDecayRestarts":
        return CosineDecayRestarts(a["initial_learning_rate"], a["first_decay_steps"],
                                   a["t_mul"], a["m_mul"], a["alpha"])
    raise AssertionError(name)


TORCH_NAMES = tuple(_TORCH_SPECS)
HF_NAMES = tuple(_HF_SPECS)
KERAS_NAMES = tuple(_KERAS_SPECS)
