"""Time the update of a model in 3 parameter groups against the same model in one group.

The model has `--arrays` float32 arrays (half of them biases) holding
`--params` parameters, kept as `js.flat_params`. The update is
`clip_by_global_norm(1.0)` then `adamw(cosine schedule, weight_decay=1e-4)`,
applied to the parameters, in one jitted call with the parameters and state
donated:

- `one_group`: no groups; the parameters are one buffer.
- `three_groups`: `groups={"no_decay": biases, weight_decay=0; "head": the
  last 10% of the arrays, their own learning-rate schedule}` and the default
  group; `flat_params(tree, group=js.group_labels(groups), share=True)`
  puts the three groups in one buffer, updated in one pass.
- `three_buffers`: the same groups, `flat_params(tree,
  group=js.group_labels(groups))`: one buffer per group, each group's update
  one array's.

The sides alternate call by call in a rotating order, so machine noise hits
all alike. Reported:
the median time of one jitted call (what a training loop pays, with JAX's
cost of passing every state array in and out: the grouped state has a
count and the hyperparameters used for each group) and of one update inside
a compiled loop of 10 (what XLA itself spends), and the ratio of each
3-group side to one_group (`ratio`: three_groups, `ratio_three_buffers`).

Usage:
    python benchmarks/groups.py                       # 1,000 arrays, 1M parameters
    python benchmarks/groups.py --arrays 1000 --params 4000000 --reps 200 --out results/groups
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxsched as js


def make_tree(num_arrays: int, num_params: int) -> dict:
    """`num_arrays` vectors: layer i has a weight and a bias; the last 10% of layers are the head."""
    layers = num_arrays // 2
    size = num_params // num_arrays
    head_from = layers - max(1, layers // 10)
    tree: dict = {"body": {}, "head": {}}
    for i in range(layers):
        tree["head" if i >= head_from else "body"][f"{i:05d}"] = {
            "w": jnp.full((size,), 0.1, jnp.float32), "bias": jnp.full((size,), 0.01, jnp.float32)}
    return tree


GROUPS = {"no_decay": js.group(r"bias$", weight_decay=0.0),
          "head": js.group(r"^head/", learning_rate=js.cosine_decay(3e-3, 10_000))}


def optimizer(groups: dict | None) -> optax.GradientTransformation:
    return js.chain(js.clip_by_global_norm(1.0),
                    js.adamw(js.cosine_decay(1e-3, 10_000), weight_decay=1e-4, groups=groups))


def flat_gradients(flat: js.FlatParams, grads: dict) -> js.FlatParams:
    """The gradients as `jax.grad` through `flat.unflatten()` gives them."""
    return jax.vjp(lambda f: f.unflatten(), flat)[1](grads)[0]


def side(tree: dict, groups: dict | None, share: bool = False):
    params = js.flat_params(tree, group=None if groups is None else js.group_labels(groups),
                            share=share)
    grads = jax.jit(flat_gradients)(params, jax.tree.map(lambda p: jnp.full_like(p, 0.01), tree))
    tx = optimizer(groups)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def looped(params, state, grads):
        # LOOP updates in one program; the barrier keeps XLA from fusing or
        # hoisting across iterations (as benchmarks/update.py does).
        def body(_, carry):
            p, s, g = jax.lax.optimization_barrier(carry)
            return (*step_fn(p, s, g), g)
        params, state, _ = jax.lax.fori_loop(0, LOOP, body, (params, state, grads))
        return params, state

    def step_fn(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    state = tx.init(params)
    t = time.perf_counter()
    compiled = step.lower(params, state, grads).compile()
    compile_s = time.perf_counter() - t
    program = looped.lower(params, state, grads).compile()
    return compiled, params, state, grads, compile_s, program


LOOP = 10


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrays", type=int, default=1000)
    parser.add_argument("--params", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.arrays < 2 or args.params < args.arrays or args.reps < 1:
        parser.error("--arrays must be >= 2, --params >= --arrays and --reps >= 1")

    tree = make_tree(args.arrays, args.params)
    sides = {"one_group": side(tree, None), "three_groups": side(tree, GROUPS, share=True),
             "three_buffers": side(tree, GROUPS)}
    times: dict[str, list[float]] = {name: [] for name in sides}
    program: dict[str, list[float]] = {name: [] for name in sides}
    live = {name: (s[1], s[2]) for name, s in sides.items()}
    for rep in range(args.reps + 10):  # 10 warm-up calls each
        names = list(sides)  # each side takes each place in the rotation equally often
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            compiled, _, _, grads, _, _ = sides[name]
            p, s = live[name]
            t = time.perf_counter()
            p, s = compiled(p, s, grads)
            jax.block_until_ready((p, s))
            if rep >= 10:
                times[name].append(time.perf_counter() - t)
            t = time.perf_counter()
            p, s = sides[name][5](p, s, grads)
            jax.block_until_ready((p, s))
            if rep >= 10:
                program[name].append((time.perf_counter() - t) / LOOP)
            live[name] = (p, s)
    report = {
        "arrays": args.arrays, "params": args.params, "reps": args.reps,
        "buffers": {name: len(jax.tree.leaves(s[1])) for name, s in sides.items()},
        "median_s": {name: float(np.median(v)) for name, v in times.items()},
        "program_median_s": {name: float(np.median(v)) for name, v in program.items()},
        "compile_s": {name: s[4] for name, s in sides.items()},
        "load_average": os.getloadavg(), "cpus": os.cpu_count(),
        "machine": platform.platform(), "jax": jax.__version__,
    }
    for name in ("three_groups", "three_buffers"):
        suffix = "" if name == "three_groups" else "_" + name
        report["ratio" + suffix] = report["median_s"][name] / report["median_s"]["one_group"]
        report["program_ratio" + suffix] = (report["program_median_s"][name]
                                            / report["program_median_s"]["one_group"])
    print(f"{args.arrays} arrays, {args.params} float32 parameters, flat, donated, "
          f"{args.reps} alternating calls each")
    for name in sides:
        print(f"  {name:13s} {report['buffers'][name]} buffer(s)  "
              f"{1e3 * report['median_s'][name]:8.3f} ms/call  "
              f"{1e3 * report['program_median_s'][name]:8.3f} ms/update in program  "
              f"(compile {report['compile_s'][name]:.2f} s)")
    print(f"  ratio three_buffers / one_group: {report['ratio_three_buffers']:.3f}x per call, "
          f"{report['program_ratio_three_buffers']:.3f}x in program")
    print(f"  ratio three_groups / one_group: {report['ratio']:.3f}x per call, "
          f"{report['program_ratio']:.3f}x in program   "
          f"load average {report['load_average'][0]:.2f} on {report['cpus']} CPUs")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "groups.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
