"""Tests of the LSTM benchmark (benchmarks/lstm.py): end to end, cells, bad input.

Nothing here asserts a timing; the timed figures are only checked to exist.
"""

from __future__ import annotations

import io
import math
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "lstm.py"
sys.path.insert(0, str(ROOT))

from benchmarks import lstm  # noqa: E402
from benchmarks import lstm_modes  # noqa: E402
from benchmarks.lstm_cli import UsageError, parse_args  # noqa: E402
from benchmarks.lstm_model import CharLSTM, cross_entropy  # noqa: E402
from benchmarks.lstm_runners import Curve, Progress  # noqa: E402
from benchmarks.xla_report import CompileCounter  # noqa: E402


def _run(args, env_extra=None, timeout=120):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick")
    # No --no-progress: stderr is a pipe, so progress comes as one line per evaluation.
    proc = _run(["--quick", "--phases", "--phase-repeats", "2", "--out", str(out)],
                timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads((out / "lstm.json").read_text()), proc.stdout, proc.stderr


def test_quick_run_writes_complete_report(quick_result):
    out, r, stdout, _ = quick_result
    for pkg in ("jax", "jaxlib", "flax", "optax", "jaxsched"):
        assert r["versions"][pkg], pkg
    x = r["xla"]
    assert x["backend"] and x["device_kind"] and x["device_count"] >= 1
    for side in ("main", "other_cell"):
        rep = x[side]
        assert rep["compile_s"] > 0 and rep["trace_lower_s"] > 0
        assert rep["hlo"]["instructions"] > 0 and rep["hlo"]["fusions"] > 0
    assert {x["main"]["cell"], x["other_cell"]["cell"]} == {"fast", "flax"}
    mem = x["main"]["memory"]
    for key in ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes"):
        assert mem[key] > 0
    assert x["main"]["flops_xla"] > 0
    t = r["timing"]
    for key in ("step_time_median_s", "step_time_p10_s", "step_time_p90_s", "tokens_per_s",
                "achieved_flops_per_s"):
        assert t[key] > 0, key
    assert t["timed_steps"] >= 50
    assert r["compiles"]["train_step"] == 1
    assert r["compiles"]["eval_step"] == 1
    steps = r["config"]["steps"]
    assert len(r["train"]["loss"]) == len(r["train"]["lr"]) == steps
    assert r["final"]["loss_decreased"]
    assert np.mean(r["train"]["loss"][-10:]) < r["train"]["loss"][0] - 0.5
    assert r["valid"]["step"][-1] == steps and len(r["valid"]["loss"]) >= 2
    assert max(r["train"]["lr"]) > 0
    for plot in ("loss.png", "lr.png"):
        assert (out / plot).stat().st_size > 1000
    assert "compilations" in stdout


def _same_weight_models():
    vocab, tokens = 23, jax.random.randint(jax.random.PRNGKey(1), (3, 9), 0, 23)
    targets = jax.random.randint(jax.random.PRNGKey(2), (3, 9), 0, 23)
    fast = CharLSTM(vocab, embed=8, hidden=16, layers=2, cell="fast")
    flax_cell = CharLSTM(vocab, embed=8, hidden=16, layers=2, cell="flax")
    params = flax_cell.init(jax.random.PRNGKey(0), tokens)
    return fast, flax_cell, params, tokens, targets


def test_cells_share_parameters_and_initialisation():
    fast, flax_cell, params, tokens, _ = _same_weight_models()
    fast_params = fast.init(jax.random.PRNGKey(0), tokens)
    assert jax.tree_util.tree_structure(fast_params) == jax.tree_util.tree_structure(params)
    for a, b in zip(jax.tree_util.tree_leaves(fast_params), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(a, b)


def test_fast_cell_matches_flax_cell_outputs_and_gradients():
    fast, flax_cell, params, tokens, targets = _same_weight_models()
    # Perturb the biases so that every parameter matters.
    params = jax.tree_util.tree_map(lambda p: p + 0.1 * jnp.sin(jnp.arange(p.size).reshape(p.shape)),
                                    params)
    np.testing.assert_allclose(fast.apply(params, tokens), flax_cell.apply(params, tokens),
                               rtol=1e-5, atol=1e-6)

    def grads(model):
        return jax.grad(lambda p: cross_entropy(model.apply(p, tokens), targets))(params)

    g_fast, g_flax = grads(fast), grads(flax_cell)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(g_fast),
                            jax.tree_util.tree_leaves(g_flax)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7,
                                   err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("make_args, flag", [
    (lambda d: ["--data", str(d / "missing.txt")], "--data"),
    (lambda d: ["--data", str(d / "empty.txt")], "--data"),
    (lambda d: ["--data", str(d / "short.txt")], "--data"),
    (lambda d: ["--hidden", "0"], "--hidden"),
    (lambda d: ["--batch", "-3"], "--batch"),
    (lambda d: ["--schedule", "nope"], "--schedule"),
    (lambda d: ["--optimizer", "nope"], "--optimizer"),
    (lambda d: ["--devices", "64"], "--devices"),
    (lambda d: ["--shard-state"], "--shard-state"),
    (lambda d: ["--out", str(d / "a_file" / "sub")], "--out"),
], ids=["missing", "empty", "short", "hidden0", "batch-neg", "schedule", "optimizer",
        "devices", "shard-state", "out"])
def test_bad_input_exits_with_one_line_naming_the_flag(tmp_path, capsys, make_args, flag):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "short.txt").write_text("tiny corpus")
    (tmp_path / "a_file").write_text("not a directory")
    args = ["--quick", "--no-progress", "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exc:
        lstm.main(args + make_args(tmp_path))
    assert exc.value.code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert flag in err and "Traceback" not in err


def test_bad_input_from_the_command_line_has_no_traceback(tmp_path):
    proc = _run(["--quick", "--data", str(tmp_path / "nope.txt"), "--out", str(tmp_path)])
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--data" in proc.stderr


def test_data_parallel_loss_curve_equals_single_device(tmp_path):
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    curves = {}
    # 8 devices: flat parameters with the optimizer state split across them (ZeRO 1).
    for n, extra in ((1, []), (2, []), (8, ["--flat-params", "--shard-state"])):
        out = tmp_path / f"d{n}"
        proc = _run(["--quick", "--no-progress", "--steps", "20", "--eval-every", "10",
                     "--timing-warmup", "2", "--devices", str(n), "--out", str(out), *extra], env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        r = json.loads((out / "lstm.json").read_text())
        assert r["xla"]["devices_used"] == n and r["xla"]["device_count"] == 8
        assert r["compiles"]["train_step"] == 1
        curves[n] = r
    for n in (2, 8):
        np.testing.assert_allclose(curves[n]["train"]["loss"], curves[1]["train"]["loss"],
                                   rtol=1e-4)
        np.testing.assert_allclose(curves[n]["valid"]["loss"], curves[1]["valid"]["loss"],
                                   rtol=1e-4)
    state = {n: curves[n]["xla"]["main"]["optimizer_state_bytes"] for n in (1, 8)}
    assert state[1]["per_device"] == state[1]["total"]
    # Two moment buffers split 8 ways; the scalars (counts, recorded values) stay whole.
    assert state[8]["total"] // 8 <= state[8]["per_device"] <= state[8]["total"] // 8 + 1024


def test_lr_find_writes_a_suggestion_and_a_plot(tmp_path):
    out = tmp_path / "lrf"
    proc = _run(["--quick", "--lr-find", "--lr-find-steps", "30", "--out", str(out),
                 "--no-progress"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = json.loads((out / "lr_find.json").read_text())
    lrs = found["learning_rates"]
    assert len(lrs) == 30 and lrs[0] < lrs[-1]
    assert lrs[0] <= found["suggestion"] <= lrs[-1]
    assert 0 < found["num_valid"] <= 30
    assert (out / "lr_find.png").stat().st_size > 1000


def test_flat_params_side_trains_like_the_tree(tmp_path, quick_result):
    _, tree_run, _, _ = quick_result
    out = tmp_path / "flat"
    proc = _run(["--quick", "--no-progress", "--flat-params", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    flat_run = json.loads((out / "lstm.json").read_text())
    assert flat_run["config"]["flat_params"] is True
    assert flat_run["compiles"]["train_step"] == 1
    # Same model, data and optimizer: the curves differ only by float32 rounding
    # (the global-norm sum adds the gradients in another order).
    np.testing.assert_allclose(flat_run["train"]["loss"], tree_run["train"]["loss"], rtol=1e-4)
    np.testing.assert_allclose(flat_run["valid"]["loss"], tree_run["valid"]["loss"], rtol=1e-4)


def test_progress_in_a_log_is_one_line_per_evaluation(quick_result):
    _, r, _, stderr = quick_result
    assert "\r" not in stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("fast cell: step ")]
    assert [int(ln.split()[3].split("/")[0]) for ln in lines] == r["valid"]["step"]


def test_progress_display_writes_nothing_between_evaluations():
    stream = io.StringIO()  # not a terminal
    c = Curve()
    bar = Progress(4, "run", tokens_per_step=10, stream=stream)
    for k in range(4):
        c.record(k, 2.0 - k * 0.1, 1e-3, 0.01)
        bar.step(c)
        if k % 2 == 1:
            c.eval_steps.append(k + 1)
            c.eval_loss.append(1.5)
            bar.evaluation(k + 1, c)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("run: step 2/4") and "1.5000" in lines[0]
    silent = io.StringIO()
    quiet = Progress(4, "run", tokens_per_step=10, enabled=False, stream=silent)
    quiet.step(c)
    quiet.evaluation(4, c)
    assert silent.getvalue() == ""


def test_phase_breakdown_covers_the_step_in_order(quick_result):
    _, r, _, _ = quick_result
    ph = r["xla"]["phases"]
    names = [p["name"] for p in ph["phases"]]
    layers = r["config"]["layers"]
    expected = (["embedding"]
                + [f"layer {k} {part}" for k in range(layers)
                   for part in ("input matmul", "forward scan")]
                + ["head and loss (forward and backward)"]
                + [f"layer {k} {part}" for k in reversed(range(layers))
                   for part in ("backward scan", "weight-gradient matmuls")]
                + ["embedding backward", "optimizer update"])
    assert names == expected
    assert all(p["time_s"] > 0 for p in ph["phases"])
    assert sum(p["share"] for p in ph["phases"]) == pytest.approx(1.0)
    for p in ph["phases"]:
        matmul = "matmul" in p["name"] or "scan" in p["name"] or "head" in p["name"]
        assert (p["flops"] is not None and p["flops"] > 0) == matmul, p["name"]
        assert (p["achieved_flops_per_s"] is not None) == matmul, p["name"]
        assert p["cpu_time_s"] >= 0
    assert ph["sum_s"] > 0 and ph["step_s"] > 0


def test_torch_phase_breakdown_names_the_phases_and_leaves_the_model_as_it_was():
    pytest.importorskip("torch")
    import types

    from benchmarks import lstm_phases
    from benchmarks.lstm_runners import TorchRunner

    vocab, batch, seq = 11, 4, 6
    args = types.SimpleNamespace(layers=2, dropout=0.0, steps=10, weight_decay=0.0,
                                 optimizer="adamw", clip=1.0, torch_threads=1, batch=batch,
                                 seq_len=seq, hidden=8, embed=5, timing_warmup=0)
    params = CharLSTM(vocab, embed=5, hidden=8, layers=2, cell="flax").init(
        jax.random.PRNGKey(0), jnp.zeros((1, seq), jnp.int32))
    runner = TorchRunner(args, jax.device_get(params), lambda step: 1e-3 + 0 * step)
    rng = np.random.default_rng(0)
    probe = (rng.integers(0, vocab, (batch, seq)), rng.integers(0, vocab, (batch, seq)))
    runner.step(0, *probe)
    before = {k: v.clone() for k, v in runner.trainer.model.state_dict().items()}
    setup = types.SimpleNamespace(args=args, corpus=types.SimpleNamespace(vocab_size=vocab))
    ph = lstm_phases.torch_phases(setup, runner, probe, steps=2)
    names = [p["name"] for p in ph["phases"]]
    for name in ("embedding", "LSTM forward (all layers)", "head and loss forward",
                 "LSTM backward (all layers)", "optimizer update"):
        assert name in names
    assert sum(p["share"] for p in ph["phases"]) == pytest.approx(1.0)
    assert ph["step_s"] > 0
    after = runner.trainer.model.state_dict()
    for k, v in before.items():
        assert bool((after[k] == v).all()), k


def test_compile_counter_counts_backend_compilations_per_function():
    def twice(x):
        return 2 * x

    f = jax.jit(twice)
    with CompileCounter() as counter:
        for _ in range(3):
            f(jnp.ones(3))
        assert counter.count("twice") == 1 and counter.trace_count("twice") == 1
        f(jnp.ones(4))  # a new shape: a second trace and compilation
        assert counter.count("twice") == 2 and counter.trace_count("twice") == 2
    f(jnp.ones(5))  # closed: no longer listening
    assert counter.count("twice") == 2


def test_benchmarks_use_no_private_jax_api():
    for path in (ROOT / "benchmarks").glob("*.py"):
        text = path.read_text()
        assert "jax._src" not in text and "._cache_size(" not in text, path.name


def test_repeats_plumbing_builds_fresh_runs_and_alone_sides(tmp_path):
    out = tmp_path / "rep"
    args = parse_args(["--quick", "--compare", "torch,optax", "--repeats", "3",
                       "--out", str(out)])
    cmds = lstm_modes.repeat_commands(args)
    labels = [label for label, _ in cmds]
    assert labels == ["repeat_0", "repeat_1", "repeat_2", "alone_jaxsched", "alone_torch"]
    for label, argv in cmds:
        again = parse_args(argv)  # every child command line is valid
        assert again.repeats == 1 and again.no_progress
        assert again.out == str(out / label)
        if label.startswith("repeat_"):
            assert again.compare == ["torch", "optax"] and again.alone is None
        else:
            assert again.compare == [] and again.alone == label.split("_")[1]
    no_torch = lstm_modes.repeat_commands(parse_args(["--quick", "--repeats=2",
                                                      "--out", str(out)]))
    assert [label for label, _ in no_torch] == ["repeat_0", "repeat_1", "alone_jaxsched"]


@pytest.mark.parametrize("argv, flag", [
    (["--repeats", "0"], "--repeats"),
    (["--repeats", "2", "--lr-find"], "--repeats"),
    (["--alone", "torch", "--compare", "torch"], "--alone"),
    (["--alone", "keras"], "--alone"),
])
def test_bad_repeats_or_alone_names_the_flag(argv, flag, capsys):
    with pytest.raises((UsageError, SystemExit)) as exc:
        parse_args(["--quick"] + argv)
    text = str(exc.value) if exc.type is UsageError else capsys.readouterr().err
    assert flag in text


def test_summarize_repeats_reports_median_and_range():
    ratios, torch_s, main_s = [1.3, 0.9, 1.1], [0.05, 0.06, 0.04], [0.065, 0.054, 0.044]
    runs = [{"timing": {"step_time_median_s": m},
             "compare": {"torch": {"step_time_median_s": t, "step_time_ratio": q}},
             "machine": {"load_average": [1.0, 1.0, 1.0]}}
            for m, t, q in zip(main_s, torch_s, ratios)]
    alone = {"jaxsched": {"timing": {"step_time_median_s": 0.06}},
             "torch": {"timing": {"step_time_median_s": 0.04}}}
    s = lstm_modes.summarize_repeats(runs, alone)
    assert s["n"] == 3
    q = s["compare"]["torch"]["step_time_ratio"]
    assert (q["median"], q["min"], q["max"]) == (np.median(ratios), min(ratios), max(ratios))
    assert s["main"]["step_time_median_s"]["values"] == main_s
    assert s["alone_ratio_jaxsched_torch"] == pytest.approx(0.06 / 0.04)


def test_repeats_runs_each_child_and_writes_the_summary(tmp_path, monkeypatch):
    # The children are real command lines (checked above); here each one "runs"
    # by writing the lstm.json a run of that command line would write.
    out = tmp_path / "rep"
    args = parse_args(["--quick", "--repeats", "2", "--compare", "torch", "--out", str(out)])
    ran = []
    real_run = subprocess.run

    def fake_run(cmd, **kwargs):
        if len(cmd) < 2 or not str(cmd[1]).endswith("lstm.py"):
            return real_run(cmd, **kwargs)  # e.g. platform's own queries
        child = parse_args(cmd[2:])
        ran.append(pathlib.Path(child.out).name)
        main_s = 0.05 + 0.01 * len(ran)
        result = {"timing": {"step_time_median_s": main_s},
                  "machine": {"load_average": [0.5, 0.5, 0.5]}}
        if child.alone is None:
            result["compare"] = {"torch": {"step_time_median_s": 0.04,
                                           "step_time_ratio": main_s / 0.04}}
        else:
            result["alone"] = child.alone
        pathlib.Path(child.out).mkdir(parents=True)
        (pathlib.Path(child.out) / "lstm.json").write_text(json.dumps(result))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(lstm_modes.subprocess, "run", fake_run)
    lstm_modes.run_repeats(args)
    assert ran == ["repeat_0", "repeat_1", "alone_jaxsched", "alone_torch"]
    r = json.loads((out / "lstm.json").read_text())
    rep = r["repeats"]
    assert rep["n"] == 2
    assert rep["compare"]["torch"]["step_time_ratio"]["values"] == pytest.approx(
        [0.06 / 0.04, 0.07 / 0.04])
    assert rep["alone"]["torch"]["step_time_median_s"] == pytest.approx(0.09)
    assert r["machine"]["cpu_count"] >= 1


# --------------------------------------------- training-loop companions (issue 17)

#: What js.log_values reports for clip + adamw inside skip_spikes/accumulate with ema_params.
_LOG_KEYS = {"learning_rate", "b1", "b2", "eps", "eps_root", "weight_decay", "max_norm", "global_norm",
             "clipped_global_norm", "total_skips", "consecutive_skips", "skipped",
             "micro_step", "decay"}


@pytest.fixture(scope="module")
def companions_run(tmp_path_factory):
    """All three flags at once on flat parameters, with a hair-trigger spike rule."""
    out = tmp_path_factory.mktemp("companions")
    proc = _run(["--quick", "--no-progress", "--steps", "12", "--eval-every", "4",
                 "--timing-warmup", "1", "--skip-spikes", "loss", "--spike-window", "2",
                 "--spike-threshold", "0.01", "--accumulate", "2", "--ema", "0.5",
                 "--flat-params", "--compare", "plain", "--out", str(out)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "lstm.json").read_text()), proc.stdout


def test_companion_flags_together_compile_once_and_log_every_evaluation(companions_run):
    r, stdout = companions_run
    assert r["compiles"]["train_step"] == 1 and r["compiles"]["train_step_cache_size"] == 1
    assert r["compiles"]["eval_step"] == 1  # raw and EMA parameters share the eval step
    assert r["compare"]["plain"]["compiles"]["train_step"] == 1
    assert r["config"]["flat_params"] is True
    c = r["companions"]
    assert c["flags"] == ["--skip-spikes", "--accumulate", "--ema"]
    assert c["steps_count"] == "optimizer updates"
    # --steps counts optimizer updates: 12 of them, each 2 calls of the compiled step.
    assert c["optimizer_updates_run"] == 12 and c["train_step_calls"] == 24
    assert len(r["train"]["loss"]) == 12 and r["timing"]["micro_steps_per_step"] == 2
    assert r["timing"]["micro_step_time_median_s"] == pytest.approx(
        r["timing"]["step_time_median_s"] / 2)
    assert r["valid"]["step"] == [4, 8, 12]
    logs = r["valid"]["log_values"]
    assert len(logs) == 3
    for entry in logs:
        assert set(entry) == _LOG_KEYS
        assert all(isinstance(v, float) and math.isfinite(v) for v in entry.values()), entry
        assert entry["micro_step"] == 0.0  # evaluations fall after whole updates
        assert entry["decay"] == pytest.approx(0.5) and entry["max_norm"] == 5.0
        assert entry["clipped_global_norm"] == pytest.approx(min(entry["global_norm"], 5.0),
                                                             rel=1e-6)
    skips = [entry["total_skips"] for entry in logs]
    assert skips == sorted(skips) and skips[-1] > 0  # the hair trigger fired
    assert skips[-1] < 12  # ... but not on every update
    assert "skipped updates" in stdout and "EMA" in stdout
    # The EMA (decay 0.5) was evaluated at every evaluation, apart from the raw parameters.
    ema, raw = r["valid"]["loss_ema"], r["valid"]["loss"]
    assert len(ema) == 3 and all(math.isfinite(v) for v in ema)
    assert ema != raw and r["final"]["valid_loss_ema"] == ema[-1]


def test_schedule_counts_applied_optimizer_updates(companions_run):
    """Micro-steps and skipped updates do not advance the schedule."""
    import jaxsched as js
    from benchmarks.lstm_optim import build_schedule

    r, _ = companions_run
    cfg = r["config"]
    schedule = build_schedule(js, cfg["schedule"], cfg["lr"], cfg["steps"], cfg["warmup_steps"])
    for step, entry in zip(r["valid"]["step"], r["valid"]["log_values"]):
        applied = step - int(entry["total_skips"])  # updates 0 .. applied - 1 were applied
        assert entry["learning_rate"] == pytest.approx(float(schedule(applied - 1)), rel=1e-6)
        assert r["train"]["lr"][step - 1] == pytest.approx(entry["learning_rate"], rel=1e-6)
    # The plain side (no companions, one micro-batch per update) counts every update.
    plain = r["compare"]["plain"]["train"]["lr"]
    np.testing.assert_allclose(plain, [float(schedule(k)) for k in range(12)], rtol=1e-6)
    assert "micro_step_time_ratio" in r["compare"]["plain"]


def test_accumulate_against_multisteps_with_another_optimizer(tmp_path):
    out = tmp_path / "acc"
    proc = _run(["--quick", "--no-progress", "--steps", "8", "--eval-every", "4",
                 "--timing-warmup", "1", "--optimizer", "lion", "--accumulate", "2",
                 "--compare", "optax,plain", "--out", str(out)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((out / "lstm.json").read_text())
    assert r["companions"]["train_step_calls"] == 16 and len(r["train"]["lr"]) == 8
    # js.accumulate and optax.MultiSteps apply the same schedule once per update, and
    # so does the plain side: the learning rates agree update for update.
    np.testing.assert_allclose(r["train"]["lr"], r["compare"]["plain"]["train"]["lr"],
                               rtol=1e-6)
    np.testing.assert_allclose(r["train"]["lr"], r["compare"]["optax"]["train"]["lr"],
                               rtol=1e-6)
    # Same accumulated updates as MultiSteps (up to rounding: a sum divided once
    # against a running mean), so the loss curves agree closely.
    np.testing.assert_allclose(r["train"]["loss"], r["compare"]["optax"]["train"]["loss"],
                               rtol=2e-3)
    assert r["compare"]["optax"]["timing"]["micro_steps_per_step"] == 2
    for side in ("main", "optax", "plain"):
        assert r["xla"][side]["memory"]["temp_size_in_bytes"] > 0, side
    assert r["compiles"]["train_step"] == 1
    assert r["compare"]["optax"]["compiles"]["train_step"] == 1
    assert all(entry["micro_step"] == 0.0 for entry in r["valid"]["log_values"])
    assert "total_skips" not in r["valid"]["log_values"][0]


def test_optimizer_is_wrapped_in_the_documented_order():
    import jaxsched as js
    from benchmarks.lstm_optim import build_optimizer, build_schedule, update_value

    args = parse_args(["--quick", "--skip-spikes", "--accumulate", "3", "--ema", "0.9"])
    assert (args.skip_spikes, args.accumulate, args.ema) == ("both", 3, 0.9)
    schedule = build_schedule(js, args.schedule, args.lr, args.steps, args.warmup_steps)
    state = build_optimizer(args, schedule).init({"w": jnp.ones(2)})
    assert type(state).__name__ == "AccumulateState"
    assert type(state.inner_state).__name__ == "SkipSpikesState"
    assert type(state.inner_state.inner_state[-1]).__name__ == "EmaParamsState"
    plain = build_optimizer(args, schedule, companions=False).init({"w": jnp.ones(2)})
    assert "AccumulateState" not in repr(plain) and "EmaParamsState" not in repr(plain)
    assert update_value(args, "loss", "eval") == "loss"
    assert update_value(args, "loss", "eval", companions=False) is None
    assert parse_args(["--quick", "--ema"]).ema == 0.999
    grad_norm_plateau = parse_args(["--quick", "--skip-spikes", "grad_norm", "--plateau"])
    assert update_value(grad_norm_plateau, "loss", "eval") == "eval"


def test_repeats_keep_the_companion_flags_and_measure_them_alone(tmp_path):
    args = parse_args(["--quick", "--skip-spikes", "--ema", "0.9", "--accumulate", "2",
                       "--compare", "plain", "--repeats", "2", "--out", str(tmp_path)])
    for label, argv in lstm_modes.repeat_commands(args):
        child = parse_args(argv)
        assert (child.skip_spikes, child.ema, child.accumulate) == ("both", 0.9, 2), label
        assert child.compare == ([] if label == "alone_jaxsched" else ["plain"])


@pytest.mark.parametrize("argv, flag", [
    (["--accumulate", "0"], "--accumulate"),
    (["--accumulate", "-2"], "--accumulate"),
    (["--accumulate", "1.5"], "--accumulate"),
    (["--ema", "1"], "--ema"),
    (["--ema", "1.5"], "--ema"),
    (["--ema", "-0.1"], "--ema"),
    (["--ema", "nan"], "--ema"),
    (["--skip-spikes", "gradient"], "--skip-spikes"),
    (["--skip-spikes", "--spike-window", "1"], "--spike-window"),
    (["--spike-threshold", "3"], "--spike-threshold"),
    (["--skip-spikes", "--plateau"], "--skip-spikes"),
    (["--ema", "--optimizer", "schedule_free_adamw"], "--ema"),
    (["--accumulate", "2", "--compare", "torch"], "--accumulate"),
    (["--ema", "--compare", "optax"], "--ema"),
    (["--skip-spikes", "--compare", "optax"], "--skip-spikes"),
    (["--compare", "plain"], "--compare"),
    (["--accumulate", "2", "--lr-find"], "--accumulate"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_bad_companion_flags_exit_with_one_line_naming_the_flag(argv, flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        lstm.main(["--quick", "--no-progress", "--out", str(tmp_path / "out")] + argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err and "Traceback" not in err, err
