"""Character-level LSTM language-model benchmark for jaxsched.

Trains a flax LSTM language model (:mod:`benchmarks.lstm_model`) on a text
corpus (:mod:`benchmarks.corpus`, by default the source of a fixed set of
Python standard-library modules) with a jaxsched optimizer and schedule, and
reports what XLA made of the train step together with measured step times.

Usage::

    python benchmarks/lstm.py                       # default run + XLA report
    python benchmarks/lstm.py --quick               # tiny run, < 1 minute on 2 cores
    python benchmarks/lstm.py --compare optax       # jaxsched vs the optax-built optimizer
    python benchmarks/lstm.py --compare torch       # vs torch.nn.LSTM + AdamW (CPU)
    python benchmarks/lstm.py --compare cell        # fast cell vs flax's cell
    python benchmarks/lstm.py --compare optax,torch,cell
    python benchmarks/lstm.py --schedule exponential_decay --optimizer rmsprop
    python benchmarks/lstm.py --sweep-schedules cosine_decay,exponential_decay,one_cycle
    XLA_FLAGS=--xla_force_host_platform_device_count=8 python benchmarks/lstm.py --devices 8

What a run does
---------------
* One ``jax.jit`` train step: forward, loss, gradient, global-norm clipping,
  the optimizer and the schedule, with parameters and optimizer state donated.
  It is traced, lowered and compiled ahead of time
  (``jit(...).trace(...).lower().compile()``) for the report, then called for
  every step; a ``jax.monitoring`` listener counts backend compilations of it
  (the report asserts nothing, it prints the count, which should be 1).
* The train step of the other cell is compiled too (not run) so compile time
  is reported for both cells.
* Comparisons (``--compare``) are trained in the same process on the same
  batches, alternating blocks of ``--compare-block`` steps between the sides
  (the order of the sides flips every block) so that machine noise hits all
  of them.  ``optax`` trains the identical model, from identical weights, with
  ``optax.chain(optax.clip_by_global_norm, optax.<optimizer>(schedule))``;
  ``torch`` trains ``torch.nn.LSTM`` from the same initial weights with AdamW,
  ``clip_grad_norm_`` and the same schedule through ``LambdaLR``; ``cell``
  trains the same model with the other LSTM implementation.
* Outputs in ``--out`` (a directory): ``lstm.json`` (every figure, the
  configuration, the versions of jax/jaxlib/flax/optax/jaxsched), ``loss.png``
  (training and validation loss), ``lr.png`` (learning rate), and for a sweep
  ``sweep.png``.  A Ctrl-C stops training and still writes all of these with
  what was measured so far (``"interrupted": true``).

Data parallelism and multi-host
-------------------------------
``--devices N`` builds a ``jax.sharding.Mesh`` over the first ``N`` devices
with one axis ``data``; batches are placed with ``NamedSharding(mesh,
P("data"))`` (the batch size must be divisible by ``N``), parameters and
optimizer state are replicated (``NamedSharding(mesh, P())``) and the jitted
step keeps them so; XLA inserts the gradient all-reduce.  On a CPU machine the
host can be split into devices with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``.

To run on several hosts, start the same command on every host and call
``jax.distributed.initialize()`` first (``--distributed`` does this; on Cloud
TPU and SLURM it needs no arguments, elsewhere set ``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, or pass them to
``initialize``).  ``jax.devices()`` then lists the devices of all hosts, so
``--devices`` counts global devices, the mesh spans the hosts, and each host
feeds its slice of the global batch: the batch arrays are assembled with
``jax.make_array_from_process_local_data``.  Every host draws the same global
batch from the same seed and keeps its own rows, so the loss curve does not
depend on the number of hosts.  Only process 0 writes outputs.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import math
import pathlib
import platform
import re
import sys
import time

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks import corpus as corpus_lib

PROG = "lstm.py"
OPTIMIZERS = ("adamw", "adam", "sgd", "momentum", "rmsprop", "adagrad")
#: Default peak learning rate of each optimizer.
DEFAULT_LR = {"adamw": 2e-3, "adam": 2e-3, "sgd": 0.5, "momentum": 0.05,
              "rmsprop": 1e-3, "adagrad": 0.05}
#: Schedules that bring their own warmup (no ``js.warmup`` wrapper).
SELF_WARMING = ("one_cycle", "warmup_stable_decay", "inverse_sqrt", "cyclic", "constant")
SCHEDULES = ("cosine_decay", "exponential_decay", "natural_exp_decay", "inverse_time_decay",
             "polynomial_decay", "cosine_decay_restarts", "linear_cosine_decay", "one_cycle",
             "cyclic", "constant", "warmup_stable_decay", "inverse_sqrt", "piecewise_constant")
COMPARISONS = ("optax", "torch", "cell")
MIN_TIMED_STEPS = 50


class UsageError(Exception):
    """A bad command-line value; printed as one line naming the flag."""

    def __init__(self, flag: str, message: str):
        super().__init__(f"{flag}: {message}")


def fail(message: str, code: int = 2):
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(code)


# ---------------------------------------------------------------------------
# Command line.
# ---------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        fail(message)


def _bounded(convert, expected: str, bound: str, ok):
    """An argparse type: `convert(text)`, rejected with a one-line message unless `ok`."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            shown = value if convert is int else text
            raise argparse.ArgumentTypeError(f"must be {bound}, got {shown}")
        return value
    return parse


