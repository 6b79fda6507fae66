"""The learning-rate range test (Smith, 2017; popularised by fastai).

Train for `num_steps` steps while the learning rate grows exponentially from
`min_lr` to `max_lr`, record the (smoothed) loss at each step, and pick the
rate where the smoothed loss falls fastest. The whole run is one `lax.scan`
inside one `jax.jit`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsched import _checks
from jaxsched._numerics import float_dtype

PyTree = Any


class LRFinderResult(NamedTuple):
    """What `lr_finder` measured; `result.plot()` draws it.

    Points from the first diverged step on are NaN in `losses` and
    `raw_losses`; `num_valid` counts the points before it.

    Example:
        >>> import jax.numpy as jnp, optax, jaxsched as js
        >>> loss = lambda w, x: jnp.mean((w - 1.0) ** 2 * x)
        >>> r = js.lr_finder(loss, jnp.zeros(()), optax.sgd, jnp.ones((20, 4)),
        ...                  min_lr=1e-3, max_lr=1e2, num_steps=20)
        >>> r.learning_rates.shape, r.losses.shape, bool(r.num_valid <= 20)
        ((20,), (20,), True)
        >>> bool(r.learning_rates[0] == 1e-3 and r.learning_rates[-1] == 1e2)
        True
    """

    learning_rates: np.ndarray  # [num_steps] float: the rate used at each step
    losses: np.ndarray  # [num_steps] float: bias-corrected smoothed loss, NaN once diverged
    raw_losses: np.ndarray  # [num_steps] float: loss of each batch, NaN once diverged
    suggestion: float  # rate of steepest descent of the smoothed loss (NaN if < 3 valid points)
    num_valid: int  # number of points before divergence

    def plot(self, ax: Any = None) -> Any:
        """Plot the smoothed loss against the learning rate; see `plot_lr_finder`."""
        return plot_lr_finder(self, ax)


def _check_args(min_lr: Any, max_lr: Any, num_steps: Any, smoothing: Any,
                diverge_factor: Any) -> None:
    owner = "lr_finder"
    _checks.number(owner, "min_lr", min_lr, lo=0, lo_open=True)
    _checks.number(owner, "max_lr", max_lr, lo=0, lo_open=True)
    if not float(max_lr) > float(min_lr):
        raise ValueError(f"`{owner}(max_lr=...)` must be > min_lr = {min_lr!r}, got {max_lr!r}.")
    _checks.integer(owner, "num_steps", num_steps, lo=2, hi=_checks.INT32_MAX)
    _checks.number(owner, "smoothing", smoothing, lo=0, hi=1, hi_open=True)
    _checks.number(owner, "diverge_factor", diverge_factor, lo=1, lo_open=True)
    _checks.float32_range(owner, "min_lr", min_lr, divisor=True)
    _checks.float32_range(owner, "max_lr", max_lr)
    _checks.float32_range(owner, "diverge_factor", diverge_factor)
    _checks.integer(owner, "num_steps", num_steps, lo=2, hi=_checks.INT32_MAX)


def _take_batches(batches: Any, num_steps: int) -> PyTree:
    leaves = jax.tree.leaves(batches)
    if not leaves:
        raise ValueError("`lr_finder(batches=...)` must hold arrays with a leading "
                         "num_steps axis, or be a callable of the step; got an empty pytree.")
    for leaf in leaves:
        shape = np.shape(leaf)
        if not shape or shape[0] < num_steps:
            raise ValueError(f"`lr_finder(batches=...)` arrays must have a leading axis of "
                             f"at least num_steps = {num_steps}, got shape {tuple(shape)}.")
    return jax.tree.map(lambda x: x[:num_steps], batches)


def lr_finder(loss_fn: Callable[[PyTree, Any], jax.Array], params: PyTree,
              optimizer_factory: Callable[[jax.Array], optax.GradientTransformation],
              batches: Any, min_lr: float = 1e-7, max_lr: float = 10.0, num_steps: int = 100,
              smoothing: float = 0.98, *, diverge_factor: float = 4.0) -> LRFinderResult:
    """Run a learning-rate range test and suggest a learning rate.

    Starting from `params`, takes `num_steps` optimizer steps while the
    learning rate grows exponentially from `min_lr` to `max_lr`, all in one
    jitted `lax.scan`:

    lr_k = min_lr * (max_lr / min_lr) ** (k / (num_steps - 1))        k = 0 .. num_steps - 1
    avg_k = smoothing * avg_{k-1} + (1 - smoothing) * loss_k;  avg_{-1} = 0
    smoothed_k = avg_k / (1 - smoothing ** (k + 1))                    (bias-corrected)

    The run diverges at the first step where `smoothed_k` is not finite or
    exceeds the best smoothed loss so far by more than
    `(diverge_factor - 1) * |best|`, which for a positive loss is
    `diverge_factor` times the best (the fastai rule) and works for a loss of
    either sign; from there on the parameters are frozen and the points are
    masked (NaN). The
    suggestion is the learning rate where the smoothed loss falls fastest
    against `log(lr)` (the most negative `np.gradient`) over the valid points,
    leaving out the first tenth and the last five of them (fastai leaves
    out a tenth of the planned steps; the two agree while nothing diverges).
    A good training rate is usually this suggestion or up to ten times below
    the rate where the loss is lowest.

    Args:
      loss_fn: `loss_fn(params, batch) -> scalar loss`, differentiable in params.
      params: the initial parameters (a pytree of float arrays).
      optimizer_factory: `optimizer_factory(learning_rate) -> GradientTransformation`.
        It is called once with `min_lr` (as an array) to initialise the state
        and then inside the scan with the step's rate as a traced scalar
        array, so it must build the same state structure for any rate:
        `lambda lr: js.adam(lr)` or `lambda lr: optax.sgd(lr, momentum=0.9)`.
      batches: a pytree of arrays with a leading axis of at least `num_steps`
        (step k uses `batch[k]`), or a jittable callable `step -> batch`
        (called with a traced int32 step).
      min_lr: first learning rate, > 0.
      max_lr: last learning rate, > min_lr.
      num_steps: number of steps, an int >= 2.
      smoothing: exponential smoothing factor of the loss, in [0, 1); 0 means
        no smoothing.
      diverge_factor: divergence threshold: the smoothed loss may rise above the
        best by `(diverge_factor - 1) * |best|`, > 1 (4 as fastai, for a
        positive loss; `torch-lr-finder`'s `diverge_th` defaults to 5).

    Returns:
      An `LRFinderResult(learning_rates, losses, raw_losses, suggestion,
      num_valid)` of NumPy arrays and Python numbers; `result.plot()` draws it.

    Raises:
      ValueError, TypeError: an argument is out of range, or the batch arrays
        are shorter than `num_steps`.

    Example:
        >>> import jax, jax.numpy as jnp, optax, jaxsched as js
        >>> x = jnp.linspace(-1.0, 1.0, 32)
        >>> loss = lambda w, batch: jnp.mean((w * batch - 2.0 * batch) ** 2)
        >>> result = js.lr_finder(loss, jnp.zeros(()), optax.sgd, jnp.tile(x, (60, 1)),
        ...                       min_lr=1e-3, max_lr=1e3, num_steps=60)
        >>> result.num_valid < 60        # it diverged before max_lr
        True
        >>> bool(0.05 < result.suggestion < 6.0)   # stable range: lr < 2 / mean(x**2) = 5.6
        True

    References:
      Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017.
    """
    _check_args(min_lr, max_lr, num_steps, smoothing, diverge_factor)
    _checks.callable_("lr_finder", "loss_fn", loss_fn)
    _checks.callable_("lr_finder", "optimizer_factory", optimizer_factory)
    num_steps = int(num_steps)
    fdt = float_dtype()
    ks = np.arange(num_steps, dtype=np.float64)
    lrs = float(min_lr) * (float(max_lr) / float(min_lr)) ** (ks / (num_steps - 1))
    lrs[-1] = float(max_lr)

    if callable(batches) and not hasattr(batches, "shape"):
        get_batch = batches
        xs = (jnp.asarray(lrs, fdt), jnp.arange(num_steps, dtype=jnp.int32))
        from_stack = False
    else:
        xs = (jnp.asarray(lrs, fdt), _take_batches(batches, num_steps))
        from_stack = True

    beta = float(smoothing)
    factor = float(diverge_factor)
    init_opt = optimizer_factory(jnp.asarray(min_lr, fdt))
    opt_state = init_opt.init(params)

    def run(params, opt_state, xs):
        def step(carry, inputs):
            params, opt_state, avg, best, diverged, k = carry
            lr, data = inputs
            batch = data if from_stack else get_batch(data)
            loss, grads = jax.value_and_grad(loss_fn)(params, batch)
            loss = jnp.asarray(loss, fdt)
            avg_new = beta * avg + (1 - beta) * loss
            kf = (k + 1).astype(fdt)
            smoothed = avg_new / (1 - jnp.asarray(beta, fdt) ** kf)
            # Relative to the loss's own scale |best|, for either sign of the loss
            # (`smoothed > factor * best` would stop at once on a negative loss).
            bad = ~jnp.isfinite(smoothed) | (smoothed - best > (factor - 1) * jnp.abs(best))
            diverged = diverged | bad
            best = jnp.where(diverged, best, jnp.minimum(best, smoothed))
            opt = optimizer_factory(lr)
            updates, new_state = opt.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            keep = lambda new, old: jax.tree.map(  # noqa: E731
                lambda a, b: jnp.where(diverged, b, a), new, old)
            params = keep(new_params, params)
            opt_state = keep(new_state, opt_state)
            avg = jnp.where(diverged, avg, avg_new)
            out = (jnp.where(diverged, jnp.nan, smoothed), jnp.where(diverged, jnp.nan, loss))
            return (params, opt_state, avg, best, diverged, k + 1), out

        carry = (params, opt_state, jnp.zeros((), fdt), jnp.asarray(jnp.inf, fdt),
                 jnp.zeros((), bool), jnp.zeros((), jnp.int32))
        (_, _, _, _, _, _), (smoothed, raw) = jax.lax.scan(step, carry, xs)
        return smoothed, raw

    smoothed, raw = jax.jit(run)(params, opt_state, xs)
    smoothed = np.asarray(smoothed, np.float64)
    raw = np.asarray(raw, np.float64)
    finite = np.isfinite(smoothed)
    num_valid = int(np.argmin(finite)) if not finite.all() else num_steps
    smoothed[num_valid:] = np.nan
    raw[num_valid:] = np.nan
    return LRFinderResult(lrs, smoothed, raw, _suggest(lrs, smoothed, num_valid), num_valid)


def _suggest(lrs: np.ndarray, smoothed: np.ndarray, num_valid: int) -> float:
    """The rate of steepest descent of the smoothed loss against log(lr).

    The first tenth and the last five valid points are left out (the
    smoothing's start-up and the run-up to divergence; fastai counts its
    tenth from the planned steps) when at least
    three points remain.
    """
    if num_valid < 3:
        return math.nan
    start, end = num_valid // 10, num_valid - 5
    if end - start < 3:
        start, end = 0, num_valid
    x, y = np.log(lrs[start:end]), smoothed[start:end]
    slope = np.gradient(y, x)
    return float(lrs[start + int(np.argmin(slope))])


def plot_lr_finder(result: LRFinderResult, ax: Any = None, *,
                   show_raw: bool = False) -> Any:
    """Plot an `lr_finder` result: smoothed loss against the learning rate (log axis).

    Draws the valid points of the smoothed loss, optionally the raw losses,
    and a dashed vertical line with a marker at the suggested rate.

    Args:
      result: the `LRFinderResult` of `lr_finder`.
      ax: a matplotlib `Axes` to draw on; a new figure if None.
      show_raw: also draw the raw (unsmoothed) losses, faintly.

    Returns:
      The matplotlib `Figure` drawn on.

    Raises:
      ImportError: matplotlib is not installed (`pip install jaxsched[plot]`).

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import numpy as np, jaxsched as js
        >>> lrs = np.geomspace(1e-4, 1.0, 5)
        >>> result = js.LRFinderResult(lrs, np.array([1.0, 0.9, 0.5, 0.4, np.nan]),
        ...                            np.array([1.0, 0.8, 0.4, 0.4, np.nan]), 1e-2, 4)
        >>> fig = js.plot_lr_finder(result)
        >>> fig.axes[0].get_xscale()
        'log'
    """
    from jaxsched._plot import _require_matplotlib

    _require_matplotlib("plot_lr_finder")
    if ax is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    else:
        fig = ax.figure
    n = int(result.num_valid)
    lrs = np.asarray(result.learning_rates)[:n]
    if show_raw:
        ax.plot(lrs, np.asarray(result.raw_losses)[:n], color="0.7", linewidth=0.8,
                label="raw loss")
    ax.plot(lrs, np.asarray(result.losses)[:n], label="smoothed loss")
    suggestion = float(result.suggestion)
    if math.isfinite(suggestion) and n:
        ax.axvline(suggestion, color="tab:red", linestyle="--", linewidth=1,
                   label=f"suggestion {suggestion:.3g}")
        y = np.interp(np.log(suggestion), np.log(lrs), np.asarray(result.losses)[:n])
        ax.plot([suggestion], [y], "o", color="tab:red")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss")
    ax.set_title("learning-rate range test")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig
