"""Time one optimizer update at many model shapes: jaxsched against optax.

The update is `clip_by_global_norm(1.0)` then `adamw(cosine schedule)`, applied
to the parameters, for trees of 1 to 5,000 arrays holding 1M or 10M float32
parameters. Six sides run side by side, alternating repetitions so machine
noise hits all of them:

- `optax`:        optax.chain(optax.clip_by_global_norm, optax.adamw)
- `jaxsched`:     js.chain(js.clip_by_global_norm, js.adamw)        (per array)
- `jaxsched_fused`: js.fuse(the same chain)                           (bucketed flat state)
- `jaxsched_flat`: the same chain on `js.flat_params(tree)`: parameters, gradients
  and state are one buffer; the gradient arrives flat, as `jax.grad` through
  `FlatParams.unflatten()` returns it
- `jaxsched_flat_concat`: as `jaxsched_flat`, but the timed program also
  concatenates the gradient tree into the buffer: the most that flat
  parameters add to a backward pass
- `handwritten`: the same update written by hand in `jax.numpy` on one array
  holding every parameter (`handwritten_adamw`): what XLA makes of this
  arithmetic with no library at all, the reference for `jaxsched_flat`

Two times are reported for each:
- per call: one jitted call of the update, as a training loop makes it; this
  includes JAX's per-buffer cost of passing every array in and out;
- in program: the update repeated inside one compiled `lax.fori_loop`, which is
  what XLA itself spends.

More tables (not in `--quick`):
- flat scaling (`update_flat_scaling.md`): the flat update of 1M parameters
  laid out as 1, 100, 1,000 and 5,000 arrays, only those sides alternating
  (with the per-array sides of the main table in the same loop, the frees of
  their thousands of buffers land on the flat side's calls);
- per array (`update_per_array.md`): `clip_by_norm(1.0)` then adamw, which
  clips each array by its own norm, at 1,000 arrays of equal sizes (a model's
  repeated layers: one reduction per array pattern) and of random sizes (no
  pattern: block sums and a segment sum over the blocks): jaxsched on
  `js.flat_params(tree, align=64)` (segment sums per original array) against
  the elementwise flat update above and against optax's per-array cost
  (`optax.clip_by_block_rms` then adamw, on the tree);
- parameter groups (`update_groups.md`, `benchmarks/groups.py`): the same
  chain with 3 groups (biases without weight decay, a head with its own
  schedule) on `js.flat_params(share=True)` (the groups in one buffer) and
  on one buffer per group, against one group;
- sharded (`update_sharded.md`, in a subprocess with 8 CPU devices):
  `js.fuse(..., sharding=NamedSharding(mesh, P("data")))` and
  `js.flat_params` placed with the same sharding, against the same fused
  update on one device: time per update and optimizer-state bytes per device
  (read from the state arrays' addressable shards).

Achieved bandwidth counts 8 float32 accesses per parameter (read the gradient
for the norm and again for the moments, read and write parameters and both
moments) against the floor: a donated copy (`x * 1.0001`) of a buffer of 4
float32 per parameter, the same bytes moved over the same working set as the
update, timed as one more side in the same alternating loop (the machine
changes speed between runs, so a floor measured once, before, is not the
floor of the run).

Usage:
    python benchmarks/update.py                      # the full table (several minutes)
    python benchmarks/update.py --quick              # a small table for tests
    python benchmarks/update.py --arrays 1,100 --params 1000000 --out results/update
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxsched as js

sys.path.insert(0, str(Path(__file__).resolve().parent))
import groups as groups_benchmark  # benchmarks/groups.py

BYTES_PER_PARAM = 8 * 4
FLOOR = "copy_floor"  # the floor's key in each row


def make_tree(num_arrays: int, num_params: int, random_sizes: bool = False) -> dict:
    """`num_arrays` float32 vectors holding `num_params` in all.

    Sizes differ by at most one, or with `random_sizes` (seeded) from 0.2 to
    1.8 times the mean: a layout with no repeating pattern of arrays.
    """
    if random_sizes:
        weights = np.random.default_rng(0).uniform(0.2, 1.8, num_arrays)
        sizes = np.maximum(1, np.floor(weights / weights.sum() * num_params)).astype(int)
        sizes[0] += num_params - sizes.sum()
    else:
        base, extra = divmod(num_params, num_arrays)
        sizes = np.array([base + (1 if i < extra else 0) for i in range(num_arrays)])
    return {f"w{i:05d}": jnp.full((int(n),), 0.1, jnp.float32) for i, n in enumerate(sizes)}


def optimizers(decay_steps: int = 10_000) -> dict:
    lr_js = js.cosine_decay(1e-3, decay_steps)
    lr_optax = optax.cosine_decay_schedule(1e-3, decay_steps)
    return {
        "optax": optax.chain(optax.clip_by_global_norm(1.0),
                             optax.adamw(lr_optax, weight_decay=1e-4)),
        "jaxsched": js.chain(js.clip_by_global_norm(1.0), js.adamw(lr_js, weight_decay=1e-4)),
        "jaxsched_fused": js.fuse(js.chain(js.clip_by_global_norm(1.0),
                                           js.adamw(lr_js, weight_decay=1e-4))),
        "jaxsched_flat": js.chain(js.clip_by_global_norm(1.0),
                                  js.adamw(lr_js, weight_decay=1e-4)),
        "jaxsched_flat_concat": js.chain(js.clip_by_global_norm(1.0),
                                         js.adamw(lr_js, weight_decay=1e-4)),
        "handwritten": handwritten_adamw(decay_steps),
    }


def handwritten_adamw(decay_steps: int, peak: float = 1e-3, b1: float = 0.9, b2: float = 0.999,
                      eps: float = 1e-8, weight_decay: float = 1e-4) -> optax.GradientTransformation:
    """clip_by_global_norm(1.0) then adamw(cosine decay) on one array, in plain `jax.numpy`.

    g <- g / max(1, |g|);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    u = -lr(t) (m / (1 - b1^(t+1)) / (sqrt(v / (1 - b2^(t+1))) + eps) + wd p),
    lr(t) = peak (1 + cos(pi min(t, T) / T)) / 2 at the count t before the step.
    """
    def init(p):
        return jnp.zeros([], jnp.int32), jnp.zeros_like(p), jnp.zeros_like(p)

    def update(g, state, p):
        t, m, v = state
        g = g / jnp.maximum(1.0, jnp.sqrt(jnp.sum(g * g)))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step = (t + 1).astype(jnp.float32)
        lr = peak * 0.5 * (1 + jnp.cos(jnp.pi * jnp.minimum(t, decay_steps) / decay_steps))
        u = m / (1 - b1 ** step) / (jnp.sqrt(v / (1 - b2 ** step)) + eps) + weight_decay * p
        return -lr * u, (t + 1, m, v)

    return optax.GradientTransformation(init, update)


def per_array_optimizers(decay_steps: int = 10_000) -> dict:
    """Per-array clipping then adamw, and the elementwise flat update to compare with."""
    lr_js = js.cosine_decay(1e-3, decay_steps)
    lr_optax = optax.cosine_decay_schedule(1e-3, decay_steps)
    return {
        "jaxsched_flat": js.chain(js.clip_by_global_norm(1.0),
                                  js.adamw(lr_js, weight_decay=1e-4)),
        "jaxsched_flat_per_array": js.chain(js.clip_by_norm(1.0),
                                            js.adamw(lr_js, weight_decay=1e-4)),
        "optax_per_array": optax.chain(optax.clip_by_block_rms(1.0),
                                       optax.adamw(lr_optax, weight_decay=1e-4)),
        "jaxsched_per_array": js.chain(js.clip_by_norm(1.0),
                                       js.adamw(lr_js, weight_decay=1e-4)),
    }


FLAT_SIDES = ("jaxsched_flat", "jaxsched_flat_concat", "jaxsched_flat_per_array")
MANY_ARRAY_SIDES = ("jaxsched_fused", "handwritten") + FLAT_SIDES  # run at every tree size


def side_inputs(name: str, params: dict, grads: dict) -> tuple:
    """(params, grads) in the form the side's update takes."""
    if name == "handwritten":  # one array holding every parameter
        return jnp.concatenate(jax.tree.leaves(params)), jnp.concatenate(jax.tree.leaves(grads))
    if name not in FLAT_SIDES:
        return params, grads
    flat = js.flat_params(params, align=64 if name == "jaxsched_flat_per_array" else 1)
    if name == "jaxsched_flat_concat":
        return flat, grads
    return flat, jax.jit(groups_benchmark.flat_gradients)(flat, grads)


def step_fn(tx, concat_grads: bool = False):
    def step(params, state, grads):
        if concat_grads:
            grads = groups_benchmark.flat_gradients(params, grads)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state
    return step


def loop_fn(tx, repeats: int, concat_grads: bool = False):
    """`repeats` updates in one program.

    The barrier keeps each iteration's update whole: without it XLA unrolls
    the loop, fuses consecutive updates into one pass over memory and hoists
    the (loop-invariant) gradient norm, which no training loop could do.
    """
    step = step_fn(tx, concat_grads)

    def body(_, carry):
        params, state, grads = jax.lax.optimization_barrier(carry)
        return (*step(params, state, grads), grads)

    def run(params, state, grads):
        params, state, _ = jax.lax.fori_loop(0, repeats, body, (params, state, grads))
        return params, state
    return run


def copy_side(num_params: int, loop: int) -> dict:
    """The floor: a donated copy of 4 float32 per parameter (the update's bytes)."""
    once = jax.jit(lambda x: x * 1.0001, donate_argnums=0)
    looped = jax.jit(lambda x: jax.lax.fori_loop(
        0, loop, lambda _, y: jax.lax.optimization_barrier(y) * 1.0001, x), donate_argnums=0)
    x = jnp.ones((4 * num_params,), jnp.float32)
    return {"call": once.lower(x).compile(), "looped": looped.lower(x).compile(), "carry": x,
            "timing": {}}


def hlo_op_count(compiled) -> int:
    text = compiled.as_text()
    entry = text[text.find("ENTRY"):]
    return sum(1 for line in entry.splitlines() if " = " in line)


def update_side(tx, params, grads, donate: bool, loop: int, concat: bool = False) -> dict:
    """An optimizer's compiled step and looped steps, its carry (params, state), compile time."""
    jitted = jax.jit(step_fn(tx, concat), donate_argnums=(0, 1) if donate else ())
    state = tx.init(params)
    t0 = time.perf_counter()
    lowered = jitted.lower(params, state, grads)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    looped = jax.jit(loop_fn(tx, loop, concat), donate_argnums=(0, 1)).lower(
        params, state, grads).compile()
    carry = (jax.tree.map(jnp.copy, params), tx.init(params))
    for _ in range(3):  # warm up
        carry = compiled(*carry, grads)
    return {"call": lambda c: compiled(*c, grads), "looped": lambda c: looped(*c, grads),
            "carry": carry, "timing": {"lower_s": t1 - t0, "compile_s": t2 - t1,
                                       "hlo_ops": hlo_op_count(compiled)}}


def time_alternating(sides: dict, reps: int, loop: int, num_params: int) -> dict:
    """Median time per call and per update in program of each side, sides alternating.

    The order rotates every round, so that each side follows every other one
    equally often: a side that frees thousands of buffers slows the next call.
    """
    times: dict = {name: ([], []) for name in sides}
    order = list(sides)
    for rep in range(reps):
        for name in order[rep % len(order):] + order[:rep % len(order)]:
            side = sides[name]
            for f, out, n in ((side["call"], times[name][0], 1),
                              (side["looped"], times[name][1], loop)):
                t = time.perf_counter()
                side["carry"] = jax.block_until_ready(f(side["carry"]))
                out.append((time.perf_counter() - t) / n)
    result = {}
    for name, (call_s, program_s) in times.items():
        call, program = float(np.median(call_s)), float(np.median(program_s))
        result[name] = {**sides[name]["timing"], "call_median_s": call, "program_median_s": program,
                        "call_bytes_per_s": BYTES_PER_PARAM * num_params / call,
                        "program_bytes_per_s": BYTES_PER_PARAM * num_params / program}
    return result