_positive_int = _bounded(int, "a positive integer", "positive", lambda v: v > 0)
_nonneg_int = _bounded(int, "an integer >= 0", ">= 0", lambda v: v >= 0)
_positive_float = _bounded(float, "a positive number", "positive",
                           lambda v: v > 0 and math.isfinite(v))
_nonneg_float = _bounded(float, "a number >= 0", ">= 0", lambda v: v >= 0 and math.isfinite(v))


def _dropout(text: str) -> float:
    value = _nonneg_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__.split("\n\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="PATH", help="UTF-8 text file (default: the embedded "
                   "Python standard-library corpus)")
    g.add_argument("--batch", type=_positive_int, default=32, help="global batch size")
    g.add_argument("--seq-len", type=_positive_int, default=64, help="characters per window")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("model")
    g.add_argument("--cell", choices=("fast", "flax"), default="fast",
                   help="LSTM implementation: fast (input projection hoisted out of the "
                   "scan, custom VJP) or flax's OptimizedLSTMCell")
    g.add_argument("--layers", type=_positive_int, default=2)
    g.add_argument("--hidden", type=_positive_int, default=256)
    g.add_argument("--embed", type=_positive_int, default=128, help="embedding width")
    g.add_argument("--dropout", type=_dropout, default=0.0, help="between LSTM layers")
    g.add_argument("--unroll", type=_positive_int, default=1, help="lax.scan unroll factor")
    g = p.add_argument_group("optimization")
    g.add_argument("--steps", type=_positive_int, default=600)
    g.add_argument("--optimizer", default="adamw", help=f"one of {', '.join(OPTIMIZERS)}")
    g.add_argument("--flat-params", action="store_true",
                   help="hold the jaxsched side's parameters in js.flat_params (one buffer "
                   "per dtype; the model reads views, gradients come back flat)")
    g.add_argument("--lr", type=_positive_float, default=None,
                   help="peak learning rate (default depends on --optimizer)")
    g.add_argument("--weight-decay", type=_nonneg_float, default=1e-4, help="adamw only")
    g.add_argument("--clip", type=_nonneg_float, default=5.0,
                   help="clip_by_global_norm threshold (0: no clipping)")
    g.add_argument("--schedule", default="cosine_decay", help=f"one of {', '.join(SCHEDULES)}")
    g.add_argument("--warmup-steps", type=_nonneg_int, default=None,
                   help="linear warmup length (default: 5%% of --steps)")
    g.add_argument("--plateau", action="store_true",
                   help="chain js.reduce_on_plateau fed with the last validation loss")
    g.add_argument("--lr-find", action="store_true",
                   help="run a learning-rate range test (jaxsched.lr_finder), write "
                        "lr_find.png and lr_find.json, and exit")
    g.add_argument("--lr-find-steps", type=_positive_int, default=100)
    g = p.add_argument_group("evaluation and measurement")
    g.add_argument("--eval-every", type=_positive_int, default=100)
    g.add_argument("--eval-batches", type=_positive_int, default=8)
    g.add_argument("--timing-warmup", type=_nonneg_int, default=5,
                   help="first steps excluded from the step-time statistics")
    g.add_argument("--compare", default="", help=f"comma-separated subset of "
                   f"{', '.join(COMPARISONS)}, trained alternating with the main run")
    g.add_argument("--compare-block", type=_positive_int, default=10,
                   help="steps per side per alternation")
    g.add_argument("--torch-threads", type=_positive_int, default=None,
                   help="torch.set_num_threads (default: all cores)")
    g.add_argument("--devices", type=_positive_int, default=1,
                   help="data-parallel over this many devices")
    g.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize() first (multi-host)")
    g.add_argument("--sweep-schedules", default=None, metavar="NAMES",
                   help="comma-separated schedules, each trained for the same budget")
    g = p.add_argument_group("output")
    g.add_argument("--out", default="lstm_results", help="output directory")
    g.add_argument("--quick", action="store_true",
                   help="tiny configuration for tests (1 layer, 64 hidden, 60 steps)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


QUICK = dict(layers=1, hidden=64, embed=32, batch=16, seq_len=32, steps=60, eval_every=20,
             eval_batches=2, timing_warmup=5, max_chars=300_000)


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.max_chars = None
    if args.quick:  # --quick overrides the sizes it sets unless given explicitly
        given = {a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:])}
        for key, value in QUICK.items():
            if f"--{key.replace('_', '-')}" not in given:
                setattr(args, key, value)
    args.optimizer = args.optimizer.strip()
    if args.optimizer not in OPTIMIZERS:
        raise UsageError("--optimizer", f"unknown optimizer {args.optimizer!r}; "
                         f"choose from {', '.join(OPTIMIZERS)}")
    if args.schedule not in SCHEDULES:
        raise UsageError("--schedule", f"unknown schedule {args.schedule!r}; "
                         f"choose from {', '.join(SCHEDULES)}")
    args.compare = [c.strip() for c in args.compare.split(",") if c.strip()]
    for c in args.compare:
        if c not in COMPARISONS:
            raise UsageError("--compare", f"unknown comparison {c!r}; choose from "
                             f"{', '.join(COMPARISONS)}")
    if args.sweep_schedules is not None:
        names = [s.strip() for s in args.sweep_schedules.split(",") if s.strip()]
        if not names:
            raise UsageError("--sweep-schedules", "no schedule names given")
        for name in names:
            if name not in SCHEDULES:
                raise UsageError("--sweep-schedules", f"unknown schedule {name!r}; "
                                 f"choose from {', '.join(SCHEDULES)}")
        args.sweep_schedules = names
    if args.lr is None:
        args.lr = DEFAULT_LR[args.optimizer]
    if args.warmup_steps is None:
        args.warmup_steps = max(1, args.steps // 20)
    if args.warmup_steps >= args.steps:
        raise UsageError("--warmup-steps", f"must be smaller than --steps ({args.steps})")
    if args.batch % args.devices:
        raise UsageError("--batch", f"{args.batch} is not divisible by --devices {args.devices}")
    return args


def prepare_out(path: str) -> pathlib.Path:
    """Create ``--out`` and check it is writable (one-line error otherwise)."""
    out = pathlib.Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise UsageError("--out", f"cannot write to {path}: {e.strerror or e}") from None
    return out


# ---------------------------------------------------------------------------
# Schedules and optimizers: the one place that knows jaxsched and optax.
# ---------------------------------------------------------------------------

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
    else:  # validated in parse_args
        raise UsageError("--schedule", f"unknown schedule {name!r}")
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
    raise UsageError("--optimizer", f"unknown optimizer {name!r}")


def build_optimizer(args, schedule, library: str = "jaxsched"):
    """``clip_by_global_norm(--clip)`` then ``--optimizer`` (then reduce_on_plateau).

    ``library="jaxsched"`` is the benchmarked path; ``library="optax"`` builds
    the equivalent optimizer from optax for ``--compare optax`` (same schedule
    object as learning rate).
    """
    if library == "jaxsched":
        import jaxsched as js
        parts = [js.clip_by_global_norm(args.clip)] if args.clip > 0 else []
        parts.append(_optimizer(js, args.optimizer, schedule, args, optax_style=False))
        if args.plateau:
            parts.append(js.reduce_on_plateau(factor=0.5, patience=2))
        return js.chain(*parts)
    import optax
    parts = [optax.clip_by_global_norm(args.clip)] if args.clip > 0 else []
    parts.append(_optimizer(optax, args.optimizer, schedule, args, optax_style=True))
    if args.plateau:
        parts.append(optax.contrib.reduce_on_plateau(factor=0.5, patience=2))
    return optax.chain(*parts)


def check_jaxsched(args):
    try:
        import jaxsched as js
    except ImportError as e:
        fail(f"jaxsched is not importable ({e}); install the package (pip install -e .)", 1)
    if args.plateau and not hasattr(js, "reduce_on_plateau"):
        raise UsageError("--plateau", "this jaxsched has no reduce_on_plateau yet")
    return js


# ---------------------------------------------------------------------------
# Compilation counting and the XLA report.
# ---------------------------------------------------------------------------

class CompileCounter:
    """Counts XLA backend compilations per jitted function name."""

    def __init__(self):
        import jax
        from jax._src import dispatch  # event names; stable for years
        self.counts = collections.Counter()
        self.event = getattr(dispatch, "BACKEND_COMPILE_EVENT",
                             "/jax/core/compile/backend_compile_duration")
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event, duration, **kwargs):
        if event == self.event:
            self.counts[kwargs.get("fun_name", "?")] += 1

    def count(self, fun_name: str) -> int:
        return sum(v for k, v in self.counts.items() if k in (fun_name, f"jit({fun_name})"))


