"""The `jaxsched` command line, run as a real subprocess (`python -m jaxsched`).

All commands are started together by one module fixture (they are mostly
JAX start-up time), then each test checks one result.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

import jaxsched as js
from jaxsched._schedule import registry

REPO = pathlib.Path(__file__).resolve().parents[1]

# Bad expressions, one per kind: (id, expression, text the one-line message must contain).
# Run through a subprocess (exit status and stderr of the real command):
BAD = [
    ("unknown-name", "cosine_decayy(0.1, 100)", "unknown schedule 'cosine_decayy'"),
    ("attribute-access", "__import__('os').system('echo hi')",
     "attribute access is not allowed: __import__('os').system"),
    ("name-argument", "cosine_decay(lr, 100)",
     "cosine_decay() argument 1 must be a literal"),
    ("expression-argument", "cosine_decay(0.1, 10 * 10)",
     "cosine_decay() argument 2 must be a literal"),
    ("invalid-hyperparameter", "cosine_decay(0.1, 0)",
     "invalid hyperparameter: `cosine_decay(decay_steps=...)` must be > 0, got 0."),
    ("wrong-arguments", "cosine_decay(0.1)", "missing a required argument: 'decay_steps'"),
    ("syntax", "cosine_decay(0.1, 100", "cannot parse"),
]
# More of each kind, through `main()` in this process (the same code path, faster):
MORE_BAD = [
    ("builtin-name", "__import__('os')", "unknown schedule '__import__'"),
    ("attribute-call", "os.system('echo hi')", "attribute access is not allowed: os.system"),
    ("attribute-result", "cosine_decay(0.1, 100).learning_rate",
     "attribute access is not allowed"),
    ("attribute-argument", "cosine_decay(math.pi, 100)", "attribute access is not allowed"),
    ("lambda-argument", "warmup(lambda t: 0.1, 10)", "warmup() argument 1 must be a literal"),
    ("keyword-non-literal", "cosine_decay(0.1, 100, alpha=x)",
     "cosine_decay(alpha=...) must be a literal"),
    ("call-argument", "cosine_decay(float('1'), 100)", "unknown schedule 'float'"),
    ("star-args", "cosine_decay(*[0.1, 100])", "*arguments are not allowed"),
    ("kwargs", "cosine_decay(**{'learning_rate': 0.1})", "**arguments are not allowed"),
    ("bytes-literal", "cosine_decay(b'1', 100)", "must be a number, string, bool"),
    ("invalid-nested", "warmup(cosine_decay(0.1, 100), -5)",
     "invalid hyperparameter: `warmup(warmup_steps=...)` must be >= 0, got -5."),
    ("invalid-type", "one_cycle(0.1, 10.5)",
     "invalid hyperparameter: `one_cycle(total_steps=...)` must be an integer, got float 10.5."),
    ("invalid-choice", "cyclic(0.01, 0.1, 10, mode='sine')",
     "invalid hyperparameter: `cyclic(mode=...)` must be one of"),
    ("unknown-keyword", "cosine_decay(0.1, 100, beta=1)",
     "got an unexpected keyword argument 'beta'"),
    ("not-a-call", "0.1 + 0.2", "expected a schedule call"),
    ("subscript", "cosine_decay(0.1, 10)[0]", "expected a schedule call"),
    ("bare-name", "cosine_decay", "cosine_decay needs arguments"),
    ("hidden-function-schedule", "function(print)", "unknown schedule 'function'"),
    ("empty", "", "cannot parse"),
]


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "jaxsched", *args]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Run every command concurrently; {key: (returncode, stdout, stderr, tmpdir)}."""
    tmp = tmp_path_factory.mktemp("cli")
    commands = {
        "plot-png": _command("plot", "one_cycle(0.1, 1000)", "cosine_decay(0.1, 800, alpha=0.1)",
                             "--steps", "1000", "-o", str(tmp / "two.png")),
        "plot-svg": _command("plot", "warmup(cosine_decay(0.1, 400), 100)", "--steps", "500",
                             "--log-y", "--title", "warmup", "-o", str(tmp / "one.svg")),
        "show": _command("show", "piecewise_constant([100, 500], [0.1, 0.01, 0.001])",
                         "--steps", "0,100,101,1000"),
        "list": _command("list"),
        "unwritable": _command("plot", "constant(0.5)", "-o",
                               str(tmp / "missing-dir" / "out.png")),
        "plot-bad-expression": _command("plot", "constant(0.5)", "nope(1)", "-o",
                                        str(tmp / "never.png")),
    }
    for key, expr, _ in BAD:
        commands[f"bad:{key}"] = _command("show", expr)
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    procs = {}
    out = {}
    pending = list(commands.items())
    # At most 4 at a time: the machine may have 2 cores.
    while pending or procs:
        while pending and len(procs) < 4:
            key, cmd = pending.pop(0)
            procs[key] = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True)
        key = next(iter(procs))
        stdout, stderr = procs[key].communicate(timeout=120)
        out[key] = (procs.pop(key).returncode, stdout, stderr, tmp)
    return out


