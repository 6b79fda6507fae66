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

Each row also gives each side's compile time (`jit(...).lower(...).compile()`,
seconds). jaxsched's Muon stacks the matrices of one shape and runs the
iteration once per shape; optax's `contrib.muon` traces it per matrix. A side
whose compile, extrapolated linearly from the previous tree size, would pass
`--compile-cap` seconds is not compiled (its cells say so).

`--flat` times instead each new optimizer's update on `js.flat_params` of
the same trees against the same optimizer on one array of the same total
size (the issue's "flat parameters at most 1.1x its one-array time"), with
the per-array tree alongside. For Muon and Adafactor, which act per matrix,
the one-array run does other work (one big matrix: other Newton-Schulz
FLOPs, other factored moments), so their comparable ratio is flat / tree.

Usage:
    python benchmarks/optimizers.py                  # the table (a few minutes)
    python benchmarks/optimizers.py --quick          # tiny, for a smoke test
    python benchmarks/optimizers.py --arrays 1,100 --params 1000000 --reps 20
    python benchmarks/optimizers.py --only muon --out muon.json
    python benchmarks/optimizers.py --flat --arrays 100,1000 --out flat.json
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


def compiled_step(tx, params, grads) -> tuple:
    """The compiled, donated update of `tx`, its fresh params and state, and the compile seconds."""
    p = jax.tree.map(jnp.copy, params)
    # A copy: optax's prodigy keeps the initial parameters in its state as the
    # very same buffers, which a donating step cannot take twice.
    s = jax.tree.map(jnp.copy, tx.init(p))
    t0 = time.perf_counter()
    step = step_fn(tx).lower(p, s, grads).compile()
    return step, p, s, time.perf_counter() - t0


def _rotate_buffers(runs: dict, names: list) -> None:
    """Each side's arrays move into the memory the next side held, values kept.

    Arrays are matched by position among each side's non-scalar leaves; a
    position whose shapes or dtypes differ between sides stays put. A donated
    copy writes each array into the other side's buffer, so the addresses the
    sides run on rotate while every side keeps its own parameters and state.
    """
    flat = {n: jax.tree.flatten(runs[n]["live"]) for n in names}
    leaves = {n: list(flat[n][0]) for n in names}
    for n in names:
        runs[n]["live"] = None
    places = {n: [i for i, x in enumerate(leaves[n]) if x.ndim > 0] for n in names}
    for j in range(min(len(v) for v in places.values())):
        arrays = [leaves[n][places[n][j]] for n in names]
        if len({(x.shape, x.dtype) for x in arrays}) != 1:
            continue
        for n in names:
            leaves[n][places[n][j]] = None
        last = jnp.copy(arrays[-1])
        moved: list = [None] * len(names)
        for i in reversed(range(len(names) - 1)):  # side i's values into side i + 1's memory
            moved[i] = _move(arrays[i + 1], arrays[i])
        moved[-1] = _move(arrays[0], last)  # the last side's values into the first's memory
        del arrays, last
        for i, n in enumerate(names):
            leaves[n][places[n][j]] = moved[i]
    for n in names:
        runs[n]["live"] = jax.tree.unflatten(flat[n][1], leaves[n])


# dst's buffer receives src's values (donated, so XLA writes in place)
_move = jax.jit(lambda dst, src: jnp.copy(src), donate_argnums=0, keep_unused=True)


def time_sides(sides: dict, reps: int, blocks: int = 10) -> dict:
    """Median seconds per call of each side, alternating sides every repetition.

    Each side's parameters and state are made once. The repetitions run in
    blocks (a multiple of the number of sides); between blocks the sides'
    arrays rotate through the sides' memory (`_rotate_buffers`), so that every
    side runs on every side's buffers for as many blocks. Measured (adamax, 1M
    parameters): with buffers made afresh every block, in a rotated order, the
    two sides fell on recurring sets of addresses, not evenly (each `init`
    leaves the allocator in its own state), and a block's ratio followed which
    side held which set (1.01-1.10 for one assignment, 0.97-0.99 mostly for the
    other).
    Within a block the order of the sides rotates every repetition. The
    gradient alternates between `grads` and `-grads` (one pair of buffers for
    every side), so that no optimizer's state runs off to infinity (Prodigy's
    step size grows without bound under a constant gradient); a side whose
    parameters or state end non-finite stops the run.

    `sides`: name -> (tx, params, grads); a side whose tx is None is left out.
    Returns name -> {"seconds", "compile_s", "block_seconds"}: the median over
    the whole run, and each block's median (the spread of the per-block
    ratios between two sides shows how far one run's ratio can be trusted).
    """
    negated: dict = {}
    runs = {}
    for name, (tx, params, grads) in sides.items():
        if tx is None:
            continue
        step, p, s, compile_s = compiled_step(tx, params, grads)
        if id(grads) not in negated:
            negated[id(grads)] = (grads, jax.tree.map(jnp.negative, grads))
        runs[name] = {"step": step, "grads": negated[id(grads)], "live": (p, s), "calls": 0,
                      "times": [], "blocks": [], "compile_s": compile_s}
    names = list(runs)
    blocks = max(1, min(blocks, reps))
    blocks = -(-blocks // len(names)) * len(names) if names else blocks
    for block in range(blocks):
        if block:
            _rotate_buffers(runs, names)
        order = names[block % len(names):] + names[:block % len(names)]
        for name in order:  # warm up on the (moved) buffers
            run = runs[name]
            run["live"] = run["step"](*run["live"], run["grads"][run["calls"] % 2])
            run["calls"] += 1
            _block(run["live"])
        count = reps // blocks + (1 if block < reps % blocks else 0)
        for rep in range(count):
            for name in order[rep % len(order):] + order[:rep % len(order)]:
                run = runs[name]
                grads = run["grads"][run["calls"] % 2]
                t0 = time.perf_counter()
                run["live"] = run["step"](*run["live"], grads)
                _block(run["live"])
                run["times"].append(time.perf_counter() - t0)
                run["calls"] += 1
        for run in runs.values():
            run["blocks"].append(float(np.median(run["times"][-count:])) if count else None)
    for name, run in runs.items():
        floats = [x for x in jax.tree.leaves(run["live"]) if jnp.issubdtype(x.dtype, jnp.floating)]
        if not all(bool(jnp.all(jnp.isfinite(x))) for x in floats):
            raise SystemExit(f"error: {name}'s parameters or state are not finite after "
                             f"{run['calls']} updates: its times would not be an update's")
    return {name: {"seconds": float(np.median(r["times"])), "compile_s": r["compile_s"],
                   "block_seconds": [b for b in r["blocks"] if b is not None]}
            for name, r in runs.items()}


def time_pair(ours, theirs, params: dict, grads: dict, reps: int) -> dict:
    """Median seconds per call of each side (None if left out) and compile seconds."""
    t = time_sides({"jaxsched": (ours, params, grads), "optax": (theirs, params, grads)}, reps)
    out: dict = {}
    for name in ("jaxsched", "optax"):
        out[name] = t[name]["seconds"] if name in t else None
        out[f"{name}_compile_s"] = t[name]["compile_s"] if name in t else None
    return out


def median_seconds(f, x, reps: int) -> float:
    """Median seconds of `f(x)` (already compiled by a first call)."""
    _block(f(x))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        _block(f(x))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def matmul_rate(n: int = 1024, reps: int = 10) -> float:
    """FLOP/s of a jitted float32 (n, n) @ (n, n) matmul on this machine, now."""
    a = jax.random.normal(jax.random.key(1), (n, n))
    return 2 * n ** 3 / median_seconds(jax.jit(lambda x: x @ x), a, reps)


def newton_schulz_rate(params: dict, reps: int, steps: int = js._muon.NS_STEPS) -> dict:
    """Seconds and achieved FLOP/s of the Newton-Schulz iteration over every matrix.

    The matrices (all of one shape) are stacked and orthogonalized under one
    `vmap`, as `scale_by_muon` does.
    """
    flops = 0
    for x in params.values():
        m, n = sorted(x.shape)
        flops += steps * (4 * m * m * n + 2 * m ** 3)
    stacked = jnp.stack(list(params.values()))
    f = jax.jit(jax.vmap(lambda x: js.orthogonalize(x, ns_steps=steps)))
    seconds = median_seconds(f, stacked, reps)
    return {"seconds": seconds, "flops": flops, "flop_per_s": flops / seconds}


def _ms(x) -> str:
    return "-" if x is None else f"{1e3 * x:.3f}"


def _s(x) -> str:
    return "-" if x is None else f"{x:.1f}"


def markdown(rows: list[dict], ns: list[dict], rate: float) -> str:
    lines = ["| optimizer | arrays | params | jaxsched ms | optax ms | ratio | jaxsched compile s "
             "| optax compile s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = (f"{r['jaxsched'] / r['optax']:.2f}" if r["jaxsched"] and r["optax"] else "-")
        lines.append(f"| {r['optimizer']} | {r['arrays']} | {r['params']:,} | "
                     f"{_ms(r['jaxsched'])} | {_ms(r['optax'])} | {ratio} | "
                     f"{_s(r['jaxsched_compile_s'])} | {_s(r['optax_compile_s'])} |")
    skipped = [r for r in rows if r.get("skipped")]
    for r in skipped:
        lines.append(f"\n{r['optimizer']}, {r['arrays']} arrays: {r['skipped']}")
    if ns:
        lines += ["", f"Measured float32 matmul rate: {rate / 1e9:.1f} GFLOP/s.", "",
                  "| Newton-Schulz over | ms | GFLOP | GFLOP/s | of matmul rate |",
                  "|---|---:|---:|---:|---:|"]
    for r in ns:
        lines.append(f"| {r['arrays']} matrices {r['shape']} | {1e3 * r['seconds']:.2f} | "
                     f"{r['flops'] / 1e9:.3f} | {r['flop_per_s'] / 1e9:.1f} | "
                     f"{r['flop_per_s'] / rate:.0%} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- flat parameters

def flat_makers() -> dict:
    """name: a function making the optimizer (a fresh one per side)."""
    return {
        "lion": lambda: js.lion(1e-4),
        "adafactor": lambda: js.adafactor(1e-3),
        "lamb": lambda: js.lamb(1e-3),
        "lars": lambda: js.lars(1e-3),
        "nadam": lambda: js.nadam(1e-3),
        "nadamw": lambda: js.nadamw(1e-3),
        "radam": lambda: js.radam(1e-3),
        "adamax": lambda: js.adamax(1e-3),
        "amsgrad": lambda: js.amsgrad(1e-3),
        "adopt": lambda: js.adopt(1e-3),
        "prodigy": lambda: js.prodigy(1.0),
        "schedule_free_adamw": lambda: js.schedule_free_adamw(2.5e-3),
        "schedule_free_sgd": lambda: js.schedule_free_sgd(1.0),
        "muon": lambda: js.muon(0.02, weight_decay=0.0),
    }


PER_MATRIX = ("muon", "adafactor")  # act per matrix: one array is not the comparison


def flat_rows(arrays: list[int], num_params: int, reps: int, chosen, with_tree: bool,
              align: int = 1) -> list:
    rows = []
    for n in arrays:
        tree = make_tree(n, num_params)
        grads = jax.tree.map(lambda x: 0.01 * jnp.cos(x * 7.0), tree)
        total = sum(x.size for x in tree.values())
        flat, flat_g = js.flat_params(tree, align=align), js.flat_params(grads, align=align)
        one = {"w": jnp.concatenate([x.ravel() for x in tree.values()])}
        one_g = {"w": jnp.concatenate([x.ravel() for x in grads.values()])}
        for name, make in flat_makers().items():
            if chosen and name not in chosen:
                continue
            per_matrix = name in PER_MATRIX
            sides = {"one": (None if per_matrix else make(), one, one_g), "flat": (make(), flat, flat_g),
                     "tree": (make() if with_tree or per_matrix else None, tree, grads)}
            t = time_sides(sides, reps)
            row = {"optimizer": name, "arrays": n, "params": total, "align": align,
                   **{k: v["seconds"] for k, v in t.items()},
                   **{f"{k}_compile_s": v["compile_s"] for k, v in t.items()},
                   "per_matrix": per_matrix}
            rows.append(row)
            print(f"{name:20s} {n:5d} arrays: one {_ms(row.get('one'))} ms, flat "
                  f"{_ms(row.get('flat'))} ms, tree {_ms(row.get('tree'))} ms",
                  file=sys.stderr, flush=True)
    return rows


def flat_markdown(rows: list[dict]) -> str:
    lines = ["| optimizer | arrays | params | one array ms | flat ms | tree ms | flat / one "
             "| flat / tree |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        one = "n/c" if r["per_matrix"] else f"{r['flat'] / r['one']:.2f}"
        tree = f"{r['flat'] / r['tree']:.2f}" if r.get("tree") else "-"
        lines.append(f"| {r['optimizer']} | {r['arrays']} | {r['params']:,} | {_ms(r.get('one'))} | "
                     f"{_ms(r['flat'])} | {_ms(r.get('tree'))} | {one} | {tree} |")
    lines.append("\nn/c: not comparable (Muon and Adafactor act per matrix; one big array "
                 "is other work): compare flat with the tree.")
    return "\n".join(lines)


def parse_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _capped(previous: dict, key: tuple, n: int, cap: float):
    """None if compiling is expected to stay under `cap` seconds, else the reason."""
    prior = previous.get(key)
    if prior is None:
        return None
    n0, seconds = prior
    estimate = seconds * n / n0
    return None if estimate <= cap else (f"not compiled: {seconds:.0f} s at {n0} arrays "
                                         f"extrapolates to ~{estimate:.0f} s > --compile-cap {cap:.0f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arrays", default="1,100,1000")
    ap.add_argument("--params", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--only", default="", help="comma-separated optimizer names")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    ap.add_argument("--out", default="", help="write results JSON here")
    ap.add_argument("--compile-cap", type=float, default=900.0,
                    help="skip a side whose compile extrapolates beyond this many seconds")
    ap.add_argument("--flat", action="store_true",
                    help="flat_params against one array of the same size (see above)")
    ap.add_argument("--align", type=int, default=1,
                    help="with --flat: flat_params(align=...); 16 makes per-array sums "
                         "block sums (lamb, lars)")
    ap.add_argument("--with-tree", action="store_true",
                    help="with --flat: time the per-array tree for every optimizer too")
    args = ap.parse_args(argv)
    arrays, num_params, reps = parse_ints(args.arrays), args.params, args.reps
    if args.quick:
        arrays, num_params, reps = [1, 10], 10_000, 3
    chosen = set(args.only.split(",")) if args.only else None
    env = (f"{platform.node()} {platform.processor() or platform.machine()}, "
           f"{os.cpu_count()} CPUs, jax {jax.__version__}, optax {optax.__version__}, "
           f"backend {jax.default_backend()}")
    if args.flat:
        load0 = os.getloadavg()
        rows = flat_rows(arrays, num_params, reps, chosen, args.with_tree, args.align)
        print(flat_markdown(rows))
        print(f"flat_params(align={args.align})")
        print(f"\n{env}, load {load0[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end")
        if args.out:
            Path(args.out).write_text(json.dumps({"flat_rows": rows, "env": env,
                                                  "load": [load0, os.getloadavg()]}, indent=1))
        return 0
    rows, ns = [], []
    previous: dict = {}
    load0 = os.getloadavg()
    rate = matmul_rate(reps=max(3, reps // 2))
    for n in arrays:
        params = make_tree(n, num_params)
        grads = jax.tree.map(lambda x: 0.01 * jnp.cos(x * 7.0), params)
        total = sum(x.size for x in params.values())
        for name, (ours, theirs) in pairs().items():
            if chosen and name not in chosen:
                continue
            why = {side: _capped(previous, (name, side), n, args.compile_cap)
                   for side in ("jaxsched", "optax")}
            t = time_pair(None if why["jaxsched"] else ours, None if why["optax"] else theirs,
                          params, grads, reps)
            for side in ("jaxsched", "optax"):
                if t[f"{side}_compile_s"] is not None:
                    previous[(name, side)] = (n, t[f"{side}_compile_s"])
            row = {"optimizer": name, "arrays": n, "params": total, **t}
            reasons = [f"{side} {w}" for side, w in why.items() if w]
            if reasons:
                row["skipped"] = "; ".join(reasons)
            rows.append(row)
            print(f"{name:10s} {n:5d} arrays: jaxsched {_ms(t['jaxsched'])} ms "
                  f"(compile {_s(t['jaxsched_compile_s'])} s), optax {_ms(t['optax'])} ms "
                  f"(compile {_s(t['optax_compile_s'])} s)", file=sys.stderr, flush=True)
        if chosen is None or "muon" in chosen:
            shape = next(iter(params.values())).shape
            ns.append({"arrays": n, "shape": tuple(shape), **newton_schulz_rate(params, reps)})
    table = markdown(rows, ns, rate)
    print(table)
    print(f"\n{env}, load {load0[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "newton_schulz": ns,
                                              "matmul_flop_per_s": rate, "env": env,
                                              "load": [load0, os.getloadavg()]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