_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*\S+.*?\s([a-z][\w\-]*)\(", re.M)


def hlo_stats(hlo_text: str) -> dict:
    """Instruction and fusion counts of an HLO module's text."""
    ops = collections.Counter(m.group(1) for m in _INSTR.finditer(hlo_text))
    computations = re.findall(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$", hlo_text, re.M)
    fused = sum(1 for c in computations if "fused" in c or "fusion" in c)
    kinds = collections.Counter(re.findall(r"kind=(k\w+)", hlo_text))
    return {"instructions": int(sum(ops.values())), "fusions": int(ops.get("fusion", 0)),
            "fusion_kinds": dict(kinds), "fused_computations": fused,
            "dots": int(ops.get("dot", 0) + ops.get("convolution", 0)),
            "while_loops": int(ops.get("while", 0))}


def compile_report(jitted, example_args) -> tuple[object, dict]:
    """Trace, lower and compile ``jitted`` for ``example_args``, timing each stage."""
    t0 = time.perf_counter()
    if hasattr(jitted, "trace"):
        traced = jitted.trace(*example_args)
        t1 = time.perf_counter()
        lowered = traced.lower()
    else:
        lowered = jitted.lower(*example_args)
        t1 = t0
    t2 = time.perf_counter()
    compiled = lowered.compile()
    t3 = time.perf_counter()
    report = {"trace_s": t1 - t0, "lower_s": t2 - t1, "trace_lower_s": t2 - t0,
              "compile_s": t3 - t2}
    try:
        report["hlo_unoptimized"] = hlo_stats(lowered.as_text(dialect="hlo"))
    except Exception as e:  # noqa: BLE001 - report, don't fail the benchmark
        report["hlo_unoptimized"] = {"error": str(e)}
    try:
        report["hlo"] = hlo_stats(compiled.as_text())
    except Exception as e:  # noqa: BLE001
        report["hlo"] = {"error": str(e)}
    try:
        mem = compiled.memory_analysis()
        report["memory"] = {k: int(getattr(mem, k)) for k in (
            "argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
            "alias_size_in_bytes", "generated_code_size_in_bytes") if hasattr(mem, k)}
    except Exception as e:  # noqa: BLE001
        report["memory"] = {"error": str(e)}
    try:
        cost = compiled.cost_analysis()
        if isinstance(cost, (list, tuple)):
            cost = cost[0] if cost else {}
        report["flops_xla"] = float(cost.get("flops", float("nan")))
        report["bytes_accessed_xla"] = float(cost.get("bytes accessed", float("nan")))
    except Exception as e:  # noqa: BLE001
        report["flops_xla"] = float("nan")
        report["cost_error"] = str(e)
    return compiled, report


# ---------------------------------------------------------------------------
# Runners: one per side of a comparison, all driven by the same loop.
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Curve:
    """What a side measured: per-step loss/lr/time, eval points."""

    steps: list = dataclasses.field(default_factory=list)
    loss: list = dataclasses.field(default_factory=list)
    lr: list = dataclasses.field(default_factory=list)
    time_s: list = dataclasses.field(default_factory=list)
    eval_steps: list = dataclasses.field(default_factory=list)
    eval_loss: list = dataclasses.field(default_factory=list)
    eval_time_s: list = dataclasses.field(default_factory=list)

    def record(self, step, loss, lr, seconds):
        self.steps.append(step)
        self.loss.append(loss)
        self.lr.append(lr)
        self.time_s.append(seconds)


def _find_lr(hyper: dict):
    for key in sorted(hyper):
        if key == "learning_rate" or key.endswith("/learning_rate"):
            return hyper[key]
    return None


class JaxRunner:
    """A flax model trained by one jitted, donated train step on a device mesh."""

    def __init__(self, name, args, vocab_size, cell, schedule, tx, init_params, mesh,
                 counter, hyper_fn=None, flat_params=False):
        import jax
        import jax.numpy as jnp
        from jax.sharding import NamedSharding, PartitionSpec as P

        from benchmarks.lstm_model import CharLSTM, cross_entropy

        self.name, self.args, self.cell, self.counter = name, args, cell, counter
        self.jax = jax
        self.model = CharLSTM(vocab_size, args.embed, args.hidden, args.layers, args.dropout,
                              cell=cell, unroll=args.unroll)
        self.curve = Curve()
        self.data_sharding = NamedSharding(mesh, P("data"))
        self.replicated = NamedSharding(mesh, P())
        model, plateau = self.model, args.plateau
        dropout_key = jax.random.PRNGKey(args.seed + 1)
        flat = flat_params and getattr(args, "flat_params", False)

        def tree(p):
            return p.unflatten() if flat else p

        def train_step(params, opt_state, inputs, targets, step, last_eval_loss):
            rng = jax.random.fold_in(dropout_key, step)

            def loss_fn(p):
                logits = model.apply(tree(p), inputs, train=True, rngs={"dropout": rng})
                return cross_entropy(logits, targets)

            loss, grads = jax.value_and_grad(loss_fn)(params)
            extra = {"value": last_eval_loss} if plateau else {}
            updates, opt_state = tx.update(grads, opt_state, params, **extra)
            params = jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
            lr = None
            if hyper_fn is not None:  # the learning rate the update used, from the state
                lr = _find_lr(hyper_fn(opt_state))
            if lr is None:
                lr = schedule(step)
            grad_norm = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree_util.tree_leaves(grads)))
            metrics = {"loss": loss, "lr": jnp.asarray(lr, jnp.float32), "grad_norm": grad_norm}
            return params, opt_state, metrics

        def eval_step(params, inputs, targets):
            return cross_entropy(model.apply(tree(params), inputs, train=False), targets)

        self.fun_name = f"train_step_{name.replace('-', '_')}"
        train_step.__name__ = train_step.__qualname__ = self.fun_name
        self.eval_name = f"eval_step_{name.replace('-', '_')}"
        eval_step.__name__ = eval_step.__qualname__ = self.eval_name
        rep, dat = self.replicated, self.data_sharding
        self.train_step = jax.jit(train_step, donate_argnums=(0, 1),
                                  in_shardings=(rep, rep, dat, dat, rep, rep),
                                  out_shardings=(rep, rep, rep))
        self.eval_step = jax.jit(eval_step, in_shardings=(rep, dat, dat), out_shardings=rep)
        # Every side gets its own copy of the same initial weights.
        self.params = jax.tree_util.tree_map(jnp.array, init_params)
        if flat:
            import jaxsched as js
            self.params = js.flat_params(self.params)
        self.params = jax.device_put(self.params, rep)
        self.opt_state = jax.device_put(tx.init(self.params), rep)
        self.last_eval = np.float32(10.0)
        self.report = None

    def place(self, inputs, targets):
        """Put a global batch on the mesh (each process keeps its rows)."""
        jax = self.jax
        n, k = jax.process_count(), jax.process_index()
        rows = inputs.shape[0] // n
        sl = slice(k * rows, (k + 1) * rows)
        return tuple(jax.make_array_from_process_local_data(self.data_sharding, a[sl], a.shape)
                     for a in (inputs, targets))

    def example_args(self, inputs, targets):
        x, y = self.place(inputs, targets)
        return (self.params, self.opt_state, x, y, np.int32(0), np.float32(0.0))

    def compile(self, inputs, targets):
        _, self.report = compile_report(self.train_step, self.example_args(inputs, targets))
        return self.report

    def step(self, index, inputs, targets):
        x, y = self.place(inputs, targets)
        t0 = time.perf_counter()
        self.params, self.opt_state, metrics = self.train_step(
            self.params, self.opt_state, x, y, np.int32(index), self.last_eval)
        metrics = self.jax.device_get(metrics)  # waits for the step
        seconds = time.perf_counter() - t0
        self.curve.record(index, float(metrics["loss"]), float(metrics["lr"]), seconds)

    def evaluate(self, index, batches):
        t0 = time.perf_counter()
        losses = [self.eval_step(self.params, *self.place(x, y)) for x, y in batches]
        value = float(np.mean(self.jax.device_get(losses)))
        self.curve.eval_time_s.append(time.perf_counter() - t0)
        self.curve.eval_steps.append(index)
        self.curve.eval_loss.append(value)
        self.last_eval = np.float32(value)
        return value

    def compile_counts(self) -> dict:
        return {"train_step": self.counter.count(self.fun_name),
                "train_step_cache_size": int(self.train_step._cache_size())
                if hasattr(self.train_step, "_cache_size") else None,
                "eval_step": self.counter.count(self.eval_name)}


