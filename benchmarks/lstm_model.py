"""Character-level LSTM language model in flax, with two LSTM implementations.

``cell="flax"``
    flax's own :class:`flax.linen.OptimizedLSTMCell` driven by
    :class:`flax.linen.RNN` (batch-major, one ``lax.scan`` whose body does both
    the input and the recurrent matmul; gradients by JAX autodiff of the scan).

``cell="fast"``
    :func:`lstm_layer`: the input projection ``x @ W_i + b`` for *all* time
    steps is one ``[T*B, D] @ [D, 4H]`` matmul outside the time loop, and the
    ``lax.scan`` runs only the recurrent part ``h @ W_h`` plus the gate
    arithmetic, time-major.  Its reverse pass is a hand-written VJP
    (:func:`jax.custom_vjp`): the backward scan carries only ``dh`` and ``dc``
    and emits the gate pre-activation gradients; the weight gradients
    ``dW_h = H_{t-1}^T dZ``, ``dW_i = X^T dZ``, the bias gradient and the input
    gradient ``dX = dZ W_i^T`` are then each a single large matmul over all
    time steps instead of ``T`` small accumulations inside the loop.

Both layers declare exactly the same parameters (names, shapes and
initialisers as ``nn.RNN(nn.OptimizedLSTMCell)``: per gate ``i, f, g, o`` an
input kernel ``i?/kernel`` ``[D, H]`` and a recurrent ``h?/kernel`` ``[H, H]``
with ``h?/bias``), so one parameter tree drives either model and the same seed
gives the same initial weights.  ``tests/test_lstm_benchmark.py`` checks that
the two give the same logits and gradients.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

GATES = ("i", "f", "g", "o")
CELLS = ("fast", "flax")


# ---------------------------------------------------------------------------
# The fast LSTM layer: a pure function with a custom VJP.
# ---------------------------------------------------------------------------

def _gate_activations(z: jax.Array) -> jax.Array:
    """sigmoid on the i, f, o quarters and tanh on the g quarter of ``[..., 4H]``.

    Computed as one elementwise expression over the whole ``4H`` axis,
    ``a * tanh(a * z) + (1 - a)`` with ``a = 1/2`` on sigmoid columns and
    ``a = 1`` on tanh columns (``sigmoid(x) = tanh(x/2)/2 + 1/2``), so XLA
    emits a single loop fusion with no slicing or concatenation.
    """
    a = _gate_scale(z.shape[-1], z.dtype)
    return a * jnp.tanh(a * z) + (1.0 - a)


def input_projection(w_i, b, xs):
    """``xs @ W_i + b`` for every time step at once: ``[T, B, D] -> [T, B, 4H]``."""
    t, bsz, d = xs.shape
    return (xs.reshape(t * bsz, d) @ w_i + b).reshape(t, bsz, -1)


def forward_scan(w_h, xp, h0, c0, unroll=1):
    """The forward time loop over projected inputs ``xp [T, B, 4H]``.

    Returns the hidden states ``hs [T, B, H]`` and what the backward scan
    reads: the cell state entering each step ``c_prev [T, B, H]`` (so
    ``c_prev[0] = c0``), the gate activations ``acts [T, B, 4H]`` and the final
    cell state ``c_last [B, H]``.
    """
    def step(carry, xp_t):
        h, c = carry
        act = _gate_activations(xp_t + h @ w_h)
        i, f, g, o = jnp.split(act, 4, axis=-1)
        c = f * c + i * g
        h = o * jnp.tanh(c)
        return (h, c), (h, c, act)

    # Stacking each step's new c (not the incoming carry) measured faster; the
    # shift by one step is one copy outside the loop.
    (_, c_last), (hs, cs, acts) = jax.lax.scan(step, (h0, c0), xp, unroll=unroll)
    return hs, jnp.concatenate([c0[None], cs[:-1]], axis=0), acts, c_last


def _gate_scale(n4: int, dtype) -> jax.Array:
    """``a`` of :func:`_gate_activations`: 1/2 on sigmoid columns, 1 on tanh columns."""
    quarter = n4 // 4
    return jnp.concatenate([jnp.full((2 * quarter,), 0.5, dtype), jnp.ones((quarter,), dtype),
                            jnp.full((quarter,), 0.5, dtype)])


def backward_scan(w_h, c_last, c_prev, acts, dhs, unroll=1):
    """The reverse time loop: gate pre-activation gradients ``dzs [T, B, 4H]``.

    Carries ``dh``, ``dc`` and the cell state ``c_t`` (taken from the later
    step's ``c_prev``, so each step reads one cell state instead of two).
    Returns ``(dzs, dh0, dc0)``.

    Measured alternatives: one fusion for all four gates' derivatives (a
    ``[B, 4, H]`` view with ``jnp.where`` on the gate axis, no slices or
    concatenation) made XLA emit 4 fusions per step instead of 8 and a
    concatenate, but ran 35% slower than these per-gate expressions.
    """
    w_h_t = w_h.T  # transposed once, outside the loop

    def step(carry, inputs):
        dh_next, dc_next, c_t = carry
        dh_t, c_tm1, act = inputs
        i, f, g, o = jnp.split(act, 4, axis=-1)
        dh = dh_t + dh_next
        tc = jnp.tanh(c_t)
        dc = dc_next + dh * o * (1.0 - tc * tc)
        dz = jnp.concatenate([
            dc * g * i * (1.0 - i),          # input gate
            dc * c_tm1 * f * (1.0 - f),      # forget gate
            dc * i * (1.0 - g * g),          # candidate
            dh * tc * o * (1.0 - o),         # output gate
        ], axis=-1)
        return (dz @ w_h_t, dc * f, c_tm1), dz

    zeros = jnp.zeros_like(c_last)
    (dh0, dc0, _), dzs = jax.lax.scan(step, (zeros, zeros, c_last), (dhs, c_prev, acts),
                                      reverse=True, unroll=unroll)
    return dzs, dh0, dc0


def weight_gradients(w_i, xs, h0, hs, dzs):
    """Weight, bias and input gradients: one matmul each over all time steps.

    Returns ``(dW_i, dW_h, db, dxs)`` with ``dW_i = X^T dZ``,
    ``dW_h = H_{t-1}^T dZ``, ``db = sum dZ`` and ``dxs = dZ W_i^T``.  (Reading
    ``hs[:-1]`` in place and adding ``h0^T dZ_0`` as a second matmul measured
    40% slower than one matmul over the concatenated ``H_{t-1}``.)
    """
    t, bsz, d = xs.shape
    hidden = h0.shape[-1]
    dz2 = dzs.reshape(t * bsz, 4 * hidden)
    h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0).reshape(t * bsz, hidden)
    dw_h = h_prev.T @ dz2
    dw_i = xs.reshape(t * bsz, d).T @ dz2
    db = dz2.sum(axis=0)
    dxs = (dz2 @ w_i.T).reshape(t, bsz, d)
    return dw_i, dw_h, db, dxs


@functools.partial(jax.custom_vjp, nondiff_argnums=(6,))
def lstm_layer(w_i, w_h, b, xs, h0, c0, unroll=1):
    """One LSTM layer over a time-major sequence.

    Args:
      w_i: input kernel ``[D, 4H]`` (gates ``i, f, g, o`` side by side).
      w_h: recurrent kernel ``[H, 4H]``.
      b: bias ``[4H]``.
      xs: inputs ``[T, B, D]``.
      h0, c0: initial hidden and cell state ``[B, H]``.
      unroll: ``lax.scan`` unroll factor of both time loops.

    Returns:
      hidden states ``[T, B, H]``.
    """
    return forward_scan(w_h, input_projection(w_i, b, xs), h0, c0, unroll)[0]


def _lstm_fwd(w_i, w_h, b, xs, h0, c0, unroll):
    hs, c_prev, acts, c_last = forward_scan(w_h, input_projection(w_i, b, xs), h0, c0, unroll)
    return hs, (w_i, w_h, xs, h0, hs, c_prev, acts, c_last)


def _lstm_bwd(unroll, res, dhs):
    w_i, w_h, xs, h0, hs, c_prev, acts, c_last = res
    dzs, dh0, dc0 = backward_scan(w_h, c_last, c_prev, acts, dhs, unroll)
    dw_i, dw_h, db, dxs = weight_gradients(w_i, xs, h0, hs, dzs)
    return dw_i, dw_h, db, dxs, dh0, dc0


lstm_layer.defvjp(_lstm_fwd, _lstm_bwd)


# ---------------------------------------------------------------------------
# flax modules.
# ---------------------------------------------------------------------------

class _GateParams(nn.Module):
    """Declares one gate's kernel (and bias) like flax's LSTM cells do."""

    features: int
    in_features: int
    use_bias: bool
    kernel_init: nn.initializers.Initializer

    @nn.compact
    def __call__(self):
        kernel = self.param("kernel", self.kernel_init, (self.in_features, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,)) if self.use_bias else None
        return kernel, bias


def fused_weights(cell: dict):
    """``(W_i [D, 4H], W_h [H, 4H], b [4H])`` from a cell's per-gate parameters."""
    return (jnp.concatenate([cell[f"i{g}"]["kernel"] for g in GATES], axis=-1),
            jnp.concatenate([cell[f"h{g}"]["kernel"] for g in GATES], axis=-1),
            jnp.concatenate([cell[f"h{g}"]["bias"] for g in GATES], axis=-1))


