"""The jobs of the LSTM benchmark, one function per mode of the command line.

* :func:`run_main`: the main run (the XLA report, training, ``--compare``,
  ``--phases``);
* :func:`run_alone`: ``--alone jaxsched|torch``, one side in its own process;
* :func:`run_sweep`: ``--sweep-schedules``;
* :func:`run_lr_find`: ``--lr-find``;
* :func:`run_repeats`: ``--repeats N``, the main run N times in fresh
  processes and each side alone, summarised as a median ratio and its range.

Every mode but ``--repeats`` starts from :func:`setup` (the corpus, the mesh
of ``--devices``, the initial weights every side copies, the compile counter
and the shared part of ``lstm.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

from benchmarks import corpus as corpus_lib
from benchmarks.lstm_cli import UsageError, check_jaxsched, companions, prepare_out
from benchmarks.lstm_optim import build_optimizer, build_schedule
from benchmarks.lstm_output import (curve_dict, finish, machine, max_abs_diff, timing_stats,
                                    versions, write_plots)
from benchmarks.lstm_runners import JaxRunner, TorchRunner, make_mesh, train

SCRIPT = pathlib.Path(__file__).resolve().parent / "lstm.py"


@dataclasses.dataclass
class Setup:
    """What every mode of one process shares."""

    args: argparse.Namespace
    js: object
    out: pathlib.Path
    corpus: object
    mesh: object
    counter: object
    init_params: dict
    val_batches: list
    tokens: int        # tokens per micro-batch (per step without --accumulate)
    flops: float       # analytic FLOPs per micro-batch
    result: dict       # the shared part of lstm.json
    started: float

    def jaxsched_runner(self, name: str, cell: str, schedule_name: str,
                        with_companions: bool = True):
        """A runner of the jaxsched optimizer (``--flat-params`` if asked) and its schedule.

        ``with_companions=False`` (``--compare plain``): the same optimizer without
        ``--skip-spikes``, ``--accumulate`` and ``--ema``, one micro-batch per update.
        """
        args = self.args
        schedule = build_schedule(self.js, schedule_name, args.lr, args.steps, args.warmup_steps)
        tx = build_optimizer(args, schedule, "jaxsched", companions=with_companions)
        return JaxRunner(name, args, self.corpus.vocab_size, cell, schedule, tx,
                         self.init_params, self.mesh, self.counter, js=self.js,
                         flat_params=True, micro=args.accumulate if with_companions else 1,
                         companions=with_companions), schedule

    def optax_runner(self, schedule):
        tx = build_optimizer(self.args, schedule, "optax")  # MultiSteps with --accumulate
        return JaxRunner("optax", self.args, self.corpus.vocab_size, self.args.cell, schedule,
                         tx, self.init_params, self.mesh, self.counter, js=None,
                         micro=self.args.accumulate)

    def torch_runner(self, schedule):
        return TorchRunner(self.args, self.init_params, schedule)

    def sampler(self):
        """The training batches, the same sequence for every side and every run."""
        a = self.args
        return corpus_lib.BatchSampler(self.corpus.train, a.batch, a.seq_len, a.seed)


def setup(args) -> Setup:
    """Load the corpus, build the mesh and the initial weights; start ``lstm.json``."""
    if args.distributed:
        import jax
        jax.distributed.initialize()
    js = check_jaxsched(args)
    out = prepare_out(args.out)
    if "torch" in args.compare or args.alone == "torch":
        from benchmarks import torch_lstm
        if not torch_lstm.available():
            raise UsageError("--compare", "torch is not installed (pip install torch==2.13.0; "
                             "it is not a dependency of jaxsched)")
    corpus = corpus_lib.load_corpus(args.data, args.seq_len, max_chars=args.max_chars)

    import jax
    import jax.numpy as jnp

    from benchmarks.lstm_model import CharLSTM, count_params, train_flops_per_step
    from benchmarks.xla_report import CompileCounter

    try:
        mesh = make_mesh(args.devices)
    except ValueError as e:
        raise UsageError("--devices", str(e)) from None
    counter = CompileCounter()
    started = time.perf_counter()
    init_model = CharLSTM(corpus.vocab_size, args.embed, args.hidden, args.layers, args.dropout,
                          cell=args.cell)
    init_params = jax.jit(init_model.init)(jax.random.PRNGKey(args.seed),
                                           jnp.zeros((1, args.seq_len), jnp.int32))
    init_params = jax.device_get(init_params)
    val_batches = corpus_lib.fixed_batches(corpus.valid, args.batch, args.seq_len,
                                           args.eval_batches, seed=args.seed + 1000)
    flops = train_flops_per_step(args.batch, args.seq_len, corpus.vocab_size, args.embed,
                                 args.hidden, args.layers)
    config = {k: v for k, v in vars(args).items() if k != "argv"}
    config["optimizer_library"] = "jaxsched"
    result = {"config": config, "versions": versions(), "machine": machine(),
              "corpus": corpus.info,
              "model": {"parameters": count_params(init_params),
                        "vocab_size": corpus.vocab_size},
              "xla": {"backend": jax.default_backend(),
                      "device_kind": jax.devices()[0].device_kind,
                      "device_count": jax.device_count(),
                      "local_device_count": jax.local_device_count(),
                      "process_count": jax.process_count(),
                      "devices_used": args.devices},
              "interrupted": False}
    return Setup(args, js, out, corpus, mesh, counter, init_params, val_batches,
                 args.batch * args.seq_len, flops, result, started)


def _done(s: Setup, plots: list) -> dict:
    s.result["plots"] = plots
    s.result["wall_time_s"] = time.perf_counter() - s.started
    s.result["machine"]["load_average_end"] = machine()["load_average"]
    return finish(s.out, s.result)


def _final(c) -> dict:
    out = {"steps_run": len(c.steps),
           "train_loss_first": c.loss[0] if c.loss else float("nan"),
           "train_loss_last": float(np.mean(c.loss[-10:])) if c.loss else float("nan"),
           "valid_loss": c.eval_loss[-1] if c.eval_loss else float("nan"),
           "loss_decreased": bool(c.loss and float(np.mean(c.loss[-10:])) < c.loss[0])}
    if c.eval_loss_ema:
        out["valid_loss_ema"] = c.eval_loss_ema[-1]
    return out


def _timing(s: Setup, runner, flops_xla=None) -> dict:
    """:func:`timing_stats` of a runner's steps (each ``runner.micro`` micro-batches)."""
    micro = getattr(runner, "micro", 1)
    return timing_stats(runner.curve.time_s, s.args.timing_warmup, s.tokens * micro,
                        s.flops * micro, None if flops_xla is None else flops_xla * micro,
                        micro=micro)


