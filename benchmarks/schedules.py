"""What a schedule costs to evaluate: the new shapes and schedule arithmetic.

For every schedule in `ENTRIES` (each new shape, each kind of arithmetic and
the wrappers, next to the parts it is built from) this measures:

- compilations: how many times a jitted 10,000-step `lax.scan` that evaluates
  the schedule at every step is traced, over two schedules of the same
  structure with different values (1 means it compiles once);
- flops: XLA's cost analysis of one jitted evaluation at a scalar step;
- scan ns/step: the 10,000-step scan's time per step, minus the same scan
  evaluating nothing (the loop's own cost), best of `--repeats`;
- vector ns/step: one jitted call on 10,000 steps at once, per step.

For a combination, the "parts" columns hold the same measures for the
schedules it is made of (numbers are free): summed flops and vector times,
and one scan that evaluates every part at every step (so the loop's cost and
its per-iteration dispatch count once on both sides). "Costs no more than the
sum of its parts" reads off one row. Timings are noisy on a shared machine (take the
flops as the stable measure); nothing here is asserted by a test.

Usage:
    python benchmarks/schedules.py                 # markdown table on stdout
    python benchmarks/schedules.py --repeats 3     # quicker, noisier
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import jax.numpy as jnp
from jax import lax

import jaxsched as js

N = 10_000


def _entries():
    cos = js.cosine_decay(0.1, N)
    warm = js.warmup(js.constant(1.0), 500)
    cyc = js.cyclic(0.01, 0.1, 200)
    expo = js.exponential_decay(0.1, 1000, 0.5)
    wsd = js.warmup_stable_decay(0.1, 500, 6000, 3500)
    return [  # (label, schedule, other values of the same structure, parts)
        ("cosine_decay (baseline)", cos, js.cosine_decay(0.3, 500), []),
        ("cosine_decay periodic, num_cycles, exponent",
         js.cosine_decay(0.1, 1000, 0.1, num_cycles=1.5, exponent=2.0, periodic=True),
         js.cosine_decay(0.2, 700, 0.0, num_cycles=0.5, exponent=1.0, periodic=True), []),
        ("piecewise_interpolate cosine, 3 boundaries",
         js.piecewise_interpolate(0.1, [1000, 5000, 8000], [0.5, 0.1, 2.0], "cosine"),
         js.piecewise_interpolate(0.2, [10, 50, 80], [0.3, 0.2, 1.0], "cosine"), []),
        ("warmup_stable_decay (WSD-S, 3 cycles, sqrt)",
         js.warmup_stable_decay(0.1, 500, 2000, 1000, 0.01, 0.01, "sqrt", warmup="cosine",
                                cycles=3, rewarm_steps=100),
         js.warmup_stable_decay(0.2, 50, 200, 100, 0.0, 0.0, "sqrt", warmup="cosine",
                                cycles=2, rewarm_steps=10), []),
        ("inverse_sqrt timescale, shift, min",
         js.inverse_sqrt(0.1, 500, timescale=2000, shift=7, min_value=0.01),
         js.inverse_sqrt(0.2, 50, timescale=200, shift=3, min_value=0.02), []),
        ("one_cycle_momentum", js.one_cycle_momentum(N), js.one_cycle_momentum(500, 0.4), []),
        ("cyclic_momentum", js.cyclic_momentum(0.8, 0.9, 200),
         js.cyclic_momentum(0.7, 0.95, 20), []),
        ("warmup(cosine, mode='exponential')",
         js.warmup(cos, 500, 1e-4, mode="exponential"),
         js.warmup(js.cosine_decay(0.3, 500), 50, 1e-3, mode="exponential"), [cos]),
        ("cooldown(wsd, sqrt)", js.cooldown(wsd, N, 2000, "sqrt"),
         js.cooldown(js.warmup_stable_decay(0.2, 50, 600, 350), 1000, 200, "sqrt"), [wsd]),
        ("shift(cosine)", js.shift(cos, 100), js.shift(js.cosine_decay(0.3, 500), 7), [cos]),
        ("cosine * 0.5", cos * 0.5, js.cosine_decay(0.3, 500) * 2.0, [cos]),
        ("cosine + 0.01", cos + 0.01, js.cosine_decay(0.3, 500) + 0.2, [cos]),
        ("warmup * cosine", warm * cos,
         js.warmup(js.constant(2.0), 50) * js.cosine_decay(0.3, 500), [warm, cos]),
        ("0.5 * (cyclic + exponential)", 0.5 * (cyc + expo),
         0.2 * (js.cyclic(0.01, 0.2, 20) + js.exponential_decay(0.2, 10, 0.9)), [cyc, expo]),
        ("cosine * cyclic + exponential", cos * cyc + expo,
         js.cosine_decay(0.3, 500) * js.cyclic(0.01, 0.2, 20)
         + js.exponential_decay(0.2, 10, 0.9), [cos, cyc, expo]),
        ("from_torch SequentialLR(LinearLR, CosineAnnealingLR)",
         js.from_torch("SequentialLR", 0.1, schedulers=[("LinearLR", {}), (
             "CosineAnnealingLR", dict(T_max=9000))], milestones=[1000]),
         js.from_torch("SequentialLR", 0.3, schedulers=[("LinearLR", {}), (
             "CosineAnnealingLR", dict(T_max=500))], milestones=[100]), []),
        ("from_hf cosine_warmup_with_min_lr",
         js.from_hf("cosine_warmup_with_min_lr", 0.1, 500, N, min_lr_rate=0.1),
         js.from_hf("cosine_warmup_with_min_lr", 0.3, 50, 1000, min_lr_rate=0.2), []),
    ]


def _best(fn, repeats: int) -> float:
    fn()  # compile and warm
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


_EMPTY = jax.jit(lambda: lax.scan(lambda c, t: (c + 1, t.astype(jnp.float32)),
                                  jnp.zeros((), jnp.int32), jnp.arange(N))[1])


def scan_parts_ns(parts, repeats: int) -> float:
    """ns/step of one 10,000-step scan that evaluates every part at every step
    (the loop's own cost subtracted once, as for the combination)."""
    run = jax.jit(lambda ps: lax.scan(lambda c, t: (c + 1, tuple(p(t) for p in ps)),
                                      jnp.zeros((), jnp.int32), jnp.arange(N))[1])
    return max(_best(lambda: run(tuple(parts)), repeats) - _best(_EMPTY, repeats), 0.0) / N * 1e9


def measure(sched, other, repeats: int) -> dict:
    traces = []

    @jax.jit
    def scan(s):
        traces.append(1)
        return lax.scan(lambda c, t: (c + 1, s(t)), jnp.zeros((), jnp.int32), jnp.arange(N))[1]

    vector = jax.jit(lambda s, t: s(t))
    steps = jnp.arange(N)
    scan(sched).block_until_ready()
    scan(other).block_until_ready()
    flops = vector.lower(sched, jnp.int32(0)).compile().cost_analysis()
    flops = flops[0] if isinstance(flops, list) else flops
    empty = _best(_EMPTY, repeats)
    return {
        "compilations": len(traces),
        "flops": float(flops.get("flops", float("nan"))),
        "scan_ns": max(_best(lambda: scan(sched), repeats) - empty, 0.0) / N * 1e9,
        "vector_ns": _best(lambda: vector(sched, steps), repeats) / N * 1e9,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"<!-- python benchmarks/schedules.py --repeats {args.repeats}; jax {jax.__version__}, "
          f"{jax.devices()[0].platform}, {platform.processor() or platform.machine()} -->")
    print("| schedule | compilations in a 10,000-step scan | flops | parts' flops "
          "| scan ns/step | parts' scan ns/step | vector ns/step | parts' vector ns/step |")
    print("|---|---|---|---|---|---|---|---|")
    cache: dict[int, dict] = {}
    for label, sched, other, parts in _entries():
        m = measure(sched, other, args.repeats)
        part = [cache.setdefault(id(p), measure(p, p, args.repeats)) for p in parts]

        def total(key):
            return f"{sum(p[key] for p in part):.0f}" if part else "—"

        def ns(key):
            if not part:
                return "—"
            if key == "scan_ns":
                return f"{scan_parts_ns(parts, args.repeats):.1f}"
            return f"{sum(p[key] for p in part):.1f}"

        print(f"| `{label}` | {m['compilations']} | {m['flops']:.0f} | {total('flops')} "
              f"| {m['scan_ns']:.1f} | {ns('scan_ns')} | {m['vector_ns']:.1f} "
              f"| {ns('vector_ns')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
