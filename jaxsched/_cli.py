"""The `jaxsched` command line: plot, show and list schedules.

    jaxsched plot "cosine_decay_restarts(0.1, 100, t_mul=2.0)" --steps 1000 -o restarts.png
    jaxsched show "one_cycle(0.1, 1000)" --steps 0,100,1000
    jaxsched list

A schedule is written as a Python-style call of a public schedule name. It is
parsed with `ast` and built by `parse_schedule`, which accepts only jaxsched
schedule names, literal arguments (numbers, strings, booleans, None, lists and
tuples of them) and nested schedule calls; nothing is ever evaluated. Bad
input exits with status 2 and a one-line message, never a traceback.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import os
import sys
from typing import Any, Sequence

import numpy as np

from jaxsched._schedule import MAX_DEPTH, Schedule, registry

PROG = "jaxsched"
_HIDDEN = frozenset({"function"})  # wraps Python callables: not writable as an expression
_MAX_EXPRESSION = 10_000


class ExpressionError(ValueError):
    """A schedule expression that cannot be built; the message is one line."""


def schedule_names() -> list[str]:
    """The public schedule names that expressions may call, sorted."""
    return sorted(n for n in registry() if n not in _HIDDEN)


def _describe(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # pragma: no cover - unparse handles every parsed node
        text = type(node).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _literal(node: ast.AST, where: str, depth: int = 1) -> Any:
    """The value of a literal argument node, or a nested schedule call."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (bool, int, float, str)) or node.value is None:
            return node.value
        raise ExpressionError(f"{where} must be a number, string, bool, None, list or "
                              f"schedule call, got {_describe(node)}")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand, where, depth)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    elif isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(x, where, depth) for x in node.elts]
    elif isinstance(node, ast.Call):
        return _build(node, depth + 1)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Add)):
        return _arithmetic(node, where, depth + 1)
    if isinstance(node, ast.Attribute):
        raise ExpressionError(f"attribute access is not allowed: {_describe(node)}")
    if isinstance(node, ast.Name):
        raise ExpressionError(f"{where} must be a literal (a number, string, bool, None, "
                              f"list or schedule call), got the name {node.id!r}")
    raise ExpressionError(f"{where} must be a literal (a number, string, bool, None, list "
                          f"or schedule call), got {_describe(node)}")


def _arithmetic(node: ast.BinOp, where: str, depth: int) -> Any:
    """`a * b` or `a + b` of schedules and numbers (`product` / `add`)."""
    if depth > MAX_DEPTH:
        raise ExpressionError(f"schedules nested more than MAX_DEPTH = {MAX_DEPTH} deep")
    left, right = _literal(node.left, where, depth), _literal(node.right, where, depth)
    if not (isinstance(left, Schedule) or isinstance(right, Schedule)):
        raise ExpressionError(f"{where} must be a literal (a number, string, bool, None, list "
                              f"or schedule call), got {_describe(node)}")
    try:
        return left * right if isinstance(node.op, ast.Mult) else left + right
    except (TypeError, ValueError) as err:
        raise ExpressionError(f"{where}: {_describe(node)}: {' '.join(str(err).split())}") from None


def _build(node: ast.Call, depth: int = 1) -> Schedule:
    if depth > MAX_DEPTH:
        raise ExpressionError(f"schedules nested more than MAX_DEPTH = {MAX_DEPTH} deep")
    func = node.func
    if isinstance(func, ast.Attribute):
        raise ExpressionError(f"attribute access is not allowed: {_describe(func)}; "
                              f"call a schedule by its name, e.g. cosine_decay(0.1, 1000)")
    if not isinstance(func, ast.Name):
        raise ExpressionError(f"expected a schedule name before '(', got {_describe(func)}")
    name = func.id
    if name not in registry() or name in _HIDDEN:
        raise ExpressionError(f"unknown schedule {name!r}; run `jaxsched list` for the "
                              f"names ({', '.join(schedule_names())})")
    args = []
    for i, arg in enumerate(node.args):
        if isinstance(arg, ast.Starred):
            raise ExpressionError(f"{name}(): *arguments are not allowed")
        args.append(_literal(arg, f"{name}() argument {i + 1}", depth))
    kwargs = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise ExpressionError(f"{name}(): **arguments are not allowed")
        kwargs[kw.arg] = _literal(kw.value, f"{name}({kw.arg}=...)", depth)
    cls = registry()[name]
    try:
        inspect.signature(cls).bind(*args, **kwargs)
    except TypeError as err:
        raise ExpressionError(f"{name}{_signature(cls)}: {err}") from None
    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError, OverflowError) as err:
        message = " ".join(str(err).split())
        raise ExpressionError(f"invalid hyperparameter: {message}") from None