def test_plot_png_with_two_schedules(results):
    rc, stdout, stderr, tmp = results["plot-png"]
    assert rc == 0, stderr
    data = (tmp / "two.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    assert f"wrote {tmp / 'two.png'}" in stdout


def test_plot_svg(results):
    rc, stdout, stderr, tmp = results["plot-svg"]
    assert rc == 0, stderr
    text = (tmp / "one.svg").read_text()
    assert "<svg" in text and "warmup" in text


def test_show_prints_table_and_sparkline(results):
    rc, stdout, stderr, _ = results["show"]
    assert rc == 0, stderr
    lines = stdout.splitlines()
    assert lines[0].startswith("piecewise_constant(boundaries=[100, 500]")
    assert lines[1:6] == ["step  value", "   0  0.1", " 100  0.1", " 101  0.01", "1000  0.001"]
    spark = lines[6]
    assert set(spark.split()[0]) <= set("▁▂▃▄▅▆▇█") and len(spark.split()[0]) == 60
    assert spark.split()[0][0] == "█" and spark.split()[0][-1] == "▁"
    assert "steps 0..1000" in spark


def _main(capsys, *args):
    from jaxsched.__main__ import main

    try:
        rc = main(list(args))
    except SystemExit as exit:  # argparse usage errors
        rc = exit.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_show_several_schedules_and_single_step_count(capsys):
    rc, stdout, stderr = _main(capsys, "show", "constant(0.5)", "inverse_sqrt(1.0, 100)",
                               "--steps", "400", "--width", "20")
    assert rc == 0, stderr
    blocks = stdout.strip().split("\n\n")
    assert len(blocks) == 2
    assert blocks[0].startswith("constant(value=0.5)")
    assert blocks[1].startswith("inverse_sqrt(peak_value=1.0, warmup_steps=100)")
    steps = [int(l.split()[0]) for l in blocks[1].splitlines()[2:-1]]
    assert steps == list(range(0, 401, 40))
    assert len(blocks[1].splitlines()[-1].split()[0]) == 20


def test_list_shows_every_schedule_with_signature_and_summary(results):
    rc, stdout, stderr, _ = results["list"]
    assert rc == 0, stderr
    names = sorted(n for n in registry() if n != "function")
    lines = stdout.splitlines()
    heads = [l for l in lines if not l.startswith(" ")]
    assert [h.split("(")[0] for h in heads] == names
    assert any(h.startswith("cosine_decay(learning_rate, decay_steps, alpha=0.0") for h in heads)
    summaries = [l for l in lines if l.startswith("    ")]
    assert len(summaries) == len(names) and all(s.strip() for s in summaries)


def test_version(capsys):
    rc, stdout, _ = _main(capsys, "--version")
    assert rc == 0 and stdout.strip() == f"jaxsched {js.__version__}"


@pytest.mark.parametrize("args", [(), ("show", "constant(0.5)", "--steps", "0,ten"),
                                  ("show", "constant(0.5)", "--steps", "-5"),
                                  ("plot", "constant(0.5)"), ("frobnicate",)])
def test_usage_errors_exit_2(capsys, args):
    rc, _, stderr = _main(capsys, *args)
    assert rc == 2
    assert stderr.startswith("jaxsched") and ": error: " in stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr


# Out-of-range numbers on the command line: (args, text the one-line message must contain).
BAD_OPTIONS = [
    (("show", "constant(0.5)", "--steps", "1,100000000000000000000000"),
     "steps must be <= 2147483647 (int32)"),
    (("show", "constant(0.5)", "--steps", "1,10**23"),
     "must be comma-separated whole steps like 0,100,1000 or one number, got '10**23'"),
    (("show", "constant(0.5)", "--steps", "2147483648"), "steps must be <= 2147483647"),
    (("show", "constant(0.5)", "--steps", "1" * 5000), "must be comma-separated whole steps"),
    (("show", "constant(0.5)", "--steps", ",".join(["1"] * 10_001)), "at most 10000 steps"),
    (("show", "constant(0.5)", "--steps", "1e9"), "must be comma-separated whole steps"),
    (("show", "constant(0.5)", "--steps", ""), "must list at least one step"),
    (("show", "constant(0.5)", "--width", "1000000000000"), "must be in [1, 1000]"),
    (("show", "constant(0.5)", "--width", "0"), "must be in [1, 1000]"),
    (("show", "constant(0.5)", "--width", "-3"), "must be in [1, 1000]"),
    (("show", "constant(0.5)", "--width", "nan"), "must be a whole number of characters"),
    (("plot", "constant(0.5)", "-o", "x.png", "--steps", "1000000000000"),
     "must be in [1, 2147483647]"),
    (("plot", "constant(0.5)", "-o", "x.png", "--steps", "0"), "must be in [1, 2147483647]"),
    (("plot", "constant(0.5)", "-o", "x.png", "--dpi", "100000"), "must be in [1, 2000]"),
    (("plot", "constant(0.5)", "-o", "x.png", "--dpi", "0"), "must be in [1, 2000]"),
    (("plot", "constant(0.5)", "-o", "x.png", "--dpi", "12.5"),
     "must be a whole number of dots per inch"),
]


@pytest.mark.parametrize("args,message", BAD_OPTIONS,
                         ids=[" ".join(a)[:60] for a, _ in BAD_OPTIONS])
def test_out_of_range_options_exit_2_with_one_line(capsys, args, message):
    rc, stdout, stderr = _main(capsys, *args)
    assert rc == 2 and stdout == ""
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("jaxsched ") and "Traceback" not in stderr
    assert message in stderr, stderr


# Out-of-range hyperparameters and nesting inside an expression.
BAD_NUMBERS = [
    ("cosine_decay(1e39, 100)", "`cosine_decay(learning_rate=...)` must be <= 3.40282e+38"),
    ("cosine_decay(0.1, 1e-50)", "`cosine_decay(decay_steps=...)` must be >= 1.17549e-38"),
    ("cosine_decay(0.1, 1e400)", "`cosine_decay(decay_steps=...)` must be finite"),
    ("warmup(constant(1.0), 10000000000)", "`warmup(warmup_steps=...)` must be <= 2147483647"),
    ("one_cycle(0.1, 4294967296)", "`one_cycle(total_steps=...)` must be <= 2147483647"),
    ("noisy_linear_cosine_decay(0.1, 10, seed=18446744073709551616)",
     "`noisy_linear_cosine_decay(seed=...)` must be <= 18446744073709551615"),
    ("piecewise_constant([1e39], [0.1, 0.2])",
     "`piecewise_constant(boundaries=...)` must be <= 3.40282e+38"),
    ("cosine_decay(0.1, " + "9" * 5000 + ")", "cannot parse"),
    ("warmup(" * 40 + "constant(1.0)" + ", 1)" * 40, "nested more than MAX_DEPTH = 32 deep"),
    ("[" * 150 + "]" * 150, "expected a schedule call"),
    ("cosine_decay(" + "-" * 5000 + "1, 10)", "jaxsched: error: "),  # parser or nesting limit
]


@pytest.mark.parametrize("expression,message", BAD_NUMBERS,
                         ids=[e[:50] for e, _ in BAD_NUMBERS])
def test_out_of_range_numbers_in_expressions(capsys, expression, message):
    rc, stdout, stderr = _main(capsys, "show", expression, "--steps", "0,10")
    assert rc == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("jaxsched: error: "), stderr
    assert message in stderr, stderr


def test_nested_warmups_show_in_linear_time(capsys):
    # 20 nested warmups (a 300-character expression): each level calls its inner
    # schedule once, so this is one small compiled call, not 2**20 evaluations.
    text = "warmup(" * 20 + "constant(1.0)" + ", 1)" * 20
    rc, stdout, stderr = _main(capsys, "show", text, "--steps", "0,10,25", "--width", "8")
    assert rc == 0, stderr
    rows = [line.split() for line in stdout.splitlines()[2:5]]
    assert [r[0] for r in rows] == ["0", "10", "25"]
    assert [float(r[1]) for r in rows] == [0.0, 0.0, 1.0]  # 20 ramps of one step each from 0


def test_plot_with_many_steps_draws_a_sample(tmp_path, capsys):
    rc, stdout, stderr = _main(capsys, "plot", "cosine_decay(0.1, 2000000000)", "--steps",
                               "2147483647", "-o", str(tmp_path / "big.svg"))
    assert rc == 0, stderr
    assert (tmp_path / "big.svg").stat().st_size > 0


def test_bad_output_suffix(capsys, tmp_path):
    rc, stdout, stderr = _main(capsys, "plot", "constant(0.5)", "-o", str(tmp_path / "out.jpg"))
    assert rc == 2 and stdout == ""
    assert stderr == (f"jaxsched: error: the output file must end in .png or .svg, "
                      f"got {str(tmp_path / 'out.jpg')!r}\n")
    assert not (tmp_path / "out.jpg").exists()


def test_unwritable_output_is_one_line_exit_1(results):
    rc, _, stderr, _ = results["unwritable"]
    assert rc == 1
    assert stderr.startswith("jaxsched: error: ") and stderr.count("\n") == 1
    assert "Traceback" not in stderr


def test_plot_with_a_bad_expression_writes_nothing(results):
    rc, _, stderr, tmp = results["plot-bad-expression"]
    assert rc == 2
    assert stderr.startswith("jaxsched: error: unknown schedule 'nope'")
    assert not (tmp / "never.png").exists()


@pytest.mark.parametrize("key, expression, message", BAD, ids=[b[0] for b in BAD])
def test_bad_expression_one_line_message(results, key, expression, message):
    rc, stdout, stderr, _ = results[f"bad:{key}"]
    assert rc == 2
    assert stdout == ""
    assert "Traceback" not in stderr
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("jaxsched: error: ")
    assert message in stderr


@pytest.mark.parametrize("key, expression, message", MORE_BAD, ids=[b[0] for b in MORE_BAD])
def test_more_bad_expressions_in_process(capsys, key, expression, message):
    rc, stdout, stderr = _main(capsys, "show", expression)
    assert rc == 2 and stdout == ""
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("jaxsched: error: ")
    assert message in stderr


def test_console_script_entry_point_is_main():
    # pyproject declares `jaxsched = "jaxsched.__main__:main"`; main returns the status.
    from jaxsched.__main__ import main

    assert main(["list"]) == 0
    assert main(["show", "nope(1)"]) == 2


@pytest.mark.parametrize("text", [
    "cosine_decay(0.1, 1000, alpha=0.01)",
    "join([constant(0.1), cosine_decay(0.1, 100)], [50])",
    "piecewise_constant((10, 20), [1.0, 0.5, -0.0])",
    "cyclic(0.01, 0.1, 20, mode='exp_range', gamma=0.99)",
    "noisy_linear_cosine_decay(0.1, 100, seed=3)",
    "one_cycle(0.1, 100, three_phase=True, pct_start=+0.3)",
    "cosine_decay(0.1, 1000) * 0.5 + 0.001",
    "2 * warmup(cosine_decay(0.1, 100, periodic=True), 10, mode='cosine') * constant(0.5)",
    "cooldown(warmup_stable_decay(1.0, 10, 80, 0, cycles=2, rewarm_steps=5), 200, 40, 'sqrt')",
    "piecewise_interpolate(1.0, [4, 8], [0.1, 0.1], 'cosine')",
    "shift(inverse_sqrt(1.0, 0, timescale=100, min_value=0.1), 5)",
    "one_cycle_momentum(100) + cyclic_momentum(0.8, 0.9, 10)",
])
def test_parse_schedule_round_trips_through_repr(text):
    from jaxsched._cli import parse_schedule

    s = parse_schedule(text)
    assert isinstance(s, js.Schedule)
    assert parse_schedule(repr(s)) == s


def test_arithmetic_expressions_need_a_schedule(capsys):
    from jaxsched._cli import ExpressionError, parse_schedule

    with pytest.raises(ExpressionError, match="expected a schedule call"):
        parse_schedule("2 * 3")
    with pytest.raises(ExpressionError, match="must be a literal"):
        parse_schedule("constant(0.5) * (2 * 3)")
    with pytest.raises(ExpressionError, match="must be a number or a schedule|can only be"):
        parse_schedule("cosine_decay(0.1, 100) * 'a'")
    assert parse_schedule("cosine_decay(0.1, 100) * 0.5") == js.cosine_decay(0.1, 100) * 0.5