def _companions_summary(s: Setup, runner) -> dict:
    """What the companion flags did, and what ``--steps`` counted (optimizer updates)."""
    a = s.args
    return {"flags": companions(a), "skip_spikes": a.skip_spikes, "accumulate": a.accumulate,
            "ema": a.ema, "steps_count": "optimizer updates",
            "micro_batches_per_update": runner.micro,
            "optimizer_updates_run": len(runner.curve.steps),
            "train_step_calls": runner.calls,
            "wrapping": "accumulate(skip_spikes(chain(clip, optimizer, [plateau], "
                        "[ema_params])), every=K), each present only with its flag"}


def _main_side_results(s: Setup, main, flops_xla=None) -> None:
    """The main side's timing, curves and final losses into ``s.result``."""
    c = main.curve
    s.result["timing"] = _timing(s, main, flops_xla)
    if isinstance(main, JaxRunner):
        s.result["companions"] = _companions_summary(s, main)
    s.result["timing"]["eval_time_median_s"] = float(np.median(c.eval_time_s)) \
        if c.eval_time_s else None
    s.result.update(curve_dict(c))
    s.result["final"] = _final(c)


def run_lr_find(s: Setup) -> dict:
    """``--lr-find``: an exponentially increasing learning rate in one jitted scan."""
    import matplotlib
    matplotlib.use("Agg")

    from benchmarks.lstm_model import CharLSTM, cross_entropy

    args, js = s.args, s.js
    model = CharLSTM(s.corpus.vocab_size, args.embed, args.hidden, args.layers, 0.0,
                     cell=args.cell, unroll=args.unroll)
    sampler = s.sampler()
    batches = tuple(np.stack(x) for x in zip(*(sampler() for _ in range(args.lr_find_steps))))
    no_plateau = argparse.Namespace(**{**vars(args), "plateau": False})  # no value= in the scan
    found = js.lr_finder(lambda p, b: cross_entropy(model.apply(p, b[0]), b[1]), s.init_params,
                         lambda lr: build_optimizer(no_plateau, lr, "jaxsched"), batches,
                         min_lr=1e-6, max_lr=10.0, num_steps=args.lr_find_steps)
    found.plot().savefig(s.out / "lr_find.png")
    summary = {"suggestion": found.suggestion, "num_valid": found.num_valid,
               "learning_rates": found.learning_rates.tolist(),
               "losses": [None if np.isnan(v) else v for v in found.losses.tolist()]}
    (s.out / "lr_find.json").write_text(json.dumps(summary))
    print(f"lr range test: suggested --lr {found.suggestion:.3g} ({found.num_valid}/"
          f"{args.lr_find_steps} steps before divergence); see {s.out / 'lr_find.png'}")
    return {"lr_find": {"suggestion": found.suggestion, "num_valid": found.num_valid}}