def parse_schedule(text: str) -> Schedule:
    """Build a schedule from a Python-style call such as `"cosine_decay(0.1, 1000)"`.

    The text is parsed with `ast` (never evaluated). Accepted: a call of a
    public schedule name (see `jaxsched list`) with positional or keyword
    arguments that are literals (numbers, optionally negated; strings;
    `True`/`False`/`None`; lists and tuples of them) or nested schedule calls,
    as in `warmup(cosine_decay(0.1, 1000), 100)`; schedules and numbers may be
    combined with `*` and `+` (`cosine_decay(0.1, 1000) * 0.5 + 0.001`).

    Args:
      text: the expression.

    Returns:
      The schedule.

    Raises:
      ExpressionError: (a `ValueError`) on a syntax error, an unknown name,
        attribute access, a non-literal argument, wrong arguments or an
        invalid hyperparameter; the message is one line.

    Example:
        >>> from jaxsched._cli import parse_schedule
        >>> parse_schedule("cosine_decay(0.1, 1000, alpha=0.01)")
        cosine_decay(learning_rate=0.1, decay_steps=1000, alpha=0.01)
        >>> parse_schedule("os.system('ls')")
        Traceback (most recent call last):
        ...
        jaxsched._cli.ExpressionError: attribute access is not allowed: os.system; call a schedule by its name, e.g. cosine_decay(0.1, 1000)
    """
    if not isinstance(text, str):
        raise ExpressionError(f"expected a string, got {type(text).__name__}")
    if len(text) > _MAX_EXPRESSION:
        raise ExpressionError(f"expression too long ({len(text)} characters)")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        detail = err.msg or "invalid syntax"
        raise ExpressionError(f"cannot parse {text.strip()!r}: {detail}") from None
    except (ValueError, RecursionError, MemoryError) as err:
        raise ExpressionError(f"cannot parse {text.strip()!r}: {err}") from None
    body = tree.body
    if isinstance(body, ast.Call) or (
            isinstance(body, ast.BinOp) and isinstance(body.op, (ast.Mult, ast.Add))
            and any(isinstance(n, ast.Call) for n in ast.walk(body))):
        try:
            built = _build(body) if isinstance(body, ast.Call) else _literal(body, "expression")
        except RecursionError:
            raise ExpressionError("expression nested too deeply") from None
        if not isinstance(built, Schedule):
            raise ExpressionError(f"expected a schedule, got the number {built!r}")
        return built
    if isinstance(body, ast.Attribute):
        raise ExpressionError(f"attribute access is not allowed: {_describe(body)}")
    if isinstance(body, ast.Name):
        if body.id in registry() and body.id not in _HIDDEN:
            raise ExpressionError(f"{body.id} needs arguments: {body.id}{_signature(registry()[body.id])}")
        raise ExpressionError(f"unknown schedule {body.id!r}; run `jaxsched list` for the names")
    raise ExpressionError(f"expected a schedule call such as cosine_decay(0.1, 1000), "
                          f"got {_describe(body)}")


def _signature(cls: type) -> str:
    """`(learning_rate, decay_steps, alpha=0.0)`: the constructor's signature, unannotated."""
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):  # pragma: no cover
        return "(...)"
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))


def _summary(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


# ---------------------------------------------------------------- commands

def _parse_all(expressions: Sequence[str]) -> dict[str, Schedule]:
    out: dict[str, Schedule] = {}
    for text in expressions:
        label = " ".join(text.split())
        out[label] = parse_schedule(text)
    return out


# Ranges of the numeric options: steps are int32 step counts; the rest are
# sizes that must fit in memory and on a screen.
MAX_STEP = 2**31 - 1
MAX_PLOT_POINTS = 100_000  # `plot --steps N` beyond this draws this many evenly spaced steps
MAX_SHOW_STEPS = 10_000  # entries of a `show --steps` list
MAX_WIDTH = 1_000  # sparkline characters
MAX_DPI = 2_000


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


def _whole(text: str, what: str) -> int:
    """A decimal whole number (at most 30 digits), or an ArgumentTypeError."""
    t = text.strip()
    digits = t[1:] if t[:1] in "+-" else t
    if not digits.isdigit() or not digits.isascii() or len(digits) > 30:
        raise argparse.ArgumentTypeError(f"must be {what}, got {_shown(text)}")
    return int(t)


def _ranged(lo: int, hi: int, what: str):
    """An argparse type: a whole number in [lo, hi]."""
    def parse(text: str) -> int:
        n = _whole(text, what)
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"must be in [{lo}, {hi}], got {_shown(text)}")
        return n
    parse.__name__ = what  # argparse names the type in some messages
    return parse


_int_steps = _ranged(1, MAX_STEP, "a whole number of steps")
_width = _ranged(1, MAX_WIDTH, "a whole number of characters")
_dpi = _ranged(1, MAX_DPI, "a whole number of dots per inch")


def _step_list(text: str) -> np.ndarray:
    """`--steps` of `show`: `0,100,1000` or a single `N` (11 steps from 0 to N)."""
    if text.count(",") >= MAX_SHOW_STEPS:
        raise argparse.ArgumentTypeError(f"must list at most {MAX_SHOW_STEPS} steps, got "
                                         f"{text.count(',') + 1}")
    parts = [p.strip() for p in text.split(",") if p.strip()]
    values = [_whole(p, "comma-separated whole steps like 0,100,1000 or one number")
              for p in parts]
    if not values:
        raise argparse.ArgumentTypeError(f"must list at least one step, got {_shown(text)}")
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"steps must be >= 0, got {_shown(text)}")
    if any(v > MAX_STEP for v in values):
        raise argparse.ArgumentTypeError(f"steps must be <= {MAX_STEP} (int32), got "
                                         f"{_shown(text)}")
    if len(values) == 1 and "," not in text:
        n = values[0]
        return np.unique(np.linspace(0, n, 11).round().astype(np.int64))
    return np.asarray(values, dtype=np.int64)