class _CellParams(nn.Module):
    """The parameters of ``nn.OptimizedLSTMCell`` (same names, shapes, initialisers)."""

    features: int

    @nn.compact
    def __call__(self, in_features: int):
        w_i, w_h, b = [], [], []
        for gate in GATES:
            k, _ = _GateParams(self.features, in_features, False,
                               nn.initializers.lecun_normal(), name=f"i{gate}")()
            w_i.append(k)
            k, bias = _GateParams(self.features, self.features, True,
                                  nn.initializers.orthogonal(), name=f"h{gate}")()
            w_h.append(k)
            b.append(bias)
        return (jnp.concatenate(w_i, axis=-1), jnp.concatenate(w_h, axis=-1),
                jnp.concatenate(b, axis=-1))


class FastLSTM(nn.Module):
    """A time-major LSTM layer computed by :func:`lstm_layer`."""

    features: int
    unroll: int = 1

    @nn.compact
    def __call__(self, xs: jax.Array) -> jax.Array:
        """``xs [T, B, D] -> hidden states [T, B, H]`` from a zero initial state."""
        w_i, w_h, b = _CellParams(self.features, name="cell")(xs.shape[-1])
        zeros = jnp.zeros((xs.shape[1], self.features), xs.dtype)
        return lstm_layer(w_i, w_h, b, xs, zeros, zeros, self.unroll)