class TorchRunner:
    """``--compare torch``: the PyTorch model behind the same interface."""

    def __init__(self, args, init_params, schedule):
        from benchmarks.torch_lstm import TorchTrainer
        table = np.asarray(schedule(np.arange(args.steps + 1)), dtype=np.float64)
        self.name = "torch"
        self.curve = Curve()
        self.trainer = TorchTrainer(init_params, layers=args.layers, dropout=args.dropout,
                                    lr_table=table, weight_decay=args.weight_decay
                                    if args.optimizer == "adamw" else 0.0,
                                    b1=0.9, b2=0.999, eps=1e-8, clip_norm=args.clip or float("inf"),
                                    threads=args.torch_threads)

    def step(self, index, inputs, targets):
        t0 = time.perf_counter()
        loss, lr = self.trainer.step(inputs, targets)
        self.curve.record(index, loss, lr, time.perf_counter() - t0)

    def evaluate(self, index, batches):
        t0 = time.perf_counter()
        value = self.trainer.evaluate(batches)
        self.curve.eval_time_s.append(time.perf_counter() - t0)
        self.curve.eval_steps.append(index)
        self.curve.eval_loss.append(value)
        return value


# ---------------------------------------------------------------------------
# Statistics, tables, plots.
# ---------------------------------------------------------------------------