def measure_shape(num_arrays: int, num_params: int, donate: bool, reps: int, loop: int,
                  names: list[str], table: Any = None, random_sizes: bool = False) -> dict:
    """Compile each optimizer for one shape and time it, alternating with the copy floor."""
    tree = make_tree(num_arrays, num_params, random_sizes)
    tree_grads = jax.tree.map(lambda p: jnp.full_like(p, 0.01), tree)
    txs = {k: v for k, v in (table or optimizers()).items() if k in names}
    sides = {name: update_side(tx, *side_inputs(name, tree, tree_grads), donate, loop,
                               concat=name == "jaxsched_flat_concat")
             for name, tx in txs.items()}
    sides[FLOOR] = copy_side(num_params, loop)
    return {"arrays": num_arrays, "params": num_params, "donate": donate,
            "random_sizes": random_sizes, **time_alternating(sides, reps, loop, num_params)}


def measure_flat_scaling(array_counts: list[int], num_params: int, reps: int, loop: int) -> dict:
    """The flat update of one parameter count laid out from 1 to N arrays, alternating."""
    tx = optimizers()["jaxsched_flat"]
    sides = {}
    for a in array_counts:
        tree = make_tree(a, num_params)
        grads = jax.tree.map(lambda p: jnp.full_like(p, 0.01), tree)
        sides[a] = update_side(tx, *side_inputs("jaxsched_flat", tree, grads), True, loop)
    sides[FLOOR] = copy_side(num_params, loop)
    return {"params": num_params, "sides": time_alternating(sides, reps, loop, num_params)}


SHARDED_CODE = """
import json, sys, time
import jax, jax.numpy as jnp, numpy as np, optax, jaxsched as js
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
arrays, params, reps = (int(x) for x in sys.argv[1:4])
base, extra = divmod(params, arrays)
tree = {f"w{i:05d}": jnp.full((base + (1 if i < extra else 0),), 0.1, jnp.float32)
        for i in range(arrays)}
grads = jax.tree.map(lambda p: jnp.full_like(p, 0.01), tree)
mesh = Mesh(np.array(jax.devices()), ("data",))
data = NamedSharding(mesh, P("data"))
chain = lambda: js.chain(js.clip_by_global_norm(1.0),
                         js.adamw(js.cosine_decay(1e-3, 10_000), weight_decay=1e-4))
def state_bytes(state):
    per_device = {}
    for x in jax.tree.leaves(state):
        for s in x.addressable_shards:
            per_device[s.device] = per_device.get(s.device, 0) + s.data.nbytes
    total = sum(x.nbytes for x in jax.tree.leaves(state))
    return total, max(per_device.values())
def time_side(tx, p, g):
    step = jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(
        *tx.update(g, s, p)), donate_argnums=(0, 1))
    p = jax.tree.map(jnp.copy, p)  # donated below: keep the caller's arrays
    s = tx.init(p)
    total, per_device = state_bytes(s)
    t0 = time.perf_counter(); compiled = step.lower(p, s, g).compile(); compile_s = time.perf_counter() - t0
    for _ in range(3):
        p, s = compiled(p, s, g)
    times = []
    for _ in range(reps):
        t = time.perf_counter(); p, s = compiled(p, s, g); jax.block_until_ready((p, s))
        times.append(time.perf_counter() - t)
    return {"call_median_s": float(np.median(times)), "compile_s": compile_s,
            "state_bytes_total": total, "state_bytes_per_device": per_device}
out = {"fuse_one_device": time_side(js.fuse(chain(), bucket_size=64), tree, grads)}
# Data parallel: the model's parameters and gradients replicated on every device.
replicated = NamedSharding(mesh, P())
tree, grads = jax.device_put(tree, replicated), jax.device_put(grads, replicated)
out["fuse_sharded_8"] = time_side(js.fuse(chain(), bucket_size=64, sharding=data), tree, grads)
flat = jax.device_put(js.flat_params(tree, multiple_of=8), data)
_, pullback = jax.vjp(lambda f: f.unflatten(), flat)
out["flat_params_sharded_8"] = time_side(chain(), flat, jax.jit(lambda g: pullback(g)[0])(grads))
print("JSON" + json.dumps(out))
"""


