"""The command line of the LSTM benchmark: flags, their checks, one-line errors.

Every bad value ends the program with one line naming the flag
(``lstm.py: error: --batch: must be positive, got -3``), never a traceback.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys

from benchmarks.lstm_optim import DEFAULT_LR, OPTIMIZERS, SCHEDULES

PROG = "lstm.py"
COMPARISONS = ("optax", "torch", "cell", "plain")
#: What ``--alone`` measures in a process of its own.
ALONE_SIDES = ("jaxsched", "torch")
#: Sizes ``--quick`` sets unless a flag gives them explicitly.
QUICK = dict(layers=1, hidden=64, embed=32, batch=16, seq_len=32, steps=60, eval_every=20,
             eval_batches=2, timing_warmup=5, max_chars=300_000)


class UsageError(Exception):
    """A bad command-line value; printed as one line naming the flag."""

    def __init__(self, flag: str, message: str):
        super().__init__(f"{flag}: {message}")


def fail(message: str, code: int = 2):
    """Print ``lstm.py: error: message`` to stderr and exit with ``code``."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(code)


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


def _decay(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


#: What ``--skip-spikes`` watches (``js.skip_spikes(on=...)``); the flag alone means "both".
SPIKE_SIGNALS = ("loss", "grad_norm", "both")
#: The training-loop companions: flags that wrap the optimizer (``--compare plain`` drops them).
COMPANION_FLAGS = ("--skip-spikes", "--accumulate", "--ema")


def companions(args) -> list:
    """The companion flags given on this command line (``--skip-spikes``, ...)."""
    return [flag for flag, on in (("--skip-spikes", args.skip_spikes is not None),
                                  ("--accumulate", args.accumulate > 1),
                                  ("--ema", args.ema is not None)) if on]


def build_parser(description: str = "Character-level LSTM benchmark for jaxsched."
                 ) -> argparse.ArgumentParser:
    """The argument parser of ``benchmarks/lstm.py``."""
    p = _Parser(prog=PROG, description=description,
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
    g = p.add_argument_group("training-loop companions (js.skip_spikes, js.accumulate, "
                             "js.ema_params)")
    g.add_argument("--skip-spikes", nargs="?", const="both", default=None,
                   choices=SPIKE_SIGNALS, metavar="ON",
                   help="wrap the optimizer in js.skip_spikes(on=ON): skip an update whose "
                   "training loss (passed as value=) and/or global gradient norm spikes; "
                   "ON is loss, grad_norm or both (the flag alone: both)")
    g.add_argument("--spike-window", type=_bounded(int, "an integer >= 2", ">= 2",
                                                   lambda v: v >= 2), default=128,
                   help="js.skip_spikes(window=...): accepted updates in the statistics")
    g.add_argument("--spike-threshold", type=_positive_float, default=6.0,
                   help="js.skip_spikes(threshold=...): standard deviations above the mean")
    g.add_argument("--accumulate", type=_positive_int, default=1, metavar="K",
                   help="wrap the optimizer in js.accumulate(every=K): every step of the run "
                   "(--steps counts optimizer updates) is K micro-batches of --batch, each "
                   "one call of the same compiled train step; schedules count optimizer "
                   "updates")
    g.add_argument("--ema", nargs="?", const=0.999, default=None, type=_decay,
                   metavar="DECAY",
                   help="chain js.ema_params(DECAY) last (the flag alone: 0.999) and also "
                   "evaluate the validation loss on js.averaged_params(state)")
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
                   f"{', '.join(COMPARISONS)}, trained alternating with the main run "
                   "(plain: the same jaxsched optimizer without --skip-spikes, "
                   "--accumulate, --ema, one micro-batch per update; optax with "
                   "--accumulate K: optax.MultiSteps(every_k_schedule=K))")
    g.add_argument("--compare-block", type=_positive_int, default=10,
                   help="steps per side per alternation")
    g.add_argument("--repeats", type=_positive_int, default=1,
                   help="run the whole job (with its --compare) this many times, each in a "
                   "fresh process, then measure each side alone in its own process; report "
                   "the median ratio and its range")
    g.add_argument("--alone", choices=ALONE_SIDES, default=None,
                   help="train only this side (jaxsched's main step or PyTorch's) in this "
                   "process, for standalone step times")
    g.add_argument("--phases", action="store_true",
                   help="measure the train step phase by phase (separately compiled "
                   "phases, and PyTorch's profiler with --compare torch)")
    g.add_argument("--phase-repeats", type=_positive_int, default=20,
                   help="timed calls per phase of --phases")
    g.add_argument("--torch-threads", type=_positive_int, default=None,
                   help="torch.set_num_threads (default: all cores)")
    g.add_argument("--devices", type=_positive_int, default=1,
                   help="data-parallel over this many devices")
    g.add_argument("--shard-state", action="store_true",
                   help="with --flat-params and --devices > 1: split the optimizer state's "
                   "buffers across the devices (ZeRO stage 1), parameters replicated")
    g.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize() first (multi-host)")
    g.add_argument("--sweep-schedules", default=None, metavar="NAMES",
                   help="comma-separated schedules, each trained for the same budget")
    g = p.add_argument_group("output")
    g.add_argument("--out", default="lstm_results", help="output directory")
    g.add_argument("--quick", action="store_true",
                   help="tiny configuration for tests (1 layer, 64 hidden, 60 steps)")
    g.add_argument("--no-progress", action="store_true",
                   help="no progress display (by default a bar on a terminal, one line per "
                   "evaluation otherwise)")
    return p


def _names(flag: str, text: str, allowed: tuple) -> list:
    names = [s.strip() for s in text.split(",") if s.strip()]
    for name in names:
        if name not in allowed:
            what = "comparison" if flag == "--compare" else "schedule"
            raise UsageError(flag, f"unknown {what} {name!r}; choose from {', '.join(allowed)}")
    return names


def parse_args(argv=None, description: str | None = None) -> argparse.Namespace:
    """Parse and check ``argv``; raises :class:`UsageError` naming the bad flag."""
    parser = build_parser(description) if description else build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    args.max_chars = None
    if args.quick:  # --quick overrides the sizes it sets unless given explicitly
        given = {a.split("=")[0] for a in args.argv}
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
    args.compare = _names("--compare", args.compare, COMPARISONS)
    if args.sweep_schedules is not None:
        args.sweep_schedules = _names("--sweep-schedules", args.sweep_schedules, SCHEDULES)
        if not args.sweep_schedules:
            raise UsageError("--sweep-schedules", "no schedule names given")
    if args.lr is None:
        args.lr = DEFAULT_LR[args.optimizer]
    if args.warmup_steps is None:
        args.warmup_steps = max(1, args.steps // 20)
    if args.warmup_steps >= args.steps:
        raise UsageError("--warmup-steps", f"must be smaller than --steps ({args.steps})")
    if args.shard_state and not (args.flat_params and args.devices > 1):
        raise UsageError("--shard-state", "needs --flat-params and --devices > 1")
    if args.batch % args.devices:
        raise UsageError("--batch", f"{args.batch} is not divisible by --devices {args.devices}")
    if args.repeats > 1 and (args.sweep_schedules or args.lr_find or args.alone):
        raise UsageError("--repeats", "repeats the main job and its --compare; it does not "
                         "combine with --sweep-schedules, --lr-find or --alone")
    _check_companions(args)
    if args.alone and (args.compare or args.sweep_schedules or args.lr_find):
        raise UsageError("--alone", "measures one side; it does not combine with --compare, "
                         "--sweep-schedules or --lr-find")
    return args


def _check_companions(args) -> None:
    """Refuse combinations of --skip-spikes, --accumulate, --ema that cannot mean anything."""
    given = companions(args)
    if args.skip_spikes is None:
        for flag, value, default in (("--spike-window", args.spike_window, 128),
                                     ("--spike-threshold", args.spike_threshold, 6.0)):
            if value != default:
                raise UsageError(flag, "configures js.skip_spikes; it needs --skip-spikes")
    if args.skip_spikes in ("loss", "both") and args.plateau:
        raise UsageError("--skip-spikes", f"on {args.skip_spikes!r} passes the training loss "
                         "as value=, which --plateau reads as the validation loss; use "
                         "--skip-spikes grad_norm with --plateau")
    if args.ema is not None and args.optimizer.startswith("schedule_free"):
        raise UsageError("--ema", f"{args.optimizer} already averages its iterates (it is "
                         "evaluated at its x); an EMA of its y is not what it evaluates")
    if given and args.lr_find:
        raise UsageError(given[0], "--lr-find tests the bare optimizer; it does not combine "
                         "with --skip-spikes, --accumulate or --ema")
    if given and "torch" in args.compare:
        raise UsageError(given[0], "PyTorch's side has no spike skipping, accumulation or "
                         "EMA; compare with --compare plain (or optax with --accumulate)")
    if "optax" in args.compare and (args.skip_spikes is not None or args.ema is not None):
        flag = "--skip-spikes" if args.skip_spikes is not None else "--ema"
        raise UsageError(flag, "optax has no equivalent to compare with; use --compare plain")
    if "plain" in args.compare and not given:
        raise UsageError("--compare", "plain is the run without --skip-spikes, --accumulate "
                         "and --ema; give at least one of them")


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


def check_jaxsched(args):
    """Import jaxsched, or exit with one line saying how to install it."""
    try:
        import jaxsched as js
    except ImportError as e:
        fail(f"jaxsched is not importable ({e}); install the package (pip install -e .)", 1)
    if args.plateau and not hasattr(js, "reduce_on_plateau"):
        raise UsageError("--plateau", "this jaxsched has no reduce_on_plateau")
    return js
