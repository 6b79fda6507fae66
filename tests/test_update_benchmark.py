"""benchmarks/update.py runs end to end and writes a complete report (no timing asserted)."""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_quick_update_benchmark_writes_json_and_markdown(tmp_path):
    out = tmp_path / "update"
    proc = subprocess.run([sys.executable, "benchmarks/update.py", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "update.json").read_text())
    for r in report["results"]:  # the copy floor, timed in the same loop
        assert r["copy_floor"]["call_median_s"] > 0 and r["copy_floor"]["program_median_s"] > 0
    shapes = {(r["arrays"], r["params"]) for r in report["results"]}
    assert shapes == {(1, 20000), (20, 20000)}
    for r in report["results"]:
        for name in ("optax", "jaxsched", "jaxsched_fused", "jaxsched_flat",
                     "jaxsched_flat_concat", "handwritten"):
            m = r[name]
            assert m["call_median_s"] > 0 and m["program_median_s"] > 0
            assert m["compile_s"] > 0 and m["hlo_ops"] > 0
    table = (out / "update.md").read_text()
    assert table.count("\n") == 2 + 2 * 6  # header, rule, 2 shapes x 6 sides


def test_handwritten_side_computes_the_jaxsched_flat_update():
    """The hand-written control is the same update as the chain it is the
    reference for: five steps on a two-array model, gradients large enough to
    clip in the first steps and small after, past the schedule's end."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import update

    table = update.optimizers(decay_steps=4)
    tree = {"a": jnp.linspace(-1.0, 1.0, 7), "b": jnp.linspace(0.5, 2.0, 5)}
    flat, _ = update.side_inputs("jaxsched_flat", tree, tree)
    one, _ = update.side_inputs("handwritten", tree, tree)
    js_tx, hand_tx = table["jaxsched_flat"], table["handwritten"]
    js_state, hand_state = js_tx.init(flat), hand_tx.init(one)
    for step, scale in enumerate([3.0, 2.0, 0.1, 0.05, 0.01]):
        grads = jax.tree.map(lambda p: scale * jnp.sin(3.0 * p + step), tree)
        flat_grads = update.groups_benchmark.flat_gradients(flat, grads)
        u, js_state = js_tx.update(flat_grads, js_state, flat)
        v, hand_state = hand_tx.update(jnp.concatenate(jax.tree.leaves(grads)), hand_state, one)
        flat_u = np.concatenate([np.ravel(x) for x in jax.tree.leaves(u.unflatten())])
        np.testing.assert_allclose(flat_u, np.asarray(v), rtol=1e-5)  # float32, other order
        flat, one = jax.tree.map(lambda p, d: p + d, flat, u), one + v


def test_update_benchmark_rejects_bad_flags(tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/update.py", "--arrays", "0",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "--arrays" in proc.stderr and "Traceback" not in proc.stderr


def test_quick_optimizer_benchmarks_run(tmp_path):
    """benchmarks/optimizers.py (both modes) and optimizers_elementwise.py run end to end."""
    root = pathlib.Path(__file__).resolve().parents[1]
    runs = [["benchmarks/optimizers.py", "--quick", "--only", "lion,lamb",
             "--out", str(tmp_path / "per_array.json")],
            ["benchmarks/optimizers.py", "--quick", "--flat", "--only", "lion,lamb",
             "--out", str(tmp_path / "flat.json")],
            ["benchmarks/optimizers_elementwise.py", "--arrays", "1,3", "--params", "300",
             "--reps", "2", "--only", "nadam,prodigy"]]
    for args in runs:
        proc = subprocess.run([sys.executable, *args], cwd=root, capture_output=True, text=True,
                              timeout=600, env={**__import__("os").environ,
                                                "PYTHONPATH": str(root)})
        assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "per_array.json").read_text())["rows"]
    assert {r["optimizer"] for r in rows} == {"lion", "lamb"}
    assert all(r["jaxsched"] > 0 and r["optax"] > 0 for r in rows)
    flat = json.loads((tmp_path / "flat.json").read_text())["flat_rows"]
    assert {r["optimizer"] for r in flat} == {"lion", "lamb"}


def test_flat_scaling_table(tmp_path):
    """--flat-scaling times the flat update of one size in 1..N arrays with the copy floor."""
    proc = subprocess.run([sys.executable, "benchmarks/update.py", "--extra", "only",
                           "--per-array-shapes", "", "--groups-shapes", "", "--sharded-shapes", "",
                           "--flat-scaling", "1,20x20000", "--reps", "2", "--loop", "2",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sides = json.loads((tmp_path / "update.json").read_text())["flat_scaling"][0]["sides"]
    assert set(sides) == {"1", "20", "copy_floor"}
    assert all(m["call_median_s"] > 0 for m in sides.values())
    rows = (tmp_path / "update_flat_scaling.md").read_text().splitlines()
    assert [r.split("|")[2].strip() for r in rows[2:]] == ["1", "20"]
    bad = subprocess.run([sys.executable, "benchmarks/update.py", "--flat-scaling", "1,20",
                          "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode != 0 and "--flat-scaling" in bad.stderr


def test_groups_benchmark_times_both_layouts(tmp_path):
    """benchmarks/groups.py: one group, 3 groups in one shared buffer, 3 buffers."""
    proc = subprocess.run([sys.executable, "benchmarks/groups.py", "--arrays", "20", "--params",
                           "2000", "--reps", "3", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "groups.json").read_text())
    assert report["buffers"] == {"one_group": 1, "three_groups": 1, "three_buffers": 3}
    for key in ("ratio", "program_ratio", "ratio_three_buffers", "program_ratio_three_buffers"):
        assert report[key] > 0
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import update  # benchmarks/update.py's table of it
    table = update.groups_markdown([report])
    assert table.count("\n") == 2 and "| 20 | 2,000 |" in table


def test_rotating_buffers_keeps_each_sides_values_and_moves_its_memory():
    """benchmarks/optimizers.py's `_rotate_buffers`: side i's arrays land in the
    buffers side i + 1 held (the last side's in the first's), values unchanged;
    a position whose shapes differ between sides stays where it was."""
    import jax.numpy as jnp
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import optimizers as optimizers_benchmark

    names = ["a", "b", "c"]
    runs = {n: {"live": ({"w": jnp.full((1000,), float(i))},
                         {"m": jnp.full((1000,), 10.0 + i), "odd": jnp.zeros((3 + i,)),
                          "count": jnp.int32(i)})}
            for i, n in enumerate(names)}

    def pointers(n):
        p, s = runs[n]["live"]
        return p["w"].unsafe_buffer_pointer(), s["m"].unsafe_buffer_pointer()

    before = {n: pointers(n) for n in names}
    odd = {n: runs[n]["live"][1]["odd"].unsafe_buffer_pointer() for n in names}
    optimizers_benchmark._rotate_buffers(runs, names)
    for i, n in enumerate(names):
        p, s = runs[n]["live"]
        assert float(p["w"][0]) == i and float(s["m"][-1]) == 10.0 + i and int(s["count"]) == i
        assert pointers(n) == before[names[(i + 1) % 3]]
        assert s["odd"].unsafe_buffer_pointer() == odd[n] and s["odd"].shape == (3 + i,)