def run_sweep(s: Setup) -> dict:
    """``--sweep-schedules``: each schedule trained for the same budget, one after another."""
    args = s.args
    probe = s.sampler()()
    sweep_curves, sweep = {}, {}
    for name in args.sweep_schedules:
        runner, _ = s.jaxsched_runner(f"sweep-{name}", args.cell, name)
        runner.compile(*probe)
        interrupted = train(args, [runner], s.sampler(), s.val_batches, f"sweep {name}")
        c = runner.curve
        sweep_curves[name] = c
        sweep[name] = {"final_valid_loss": c.eval_loss[-1] if c.eval_loss else float("nan"),
                       "final_train_loss": c.loss[-1] if c.loss else float("nan"),
                       "compile_s": runner.report["compile_s"],
                       "compiles": runner.compile_counts(),
                       **curve_dict(c),
                       "timing": _timing(s, runner)}
        if interrupted:
            s.result["interrupted"] = True
            break
    s.result["sweep"] = sweep
    first = next(iter(sweep.values()))
    s.result["final"] = {"steps_run": len(first["train"]["step"])}
    return _done(s, write_plots(s.out, {}, sweep_curves))


def _compare_entry(s: Setup, main, runner) -> dict:
    """One ``--compare`` side's figures against the main side."""
    rc, c = runner.curve, main.curve
    entry = {"label": runner.name,
             "timing": _timing(s, runner), **curve_dict(rc)}
    if entry["timing"].get("timed_steps") and s.result["timing"].get("timed_steps"):
        entry["step_time_median_s"] = entry["timing"]["step_time_median_s"]
        entry["step_time_ratio"] = (s.result["timing"]["step_time_median_s"]
                                    / entry["step_time_median_s"])
        # main's time per micro-step (per call of its compiled step) / this side's
        entry["micro_step_time_ratio"] = (s.result["timing"]["micro_step_time_median_s"]
                                          / entry["timing"]["micro_step_time_median_s"])
    entry["max_abs_loss_diff"] = max_abs_diff(c.loss, rc.loss)
    entry["max_abs_valid_loss_diff"] = max_abs_diff(c.eval_loss, rc.eval_loss)
    if isinstance(runner, JaxRunner):
        entry["compiles"] = runner.compile_counts()
    if isinstance(runner, TorchRunner):
        entry["torch_threads"] = runner.trainer.threads
        entry["fused_adamw"] = runner.trainer.fused
    return entry


