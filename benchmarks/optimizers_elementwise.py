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
1M parameters in all. Each library runs twice (two instances with their own
buffers), the four sides alternating repetition by repetition so machine
noise hits all of them, their arrays rotating through the four sides' memory
between blocks (see `optimizers.time_sides`). The table gives each library's
median time per call (the geometric mean of its two sides), the ratio
jaxsched / optax, the range of the blocks' ratios, and `self`: how far each
library's second side lay from its first in the same run (the larger of the
two), the run's own noise. The last row, optax's adam on both sides, is a
pair with no difference at all.

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


def time_pair(name: str, tree, reps: int) -> dict:
    """jaxsched against optax, each side twice (two instances, two sets of buffers).

    Returns each library's time per call (the geometric mean of its two sides'
    medians), the ratio, the per-block ratios, and the run's own noise: how
    far each library's second side lay from its first (the larger of the two).
    """
    grads = jax.tree.map(lambda x: jnp.full_like(x, 0.01), tree)
    (ours, theirs), (ours2, theirs2) = pairs()[name], pairs()[name]
    t = optimizers_benchmark.time_sides(
        {"jaxsched": (ours, tree, grads), "optax": (theirs, tree, grads),
         "jaxsched 2": (ours2, tree, grads), "optax 2": (theirs2, tree, grads)}, reps)

    def mean(a, b):
        return (a * b) ** 0.5

    js_s = mean(t["jaxsched"]["seconds"], t["jaxsched 2"]["seconds"])
    ox_s = mean(t["optax"]["seconds"], t["optax 2"]["seconds"])
    blocks = [mean(a, b) / mean(c, d) for a, b, c, d in zip(
        *(t[k]["block_seconds"] for k in ("jaxsched", "jaxsched 2", "optax", "optax 2")))]
    noise = max(abs(t["jaxsched 2"]["seconds"] / t["jaxsched"]["seconds"] - 1),
                abs(t["optax 2"]["seconds"] / t["optax"]["seconds"] - 1))
    return {"jaxsched": js_s, "optax": ox_s, "ratio": js_s / ox_s, "blocks": blocks,
            "noise": noise}


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
          f"{'blocks':>14}{'self':>8}")
    for n_arrays in [int(a) for a in args.arrays.split(",")]:
        tree = make_tree(n_arrays, args.params)
        for name in names:
            r = time_pair(name, tree, args.reps)
            spread = f"{min(r['blocks']):.2f}-{max(r['blocks']):.2f}"
            print(f"{name:<28}{n_arrays:>8}{r['jaxsched'] * 1e6:>14.0f}{r['optax'] * 1e6:>12.0f}"
                  f"{r['ratio']:>8.2f}{spread:>14}{100 * r['noise']:>7.1f}%", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
