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
    assert set(report["copy_bandwidth_bytes_per_s"]["20000"]) == {"call", "program"}
    shapes = {(r["arrays"], r["params"]) for r in report["results"]}
    assert shapes == {(1, 20000), (20, 20000)}
    for r in report["results"]:
        for name in ("optax", "jaxsched", "jaxsched_fused", "jaxsched_flat",
                     "jaxsched_flat_concat"):
            m = r[name]
            assert m["call_median_s"] > 0 and m["program_median_s"] > 0
            assert m["compile_s"] > 0 and m["hlo_ops"] > 0
    table = (out / "update.md").read_text()
    assert table.count("\n") == 2 + 2 * 5  # header, rule, 2 shapes x 5 sides


def test_update_benchmark_rejects_bad_flags(tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/update.py", "--arrays", "0",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "--arrays" in proc.stderr and "Traceback" not in proc.stderr