def _cmd_plot(args: argparse.Namespace) -> int:
    from jaxsched._plot import _require_matplotlib, plot

    schedules = _parse_all(args.expressions)
    ext = os.path.splitext(args.output)[1].lower()
    if ext not in (".png", ".svg"):
        raise ExpressionError(f"the output file must end in .png or .svg, got {args.output!r}")
    matplotlib = _require_matplotlib("jaxsched plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = args.steps
    if steps > MAX_PLOT_POINTS:  # evenly spaced steps, not every one of 2**31
        steps = np.unique(np.linspace(0, steps, MAX_PLOT_POINTS + 1).round().astype(np.int64))
    fig = plot(schedules, steps, title=args.title, log_y=args.log_y)
    try:
        fig.savefig(args.output, dpi=args.dpi)
    finally:
        plt.close(fig)
    print(f"wrote {args.output}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from jaxsched._plot import Table, sparkline, table

    schedules = _parse_all(args.expressions)
    steps = args.steps
    first = True
    for label, sched in schedules.items():
        if not first:
            print()
        first = False
        end = int(steps.max())
        curve_steps = np.unique(np.linspace(0, end, args.width).round().astype(np.int64))
        # One compiled call for the table and the sparkline together.
        both = table(sched, np.concatenate([steps, curve_steps]))
        values, curve = both.values[:steps.size], both.values[steps.size:]
        lo, hi = float(np.nanmin(curve)), float(np.nanmax(curve))
        print(repr(sched))
        print(Table(steps, values))
        print(f"{sparkline(curve, args.width)}  steps 0..{end}, values {lo:.4g}..{hi:.4g}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    for name in schedule_names():
        cls = registry()[name]
        print(f"{name}{_signature(cls)}")
        print(f"    {_summary(cls)}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `jaxsched show: error: ...`, exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the `jaxsched` command."""
    from jaxsched import __version__

    parser = _Parser(
        prog=PROG,
        description="Plot, tabulate and list jaxsched learning-rate schedules. A schedule "
                    "is written as a call, e.g. \"cosine_decay(0.1, 1000, alpha=0.01)\".")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{plot,show,list}")
    sub.required = True

    p = sub.add_parser("plot", help="plot one or several schedules to a PNG or SVG file",
                       description="Plot one or several schedules on one figure.")
    p.add_argument("expressions", nargs="+", metavar="SCHEDULE",
                   help='a schedule call such as "cosine_decay(0.1, 1000)"')
    p.add_argument("--steps", type=_int_steps, default=1000,
                   help=f"plot the steps 0..STEPS, in [1, {MAX_STEP}] (default 1000; beyond "
                        f"{MAX_PLOT_POINTS} steps, {MAX_PLOT_POINTS} evenly spaced ones)")
    p.add_argument("-o", "--output", required=True, help="output file, .png or .svg")
    p.add_argument("--title", default=None, help="figure title")
    p.add_argument("--log-y", action="store_true", help="logarithmic value axis")
    p.add_argument("--dpi", type=_dpi, default=120,
                   help=f"PNG resolution, in [1, {MAX_DPI}] (default 120)")
    p.set_defaults(run=_cmd_plot)

    s = sub.add_parser("show", help="print a table of values and a sparkline",
                       description="Print schedule values at some steps and a text sparkline.")
    s.add_argument("expressions", nargs="+", metavar="SCHEDULE",
                   help='a schedule call such as "cosine_decay(0.1, 1000)"')
    s.add_argument("--steps", type=_step_list, default=_step_list("1000"),
                   help=f"comma-separated steps (0,100,1000), at most {MAX_SHOW_STEPS}, "
                        f"or one number N for 11 evenly spaced steps from 0 to N; each in "
                        f"[0, {MAX_STEP}] (default 1000)")
    s.add_argument("--width", type=_width, default=60,
                   help=f"sparkline width, in [1, {MAX_WIDTH}] (default 60)")
    s.set_defaults(run=_cmd_show)

    ls = sub.add_parser("list", help="list every schedule with its signature",
                        description="List every schedule with its signature and summary.")
    ls.set_defaults(run=_cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `jaxsched` command line; returns the exit status.

    0 on success, 2 for a bad expression or bad arguments (with a one-line
    message on stderr), 1 for other failures such as an unwritable output
    file or missing matplotlib.

    Example:
        >>> from jaxsched._cli import main
        >>> main(["show", "constant(0.5)", "--steps", "0,10", "--width", "4"])
        constant(value=0.5)
        step  value
           0  0.5
          10  0.5
        ▁▁▁▁  steps 0..10, values 0.5..0.5
        0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ExpressionError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`jaxsched list | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (ImportError, OSError, ValueError, TypeError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
