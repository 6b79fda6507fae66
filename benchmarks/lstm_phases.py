"""Where the train step's time goes: the step measured phase by phase.

:func:`jax_phases` compiles each phase of the fast cell's train step on its
own (the same functions the step calls: :func:`benchmarks.lstm_model.input_projection`,
``forward_scan``, ``backward_scan``, ``weight_gradients``), feeds it the
outputs of the phases before it, and times it; :func:`torch_phases` runs
PyTorch's step under :mod:`torch.profiler` and groups its operators into the
same phases.  Each phase reports its median time, its share of the sum, its
matmul FLOPs (analytic) and the FLOP/s it achieved.

Separately compiled phases lose the fusions XLA makes across phase
boundaries and pay a dispatch each, so their sum differs from the whole
step's time; both are reported (``sum_s`` and ``step_s``).
"""

from __future__ import annotations

import time

import numpy as np

#: Phase names in the order the step runs them; ``{k}`` is the layer index.
PHASE_ORDER = ("embedding", "layer {k} input matmul", "layer {k} forward scan",
               "head and loss (forward and backward)", "layer {k} backward scan",
               "layer {k} weight-gradient matmuls", "embedding backward",
               "optimizer update")


def _median_time(fn, args, repeats: int) -> tuple[float, float]:
    """Median wall time and median process CPU time (all threads) of ``fn(*args)``.

    The CPU time counts the work the process did whatever else runs on the
    machine, so it compares phases and variants more stably on a loaded machine.
    """
    import jax
    jax.block_until_ready(fn(*args))  # compile and warm up
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu))


def _summarize(phases: list, step_s: float | None, method: str) -> dict:
    total = sum(p["time_s"] for p in phases)
    for p in phases:
        p["share"] = p["time_s"] / total if total > 0 else 0.0
        flops = p.get("flops")
        p["achieved_flops_per_s"] = flops / p["time_s"] if flops and p["time_s"] > 0 else None
    return {"method": method, "phases": phases, "sum_s": total, "step_s": step_s}


def jax_phases(s, main, probe) -> dict:
    """The fast cell's train step phase by phase, each phase compiled on its own.

    Args:
      s: the run's :class:`benchmarks.lstm_modes.Setup`.
      main: the main runner (its step time is reported next to the sum).
      probe: one ``(inputs, targets)`` batch.
    Returns:
      ``{"method", "phases": [{"name", "time_s", "cpu_time_s", "share", "flops",
      "achieved_flops_per_s"}], "sum_s", "step_s"}``.
    """
    args = s.args
    if args.cell != "fast":
        return {"method": "separately compiled phases", "phases": [], "sum_s": 0.0,
                "step_s": None, "note": "the phase breakdown needs --cell fast"}
    import jax
    import jax.numpy as jnp
    import optax

    from benchmarks import lstm_model as m
    from benchmarks.lstm_optim import build_optimizer, build_schedule, update_value

    params = jax.device_put(s.init_params)
    p = params["params"]
    inputs, targets = (jnp.asarray(a) for a in probe)
    tb, hid, vocab = args.batch * args.seq_len, args.hidden, s.corpus.vocab_size
    unroll, repeats = args.unroll, args.phase_repeats
    phases = []

    def measure(name, fn, *fargs, flops=None):
        jitted = jax.jit(fn)
        wall, cpu = _median_time(jitted, fargs, repeats)
        phases.append({"name": name, "time_s": wall, "cpu_time_s": cpu, "flops": flops})
        return jitted(*fargs)

    def embed(table, tokens):
        return table[tokens].transpose(1, 0, 2)

    x = measure("embedding", embed, p["embed"]["embedding"], inputs)
    h0 = jnp.zeros((args.batch, hid), jnp.float32)
    saved = []
    for k in range(args.layers):
        w_i, w_h, b = m.fused_weights(p[f"lstm_{k}"]["cell"])
        d = x.shape[-1]
        xp = measure(f"layer {k} input matmul", m.input_projection, w_i, b, x,
                     flops=2.0 * tb * d * 4 * hid)
        hs, c_prev, acts, c_last = measure(f"layer {k} forward scan",
                               lambda w, xp: m.forward_scan(w, xp, h0, h0, unroll), w_h, xp,
                               flops=2.0 * tb * hid * 4 * hid)
        saved.append((w_i, w_h, x, hs, c_prev, acts, c_last))
        x = hs

    def head_loss(head, hs, targets):
        def loss(head, hs):
            logits = hs.transpose(1, 0, 2) @ head["kernel"] + head["bias"]
            return m.cross_entropy(logits, targets)
        return jax.value_and_grad(loss, argnums=(0, 1))(head, hs)

    _, (_, dhs) = measure("head and loss (forward and backward)", head_loss, p["head"], x,
                          targets, flops=3 * 2.0 * tb * hid * vocab)
    for k in reversed(range(args.layers)):
        w_i, w_h, xs, hs, c_prev, acts, c_last = saved[k]
        dzs, _, _ = measure(f"layer {k} backward scan",
                            lambda w, c, cp, acts, dhs: m.backward_scan(w, c, cp, acts, dhs,
                                                                        unroll),
                            w_h, c_last, c_prev, acts, dhs, flops=2.0 * tb * 4 * hid * hid)
        d = xs.shape[-1]
        *_, dhs = measure(f"layer {k} weight-gradient matmuls",
                          lambda w_i, xs, hs, dzs: m.weight_gradients(w_i, xs, h0, hs, dzs),
                          w_i, xs, hs, dzs, flops=2.0 * tb * 4 * hid * (2 * d + hid))

    def embed_backward(table, tokens, dx):
        return jnp.zeros_like(table).at[tokens].add(dx.transpose(1, 0, 2))

    measure("embedding backward", embed_backward, p["embed"]["embedding"], inputs, dhs)

    schedule = build_schedule(s.js, args.schedule, args.lr, args.steps, args.warmup_steps)
    tx = build_optimizer(args, schedule, "jaxsched")
    opt_state = tx.init(params)
    grads = jax.tree_util.tree_map(lambda a: 1e-3 * jnp.ones_like(a), params)

    value = update_value(args, jnp.float32(2.0), jnp.float32(2.0))  # --skip-spikes, --plateau
    extra = {} if value is None else {"value": value}

    def update(params, opt_state, grads):
        updates, opt_state = tx.update(grads, opt_state, params, **extra)
        return optax.apply_updates(params, updates), opt_state

    measure("optimizer update", update, params, opt_state, grads)
    step = main.curve.time_s[args.timing_warmup:] or main.curve.time_s
    return _summarize(phases, float(np.median(step)) if step else None,
                      "separately compiled phases (jax.jit of each), median of "
                      f"{repeats} calls")