def run_main(s: Setup) -> dict:
    """The main job: XLA report of both cells, training with ``--compare``, ``--phases``."""
    args = s.args
    probe = s.sampler()()
    main, schedule = s.jaxsched_runner("main", args.cell, args.schedule)
    runners = [main]
    xla = s.result["xla"]
    xla["main"] = main.compile(*probe)
    xla["main"]["cell"] = args.cell
    other_cell = "flax" if args.cell == "fast" else "fast"
    if "cell" in args.compare:
        other, _ = s.jaxsched_runner(f"{other_cell}-cell", other_cell, args.schedule)
        runners.append(other)
        xla["other_cell"] = other.compile(*probe)
    else:  # compile only, so that compile time is reported for both cells
        other, _ = s.jaxsched_runner(f"{other_cell}-cell-compile-only", other_cell,
                                     args.schedule)
        xla["other_cell"] = other.compile(*probe)
        del other
    xla["other_cell"]["cell"] = other_cell
    if "plain" in args.compare:
        plain, _ = s.jaxsched_runner("plain", args.cell, args.schedule, with_companions=False)
        xla["plain"] = plain.compile(*probe)
        runners.append(plain)
    if "optax" in args.compare:
        optax_side = s.optax_runner(schedule)
        xla["optax"] = optax_side.compile(*probe)
        runners.append(optax_side)
    if "torch" in args.compare:
        runners.append(s.torch_runner(schedule))

    s.result["interrupted"] = train(args, runners, s.sampler(), s.val_batches,
                                    f"{args.cell} cell")
    s.result["compiles"] = main.compile_counts()
    _main_side_results(s, main, xla["main"].get("flops_xla"))
    s.result["compare"] = {("cell" if r.name.endswith("-cell") else r.name):
                           _compare_entry(s, main, r) for r in runners[1:]}
    if args.phases:
        from benchmarks import lstm_phases
        xla["phases"] = lstm_phases.jax_phases(s, main, probe)
        if "torch" in args.compare:
            s.result["torch_phases"] = lstm_phases.torch_phases(s, runners[-1], probe)
    return _done(s, write_plots(s.out, {r.name if r is not main else "jaxsched": r.curve
                                        for r in runners}))


def run_alone(s: Setup) -> dict:
    """``--alone SIDE``: train only jaxsched's main step, or only PyTorch's, in this process."""
    args = s.args
    if args.alone == "torch":  # no JAX train step in this process
        schedule = build_schedule(s.js, args.schedule, args.lr, args.steps, args.warmup_steps)
        runner = s.torch_runner(schedule)
        s.result["config"]["optimizer_library"] = "torch"
    else:
        runner, _ = s.jaxsched_runner("main", args.cell, args.schedule)
        s.result["xla"]["main"] = runner.compile(*s.sampler()())
        s.result["xla"]["main"]["cell"] = args.cell
    s.result["alone"] = args.alone
    s.result["interrupted"] = train(args, [runner], s.sampler(), s.val_batches,
                                    f"{args.alone} alone")
    if isinstance(runner, JaxRunner):
        s.result["compiles"] = runner.compile_counts()
    else:
        s.result["torch_threads"] = runner.trainer.threads
    _main_side_results(s, runner)
    return _done(s, write_plots(s.out, {args.alone: runner.curve}))


# ---------------------------------------------------------------------------
# --repeats: fresh processes, a median ratio and its range.
# ---------------------------------------------------------------------------