def timing_stats(times: list, warmup: int, tokens_per_step: int, flops: float,
                 flops_xla: float | None = None) -> dict:
    timed = np.asarray(times[warmup:], dtype=np.float64)
    if timed.size == 0:
        return {"timed_steps": 0}
    med = float(np.median(timed))
    out = {"timed_steps": int(timed.size), "warmup_steps_excluded": int(min(warmup, len(times))),
           "step_time_median_s": med, "step_time_p10_s": float(np.percentile(timed, 10)),
           "step_time_p90_s": float(np.percentile(timed, 90)),
           "step_time_mean_s": float(timed.mean()), "tokens_per_s": tokens_per_step / med,
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
    if "sweep" in result:
        rows.append(("Schedule sweep", ""))
        rows.append(("backend / device kind", f"{x.get('backend')} / {x.get('device_kind')}"))
        for name, sw in result["sweep"].items():
            med = sw["timing"].get("step_time_median_s", float("nan"))
            rows.append((name, f"final val loss {sw['final_valid_loss']:.4f}, step "
                         f"{med * 1e3:.1f} ms, compiles {sw['compiles']['train_step']}"))
        _print_rows(rows, "LSTM schedule sweep")
        return
    rows.append(("XLA report", ""))
    rows.append(("backend / device kind", f"{x.get('backend')} / {x.get('device_kind')}"))
    rows.append(("devices (present / used)", f"{x.get('device_count')} / {x.get('devices_used')}"))
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
    rows.append(("FLOPs per step (XLA cost / analytic)",
                 f"{x.get('main', {}).get('flops_xla', float('nan')):.3g} / "
                 f"{t.get('flops_per_step_analytic', float('nan')):.3g}"))
    if t.get("timed_steps"):
        rows.append(("step time median [p10, p90]",
                     f"{t['step_time_median_s'] * 1e3:.1f} ms [{t['step_time_p10_s'] * 1e3:.1f}, "
                     f"{t['step_time_p90_s'] * 1e3:.1f}] over {t['timed_steps']} steps"))
        rows.append(("tokens/s", f"{t['tokens_per_s']:,.0f}"))
        rows.append(("achieved FLOP/s (analytic)", f"{t['achieved_flops_per_s'] / 1e9:.1f} GFLOP/s"))
    rows.append(("train step compilations", str(result.get("compiles", {}).get("train_step"))))
    rows.append(("Summary", ""))
    fin = result.get("final", {})
    rows.append(("steps run", f"{fin.get('steps_run')}" + (" (interrupted)" if
                                                           result.get("interrupted") else "")))
    rows.append(("train loss first -> last", f"{fin.get('train_loss_first', float('nan')):.4f} -> "
                 f"{fin.get('train_loss_last', float('nan')):.4f}"))
    rows.append(("validation loss (final)", f"{fin.get('valid_loss', float('nan')):.4f}"))
    for name, c in result.get("compare", {}).items():
        if "step_time_median_s" in c:
            rows.append((f"vs {name}: step time", f"{c['step_time_median_s'] * 1e3:.1f} ms, "
                         f"ratio main/{name} = {c['step_time_ratio']:.3f}"))
        if "max_abs_loss_diff" in c:
            rows.append((f"vs {name}: max |loss diff|", f"{c['max_abs_loss_diff']:.3g}"))
    _print_rows(rows, f"LSTM benchmark ({result['config']['cell']} cell)")


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


# ---------------------------------------------------------------------------
# The run.
# ---------------------------------------------------------------------------

def make_mesh(n: int):
    import jax
    from jax.sharding import Mesh
    present = jax.devices()
    if n > len(present):
        raise UsageError("--devices", f"{n} requested but only {len(present)} "
                         f"{present[0].platform} device(s) present (on CPU set XLA_FLAGS="
                         f"--xla_force_host_platform_device_count={n})")
    return Mesh(np.array(present[:n]), ("data",))


def train(args, runners: list, sampler, val_batches, progress_label: str):
    """Train all ``runners`` on the same batches, alternating blocks of steps.

    Returns ``True`` if interrupted by Ctrl-C (what was measured is kept).
    """
    from tqdm import tqdm

    block = args.compare_block if len(runners) > 1 else args.eval_every
    tokens = args.batch * args.seq_len
    main = runners[0]
    bar = tqdm(total=args.steps, desc=progress_label, disable=args.no_progress,
               dynamic_ncols=True, leave=True, file=sys.stderr)
    interrupted = False
    try:
        step = 0
        n_block = 0
        while step < args.steps:
            # Blocks never cross an evaluation point.
            size = min(block, args.steps - step, args.eval_every - step % args.eval_every)
            batches = [sampler() for _ in range(size)]
            order = runners if n_block % 2 == 0 else runners[::-1]
            for runner in order:
                for k, (x, y) in enumerate(batches):
                    runner.step(step + k, x, y)
                    if runner is main:
                        bar.update(1)
                        c = main.curve
                        if len(c.time_s) % 5 == 0 or len(c.time_s) == args.steps:
                            recent = np.median(c.time_s[-20:])
                            bar.set_postfix(loss=f"{c.loss[-1]:.3f}", lr=f"{c.lr[-1]:.2e}",
                                            tok_s=f"{tokens / recent:,.0f}", refresh=False)
            step += len(batches)
            n_block += 1
            if step % args.eval_every == 0 or step == args.steps:
                for runner in runners:  # at multiples of --eval-every and at the end
                    runner.evaluate(step, val_batches)
    except KeyboardInterrupt:
        interrupted = True
        print(f"\n{PROG}: interrupted; writing what was measured so far", file=sys.stderr)
    finally:
        bar.close()
    return interrupted


def curve_dict(c: Curve) -> dict:
    return {"train": {"step": c.steps, "loss": c.loss, "lr": c.lr, "step_time_s": c.time_s},
            "valid": {"step": c.eval_steps, "loss": c.eval_loss, "eval_time_s": c.eval_time_s}}


def _max_abs_diff(a: list, b: list) -> float:
    n = min(len(a), len(b))
    if n == 0:
        return float("nan")
    return float(np.max(np.abs(np.asarray(a[:n]) - np.asarray(b[:n]))))


def lr_range_test(args, js, corpus, init_params, out) -> dict:
    """`--lr-find`: an exponentially increasing learning rate in one jitted scan."""
    import matplotlib
    matplotlib.use("Agg")

    from benchmarks.lstm_model import CharLSTM, cross_entropy

    model = CharLSTM(corpus.vocab_size, args.embed, args.hidden, args.layers, 0.0,
                     cell=args.cell, unroll=args.unroll)
    sampler = corpus_lib.BatchSampler(corpus.train, args.batch, args.seq_len, args.seed)
    batches = tuple(np.stack(x) for x in zip(*(sampler() for _ in range(args.lr_find_steps))))
    no_plateau = argparse.Namespace(**{**vars(args), "plateau": False})  # no value= in the scan
    found = js.lr_finder(lambda p, b: cross_entropy(model.apply(p, b[0]), b[1]), init_params,
                         lambda lr: build_optimizer(no_plateau, lr, "jaxsched"), batches,
                         min_lr=1e-6, max_lr=10.0, num_steps=args.lr_find_steps)
    found.plot().savefig(out / "lr_find.png")
    summary = {"suggestion": found.suggestion, "num_valid": found.num_valid,
               "learning_rates": found.learning_rates.tolist(),
               "losses": [None if np.isnan(v) else v for v in found.losses.tolist()]}
    (out / "lr_find.json").write_text(json.dumps(summary))
    print(f"lr range test: suggested --lr {found.suggestion:.3g} ({found.num_valid}/"
          f"{args.lr_find_steps} steps before divergence); see {out / 'lr_find.png'}")
    return {"lr_find": {"suggestion": found.suggestion, "num_valid": found.num_valid}}


def run(args) -> dict:
    if args.distributed:
        import jax
        jax.distributed.initialize()
    js = check_jaxsched(args)
    out = prepare_out(args.out)
    if "torch" in args.compare:
        from benchmarks import torch_lstm
        if not torch_lstm.available():
            raise UsageError("--compare", "torch is not installed (pip install torch==2.13.0; "
                             "it is not a dependency of jaxsched)")
    corpus = corpus_lib.load_corpus(args.data, args.seq_len, max_chars=args.max_chars)

    import jax
    import jax.numpy as jnp

    from benchmarks.lstm_model import CharLSTM, count_params, train_flops_per_step

    counter = CompileCounter()
    mesh = make_mesh(args.devices)
    started = time.perf_counter()
    init_model = CharLSTM(corpus.vocab_size, args.embed, args.hidden, args.layers, args.dropout,
                          cell=args.cell)
    init_params = jax.jit(init_model.init)(jax.random.PRNGKey(args.seed),
                                           jnp.zeros((1, args.seq_len), jnp.int32))
    init_params = jax.device_get(init_params)
    val_batches = corpus_lib.fixed_batches(corpus.valid, args.batch, args.seq_len,
                                           args.eval_batches, seed=args.seed + 1000)
    tokens = args.batch * args.seq_len
    flops = train_flops_per_step(args.batch, args.seq_len, corpus.vocab_size, args.embed,
                                 args.hidden, args.layers)
    result = {"config": {k: v for k, v in vars(args).items()},
              "versions": versions(), "corpus": corpus.info,
              "model": {"parameters": count_params(init_params),
                        "vocab_size": corpus.vocab_size},
              "xla": {"backend": jax.default_backend(),
                      "device_kind": jax.devices()[0].device_kind,
                      "device_count": jax.device_count(),
                      "local_device_count": jax.local_device_count(),
                      "process_count": jax.process_count(),
                      "devices_used": args.devices},
              "interrupted": False}
    result["config"]["optimizer_library"] = "jaxsched"

    def jaxsched_side(name, cell, schedule_name):
        schedule = build_schedule(js, schedule_name, args.lr, args.steps, args.warmup_steps)
        tx = build_optimizer(args, schedule, "jaxsched")
        return JaxRunner(name, args, corpus.vocab_size, cell, schedule, tx, init_params, mesh,
                         counter, hyper_fn=js.hyperparams, flat_params=True), schedule

    if args.lr_find:
        return lr_range_test(args, js, corpus, init_params, out)

    probe = corpus_lib.BatchSampler(corpus.train, args.batch, args.seq_len, args.seed)()

    if args.sweep_schedules:
        sweep_curves, sweep = {}, {}
        for name in args.sweep_schedules:
            runner, _ = jaxsched_side(f"sweep-{name}", args.cell, name)
            runner.compile(*probe)
            sampler = corpus_lib.BatchSampler(corpus.train, args.batch, args.seq_len, args.seed)
            interrupted = train(args, [runner], sampler, val_batches, f"sweep {name}")
            c = runner.curve
            sweep_curves[name] = c
            sweep[name] = {"final_valid_loss": c.eval_loss[-1] if c.eval_loss else float("nan"),
                           "final_train_loss": c.loss[-1] if c.loss else float("nan"),
                           "compile_s": runner.report["compile_s"],
                           "compiles": runner.compile_counts(),
                           **curve_dict(c),
                           "timing": timing_stats(c.time_s, args.timing_warmup, tokens, flops)}
            if interrupted:
                result["interrupted"] = True
                break
        result["sweep"] = sweep
        first = next(iter(sweep.values()))
        result["final"] = {"steps_run": len(first["train"]["step"])}
        result["plots"] = write_plots(out, {}, sweep_curves)
        result["wall_time_s"] = time.perf_counter() - started
        return finish(out, result)

    main, schedule = jaxsched_side("main", args.cell, args.schedule)
    runners = [main]
    result["xla"]["main"] = main.compile(*probe)
    result["xla"]["main"]["cell"] = args.cell
    other_cell = "flax" if args.cell == "fast" else "fast"
    if "cell" in args.compare:
        other, _ = jaxsched_side(f"{other_cell}-cell", other_cell, args.schedule)
        runners.append(other)
        result["xla"]["other_cell"] = other.compile(*probe)
    else:  # compile only, so that compile time is reported for both cells
        other, _ = jaxsched_side(f"{other_cell}-cell-compile-only", other_cell, args.schedule)
        result["xla"]["other_cell"] = other.compile(*probe)
        del other
    result["xla"]["other_cell"]["cell"] = other_cell
    if "optax" in args.compare:
        tx = build_optimizer(args, schedule, "optax")
        optax_side = JaxRunner("optax", args, corpus.vocab_size, args.cell, schedule, tx,
                               init_params, mesh, counter, hyper_fn=None)
        optax_side.compile(*probe)
        runners.append(optax_side)
    if "torch" in args.compare:
        runners.append(TorchRunner(args, init_params, schedule))

    sampler = corpus_lib.BatchSampler(corpus.train, args.batch, args.seq_len, args.seed)
    result["interrupted"] = train(args, runners, sampler, val_batches, f"{args.cell} cell")

    c = main.curve
    result["compiles"] = main.compile_counts()
    result["timing"] = timing_stats(c.time_s, args.timing_warmup, tokens, flops,
                                    result["xla"]["main"].get("flops_xla"))
    result["timing"]["eval_time_median_s"] = float(np.median(c.eval_time_s)) \
        if c.eval_time_s else None
    result.update(curve_dict(c))
    result["final"] = {
        "steps_run": len(c.steps),
        "train_loss_first": c.loss[0] if c.loss else float("nan"),
        "train_loss_last": float(np.mean(c.loss[-10:])) if c.loss else float("nan"),
        "valid_loss": c.eval_loss[-1] if c.eval_loss else float("nan"),
        "loss_decreased": bool(c.loss and float(np.mean(c.loss[-10:])) < c.loss[0]),
    }
    compare = {}
    for runner in runners[1:]:
        key = "cell" if runner.name.endswith("-cell") else runner.name
        rc = runner.curve
        entry = {"label": runner.name,
                 "timing": timing_stats(rc.time_s, args.timing_warmup, tokens, flops),
                 **curve_dict(rc)}
        if entry["timing"].get("timed_steps") and result["timing"].get("timed_steps"):
            entry["step_time_median_s"] = entry["timing"]["step_time_median_s"]
            entry["step_time_ratio"] = (result["timing"]["step_time_median_s"]
                                        / entry["step_time_median_s"])
        entry["max_abs_loss_diff"] = _max_abs_diff(c.loss, rc.loss)
        entry["max_abs_valid_loss_diff"] = _max_abs_diff(c.eval_loss, rc.eval_loss)
        if isinstance(runner, JaxRunner):
            entry["compiles"] = runner.compile_counts()
        if isinstance(runner, TorchRunner):
            entry["torch_threads"] = runner.trainer.threads
            entry["fused_adamw"] = runner.trainer.fused
        compare[key] = entry
    result["compare"] = compare
    result["plots"] = write_plots(out, {r.name if r is not main else "jaxsched": r.curve
                                        for r in runners})
    result["wall_time_s"] = time.perf_counter() - started
    return finish(out, result)


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


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
        run(args)
    except (UsageError, corpus_lib.CorpusError) as e:
        fail(str(e))
    except KeyboardInterrupt:  # before training started
        fail("interrupted", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
