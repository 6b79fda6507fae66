"""Cost of the training loop's companions on the LSTM (or an MLP): memory and step time.

Measures, in one process, sides alternating round by round (so machine load
hits every side alike):

* peak memory of the compiled train step (``compiled.memory_analysis()``:
  arguments + outputs + temporaries - aliased donations) for the plain step,
  ``js.accumulate(opt, every=K)``, ``optax.MultiSteps(opt, K)`` and the
  ``js.accumulated_grad`` scan step (K micro-batches in one call);
* time per micro-step of each, against the plain step on one micro-batch;
* the step time of ``js.skip_spikes(opt, on="both")``, ``opt + js.ema_params``
  and ``js.monitor(opt, update_ratio=True)`` against the plain step;
* XLA's count of the bytes each compiled step reads and writes (``MiB moved``,
  ``cost_analysis()["bytes accessed"]``), which does not depend on the load.

``opt`` is ``js.chain(js.clip_by_global_norm(5.0), js.adamw(cosine))``, as the
LSTM benchmark's default. The model is ``benchmarks.lstm_model.CharLSTM``
(``--model lstm``, default) or a small MLP (``--model mlp``).

    PYTHONPATH=. python benchmarks/companions.py --k 4 --rounds 7 --out companions.json

Sides run in the same order each round, reversed every other round. Besides
wall time it reports process CPU time per micro-step (all threads): on a
shared machine the wall-clock ratios move with the load, the CPU-time ratio
much less. Run it on a quiet machine for the figures of issue 17 (at most 5%
over the plain step for skip_spikes and ema_params; accumulate's peak memory
at most MultiSteps' and its time per micro-step within 5% of the plain step).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import jaxsched as js  # noqa: E402


def build_model(args):
    """(init params, loss_fn(params, batch), batch maker(rng, n_micro))."""
    rng = np.random.default_rng(args.seed)
    if args.model == "lstm":
        from benchmarks.lstm_model import CharLSTM, cross_entropy
        model = CharLSTM(args.vocab, args.embed, args.hidden, args.layers, cell="fast")
        tokens = jnp.zeros((args.batch, args.seq_len + 1), jnp.int32)
        params = model.init(jax.random.PRNGKey(args.seed), tokens[:, :-1])["params"]

        def loss_fn(p, batch):
            logits = model.apply({"params": p}, batch[:, :-1])
            return cross_entropy(logits, batch[:, 1:])

        def batches(n):
            return jnp.asarray(rng.integers(0, args.vocab, (n, args.batch, args.seq_len + 1)),
                               jnp.int32)
        return params, loss_fn, batches

    sizes = [args.hidden * 2] + [args.hidden] * args.layers + [1]
    keys = jax.random.split(jax.random.PRNGKey(args.seed), len(sizes))
    params = [{"w": jax.random.normal(k, (a, b)) / np.sqrt(a), "b": jnp.zeros(b)}
              for k, a, b in zip(keys, sizes[:-1], sizes[1:])]

    def loss_fn(p, batch):
        x, y = batch
        for layer in p[:-1]:
            x = jnp.tanh(x @ layer["w"] + layer["b"])
        return jnp.mean((x @ p[-1]["w"] + p[-1]["b"] - y) ** 2)

    def batches(n):
        return (jnp.asarray(rng.standard_normal((n, args.batch, sizes[0])), jnp.float32),
                jnp.asarray(rng.standard_normal((n, args.batch, 1)), jnp.float32))
    return params, loss_fn, batches


def micro(batch, i):
    return jax.tree.map(lambda x: x[i], batch)


def chunk(batch, i, n):
    return jax.tree.map(lambda x: x[i:i + n], batch)


def make_sides(args, loss_fn):
    base = lambda: js.chain(js.clip_by_global_norm(5.0),  # noqa: E731
                            js.adamw(js.cosine_decay(1e-3, 10_000)))
    k = args.k

    def opt_step(opt):
        def step(params, state, batch):
            loss, grads = jax.value_and_grad(loss_fn)(params, batch)
            updates, state = opt.update(grads, state, params, value=loss)
            return optax.apply_updates(params, updates), state, loss
        return opt, step

    def scan_step():
        opt = base()

        def step(params, state, batches):
            loss, grads = js.accumulated_grad(loss_fn, params, batches)
            updates, state = opt.update(grads, state, params)
            return optax.apply_updates(params, updates), state, loss
        return opt, step

    return {
        "plain": opt_step(base()) + (1,),
        "accumulate": opt_step(js.accumulate(base(), every=k)) + (1,),
        "multisteps": opt_step(optax.MultiSteps(base(), every_k_schedule=k)) + (1,),
        "accumulated_grad_scan": scan_step() + (k,),
        "skip_spikes": opt_step(js.skip_spikes(base(), on="both")) + (1,),
        "ema_params": opt_step(js.chain(base(), js.ema_params(0.999))) + (1,),
        "monitor_ratio": opt_step(js.monitor(base(), update_ratio=True)) + (1,),
    }


def peak_bytes(mem) -> dict:
    out = {f: int(getattr(mem, f)) for f in ("argument_size_in_bytes", "output_size_in_bytes",
                                             "temp_size_in_bytes", "alias_size_in_bytes")
           if hasattr(mem, f)}
    out["peak_bytes"] = (out["argument_size_in_bytes"] + out["output_size_in_bytes"]
                         + out["temp_size_in_bytes"] - out.get("alias_size_in_bytes", 0))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("lstm", "mlp"), default="lstm")
    p.add_argument("--k", type=int, default=4, help="micro-batches per optimizer update")
    p.add_argument("--batch", type=int, default=16, help="micro-batch size")
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=8, help="micro-steps per side per round "
                   "(a multiple of --k)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--only", default=None, help="comma-separated sides to run (plain is "
                   "always included)")
    args = p.parse_args(argv)
    if args.steps % args.k:
        p.error("--steps must be a multiple of --k")

    params0, loss_fn, batches = build_model(args)
    sides = make_sides(args, loss_fn)
    if args.only:
        keep = {"plain", *args.only.split(",")}
        sides = {k: v for k, v in sides.items() if k in keep}
    data = batches(args.steps)
    runs, memory, times = {}, {}, {name: [] for name in sides}
    cpu = {name: [] for name in sides}  # process CPU time: the work done, steadier under load
    load_start = os.getloadavg()
    for name, (opt, step, per_call) in sides.items():
        jitted = jax.jit(step, donate_argnums=(0, 1))
        params = jax.tree.map(jnp.array, params0)
        state = opt.init(params)
        example = chunk(data, 0, per_call) if per_call > 1 else micro(data, 0)
        compiled = jitted.lower(params, state, example).compile()
        memory[name] = peak_bytes(compiled.memory_analysis())
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        # XLA's count of the bytes the step reads and writes: a load-independent figure
        memory[name]["bytes_accessed_xla"] = float((cost or {}).get("bytes accessed", "nan"))
        runs[name] = [compiled, params, state, per_call]
        # one warm call each (allocations, first-touch)
        params, state, loss = compiled(params, state, example)
        jax.block_until_ready(loss)
        runs[name][1:3] = [params, state]

    for r in range(args.rounds):
        order = list(runs.items())
        for name, run in (order if r % 2 == 0 else order[::-1]):  # alternate, flip each round
            compiled, params, state, per_call = run
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(0, args.steps, per_call):
                batch = chunk(data, i, per_call) if per_call > 1 else micro(data, i)
                params, state, loss = compiled(params, state, batch)
            jax.block_until_ready((params, state, loss))
            times[name].append((time.perf_counter() - t0) / args.steps)  # per micro-batch
            cpu[name].append((time.process_time() - c0) / args.steps)
            run[1:3] = [params, state]

    plain_t = statistics.median(times["plain"])
    plain_min = min(times["plain"])
    plain_cpu = statistics.median(cpu["plain"])
    result = {"config": vars(args), "devices": str(jax.devices()), "jax": jax.__version__,
              "load_average_start": load_start, "load_average": os.getloadavg(),
              "memory": memory, "seconds_per_micro_step": {},
              "ratio_to_plain": {}, "min_ratio_to_plain": {}, "cpu_ratio_to_plain": {},
              "memory_ratio_to_multisteps": {}}
    for name in runs:
        med = statistics.median(times[name])
        result["seconds_per_micro_step"][name] = {"median": med, "min": min(times[name]),
                                                  "all": times[name],
                                                  "cpu_median": statistics.median(cpu[name])}
        result["ratio_to_plain"][name] = med / plain_t
        result["min_ratio_to_plain"][name] = min(times[name]) / plain_min
        result["cpu_ratio_to_plain"][name] = statistics.median(cpu[name]) / plain_cpu
    if "multisteps" in memory:
        ms = memory["multisteps"]["peak_bytes"]
        for name in ("plain", "accumulate", "multisteps", "accumulated_grad_scan"):
            if name in memory:
                result["memory_ratio_to_multisteps"][name] = memory[name]["peak_bytes"] / ms

    print(f"{args.model}: k={args.k}, micro-batch {args.batch}, params "
          f"{sum(x.size for x in jax.tree.leaves(params0)):,}, load average "
          f"{load_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"{'side':24s} {'peak MiB':>9s} {'temp MiB':>9s} {'MiB moved':>10s} "
          f"{'ms/micro-step':>14s} {'vs plain':>9s}"
          f" {'min ms':>8s} {'vs plain':>9s} {'CPU vs plain':>13s}")
    for name in runs:
        m = memory[name]
        print(f"{name:24s} {m['peak_bytes'] / 2**20:9.2f} {m['temp_size_in_bytes'] / 2**20:9.2f} "
              f"{m['bytes_accessed_xla'] / 2**20:10.1f} "
              f"{1e3 * result['seconds_per_micro_step'][name]['median']:14.3f} "
              f"{result['ratio_to_plain'][name]:9.3f} "
              f"{1e3 * result['seconds_per_micro_step'][name]['min']:8.3f} "
              f"{result['min_ratio_to_plain'][name]:9.3f} "
              f"{result['cpu_ratio_to_plain'][name]:13.3f}")
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