class CharLSTM(nn.Module):
    """Embedding, ``layers`` stacked LSTMs, dropout between them, dense head.

    Dropout (rate ``dropout``) is applied to the output of every LSTM layer
    except the last, as in ``torch.nn.LSTM(dropout=...)``.
    """

    vocab_size: int
    embed: int = 128
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.0
    cell: str = "fast"
    unroll: int = 1

    @nn.compact
    def __call__(self, tokens: jax.Array, train: bool = False) -> jax.Array:
        """``tokens [B, T] int -> logits [B, T, vocab_size]`` (float32)."""
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; expected one of {CELLS}")
        x = nn.Embed(self.vocab_size, self.embed, name="embed")(tokens)
        if self.cell == "fast":
            x = x.transpose(1, 0, 2)  # time-major for the scan
        for layer in range(self.layers):
            name = f"lstm_{layer}"
            if self.cell == "fast":
                x = FastLSTM(self.hidden, unroll=self.unroll, name=name)(x)
            else:
                # parent=None: the cell belongs to the RNN, so its params sit under
                # lstm_{layer}/cell like the fast layer's.
                cell = nn.OptimizedLSTMCell(self.hidden, parent=None)
                x = nn.RNN(cell, unroll=self.unroll, name=name)(x)
            if self.dropout > 0 and layer < self.layers - 1:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        if self.cell == "fast":
            x = x.transpose(1, 0, 2)
        return nn.Dense(self.vocab_size, name="head")(x)


def cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean next-character cross entropy (nats) of ``logits [..., V]``."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, targets[..., None], axis=-1))


def count_params(params) -> int:
    return sum(int(p.size) for p in jax.tree_util.tree_leaves(params))


def train_flops_per_step(batch: int, seq_len: int, vocab: int, embed: int,
                         hidden: int, layers: int) -> float:
    """Analytic matmul FLOPs of one training step (forward + backward = 3x forward).

    Counts the LSTM input and recurrent matmuls and the head; elementwise work
    and the embedding gather are ignored.  XLA's cost analysis counts a
    ``while`` loop's body once, not once per iteration, so it undercounts a
    scanned RNN; this figure is the one used for achieved FLOP/s.
    """
    tokens = batch * seq_len
    fwd = 0.0
    d = embed
    for _ in range(layers):
        fwd += 2.0 * tokens * (d + hidden) * 4 * hidden
        d = hidden
    fwd += 2.0 * tokens * hidden * vocab
    return 3.0 * fwd
