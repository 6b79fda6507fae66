"""Time the per-array optimizers' updates: jaxsched against optax's equivalent.

For each of lion, lamb, lars, adafactor and muon, one jitted, donated call
of `update` + `apply_updates` on trees of 1, 100 and 1,000 float32 matrices
holding about 1M parameters in all (square-ish matrices, so that Muon and
Adafactor have matrices to work on). The two sides alternate repetitions in
one process so that machine noise hits both; the table gives the median
time per call and the ratio jaxsched / optax.

The optax sides: `optax.lion`, `optax.lamb`, `optax.lars`, `optax.adafactor`
(same semantics as jaxsched's defaults) and `optax.contrib.muon` (the same
work; its momentum is bias-corrected and its defaults differ, see
docs/migration.md).

Muon's Newton-Schulz iteration is also timed alone (`js.orthogonalize` over
the tree's matrices, jitted) and reported as achieved FLOP/s against the
rate of a float32 (1024, 1024) @ (1024, 1024) matmul measured in the same
run. One iteration on an (m, n) matrix, m <= n, costs 4 m^2 n + 2 m^3 FLOPs.

Compiling Muon for 1,000 matrices takes minutes on a busy 2-core machine
(both sides unroll the iteration for every matrix separately); use
`--only` / `--arrays` to leave it out.

Usage:
    python benchmarks/optimizers.py                  # the table (a few minutes)
    python benchmarks/optimizers.py --quick          # tiny, for a smoke test
    python benchmarks/optimizers.py --arrays 1,100 --params 1000000 --reps 20
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from optax import contrib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import jaxsched as js  # noqa: E402


def make_tree(num_arrays: int, num_params: int) -> dict:
    """`num_arrays` float32 matrices of about `num_params / num_arrays` elements each."""
    per = max(1, num_params // num_arrays)
    rows = max(1, int(math.sqrt(per)))
    cols = max(1, per // rows)
    key = jax.random.key(0)
    return {f"w{i:04d}": 0.1 * jax.random.normal(jax.random.fold_in(key, i), (rows, cols))
            for i in range(num_arrays)}


def pairs() -> dict:
    """name: (jaxsched optimizer, optax's equivalent)."""
    return {
        "lion": (js.lion(1e-4), optax.lion(1e-4)),
        "lamb": (js.lamb(1e-3), optax.lamb(1e-3)),
        "lars": (js.lars(1e-3), optax.lars(1e-3)),
        "adafactor": (js.adafactor(1e-3), optax.adafactor(1e-3)),
        "muon": (js.muon(0.02, weight_decay=0.0), contrib.muon(0.02)),
    }


def step_fn(tx):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


def _block(tree) -> None:
    jax.block_until_ready(tree)


def time_pair(ours, theirs, params: dict, grads: dict, reps: int) -> dict:
    """Median seconds per call of each side, alternating sides every repetition."""
    sides = {}
    for name, tx in (("jaxsched", ours), ("optax", theirs)):
        step = step_fn(tx)
        p = jax.tree.map(jnp.copy, params)
        s = tx.init(p)
        p, s = step(p, s, grads)  # compile and warm up
        _block((p, s))
        sides[name] = [step, p, s, []]
    for _ in range(reps):
        for name in sides:
            step, p, s, times = sides[name]
            t0 = time.perf_counter()
            p, s = step(p, s, grads)
            _block((p, s))
            times.append(time.perf_counter() - t0)
            sides[name][1], sides[name][2] = p, s
    return {name: float(np.median(v[3])) for name, v in sides.items()}


def matmul_rate(n: int = 1024, reps: int = 10) -> float:
    """FLOP/s of a jitted float32 (n, n) @ (n, n) matmul on this machine, now."""
    a = jax.random.normal(jax.random.key(1), (n, n))
    f = jax.jit(lambda x: x @ x)
    _block(f(a))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        _block(f(a))
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / float(np.median(times))


def newton_schulz_rate(params: dict, reps: int, steps: int = js._muon.NS_STEPS) -> dict:
    """Seconds and achieved FLOP/s of the Newton-Schulz iteration over every matrix."""
    flops = 0
    for x in params.values():
        m, n = sorted(x.shape)
        flops += steps * (4 * m * m * n + 2 * m ** 3)
    f = jax.jit(lambda tree: {k: js.orthogonalize(v, ns_steps=steps) for k, v in tree.items()})
    _block(f(params))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        _block(f(params))
        times.append(time.perf_counter() - t0)
    seconds = float(np.median(times))
    return {"seconds": seconds, "flops": flops, "flop_per_s": flops / seconds}


def markdown(rows: list[dict], ns: list[dict], rate: float) -> str:
    lines = ["| optimizer | arrays | params | jaxsched ms | optax ms | ratio |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['optimizer']} | {r['arrays']} | {r['params']:,} | "
                     f"{1e3 * r['jaxsched']:.3f} | {1e3 * r['optax']:.3f} | "
                     f"{r['jaxsched'] / r['optax']:.2f} |")
    lines += ["", f"Measured float32 matmul rate: {rate / 1e9:.1f} GFLOP/s.", "",
              "| Newton-Schulz over | ms | GFLOP | GFLOP/s | of matmul rate |",
              "|---|---:|---:|---:|---:|"]
    for r in ns:
        lines.append(f"| {r['arrays']} matrices {r['shape']} | {1e3 * r['seconds']:.2f} | "
                     f"{r['flops'] / 1e9:.3f} | {r['flop_per_s'] / 1e9:.1f} | "
                     f"{r['flop_per_s'] / rate:.0%} |")
    return "\n".join(lines)


def parse_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arrays", default="1,100,1000")
    ap.add_argument("--params", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--only", default="", help="comma-separated optimizer names")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    ap.add_argument("--out", default="", help="write results JSON here")
    args = ap.parse_args(argv)
    arrays, num_params, reps = parse_ints(args.arrays), args.params, args.reps
    if args.quick:
        arrays, num_params, reps = [1, 10], 10_000, 3
    chosen = set(args.only.split(",")) if args.only else None
    rows, ns = [], []
    rate = matmul_rate(reps=max(3, reps // 2))
    for n in arrays:
        params = make_tree(n, num_params)
        grads = jax.tree.map(lambda x: 0.01 * jnp.cos(x * 7.0), params)
        total = sum(x.size for x in params.values())
        for name, (ours, theirs) in pairs().items():
            if chosen and name not in chosen:
                continue
            t = time_pair(ours, theirs, params, grads, reps)
            rows.append({"optimizer": name, "arrays": n, "params": total, **t})
            print(f"{name:10s} {n:5d} arrays: jaxsched {1e3 * t['jaxsched']:.3f} ms, "
                  f"optax {1e3 * t['optax']:.3f} ms", file=sys.stderr, flush=True)
        if chosen is None or "muon" in chosen:
            shape = next(iter(params.values())).shape
            ns.append({"arrays": n, "shape": tuple(shape), **newton_schulz_rate(params, reps)})
    table = markdown(rows, ns, rate)
    print(table)
    print(f"\n{platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, jax {jax.__version__}, optax {optax.__version__}, "
          f"backend {jax.default_backend()}, load {os.getloadavg()[0]:.1f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "newton_schulz": ns,
                                              "matmul_flop_per_s": rate}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
