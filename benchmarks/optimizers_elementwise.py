"""Time one update of the elementwise optimizers: jaxsched against optax's equivalents.

Pairs (same hyperparameters; the formulas differ where the docstrings say so,
e.g. PyTorch's eps placement, which costs the same):

- adopt:   js.adopt            vs optax.contrib.adopt
- nadam:   js.nadam            vs optax.nadam (optax's form has no momentum schedule)
- radam:   js.radam            vs optax.radam
- adamax:  js.adamax           vs optax.adamax
- amsgrad: js.amsgrad          vs optax.amsgrad
- nadamw:  js.nadamw           vs optax.nadamw
- prodigy: js.prodigy          vs optax.contrib.prodigy (the reference package's
  form against optax's; the same tree-level reductions)
- schedule_free_adamw / schedule_free_sgd: js vs optax.contrib (the same work;
  optax's first update skips schedule(0), see docs/migration.md)

Each update is `update` then `apply_updates`, jitted with the parameters and
the state donated, on trees of 1, 100 and 1,000 float32 vectors holding
1M parameters in all. The two sides of a pair alternate, repetition by
repetition, so machine noise hits both, and both sides' buffers are made
afresh every tenth of the run (see `optimizers.time_sides`); the table gives
the median time per call and the ratio jaxsched / optax, with the range of
the ten blocks' ratios (each block's median over its median). The last row,
optax's adam against itself, shows the run's noise floor.

Usage:
    python benchmarks/optimizers_elementwise.py
    python benchmarks/optimizers_elementwise.py --arrays 1,100 --params 100000 --reps 50
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import jax
import jax.numpy as jnp
import optax

import jaxsched as js

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import optimizers as optimizers_benchmark  # benchmarks/optimizers.py


def make_tree(num_arrays: int, num_params: int) -> dict:
    base, extra = divmod(num_params, num_arrays)
    return {f"w{i:05d}": jnp.full((base + (1 if i < extra else 0),), 0.1, jnp.float32)
            for i in range(num_arrays)}


def pairs() -> dict:
    return {
        "adopt": (js.adopt(1e-3), optax.contrib.adopt(1e-3)),
        "nadam": (js.nadam(1e-3), optax.nadam(1e-3)),
        "radam": (js.radam(1e-3), optax.radam(1e-3)),
        "adamax": (js.adamax(1e-3), optax.adamax(1e-3)),
        "amsgrad": (js.amsgrad(1e-3), optax.amsgrad(1e-3)),
        "nadamw": (js.nadamw(1e-3, weight_decay=1e-4), optax.nadamw(1e-3, weight_decay=1e-4)),
        "prodigy": (js.prodigy(1.0), optax.contrib.prodigy(1.0)),
        "schedule_free_adamw": (js.schedule_free_adamw(1e-3, weight_decay=1e-4),
                                optax.contrib.schedule_free_adamw(1e-3, weight_decay=1e-4)),
        "schedule_free_sgd": (js.schedule_free_sgd(1e-2), optax.contrib.schedule_free_sgd(1e-2)),
        # The noise floor: the same optax update on both sides (its ratio should be 1).
        "control (optax.adam twice)": (optax.adam(1e-3), optax.adam(1e-3)),
    }


def time_pair(txs, tree, reps: int) -> tuple[float, float, list[float]]:
    """Median seconds per call of jaxsched and optax, alternating every repetition,
    and the per-block ratios jaxsched / optax."""
    grads = jax.tree.map(lambda x: jnp.full_like(x, 0.01), tree)
    t = optimizers_benchmark.time_sides(
        {"jaxsched": (txs[0], tree, grads), "optax": (txs[1], tree, grads)}, reps)
    ours, theirs = t["jaxsched"], t["optax"]
    return (ours["seconds"], theirs["seconds"],
            [a / b for a, b in zip(ours["block_seconds"], theirs["block_seconds"])])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrays", default="1,100,1000")
    parser.add_argument("--params", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--only", default="", help="comma-separated optimizer names")
    args = parser.parse_args(argv)
    names = [n for n in pairs() if not args.only or n in args.only.split(",")]
    print(f"jax {jax.__version__}, optax {optax.__version__}, {jax.devices()[0].platform}, "
          f"{args.params:,} float32 parameters, median of {args.reps} calls")
    print(f"{'optimizer':<28}{'arrays':>8}{'jaxsched us':>14}{'optax us':>12}{'ratio':>8}"
          f"{'blocks':>14}")
    for n_arrays in [int(a) for a in args.arrays.split(",")]:
        tree = make_tree(n_arrays, args.params)
        for name in names:
            ours, theirs, blocks = time_pair(pairs()[name], tree, args.reps)
            spread = f"{min(blocks):.2f}-{max(blocks):.2f}"
            print(f"{name:<28}{n_arrays:>8}{ours * 1e6:>14.0f}{theirs * 1e6:>12.0f}"
                  f"{ours / theirs:>8.2f}{spread:>14}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
