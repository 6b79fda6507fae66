"""What the LSTM benchmark prints and writes: statistics, tables, plots, lstm.json."""

from __future__ import annotations

import json
import math
import pathlib
import platform

import numpy as np

MIN_TIMED_STEPS = 50


def timing_stats(times: list, warmup: int, tokens_per_step: int, flops: float,
                 flops_xla: float | None = None, micro: int = 1) -> dict:
    """Step-time statistics; a step is one optimizer update of ``micro`` micro-steps
    (calls of the compiled train step), so ``micro_step_time_median_s`` is the
    median step time / ``micro``. ``tokens_per_step`` and ``flops`` are per step."""
    timed = np.asarray(times[warmup:], dtype=np.float64)
    if timed.size == 0:
        return {"timed_steps": 0}
    med = float(np.median(timed))
    out = {"timed_steps": int(timed.size), "warmup_steps_excluded": int(min(warmup, len(times))),
           "step_time_median_s": med, "step_time_p10_s": float(np.percentile(timed, 10)),
           "step_time_p90_s": float(np.percentile(timed, 90)),
           "step_time_mean_s": float(timed.mean()), "tokens_per_s": tokens_per_step / med,
           "micro_steps_per_step": micro, "micro_step_time_median_s": med / micro,
           "flops_per_step_analytic": flops, "achieved_flops_per_s": flops / med}
    if flops_xla is not None and math.isfinite(flops_xla):
        out["achieved_flops_per_s_xla_count"] = flops_xla / med
    if timed.size < MIN_TIMED_STEPS:
        out["note"] = f"only {timed.size} timed steps (< {MIN_TIMED_STEPS}); use more --steps"
    return out