def _without(argv: list, flags: dict) -> list:
    """``argv`` without the given flags (``{flag: takes_value}``), either spelling."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        name = a.split("=")[0]
        if name in flags:
            skip = flags[name] and "=" not in a
            continue
        out.append(a)
    return out


def repeat_commands(args) -> list:
    """The child command lines of ``--repeats``: ``(label, argv)`` pairs.

    ``args.repeats`` runs of the main job with its ``--compare`` (each in a
    fresh process, output in ``--out``/``repeat_<k>``), then each side alone
    in its own process (``alone_jaxsched``, and ``alone_torch`` when torch is
    compared).
    """
    base = _without(args.argv, {"--repeats": True, "--out": True, "--alone": True,
                                "--no-progress": False})
    out = pathlib.Path(args.out)
    cmds = [(f"repeat_{k}", base + ["--no-progress", "--out", str(out / f"repeat_{k}")])
            for k in range(args.repeats)]
    alone_base = _without(base, {"--compare": True, "--phases": False})
    sides = ["jaxsched"] + (["torch"] if "torch" in args.compare else [])
    cmds += [(f"alone_{side}", alone_base + ["--no-progress", "--alone", side,
                                              "--out", str(out / f"alone_{side}")])
             for side in sides]
    return cmds


def _spread(values: list) -> dict:
    v = [x for x in values if x is not None]
    if not v:
        return {"values": values}
    return {"values": values, "median": float(np.median(v)), "min": float(min(v)),
            "max": float(max(v))}


def summarize_repeats(runs: list, alone: dict) -> dict:
    """Median and range over repeated runs of every step time and every ratio.

    Args:
      runs: the ``lstm.json`` of each repeat of the main job.
      alone: ``{side: lstm.json}`` of each side measured alone.
    Returns:
      ``{"n", "main": {...}, "compare": {name: {"step_time_median_s": {...},
      "step_time_ratio": {...}}}, "alone": {side: {...}}, "load_average": [...]}``
      where each ``{...}`` holds ``values``, ``median``, ``min`` and ``max``.
    """
    def main_time(r):
        return r.get("timing", {}).get("step_time_median_s")

    summary = {"n": len(runs), "main": {"step_time_median_s": _spread([main_time(r)
                                                                       for r in runs])},
               "compare": {}, "alone": {},
               "load_average": [r.get("machine", {}).get("load_average") for r in runs]}
    names = sorted({k for r in runs for k in r.get("compare", {})})
    for name in names:
        entries = [r.get("compare", {}).get(name, {}) for r in runs]
        summary["compare"][name] = {
            "step_time_median_s": _spread([e.get("step_time_median_s") for e in entries]),
            "step_time_ratio": _spread([e.get("step_time_ratio") for e in entries]),
            "micro_step_time_ratio": _spread([e.get("micro_step_time_ratio")
                                              for e in entries])}
    for side, r in alone.items():
        t = r.get("timing", {})
        summary["alone"][side] = {"step_time_median_s": t.get("step_time_median_s"),
                                  "step_time_p10_s": t.get("step_time_p10_s"),
                                  "step_time_p90_s": t.get("step_time_p90_s"),
                                  "load_average": r.get("machine", {}).get("load_average")}
    a = summary["alone"]
    if "jaxsched" in a and "torch" in a and a["torch"]["step_time_median_s"]:
        summary["alone_ratio_jaxsched_torch"] = (a["jaxsched"]["step_time_median_s"]
                                                  / a["torch"]["step_time_median_s"])
    return summary


def run_repeats(args) -> dict:
    """``--repeats N``: the main job N times and each side alone, each in a fresh process."""
    out = prepare_out(args.out)
    runs, alone = [], {}
    env = dict(os.environ)
    root = str(SCRIPT.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    started = time.perf_counter()
    for label, argv in repeat_commands(args):
        print(f"lstm.py --repeats: {label} (load average {machine()['load_average']})",
              file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, str(SCRIPT), *argv], env=env, text=True,
                              stdout=subprocess.PIPE)
        if proc.returncode != 0:
            raise RuntimeError(f"{label} failed with exit status {proc.returncode}")
        r = json.loads((out / label / "lstm.json").read_text())
        if label.startswith("alone_"):
            alone[label[len("alone_"):]] = r
        else:
            runs.append(r)
    result = {"config": {k: v for k, v in vars(args).items() if k != "argv"},
              "versions": versions(), "machine": machine(),
              "repeats": summarize_repeats(runs, alone),
              "runs": [f"repeat_{k}" for k in range(len(runs))],
              "wall_time_s": time.perf_counter() - started}
    return finish(out, result)
