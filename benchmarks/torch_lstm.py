"""The PyTorch side of ``--compare torch``: the same character LSTM in PyTorch.

``torch.nn.LSTM`` (embedding, stacked LSTM with inter-layer dropout, linear
head), ``torch.optim.AdamW``, ``torch.nn.utils.clip_grad_norm_`` and the
learning-rate schedule through ``torch.optim.lr_scheduler.LambdaLR`` reading a
table of the jaxsched schedule's values.  The weights are copied from the flax
model's initial parameters (same gate order ``i, f, g, o``; flax's single bias
goes to ``bias_hh`` and ``bias_ih`` is zero) so both sides start from the same
point and see the same batches.  torch is imported lazily: it is an optional
dependency of the benchmark only, never of jaxsched.
"""

from __future__ import annotations

import os

import numpy as np


def available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


class TorchTrainer:
    """Builds the PyTorch model from flax parameters and runs train steps.

    Args:
      params: the flax parameter tree of :class:`benchmarks.lstm_model.CharLSTM`.
      layers, dropout: model configuration (sizes are read from ``params``).
      lr_table: learning rate for every step (index = step).
      weight_decay, b1, b2, eps, clip_norm: AdamW and clipping settings.
      threads: ``torch.set_num_threads`` (default: all cores).
    """

    def __init__(self, params, *, layers: int, dropout: float, lr_table: np.ndarray,
                 weight_decay: float, b1: float, b2: float, eps: float,
                 clip_norm: float, threads: int | None = None):
        import torch

        self.torch = torch
        self.threads = threads or os.cpu_count() or 1
        torch.set_num_threads(self.threads)
        p = params["params"] if "params" in params else params
        vocab, embed = np.asarray(p["embed"]["embedding"]).shape
        hidden = np.asarray(p["lstm_0"]["cell"]["hi"]["kernel"]).shape[0]
        self.vocab = vocab
        self.model = _build_model(torch, vocab, embed, hidden, layers, dropout)
        load_flax_params(self.model, p, layers)
        self.clip_norm = clip_norm
        kwargs = dict(lr=1.0, betas=(b1, b2), eps=eps, weight_decay=weight_decay)
        try:  # fused CPU AdamW exists in recent PyTorch
            self.optimizer = torch.optim.AdamW(self.model.parameters(), fused=True, **kwargs)
            self.fused = True
        except (RuntimeError, TypeError, ValueError):
            self.optimizer = torch.optim.AdamW(self.model.parameters(), **kwargs)
            self.fused = False
        table = [float(v) for v in lr_table]
        last = len(table) - 1
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: table[min(step, last)])
        self.model.train()

    def step(self, inputs: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
        """One training step; returns ``(loss, learning rate used)``."""
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.int64))
        y = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.int64))
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, self.vocab), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach()), float(lr)


    def evaluate(self, batches) -> float:
        """Mean loss over ``batches`` of ``(inputs, targets)`` in eval mode."""
        torch = self.torch
        self.model.eval()
        losses = []
        with torch.no_grad():
            for inputs, targets in batches:
                x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.int64))
                y = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.int64))
                logits = self.model(x)
                losses.append(float(torch.nn.functional.cross_entropy(
                    logits.reshape(-1, self.vocab), y.reshape(-1))))
        self.model.train()
        return float(np.mean(losses))


def _build_model(torch, vocab, embed, hidden, layers, dropout):
    class TorchCharLSTM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(vocab, embed)
            self.lstm = torch.nn.LSTM(embed, hidden, num_layers=layers, dropout=dropout,
                                      batch_first=True)
            self.head = torch.nn.Linear(hidden, vocab)

        def forward(self, tokens):
            out, _ = self.lstm(self.embed(tokens))
            return self.head(out)

    return TorchCharLSTM()


def load_flax_params(model, p, layers: int) -> None:
    """Copy flax ``CharLSTM`` parameters into the PyTorch model in place."""
    torch = __import__("torch")

    def t(a):
        return torch.from_numpy(np.array(a, dtype=np.float32))

    gates = ("i", "f", "g", "o")
    with torch.no_grad():
        model.embed.weight.copy_(t(p["embed"]["embedding"]))
        for k in range(layers):
            cell = p[f"lstm_{k}"]["cell"]
            w_i = np.concatenate([np.asarray(cell[f"i{g}"]["kernel"]) for g in gates], axis=-1)
            w_h = np.concatenate([np.asarray(cell[f"h{g}"]["kernel"]) for g in gates], axis=-1)
            b = np.concatenate([np.asarray(cell[f"h{g}"]["bias"]) for g in gates], axis=-1)
            getattr(model.lstm, f"weight_ih_l{k}").copy_(t(w_i.T))
            getattr(model.lstm, f"weight_hh_l{k}").copy_(t(w_h.T))
            getattr(model.lstm, f"bias_hh_l{k}").copy_(t(b))
            getattr(model.lstm, f"bias_ih_l{k}").zero_()
        model.head.weight.copy_(t(np.asarray(p["head"]["kernel"]).T))
        model.head.bias.copy_(t(p["head"]["bias"]))
