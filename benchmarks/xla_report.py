"""What XLA made of a jitted function: compile counts, HLO statistics, memory, cost.

Only public JAX APIs: compilations are counted with a :mod:`jax.monitoring`
listener on the backend-compile event, and the report comes from the
ahead-of-time stages (``jit(f).trace(...).lower().compile()``).
"""

from __future__ import annotations

import collections
import re
import time

#: Recorded (through ``jax.monitoring``) once per XLA backend compilation,
#: with the jitted function's name as ``fun_name``.
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
#: Recorded once per trace of a Python function to a jaxpr.
TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"


class CompileCounter:
    """Counts XLA backend compilations and traces per jitted function name.

    Listens to :mod:`jax.monitoring` duration events while it is open; use
    it as a context manager or call :meth:`close`.
    """

    def __init__(self):
        import jax
        self._monitoring = jax.monitoring
        self.compiles = collections.Counter()
        self.traces = collections.Counter()
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event, duration, **kwargs):
        if event == BACKEND_COMPILE_EVENT:
            self.compiles[kwargs.get("fun_name", "?")] += 1
        elif event == TRACE_EVENT:
            self.traces[kwargs.get("fun_name", "?")] += 1

    @staticmethod
    def _sum(counter, fun_name: str) -> int:
        return sum(v for k, v in counter.items() if k in (fun_name, f"jit({fun_name})"))

    def count(self, fun_name: str) -> int:
        """Backend compilations of the function named ``fun_name`` so far."""
        return self._sum(self.compiles, fun_name)

    def trace_count(self, fun_name: str) -> int:
        """Traces of the function named ``fun_name`` so far (one per jit cache entry)."""
        return self._sum(self.traces, fun_name)

    def close(self):
        try:
            self._monitoring.unregister_event_duration_listener(self._listen)
        except (AssertionError, ValueError, KeyError):  # already removed
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
