"""The runners of the LSTM benchmark: one per side of a comparison, one training loop.

:class:`JaxRunner` trains the flax model with one jitted, donated train step
(jaxsched's optimizer, or optax's for ``--compare optax``), :class:`TorchRunner`
the PyTorch model; :func:`train` drives any number of them on the same
batches, alternating blocks of steps, with a :class:`Progress` display.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np

from benchmarks.lstm_optim import log_floats, recorded_values, update_value
from benchmarks.xla_report import compile_report


class Progress:
    """Training progress on stderr: a bar on a terminal, else one line per evaluation.

    A log file (stderr not a terminal) gets one line per evaluation point,
    never carriage-return updates; ``enabled=False`` prints nothing.
    """

    def __init__(self, total: int, label: str, tokens_per_step: int, enabled: bool = True,
                 stream=None):
        self.total, self.label, self.tokens = total, label, tokens_per_step
        self.stream = stream if stream is not None else sys.stderr
        tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.lines = enabled and not tty
        self.bar = None
        if tty:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=label, dynamic_ncols=True, leave=True,
                            file=self.stream)

    def _rate(self, c) -> float:
        return self.tokens / float(np.median(c.time_s[-20:]))

    def step(self, c) -> None:
        """One step of the main side was recorded in curve ``c``."""
        if self.bar is None:
            return
        self.bar.update(1)
        if len(c.time_s) % 5 == 0 or len(c.time_s) == self.total:
            self.bar.set_postfix(loss=f"{c.loss[-1]:.3f}", lr=f"{c.lr[-1]:.2e}",
                                 tok_s=f"{self._rate(c):,.0f}", refresh=False)

    def evaluation(self, step: int, c) -> None:
        """An evaluation at ``step`` was recorded in curve ``c``: one line when logging."""
        if not self.lines or not c.time_s:
            return
        ema = f" (EMA {c.eval_loss_ema[-1]:.4f})" if c.eval_loss_ema else ""
        print(f"{self.label}: step {step}/{self.total} loss {c.loss[-1]:.4f} "
              f"lr {c.lr[-1]:.3e} validation {c.eval_loss[-1]:.4f}{ema} "
              f"{self._rate(c):,.0f} tokens/s", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclasses.dataclass
class Curve:
    """What a side measured: per-step loss/lr/time, eval points.

    A step is one optimizer update (``--accumulate K``: K micro-batches, its
    loss their mean, its time all K calls). At each evaluation,
    ``eval_loss_ema`` holds the validation loss of ``js.averaged_params``
    (``--ema``) and ``eval_logs`` the update's ``js.log_values`` as floats.
    """

    steps: list = dataclasses.field(default_factory=list)
    loss: list = dataclasses.field(default_factory=list)
    lr: list = dataclasses.field(default_factory=list)
    time_s: list = dataclasses.field(default_factory=list)
    eval_steps: list = dataclasses.field(default_factory=list)
    eval_loss: list = dataclasses.field(default_factory=list)
    eval_time_s: list = dataclasses.field(default_factory=list)
    eval_loss_ema: list = dataclasses.field(default_factory=list)
    eval_logs: list = dataclasses.field(default_factory=list)

    def record(self, step, loss, lr, seconds):
        self.steps.append(step)
        self.loss.append(loss)
        self.lr.append(lr)
        self.time_s.append(seconds)


class JaxRunner:
    """A flax model trained by one jitted, donated train step on a device mesh.

    ``micro`` is how many micro-batches one step of the run feeds it, each one
    call of the same compiled step (``--accumulate K``: K for jaxsched's
    ``js.accumulate`` and optax's ``MultiSteps``, 1 for ``--compare plain``,
    which takes the first). ``companions``: the optimizer carries the
    ``--skip-spikes``/``--ema`` flags (the update gets ``value=`` and the
    average is evaluated).
    """

    def __init__(self, name, args, vocab_size, cell, schedule, tx, init_params, mesh,
                 counter, js=None, flat_params=False, micro=1, companions=False):
        import jax
        import jax.numpy as jnp
        from jax.sharding import NamedSharding, PartitionSpec as P

        from benchmarks.lstm_model import CharLSTM, cross_entropy

        self.name, self.args, self.cell, self.counter = name, args, cell, counter
        self.jax, self.js = jax, js
        self.model = CharLSTM(vocab_size, args.embed, args.hidden, args.layers, args.dropout,
                              cell=cell, unroll=args.unroll)
        self.curve = Curve()
        self.data_sharding = NamedSharding(mesh, P("data"))
        self.replicated = NamedSharding(mesh, P())
        model = self.model
        dropout_key = jax.random.PRNGKey(args.seed + 1)
        flat = flat_params and getattr(args, "flat_params", False)
        self.micro, self.calls = micro, 0
        self.stacked = getattr(args, "accumulate", 1) > 1  # steps arrive as [K, ...] batches
        self.ema = companions and getattr(args, "ema", None) is not None

        def tree(p):
            return p.unflatten() if flat else p

        def train_step(params, opt_state, inputs, targets, step, last_eval_loss):
            rng = jax.random.fold_in(dropout_key, step)

            def loss_fn(p):
                logits = model.apply(tree(p), inputs, train=True, rngs={"dropout": rng})
                return cross_entropy(logits, targets)

            loss, grads = jax.value_and_grad(loss_fn)(params)
            value = update_value(args, loss, last_eval_loss, companions)
            extra = {} if value is None else {"value": value}
            updates, opt_state = tx.update(grads, opt_state, params, **extra)
            params = jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
            # jaxsched's side reports the learning rate its update used (read from
            # the state); optax's the schedule's value at this step.
            lr = recorded_values(js, opt_state)["learning_rate"] if js is not None else None
            if lr is None:  # `step` counts calls; the schedule counts optimizer updates
                lr = schedule(step // micro)
            metrics = {"loss": loss, "lr": jnp.asarray(lr, jnp.float32)}
            return params, opt_state, metrics

        def eval_step(params, inputs, targets):
            return cross_entropy(model.apply(tree(params), inputs, train=False), targets)

        self.fun_name = f"train_step_{name.replace('-', '_')}"
        train_step.__name__ = train_step.__qualname__ = self.fun_name
        self.eval_name = f"eval_step_{name.replace('-', '_')}"
        eval_step.__name__ = eval_step.__qualname__ = self.eval_name
        rep, dat = self.replicated, self.data_sharding
        # Every side gets its own copy of the same initial weights.
        self.params = jax.tree_util.tree_map(jnp.array, init_params)
        devices = mesh.devices.size
        if flat:  # buffers padded to a multiple of the device count, so they can be split
            self.params = js.flat_params(self.params, multiple_of=devices)
        self.params = jax.device_put(self.params, rep)
        state = tx.init(self.params)
        # --shard-state (ZeRO stage 1): every buffer-sized state array is split
        # along the data axis, each device updating its slice; parameters stay
        # replicated (XLA all-gathers the updated slices).
        shard = flat and devices > 1 and getattr(args, "shard_state", False)
        buffer_sizes = {x.shape[0] for x in jax.tree_util.tree_leaves(self.params)}
        self.state_sharding = jax.tree_util.tree_map(
            lambda x: dat if shard and x.ndim == 1 and x.shape[0] in buffer_sizes else rep, state)
        self.train_step = jax.jit(train_step, donate_argnums=(0, 1),
                                  in_shardings=(rep, self.state_sharding, dat, dat, rep, rep),
                                  out_shardings=(rep, self.state_sharding, rep))
        self.eval_step = jax.jit(eval_step, in_shardings=(rep, dat, dat), out_shardings=rep)
        self.opt_state = jax.device_put(state, self.state_sharding)
        self.last_eval = np.float32(10.0)
        self.report = None

    def place(self, inputs, targets):
        """Put a global batch on the mesh (each process keeps its rows)."""
        jax = self.jax
        n, k = jax.process_count(), jax.process_index()
        rows = inputs.shape[0] // n
        sl = slice(k * rows, (k + 1) * rows)
        return tuple(jax.make_array_from_process_local_data(self.data_sharding, a[sl], a.shape)
                     for a in (inputs, targets))

    def example_args(self, inputs, targets):
        x, y = self.place(inputs, targets)
        return (self.params, self.opt_state, x, y, np.int32(0), np.float32(0.0))

    def compile(self, inputs, targets):
        _, self.report = compile_report(self.train_step, self.example_args(inputs, targets))
        leaves = self.jax.tree_util.tree_leaves(self.opt_state)
        self.report["optimizer_state_bytes"] = {
            "total": int(sum(x.nbytes for x in leaves)),
            "per_device": int(sum(x.addressable_shards[0].data.nbytes for x in leaves))}
        return self.report

    def step(self, index, inputs, targets):
        """Optimizer update ``index``: ``micro`` calls of the train step, timed together.

        With ``--accumulate K`` the batches arrive stacked ``[K, batch, seq]``;
        this runner takes the first ``micro`` of them.
        """
        if self.stacked:
            batches = [self.place(inputs[i], targets[i]) for i in range(self.micro)]
        else:
            batches = [self.place(inputs, targets)]
        losses = []
        t0 = time.perf_counter()
        for i, (x, y) in enumerate(batches):
            self.params, self.opt_state, metrics = self.train_step(
                self.params, self.opt_state, x, y, np.int32(index * self.micro + i),
                self.last_eval)
            losses.append(metrics["loss"])
        metrics, losses = self.jax.device_get((metrics, losses))  # waits for the steps
        seconds = time.perf_counter() - t0
        self.calls += len(batches)
        self.curve.record(index, float(np.mean(losses)), float(metrics["lr"]), seconds)

    def eval_params(self):
        """The parameters to evaluate: schedule-free optimizers evaluate at their x."""
        if self.js is not None and self.args.optimizer.startswith("schedule_free"):
            return self.js.schedule_free_eval_params(self.opt_state, self.params)
        return self.params

    def _validation_loss(self, params, batches) -> float:
        losses = [self.eval_step(params, *self.place(x, y)) for x, y in batches]
        return float(np.mean(self.jax.device_get(losses)))

    def evaluate(self, index, batches):
        """Validation loss of the parameters (and of the EMA average with ``--ema``);
        the update's ``js.log_values`` (jaxsched's sides) into the curve."""
        t0 = time.perf_counter()
        value = self._validation_loss(self.eval_params(), batches)
        if self.ema:
            self.curve.eval_loss_ema.append(self._validation_loss(
                self.js.averaged_params(self.opt_state, which="ema_params"), batches))
        self.curve.eval_time_s.append(time.perf_counter() - t0)
        self.curve.eval_steps.append(index)
        self.curve.eval_loss.append(value)
        if self.js is not None:
            self.curve.eval_logs.append(log_floats(self.js, self.opt_state))
        self.last_eval = np.float32(value)
        return value

    def compile_counts(self) -> dict:
        """Backend compilations of the train and eval steps (and traces of the train step)."""
        return {"train_step": self.counter.count(self.fun_name),
                # Traces of the train step: the entries of its jit cache.
                "train_step_cache_size": self.counter.trace_count(self.fun_name),
                "eval_step": self.counter.count(self.eval_name)}


class TorchRunner:
    """``--compare torch``: the PyTorch model behind the same interface."""

    def __init__(self, args, init_params, schedule):
        from benchmarks.torch_lstm import TorchTrainer
        table = np.asarray(schedule(np.arange(args.steps + 1)), dtype=np.float64)
        self.name = "torch"
        self.curve = Curve()
        self.trainer = TorchTrainer(init_params, layers=args.layers, dropout=args.dropout,
                                    lr_table=table, weight_decay=args.weight_decay
                                    if args.optimizer == "adamw" else 0.0,
                                    b1=0.9, b2=0.999, eps=1e-8, clip_norm=args.clip or float("inf"),
                                    threads=args.torch_threads)

    def step(self, index, inputs, targets):
        t0 = time.perf_counter()  # (the command line refuses torch with --accumulate)
        loss, lr = self.trainer.step(inputs, targets)
        self.curve.record(index, loss, lr, time.perf_counter() - t0)

    def evaluate(self, index, batches):
        t0 = time.perf_counter()
        value = self.trainer.evaluate(batches)
        self.curve.eval_time_s.append(time.perf_counter() - t0)
        self.curve.eval_steps.append(index)
        self.curve.eval_loss.append(value)
        return value


def make_mesh(n: int):
    """A one-axis (``data``) mesh over the first ``n`` devices; ValueError if fewer exist."""
    import jax
    from jax.sharding import Mesh
    present = jax.devices()
    if n > len(present):
        raise ValueError(f"{n} requested but only {len(present)} "
                         f"{present[0].platform} device(s) present (on CPU set XLA_FLAGS="
                         f"--xla_force_host_platform_device_count={n})")
    return Mesh(np.array(present[:n]), ("data",))


def train(args, runners: list, sampler, val_batches, progress_label: str):
    """Train all ``runners`` on the same batches, alternating blocks of steps.

    Returns ``True`` if interrupted by Ctrl-C (what was measured is kept).
    """
    block = args.compare_block if len(runners) > 1 else args.eval_every
    k = getattr(args, "accumulate", 1)  # micro-batches per step (per optimizer update)
    main = runners[0]
    bar = Progress(args.steps, progress_label, args.batch * args.seq_len * k,
                   enabled=not args.no_progress)
    interrupted = False
    try:
        step = 0
        n_block = 0
        while step < args.steps:
            # Blocks never cross an evaluation point.
            size = min(block, args.steps - step, args.eval_every - step % args.eval_every)
            if k == 1:
                batches = [sampler() for _ in range(size)]
            else:  # each step's K micro-batches stacked: [K, batch, seq]
                batches = [tuple(np.stack(a) for a in zip(*(sampler() for _ in range(k))))
                           for _ in range(size)]
            order = runners if n_block % 2 == 0 else runners[::-1]
            for runner in order:
                for j, (x, y) in enumerate(batches):
                    runner.step(step + j, x, y)
                    if runner is main:
                        bar.step(main.curve)
            step += len(batches)
            n_block += 1
            if step % args.eval_every == 0 or step == args.steps:
                for runner in runners:  # at multiples of --eval-every and at the end
                    runner.evaluate(step, val_batches)
                bar.evaluation(step, main.curve)
    except KeyboardInterrupt:
        interrupted = True
        print("\nlstm.py: interrupted; writing what was measured so far", file=sys.stderr)
    finally:
        bar.close()
    return interrupted