#: PyTorch profiler events grouped into phases (first match wins).
_TORCH_GROUPS = (
    ("embedding backward", ("EmbeddingBackward",)),
    ("LSTM backward (all layers)", ("RnnLayerBackward", "LstmBackward", "RnnBackward",
                                    "CudnnRnnBackward")),
    ("head and loss backward", ("AddmmBackward", "MmBackward", "LogSoftmaxBackward",
                                "NllLossBackward", "ViewBackward", "ReshapeAliasBackward",
                                "UnsafeViewBackward", "TBackward", "TransposeBackward")),
)


def torch_phases(s, runner, probe, steps: int = 5) -> dict:
    """PyTorch's train step phase by phase from :mod:`torch.profiler` (``steps`` steps).

    Forward phases are marked with ``record_function``; the backward is split by
    the autograd nodes the profiler records (``autograd::engine::evaluate_function:
    <Node>``), grouped into the LSTM's backward, the head's and the embedding's.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from benchmarks.lstm_model import train_flops_per_step

    tr = runner.trainer
    model = tr.model
    x = torch.from_numpy(np.ascontiguousarray(probe[0], dtype=np.int64))
    y = torch.from_numpy(np.ascontiguousarray(probe[1], dtype=np.int64))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    opt_state = tr.optimizer.state_dict()

    def one_step():
        tr.optimizer.zero_grad(set_to_none=True)
        with record_function("phase: embedding"):
            e = model.embed(x)
        with record_function("phase: LSTM forward (all layers)"):
            out, _ = model.lstm(e)
        with record_function("phase: head and loss forward"):
            loss = torch.nn.functional.cross_entropy(model.head(out).reshape(-1, tr.vocab),
                                                     y.reshape(-1))
        with record_function("phase: backward"):
            loss.backward()
        with record_function("phase: optimizer update"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), tr.clip_norm)
            tr.optimizer.step()

    one_step()  # warm up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            one_step()
    # Leave the runner as it was.
    model.load_state_dict(state)
    tr.optimizer.load_state_dict(opt_state)

    totals = {}
    for ev in prof.key_averages():
        totals[ev.key] = ev.cpu_time_total * 1e-6 / steps  # microseconds per `steps`
    phases = []
    for key, value in totals.items():
        if key.startswith("phase: ") and key != "phase: backward":
            phases.append({"name": key[len("phase: "):], "time_s": value})
    grouped = {name: 0.0 for name, _ in _TORCH_GROUPS}
    backward_total = totals.get("phase: backward", 0.0)
    for key, value in totals.items():
        if not key.startswith("autograd::engine::evaluate_function:"):
            continue
        node = key.split(":", 4)[-1].strip()
        for name, patterns in _TORCH_GROUPS:
            if any(pt in node for pt in patterns):
                grouped[name] += value
                break
    for name, value in grouped.items():
        phases.append({"name": name, "time_s": value})
    rest = backward_total - sum(grouped.values())
    phases.append({"name": "backward, other (autograd engine, accumulation)",
                   "time_s": max(rest, 0.0)})
    args = s.args
    tb, hid, vocab = args.batch * args.seq_len, args.hidden, s.corpus.vocab_size
    lstm_fwd = train_flops_per_step(args.batch, args.seq_len, vocab, args.embed, hid,
                                    args.layers) / 3 - 2.0 * tb * hid * vocab
    flops = {"LSTM forward (all layers)": lstm_fwd, "LSTM backward (all layers)": 2 * lstm_fwd,
             "head and loss forward": 2.0 * tb * hid * vocab,
             "head and loss backward": 2 * 2.0 * tb * hid * vocab}
    order = ["embedding", "LSTM forward (all layers)", "head and loss forward",
             "head and loss backward", "LSTM backward (all layers)", "embedding backward",
             "backward, other (autograd engine, accumulation)", "optimizer update"]
    phases.sort(key=lambda p: order.index(p["name"]) if p["name"] in order else len(order))
    for p in phases:
        p["flops"] = flops.get(p["name"])
    step = runner.curve.time_s[args.timing_warmup:] or runner.curve.time_s
    return _summarize(phases, float(np.median(step)) if step else None,
                      f"torch.profiler over {steps} steps (CPU time of each phase's "
                      "top-level operators, per step)")