def measure_sharded(num_arrays: int, num_params: int, reps: int) -> dict:
    """The sharded sides, in a subprocess with 8 CPU devices."""
    import subprocess
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SHARDED_CODE, str(num_arrays), str(num_params),
                           str(reps)], env=env, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        raise SystemExit(f"error: the sharded run failed:\n{proc.stderr[-3000:]}")
    line = [x for x in proc.stdout.splitlines() if x.startswith("JSON")][-1]
    return {"arrays": num_arrays, "params": num_params, **json.loads(line[4:])}


def ratios(m: dict, base: dict) -> str:
    """`m`'s time over `base`'s, per call / in program."""
    return (f"{m['call_median_s'] / base['call_median_s']:.2f} / "
            f"{m['program_median_s'] / base['program_median_s']:.2f}")


def of_floor(m: dict, floor: dict) -> str:
    """The floor's time as a percentage of `m`'s, per call / in program."""
    return (f"{100 * floor['call_median_s'] / m['call_median_s']:.0f}% / "
            f"{100 * floor['program_median_s'] / m['program_median_s']:.0f}%")


def flat_scaling_markdown(rows: list[dict]) -> str:
    """The flat update of one parameter count in 1..N arrays, against its 1-array time."""
    lines = [("| params | arrays | per call (ms) | in program (ms) | vs 1 array (call / program) "
              "| % of floor (call / program) |"), "|---|---|---|---|---|---|"]
    for r in rows:
        sides = r["sides"]
        one, floor = sides[min(k for k in sides if k != FLOOR)], sides[FLOOR]
        for a, m in sides.items():
            if a == FLOOR:
                continue
            lines.append(
                f"| {r['params']:,} | {a:,} | {m['call_median_s'] * 1e3:.3f} | "
                f"{m['program_median_s'] * 1e3:.3f} | {ratios(m, one)} | {of_floor(m, floor)} |")
    return "\n".join(lines)


