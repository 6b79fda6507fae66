"""Character-level LSTM language-model benchmark for jaxsched.

Trains a flax LSTM language model (:mod:`benchmarks.lstm_model`) on a text
corpus (:mod:`benchmarks.corpus`, by default the source of a fixed set of
Python standard-library modules) with a jaxsched optimizer and schedule, and
reports what XLA made of the train step together with measured step times.

Usage::

    python benchmarks/lstm.py                       # default run + XLA report
    python benchmarks/lstm.py --quick               # tiny run, < 1 minute on 2 cores
    python benchmarks/lstm.py --compare optax       # jaxsched vs the optax-built optimizer
    python benchmarks/lstm.py --compare torch       # vs torch.nn.LSTM + AdamW (CPU)
    python benchmarks/lstm.py --compare cell        # fast cell vs flax's cell
    python benchmarks/lstm.py --compare optax,torch,cell
    python benchmarks/lstm.py --schedule exponential_decay --optimizer rmsprop
    python benchmarks/lstm.py --sweep-schedules cosine_decay,exponential_decay,one_cycle
    python benchmarks/lstm.py --compare torch --repeats 3   # 3 fresh runs + each side alone
    python benchmarks/lstm.py --phases --compare torch     # where the step's time goes
    python benchmarks/lstm.py --skip-spikes --accumulate 2 --ema --compare plain
    python benchmarks/lstm.py --accumulate 4 --compare optax   # vs optax.MultiSteps
    XLA_FLAGS=--xla_force_host_platform_device_count=8 python benchmarks/lstm.py --devices 8

The code is split by concern: the command line (:mod:`benchmarks.lstm_cli`),
schedules and optimizers (:mod:`benchmarks.lstm_optim`), the model
(:mod:`benchmarks.lstm_model`, :mod:`benchmarks.torch_lstm`), the runners and
the training loop (:mod:`benchmarks.lstm_runners`), the XLA report
(:mod:`benchmarks.xla_report`) and the phase breakdown
(:mod:`benchmarks.lstm_phases`), tables, plots and ``lstm.json``
(:mod:`benchmarks.lstm_output`), and one function per job
(:mod:`benchmarks.lstm_modes`).  This file is the entry point.

What a run does
---------------
* One ``jax.jit`` train step: forward, loss, gradient, global-norm clipping,
  the optimizer and the schedule, with parameters and optimizer state donated.
  It is traced, lowered and compiled ahead of time
  (``jit(...).trace(...).lower().compile()``) for the report, then called for
  every step; a ``jax.monitoring`` listener counts backend compilations of it
  (the report asserts nothing, it prints the count, which should be 1).
* The training loop's companions: ``--skip-spikes [loss|grad_norm|both]``
  (``js.skip_spikes``, fed the training loss as ``value=``), ``--accumulate K``
  (``js.accumulate``: every step of the run, and ``--steps``, counts optimizer
  updates of K micro-batches each, one call of the same compiled step per
  micro-batch) and ``--ema [DECAY]`` (``js.ema_params``; the validation loss is
  also evaluated on ``js.averaged_params``). ``--compare plain`` trains the same
  optimizer without them alongside. At every evaluation ``lstm.json`` records
  ``js.log_values`` of the optimizer state as floats (``valid.log_values``).
* ``--repeats N`` runs the job N times, each in a fresh process, then each
  side alone in its own process (``--alone``), and reports the median of the
  step-time ratios with their range (``repeats`` in ``lstm.json``).
* ``--phases`` measures the train step phase by phase (embedding, each
  layer's hoisted input matmul and forward scan, head and loss, each layer's
  backward scan and weight-gradient matmuls, the optimizer update), each
  phase compiled on its own, with achieved FLOP/s; with ``--compare torch``
  also PyTorch's profiler's breakdown of its step.
* Progress goes to stderr: a bar on a terminal, one line per evaluation when
  stderr is a file or a pipe, nothing with ``--no-progress``.
* The train step of the other cell is compiled too (not run) so compile time
  is reported for both cells.
* Comparisons (``--compare``) are trained in the same process on the same
  batches, alternating blocks of ``--compare-block`` steps between the sides
  (the order of the sides flips every block) so that machine noise hits all
  of them.  ``optax`` trains the identical model, from identical weights, with
  ``optax.chain(optax.clip_by_global_norm, optax.<optimizer>(schedule))``;
  ``torch`` trains ``torch.nn.LSTM`` from the same initial weights with AdamW,
  ``clip_grad_norm_`` and the same schedule through ``LambdaLR``; ``cell``
  trains the same model with the other LSTM implementation.
* Outputs in ``--out`` (a directory): ``lstm.json`` (every figure, the
  configuration, the versions of jax/jaxlib/flax/optax/jaxsched), ``loss.png``
  (training and validation loss), ``lr.png`` (learning rate), and for a sweep
  ``sweep.png``.  A Ctrl-C stops training and still writes all of these with
  what was measured so far (``"interrupted": true``).

Data parallelism and multi-host
-------------------------------
``--devices N`` builds a ``jax.sharding.Mesh`` over the first ``N`` devices
with one axis ``data``; batches are placed with ``NamedSharding(mesh,
P("data"))`` (the batch size must be divisible by ``N``), parameters and
optimizer state are replicated (``NamedSharding(mesh, P())``) and the jitted
step keeps them so; XLA inserts the gradient all-reduce.  On a CPU machine the
host can be split into devices with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``.

To run on several hosts, start the same command on every host and call
``jax.distributed.initialize()`` first (``--distributed`` does this; on Cloud
TPU and SLURM it needs no arguments, elsewhere set ``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, or pass them to
``initialize``).  ``jax.devices()`` then lists the devices of all hosts, so
``--devices`` counts global devices, the mesh spans the hosts, and each host
feeds its slice of the global batch: the batch arrays are assembled with
``jax.make_array_from_process_local_data``.  Every host draws the same global
batch from the same seed and keeps its own rows, so the loss curve does not
depend on the number of hosts.  Only process 0 writes outputs.
"""

from __future__ import annotations

import pathlib
import sys

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from benchmarks import corpus as corpus_lib  # noqa: E402
from benchmarks.lstm_cli import UsageError, fail, parse_args  # noqa: E402
from benchmarks import lstm_modes  # noqa: E402

__all__ = ["main", "parse_args", "run"]


def run(args) -> dict:
    """Run the job the parsed command line asks for; returns what ``lstm.json`` holds."""
    if args.repeats > 1:
        return lstm_modes.run_repeats(args)
    s = lstm_modes.setup(args)
    if args.lr_find:
        return lstm_modes.run_lr_find(s)
    if args.sweep_schedules:
        return lstm_modes.run_sweep(s)
    if args.alone:
        return lstm_modes.run_alone(s)
    return lstm_modes.run_main(s)


def main(argv=None) -> int:
    """The command line: parse ``argv``, run, exit with one line on a bad value."""
    try:
        args = parse_args(argv, description=__doc__.split("\n\n")[0])
        run(args)
    except (UsageError, corpus_lib.CorpusError) as e:
        fail(str(e))
    except KeyboardInterrupt:  # before training started
        fail("interrupted", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
