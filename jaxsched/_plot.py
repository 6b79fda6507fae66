"""Looking at schedules: values at chosen steps (`table`) and a matplotlib plot (`plot`).

matplotlib is an optional dependency (`pip install jaxsched[plot]`), imported
only when `plot` is called.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Union

import jax
import numpy as np

from jaxsched._numerics import INT32_MAX, x64
from jaxsched._schedule import Schedule, as_schedule

ScheduleLike = Union[Schedule, Callable[[Any], Any]]

_SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def _require_matplotlib(owner: str) -> Any:
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError(f"`{owner}` needs matplotlib, an optional dependency: "
                          f"pip install jaxsched[plot]") from err
    return matplotlib


def _steps_array(owner: str, steps: Any) -> np.ndarray:
    """Steps as a 1-D NumPy array; an int `n` means the steps 0, 1, ..., n."""
    if isinstance(steps, (bool, np.bool_)):
        raise TypeError(f"`{owner}(steps=...)` must be an int or a sequence of steps, "
                        f"got {steps!r}.")
    if isinstance(steps, (int, np.integer)):
        if steps < 0:
            raise ValueError(f"`{owner}(steps=...)` must be >= 0, got {steps!r}.")
        return np.arange(int(steps) + 1)
    try:
        arr = np.asarray(steps)
    except Exception as err:  # ragged input and the like
        raise TypeError(f"`{owner}(steps=...)` must be an int or a sequence of steps, "
                        f"got {steps!r}.") from err
    if arr.ndim != 1 or arr.dtype.kind not in "iuf":
        raise TypeError(f"`{owner}(steps=...)` must be an int or a 1-D sequence of steps, "
                        f"got {steps!r}.")
    if arr.size and not np.isfinite(arr).all():
        raise ValueError(f"`{owner}(steps=...)` must be finite, got {steps!r}.")
    return arr


def _device_steps(arr: np.ndarray) -> np.ndarray:
    """Integer steps beyond int32 become floats without x64 (never wrapped ints)."""
    if arr.dtype.kind in "iu" and not x64() and arr.size:
        if arr.max() > INT32_MAX or arr.min() < -INT32_MAX:
            return arr.astype(np.float64)
    return arr


@jax.jit
def _evaluate(schedule: Schedule, steps: jax.Array) -> jax.Array:
    return jax.vmap(schedule)(steps)


class Table(NamedTuple):
    """A schedule's values at some steps; `print` shows them as two columns.

    Returned by `jaxsched.table`.

    Example:
        >>> import jaxsched as js
        >>> t = js.table(js.constant(0.5), [0, 10])
        >>> t.steps.tolist(), t.values.tolist()
        ([0, 10], [0.5, 0.5])
        >>> print(t)
        step  value
           0  0.5
          10  0.5
    """

    steps: np.ndarray  # [n], the steps asked for (ints, or floats)
    values: np.ndarray  # [n] float32 (float64 under x64): the schedule at each step

    def __str__(self) -> str:
        steps = [_fmt_step(s) for s in self.steps]
        values = [f"{float(v):.6g}" for v in self.values]
        w1 = max([len("step")] + [len(s) for s in steps])
        w2 = max([len("value")] + [len(v) for v in values])
        lines = [f"{'step':>{w1}}  {'value':<{w2}}".rstrip()]
        lines += [f"{s:>{w1}}  {v}" for s, v in zip(steps, values)]
        return "\n".join(lines)


def _fmt_step(s: Any) -> str:
    f = float(s)
    return str(int(f)) if f.is_integer() and abs(f) < 2**63 else f"{f:g}"


def table(schedule: ScheduleLike, steps: Any) -> Table:
    """Evaluate a schedule at many steps in one compiled, vectorised call.

    The schedule is passed to one `jax.jit`-compiled `jax.vmap` over the steps
    (padded to a power-of-two length), so a schedule of the same kind with
    other hyperparameter values, or another number of steps of the same
    power-of-two bucket, reuses the compiled program. `print(table(...))` shows a two-column table.

    Args:
      schedule: a jaxsched schedule or any callable of the step (an optax
        schedule).
      steps: an int `n` (the steps 0, 1, ..., n) or a 1-D sequence of steps.
        Integer steps beyond 2**31 - 1 are evaluated as floats unless
        `jax_enable_x64` is on.

    Returns:
      A `Table(steps, values)` NamedTuple of NumPy arrays.

    Raises:
      TypeError: `schedule` is not callable, or `steps` is not an int or 1-D
        sequence of numbers.
      ValueError: `steps` is a negative int or holds a non-finite step.

    Example:
        >>> import jaxsched as js
        >>> t = js.table(js.cosine_decay(0.1, 100), [0, 50, 100])
        >>> print(t)
        step  value
           0  0.1
          50  0.05
         100  0
        >>> [round(float(v), 3) for v in t.values]
        [0.1, 0.05, 0.0]
    """
    sched = as_schedule("table", "schedule", schedule)
    arr = _steps_array("table", steps)
    if arr.size == 0:
        values = np.zeros((0,), np.asarray(sched(0)).dtype)
    else:
        dev = _device_steps(arr)
        # Pad to a power-of-two length so nearby lengths share one compiled program.
        size = max(16, 1 << (dev.size - 1).bit_length())
        padded = np.concatenate([dev, np.full(size - dev.size, dev[0], dev.dtype)])
        try:
            values = _evaluate(sched, padded)
        except OverflowError:
            # A Python-int hyperparameter beyond int32 cannot be a jit argument
            # without x64; close over it instead (the schedule handles it).
            values = jax.jit(jax.vmap(sched))(padded)
        values = np.asarray(values)[:dev.size]
    return Table(arr, values)


def _as_mapping(owner: str, schedules: Any) -> dict[str, Schedule]:
    if isinstance(schedules, Mapping):
        if not schedules:
            raise ValueError(f"`{owner}(schedules=...)` must not be empty, got {{}}.")
        out = {}
        for label, s in schedules.items():
            out[str(label)] = as_schedule(owner, "schedules", s)
        return out
    sched = as_schedule(owner, "schedules", schedules)
    label = repr(sched)
    if len(label) > 70:
        label = getattr(sched, "name", label[:67] + "...")
    return {label: sched}


def plot(schedules: Union[ScheduleLike, Mapping[str, ScheduleLike]], steps: Any = 1000,
         ax: Any = None, *, title: str | None = None, log_y: bool = False,
         xlabel: str = "step", ylabel: str = "learning rate", legend: bool = True,
         **line_kwargs: Any) -> Any:
    """Plot one or several schedules against the step with matplotlib.

    Each schedule is evaluated with `table` (one compiled call) and drawn as a
    line; with several schedules (a dict of label to schedule) each gets its
    own colour and legend entry. Without `ax` a new figure is made with
    `matplotlib.pyplot`, so `plt.show()` and notebooks display it.

    Args:
      schedules: a schedule (or any callable of the step), or a dict
        `{label: schedule}`.
      steps: an int `n` (plots the steps 0, 1, ..., n) or a 1-D sequence of steps.
      ax: a matplotlib `Axes` to draw on; a new figure if None.
      title: the axes title.
      log_y: use a logarithmic value axis (zero values are not drawn).
      xlabel, ylabel: axis labels.
      legend: draw a legend.
      **line_kwargs: passed to every `ax.plot` call (`linewidth`, `alpha`, ...).

    Returns:
      The matplotlib `Figure` drawn on.

    Raises:
      ImportError: matplotlib is not installed (`pip install jaxsched[plot]`).
      TypeError, ValueError: as `table`, or an empty dict of schedules.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import jaxsched as js
        >>> fig = js.plot({"cosine": js.cosine_decay(0.1, 100),
        ...                "one-cycle": js.one_cycle(0.1, 100)}, steps=100)
        >>> [line.get_label() for line in fig.axes[0].get_lines()]
        ['cosine', 'one-cycle']
    """
    _require_matplotlib("plot")
    scheds = _as_mapping("plot", schedules)
    arr = _steps_array("plot", steps)
    if ax is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    else:
        fig = ax.figure
    for label, sched in scheds.items():
        t = table(sched, arr)
        values = t.values
        if log_y:
            values = np.where(values > 0, values, np.nan)
        ax.plot(arr, values, label=label, **line_kwargs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if legend:
        ax.legend(fontsize="small")
    return fig


def sparkline(values: Any, width: int = 60) -> str:
    """A one-line text picture of a curve with Unicode block characters.

    The values are resampled to `width` points (evenly spaced indices) and
    mapped linearly from their minimum (lowest block) to their maximum
    (full block); non-finite values are drawn as spaces.

    Args:
      values: a 1-D sequence of numbers.
      width: number of characters, >= 1.

    Returns:
      A string of `min(width, len(values))` characters.

    Example:
        >>> from jaxsched._plot import sparkline
        >>> sparkline([0, 1, 2, 3, 4, 5, 6, 7])
        '▁▂▃▄▅▆▇█'
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return ""
    if v.size > width:
        v = v[np.linspace(0, v.size - 1, width).round().astype(int)]
    finite = np.isfinite(v)
    if not finite.any():
        return " " * v.size
    lo, hi = v[finite].min(), v[finite].max()
    span = hi - lo
    top = len(_SPARK_BLOCKS) - 1
    chars = []
    for x, ok in zip(v, finite):
        if not ok:
            chars.append(" ")
            continue
        k = 0 if span == 0 else int(round((x - lo) / span * top))
        chars.append(_SPARK_BLOCKS[k])
    return "".join(chars)