def groups_markdown(rows: list[dict]) -> str:
    """The parameter-groups table: 3 groups against one, per call and in program."""
    lines = ["| arrays | params | one group (ms/call, in program) | 3 groups, one buffer "
             "(`share=True`) | ratio per call | ratio in program | 3 groups, a buffer each | "
             "ratio per call | ratio in program |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r['arrays']:,}", f"{r['params']:,}"]
        for side, suffix in (("one_group", None), ("three_groups", ""),
                             ("three_buffers", "_three_buffers")):
            cells.append(f"{r['median_s'][side] * 1e3:.3f}, "
                         f"{r['program_median_s'][side] * 1e3:.3f}")
            if suffix is not None:
                cells += [f"{r['ratio' + suffix]:.3f}x", f"{r['program_ratio' + suffix]:.3f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sharded_markdown(rows: list[dict]) -> str:
    lines = ["| params | arrays | side (8 CPU devices) | per call (ms) | compile (s) | "
             "state bytes total | state bytes per device | per device / total |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for name in ("fuse_one_device", "fuse_sharded_8", "flat_params_sharded_8"):
            m = r[name]
            lines.append(f"| {r['params']:,} | {r['arrays']:,} | {name} | "
                         f"{m['call_median_s'] * 1e3:.2f} | {m['compile_s']:.2f} | "
                         f"{m['state_bytes_total']:,} | {m['state_bytes_per_device']:,} | "
                         f"{m['state_bytes_per_device'] / m['state_bytes_total']:.4f} |")
    return "\n".join(lines)


def markdown(results: list[dict], names: list[str]) -> str:
    lines = [
        "| params | arrays | donated | optimizer | per call (ms) | in program (ms) | "
        "% of floor (call / program) | vs optax (call / program) | compile (s) | HLO ops |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        base = r.get("optax")
        for name in names:
            if name not in r:
                continue
            m = r[name]
            floor = r[FLOOR]  # the copy of the same bytes, timed in the same loop
            ratio = ratios(m, base) if base else "-"
            lines.append(
                f"| {r['params']:,} | {r['arrays']:,}{' (random sizes)' if r['random_sizes'] else ''} "
                f"| {'yes' if r['donate'] else 'no'} | {name} | "
                f"{m['call_median_s'] * 1e3:.2f} | {m['program_median_s'] * 1e3:.2f} | "
                f"{of_floor(m, floor)} | {ratio} | {m['compile_s']:.2f} | {m['hlo_ops']:,} |")
    return "\n".join(lines)


def parse_scaling(text: str) -> tuple[list[int], int]:
    """`1,100,1000x1000000` -> ([1, 100, 1000], 1000000); empty -> ([], 0)."""
    if not text:
        return [], 0
    counts, sep, params = text.partition("x")
    if not sep:
        raise SystemExit(f"error: --flat-scaling must be ARRAYS,...xPARAMS, got {text!r}")
    counts_list = parse_ints(counts, "--flat-scaling")
    n = parse_ints(params, "--flat-scaling")[0]
    if max(counts_list) > n:
        raise SystemExit(f"error: --flat-scaling has more arrays than parameters, got {text!r}")
    return counts_list, n


def parse_ints(text: str, flag: str) -> list[int]:
    try:
        values = [int(float(x)) for x in text.split(",") if x]
    except ValueError:
        raise SystemExit(f"error: {flag} must be a comma-separated list of integers, got {text!r}")
    if not values or min(values) < 1:
        raise SystemExit(f"error: {flag} must hold positive integers, got {text!r}")
    return values


def parse_shapes(text: str, flag: str) -> list[tuple[int, int]]:
    try:
        shapes = [tuple(int(float(v)) for v in x.split("x")) for x in text.split(",") if x]
    except ValueError:
        raise SystemExit(f"error: {flag} must be ARRAYSxPARAMS,..., got {text!r}")
    if any(len(s) != 2 or min(s) < 1 for s in shapes):
        raise SystemExit(f"error: {flag} must be ARRAYSxPARAMS,..., got {text!r}")
    return shapes  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arrays", default="1,10,100,1000,5000")
    parser.add_argument("--params", default="1000000,10000000")
    parser.add_argument("--donate", choices=["both", "yes", "no"], default="both")
    parser.add_argument("--reps", type=int, default=15, help="timed repetitions per optimizer")
    parser.add_argument("--loop", type=int, default=10, help="updates per in-program timing")
    parser.add_argument("--per-array-max-arrays", type=int, default=1000,
                        help="skip the per-array optimizers (optax, unfused jaxsched) above this "
                             "many arrays: they take minutes to compile (optax: 363 s at 5,000)")
    parser.add_argument("--max-arrays-10m", type=int, default=1000,
                        help="largest tree measured at 10M parameters")
    parser.add_argument("--sides", default=",".join(optimizers()),
                        help="comma-separated subset of the sides to run")
    parser.add_argument("--quick", action="store_true", help="a small table for tests")
    parser.add_argument("--extra", choices=["all", "none", "only"], default="all",
                        help="the per-array and sharded tables (not in --quick): run them "
                             "too, not at all, or only them")
    parser.add_argument("--per-array-shapes", default="1000x1000000",
                        help="ARRAYSxPARAMS,... for the per-array table")
    parser.add_argument("--sharded-shapes", default="1000x1000000,100x10000000",
                        help="ARRAYSxPARAMS,... for the sharded table")
    parser.add_argument("--groups-shapes", default="1000x1000000",
                        help="ARRAYSxPARAMS,... for the parameter-groups table")
    parser.add_argument("--groups-reps", type=int, default=200,
                        help="alternating calls per side in the parameter-groups table")
    parser.add_argument("--flat-scaling", default="1,100,1000,5000x1000000",
                        help="ARRAYS,...xPARAMS: the flat update of one parameter count laid "
                             "out as that many arrays, alternating (empty: skip)")
    parser.add_argument("--out", default="results/update", help="folder for update.json/.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.arrays, args.params, args.donate, args.reps, args.loop = "1,20", "20000", "yes", 3, 2
    arrays = parse_ints(args.arrays, "--arrays")
    sizes = parse_ints(args.params, "--params")
    if args.reps < 1 or args.loop < 1:
        raise SystemExit("error: --reps and --loop must be >= 1")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".write-test").write_text("")
        (out / ".write-test").unlink()
    except OSError as e:
        raise SystemExit(f"error: --out {str(out)!r} is not writable ({e.strerror})")
    donations = {"both": [False, True], "yes": [True], "no": [False]}[args.donate]
    names = [x for x in args.sides.split(",") if x]
    unknown = sorted(set(names) - set(optimizers()))
    if unknown or not names:
        raise SystemExit(f"error: --sides must name some of {', '.join(optimizers())}, "
                         f"got {args.sides!r}")
    scaling_counts, scaling_params = parse_scaling(args.flat_scaling)
    results: list = []
    flat_scaling: list = []
    per_array: list = []
    sharded: list = []
    groups: list = []
    extra = "none" if args.quick else args.extra
    if extra != "none":
        per_array_names = list(per_array_optimizers())
        if scaling_counts:
            flat_scaling.append(measure_flat_scaling(scaling_counts, scaling_params, args.reps,
                                                     args.loop))
            print("flat scaling:", json.dumps(flat_scaling[-1]), flush=True)
        for (a, n), random_sizes in itertools.product(
                parse_shapes(args.per_array_shapes, "--per-array-shapes"), (False, True)):
            r = measure_shape(a, n, True, args.reps, args.loop, per_array_names,
                              per_array_optimizers(), random_sizes)
            per_array.append(r)
            print("per array:", "random sizes" if random_sizes else "equal sizes", ", ".join(f"{k} {r[k]['call_median_s'] * 1e3:.2f}/"
                                          f"{r[k]['program_median_s'] * 1e3:.2f} ms"
                                          for k in per_array_names), flush=True)
        for a, n in parse_shapes(args.groups_shapes, "--groups-shapes"):
            groups.append(groups_benchmark.main(["--arrays", str(a), "--params", str(n),
                                                 "--reps", str(args.groups_reps)]))
        for a, n in parse_shapes(args.sharded_shapes, "--sharded-shapes"):
            sharded.append(measure_sharded(a, n, args.reps))
            print("sharded:", json.dumps(sharded[-1]), flush=True)
    try:
        for n in (sizes if extra != "only" else []):
            for a in arrays:
                if a > n or (n >= 10_000_000 and a > args.max_arrays_10m):
                    continue
                run = [k for k in names if k in MANY_ARRAY_SIDES or a <= args.per_array_max_arrays]
                for donate in donations:
                    r = measure_shape(a, n, donate, args.reps, args.loop, run)
                    results.append(r)
                    line = ", ".join(
                        f"{k} {r[k]['call_median_s'] * 1e3:.2f}/{r[k]['program_median_s'] * 1e3:.2f} ms "
                        f"(compile {r[k]['compile_s']:.2f} s)" for k in run)
                    print(f"{n:>10,} params {a:>5} arrays donate={donate!s:5}: {line}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: writing what was measured", file=sys.stderr)
    report = {
        "backend": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "versions": {"jax": jax.__version__, "optax": optax.__version__,
                     "jaxsched": js.__version__},
        "results": results,
        "flat_scaling": flat_scaling,
        "per_array": per_array,
        "sharded": sharded,
        "groups": groups,
    }
    (out / "update.json").write_text(json.dumps(report, indent=2))
    table = markdown(results, names)
    (out / "update.md").write_text(table + "\n")
    print(table)
    if per_array:
        t = markdown([{**r, "optax": r["optax_per_array"]} for r in per_array],
                     list(per_array_optimizers()))
        (out / "update_per_array.md").write_text(t + "\n")
        print(t)
    if flat_scaling:
        t = flat_scaling_markdown(flat_scaling)
        (out / "update_flat_scaling.md").write_text(t + "\n")
        print(t)
    if groups:
        t = groups_markdown(groups)
        (out / "update_groups.md").write_text(t + "\n")
        print(t)
    if sharded:
        t = sharded_markdown(sharded)
        (out / "update_sharded.md").write_text(t + "\n")
        print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
