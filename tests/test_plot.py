"""`jaxsched.table`, `jaxsched.plot` and the text sparkline."""

from __future__ import annotations

import sys

import jax
import matplotlib
import numpy as np
import optax
import pytest

import jaxsched as js
from jaxsched import _plot

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SCHEDULES = {
    "cosine": js.cosine_decay(0.1, 100, alpha=0.1),
    "exp-staircase": js.exponential_decay(0.1, 30, 0.5, staircase=True),
    "piecewise": js.piecewise_constant([10, 50], [0.1, 0.05, 0.01]),
    "one-cycle": js.one_cycle(0.1, 100),
    "cyclic": js.cyclic(0.01, 0.1, 20, mode="triangular2"),
    "warmup": js.warmup(js.cosine_decay(0.1, 80), 20),
    "wsd": js.warmup_stable_decay(0.1, 10, 50, 40, decay="sqrt"),
    "join": js.join([js.constant(0.1), js.inverse_sqrt(0.1, 10)], [30]),
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_table_matches_direct_calls(name):
    s = SCHEDULES[name]
    steps = [0, 1, 9, 10, 11, 29, 30, 50, 99, 100, 1000]
    t = js.table(s, steps)
    assert isinstance(t, js.Table)
    assert t.steps.tolist() == steps
    expected = np.array([float(s(k)) for k in steps])
    np.testing.assert_allclose(t.values, expected, rtol=1e-6, atol=1e-9)
    assert t.values.dtype == np.float32


def test_table_int_means_zero_to_n_inclusive():
    t = js.table(js.cosine_decay(1.0, 10), 10)
    assert t.steps.tolist() == list(range(11))
    assert t.values[0] == 1.0 and t.values[-1] == 0.0


def test_table_is_one_compiled_program_for_same_kind():
    js.table(js.cosine_decay(0.1, 100), np.arange(40))
    before = _plot._evaluate._cache_size()
    # Other hyperparameter values and another length in the same bucket: no recompile.
    js.table(js.cosine_decay(0.5, 300, alpha=0.2), np.arange(50))
    js.table(js.cosine_decay(0.2, 7), list(range(64, 0, -1)))
    assert _plot._evaluate._cache_size() == before


def test_table_large_integer_steps_do_not_wrap():
    # 2**32 + 50 wrapped to int32 would be step 50 (value 0.5).
    t = js.table(js.cosine_decay(1.0, 100), np.array([0, 2**32 + 50], dtype=np.int64))
    assert t.values.tolist() == [1.0, 0.0]


def test_table_python_int_hyperparameter_beyond_int32():
    s = js.cosine_decay(1.0, 2**40)
    t = js.table(s, [0, 2**39])
    np.testing.assert_allclose(t.values, [1.0, 0.5], atol=1e-6)


def test_table_accepts_optax_schedules_and_float_steps():
    t = js.table(optax.linear_schedule(1.0, 0.0, 10), [0.0, 5.0, 10.0])
    np.testing.assert_allclose(t.values, [1.0, 0.5, 0.0], atol=1e-7)


def test_table_empty_steps():
    t = js.table(js.constant(1.0), [])
    assert t.steps.size == 0 and t.values.size == 0


def test_table_str_is_two_aligned_columns():
    text = str(js.table(js.piecewise_constant([10], [1.0, 0.25]), [0, 10, 1000]))
    assert text.splitlines() == ["step  value", "   0  1", "  10  1", "1000  0.25"]


@pytest.mark.parametrize("steps, error, text", [
    (-1, ValueError, "`table(steps=...)` must be >= 0, got -1."),
    (True, TypeError, "`table(steps=...)` must be an int"),
    ([[0, 1]], TypeError, "1-D sequence"),
    (["a"], TypeError, "1-D sequence"),
    ([0.0, float("nan")], ValueError, "must be finite"),
])
def test_table_bad_steps(steps, error, text):
    with pytest.raises(error, match=None) as info:
        js.table(js.constant(1.0), steps)
    assert text in str(info.value)


def test_table_rejects_non_callable():
    with pytest.raises(TypeError, match=r"`table\(schedule=...\)` must be a schedule"):
        js.table(0.1, 10)


def test_plot_several_schedules_returns_labelled_figure():
    fig = js.plot({"a": SCHEDULES["cosine"], "b": SCHEDULES["one-cycle"]}, 100, title="t")
    assert isinstance(fig, matplotlib.figure.Figure)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert [l.get_label() for l in lines] == ["a", "b"]
    assert lines[0].get_xdata().tolist() == list(range(101))
    np.testing.assert_allclose(lines[1].get_ydata(), js.table(SCHEDULES["one-cycle"], 100).values)
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "learning rate"
    assert ax.get_title() == "t"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]


def test_plot_single_schedule_is_labelled_by_its_repr():
    s = js.cosine_decay(0.1, 100)
    fig = js.plot(s, 10)
    assert fig.axes[0].get_lines()[0].get_label() == repr(s)


def test_plot_on_given_axes_with_log_scale_and_line_kwargs():
    fig, ax = plt.subplots()
    out = js.plot(js.exponential_decay(0.1, 10, 0.5), [0, 10, 20], ax=ax, log_y=True,
                  legend=False, linewidth=3)
    assert out is fig
    assert ax.get_yscale() == "log"
    assert ax.get_legend() is None
    assert ax.get_lines()[0].get_linewidth() == 3


def test_plot_log_scale_hides_zero_values():
    fig = js.plot(js.cosine_decay(1.0, 10), 10, log_y=True)
    y = fig.axes[0].get_lines()[0].get_ydata()
    assert np.isnan(y[-1]) and y[0] == 1.0


def test_plot_rejects_empty_dict():
    with pytest.raises(ValueError, match=r"`plot\(schedules=...\)` must not be empty"):
        js.plot({}, 10)


def test_plot_without_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install jaxsched\[plot\]"):
        js.plot(js.constant(1.0), 10)
    with pytest.raises(ImportError, match=r"pip install jaxsched\[plot\]"):
        js.plot_lr_finder(None)


def test_plot_and_table_inside_vmap_sweep_values_agree():
    # A vmapped hyperparameter sweep gives the same values as table per config.
    lrs = np.array([0.1, 0.2, 0.3], np.float32)
    swept = jax.vmap(lambda lr: js.cosine_decay(lr, 100)(np.arange(5)))(lrs)
    for lr, row in zip(lrs, np.asarray(swept)):
        np.testing.assert_allclose(js.table(js.cosine_decay(lr, 100), 4).values, row, rtol=1e-6)


def test_sparkline_shapes():
    assert _plot.sparkline(range(8)) == "▁▂▃▄▅▆▇█"
    assert _plot.sparkline(range(7, -1, -1)) == "█▇▆▅▄▃▂▁"
    assert _plot.sparkline([2.0] * 5) == "▁▁▁▁▁"
    assert _plot.sparkline([0.0, float("nan"), 1.0]) == "▁ █"
    assert _plot.sparkline([]) == ""
    line = _plot.sparkline(np.linspace(0, 1, 1000), width=40)
    assert len(line) == 40 and line[0] == "▁" and line[-1] == "█"