def versions() -> dict:
    import importlib.metadata as md
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("jax", "jaxlib", "flax", "optax", "jaxsched", "numpy", "torch"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def machine() -> dict:
    """The CPU model and core count (as ``lscpu`` reports them) and the load average now."""
    import os
    model = None
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {"cpu_model": model or platform.processor() or None, "cpu_count": os.cpu_count(),
            "load_average": load}


def _fmt_bytes(n) -> str:
    if not isinstance(n, (int, float)):
        return str(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def print_tables(result: dict):
    """The XLA report and the summary, with rich if available."""
    rows = []
    x = result.get("xla", {})
    t = result.get("timing", {})
    if "repeats" in result:
        _print_repeats(result)
        return
    if "sweep" in result:
        rows.append(("Schedule sweep", ""))
        rows.append(("backend / device kind", f"{x.get('backend')} / {x.get('device_kind')}"))
        for name, sw in result["sweep"].items():
            med = sw["timing"].get("step_time_median_s", float("nan"))
            rows.append((name, f"final val loss {sw['final_valid_loss']:.4f}, step "
                         f"{med * 1e3:.1f} ms, compiles {sw['compiles']['train_step']}"))
        _print_rows(rows, "LSTM schedule sweep")
        return
    if result.get("alone") != "torch":  # no XLA step in a PyTorch-only process
        rows.append(("XLA report", ""))
        rows.append(("backend / device kind", f"{x.get('backend')} / {x.get('device_kind')}"))
        rows.append(("devices (present / used)",
                     f"{x.get('device_count')} / {x.get('devices_used')}"))
        for cell_key, label in (("main", result["config"]["cell"]), ("other_cell", None)):
            rep = x.get(cell_key)
            if not rep:
                continue
            label = label or rep.get("cell")
            rows.append((f"{label} cell: trace+lower / compile",
                         f"{rep['trace_lower_s']:.2f} s / {rep['compile_s']:.2f} s"))
            h = rep.get("hlo", {})
            rows.append((f"{label} cell: HLO ops / fusions",
                         f"{h.get('instructions')} / {h.get('fusions')} (unoptimized "
                         f"{rep.get('hlo_unoptimized', {}).get('instructions')} ops)"))
        mem = x.get("main", {}).get("memory", {})
        rows.append(("memory argument / output / temp",
                     " / ".join(_fmt_bytes(mem.get(k)) for k in (
                         "argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes"))))
        state = x.get("main", {}).get("optimizer_state_bytes")
        if state:
            rows.append(("optimizer state total / per device",
                         f"{_fmt_bytes(state['total'])} / {_fmt_bytes(state['per_device'])}"))
        rows.append(("FLOPs per step (XLA cost / analytic)",
                     f"{x.get('main', {}).get('flops_xla', float('nan')):.3g} / "
                     f"{t.get('flops_per_step_analytic', float('nan')):.3g}"))
    if t.get("timed_steps"):
        rows.append(("step time median [p10, p90]",
                     f"{t['step_time_median_s'] * 1e3:.1f} ms [{t['step_time_p10_s'] * 1e3:.1f}, "
                     f"{t['step_time_p90_s'] * 1e3:.1f}] over {t['timed_steps']} steps"))
        if t.get("micro_steps_per_step", 1) > 1:
            rows.append(("micro-steps per step (--accumulate)",
                         f"{t['micro_steps_per_step']}, {t['micro_step_time_median_s'] * 1e3:.1f}"
                         " ms per micro-step (--steps counts optimizer updates)"))
        rows.append(("tokens/s", f"{t['tokens_per_s']:,.0f}"))
        rows.append(("achieved FLOP/s (analytic)", f"{t['achieved_flops_per_s'] / 1e9:.1f} GFLOP/s"))
    rows.append(("train step compilations", str(result.get("compiles", {}).get("train_step"))))
    for key, label in (("phases", "XLA phase"), ("torch_phases", "PyTorch phase")):
        phases = x.get(key) if key == "phases" else result.get(key)
        for ph in (phases or {}).get("phases", []):
            rate = ph.get("achieved_flops_per_s")
            cpu = ph.get("cpu_time_s")
            rows.append((f"{label}: {ph['name']}",
                         f"{ph['time_s'] * 1e3:.2f} ms ({ph.get('share', 0) * 100:.0f}%)"
                         + (f", {rate / 1e9:.1f} GFLOP/s" if rate else "")
                         + (f", CPU {cpu * 1e3:.2f} ms" if cpu is not None else "")))
        if phases and phases.get("phases") and phases.get("step_s"):
            rows.append((f"{label}s: sum / whole step",
                         f"{phases['sum_s'] * 1e3:.1f} ms / {phases['step_s'] * 1e3:.1f} ms"))
    rows.append(("Summary", ""))
    fin = result.get("final", {})
    rows.append(("steps run", f"{fin.get('steps_run')}" + (" (interrupted)" if
                                                           result.get("interrupted") else "")))
    rows.append(("train loss first -> last", f"{fin.get('train_loss_first', float('nan')):.4f} -> "
                 f"{fin.get('train_loss_last', float('nan')):.4f}"))
    rows.append(("validation loss (final)", f"{fin.get('valid_loss', float('nan')):.4f}"))
    if "valid_loss_ema" in fin:
        rows.append(("validation loss of the EMA (final)", f"{fin['valid_loss_ema']:.4f}"))
    comp = result.get("companions")
    if comp and comp.get("flags"):
        logs = (result.get("valid", {}).get("log_values") or [{}])[-1]
        rows.append(("companions", " ".join(comp["flags"])
                     + (f"; skipped updates {logs['total_skips']:.0f}" if "total_skips" in logs
                        else "")))
    for name, c in result.get("compare", {}).items():
        if "step_time_median_s" in c:
            rows.append((f"vs {name}: step time", f"{c['step_time_median_s'] * 1e3:.1f} ms, "
                         f"ratio main/{name} = {c['step_time_ratio']:.3f}"))
            if c.get("timing", {}).get("micro_steps_per_step", 1) != \
                    result.get("timing", {}).get("micro_steps_per_step", 1):
                rows.append((f"vs {name}: per micro-step", f"ratio main/{name} = "
                             f"{c['micro_step_time_ratio']:.3f}"))
        if "max_abs_loss_diff" in c:
            rows.append((f"vs {name}: max |loss diff|", f"{c['max_abs_loss_diff']:.3g}"))
    if result.get("alone"):
        rows.append(("measured alone", result["alone"]))
    _print_rows(rows, f"LSTM benchmark ({result['config']['cell']} cell)")


def _print_repeats(result: dict):
    rep = result["repeats"]

    def spread(s, scale=1e3, unit=" ms"):
        if "median" not in s:
            return "n/a"
        return (f"{s['median'] * scale:.4g}{unit} [{s['min'] * scale:.4g}, "
                f"{s['max'] * scale:.4g}]")

    m = result.get("machine", {})
    rows = [("machine", f"{m.get('cpu_model')}, {m.get('cpu_count')} cores"),
            (f"main step, median of {rep['n']} runs [range]",
             spread(rep["main"]["step_time_median_s"]))]
    for name, c in rep["compare"].items():
        rows.append((f"{name} step [range]", spread(c["step_time_median_s"])))
        rows.append((f"ratio main/{name} [range]", spread(c["step_time_ratio"], 1, "")))
        if c.get("micro_step_time_ratio", {}).get("median") is not None and \
                c["micro_step_time_ratio"]["values"] != c["step_time_ratio"]["values"]:
            rows.append((f"per micro-step main/{name} [range]",
                         spread(c["micro_step_time_ratio"], 1, "")))
    for side, a in rep["alone"].items():
        if a.get("step_time_median_s"):
            rows.append((f"{side} alone (own process)", f"{a['step_time_median_s'] * 1e3:.1f} ms"
                         f" (load {a.get('load_average')})"))
    if "alone_ratio_jaxsched_torch" in rep:
        rows.append(("ratio alone jaxsched/torch", f"{rep['alone_ratio_jaxsched_torch']:.3f}"))
    rows.append(("load average per run", str(rep.get("load_average"))))
    _print_rows(rows, f"LSTM benchmark, {rep['n']} repeats")


def _print_rows(rows: list, title: str):
    try:
        from rich.console import Console
        from rich.table import Table
        table = Table(title=title)
        table.add_column("quantity")
        table.add_column("value")
        from rich.markup import escape
        for k, v in rows:
            table.add_row(f"[bold]{escape(k)}[/bold]" if not v else escape(k), escape(v))
        Console(width=120).print(table)
    except ImportError:
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"{k:<{width}}  {v}" if v else f"== {k} ==")


def write_plots(out: pathlib.Path, curves: dict, sweep: dict | None = None) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def save(filename: str, title: str, ylabel: str, height: float, draw) -> None:
        """One figure against step: ``draw(ax)`` plots, the rest is shared."""
        fig, ax = plt.subplots(figsize=(8, height))
        draw(ax)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / filename, dpi=110)
        plt.close(fig)
        written.append(filename)

    def losses(ax):
        for i, (name, c) in enumerate(curves.items()):
            if c.steps:
                ax.plot(c.steps, c.loss, lw=0.8, alpha=0.6, color=f"C{i}", label=f"{name} train")
            if c.eval_steps:
                ax.plot(c.eval_steps, c.eval_loss, "o-", color=f"C{i}", label=f"{name} validation")

    def rates(ax):
        for i, (name, c) in enumerate(curves.items()):
            if c.steps:
                ax.plot(c.steps, c.lr, color=f"C{i}", label=name, ls="-" if i == 0 else "--")

    def sweep_losses(ax):
        for name, c in sweep.items():
            ax.plot(c.eval_steps, c.eval_loss, "o-", label=name)

    if curves:
        save("loss.png", "training and validation loss", "cross entropy (nats/char)", 5, losses)
        save("lr.png", "learning rate", "learning rate", 4, rates)
    if sweep:
        save("sweep.png", "schedule sweep: validation loss", "validation loss (nats/char)", 5,
             sweep_losses)
    return written


def curve_dict(c) -> dict:
    """A curve (:class:`benchmarks.lstm_runners.Curve`) as lstm.json stores it."""
    return {"train": {"step": c.steps, "loss": c.loss, "lr": c.lr, "step_time_s": c.time_s},
            "valid": {"step": c.eval_steps, "loss": c.eval_loss, "eval_time_s": c.eval_time_s,
                      **({"loss_ema": c.eval_loss_ema} if c.eval_loss_ema else {}),
                      **({"log_values": c.eval_logs} if c.eval_logs else {})}}


def max_abs_diff(a: list, b: list) -> float:
    n = min(len(a), len(b))
    if n == 0:
        return float("nan")
    return float(np.max(np.abs(np.asarray(a[:n]) - np.asarray(b[:n]))))


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, pathlib.Path):
        return str(obj)
    return obj


def finish(out: pathlib.Path, result: dict) -> dict:
    import jax
    if jax.process_index() == 0:
        path = out / "lstm.json"
        path.write_text(json.dumps(_jsonable(result), indent=1))
        print_tables(result)
        print(f"wrote {path}" + "".join(f", {out / p}" for p in result.get("plots", [])))
    return result
