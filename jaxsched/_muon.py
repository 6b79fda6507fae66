"""Muon: momentum orthogonalized by Newton-Schulz, for matrices; AdamW for the rest.

PyTorch's `torch.optim.Muon` (2.9+) semantics: an exponential moving
average of the gradients (Nesterov by default), orthogonalized by Keller
Jordan's quintic Newton-Schulz iteration, a shape-dependent learning-rate
factor (`adjust_lr_fn`) and decoupled weight decay.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsched import _checks, _hyper
from jaxsched._builder import Buffer, MaskOrFn, Transformation, describe, transformation
from jaxsched._flat import FlatParams, skeleton
from jaxsched._hyper import Hyper, carries
from jaxsched._numerics import float_dtype
from jaxsched._transforms import add_decayed_weights, chain, scale_by_adam, scale_by_learning_rate
from jaxsched._groups import with_groups

Array = jax.Array
PyTree = Any

# PyTorch's (and Keller Jordan's) quintic coefficients and step count.
NS_COEFFS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
_ADJUST = ("original", "match_rms_adamw")
_RESHAPE = ("first", "last")


def as_matrix(shape: tuple, reshape: str = "first") -> tuple[int, int]:
    """The 2-D shape Muon gives an array: (d0, d1*...*dn), or (d0*...*dn-1, dn) for "last"."""
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    if reshape == "first":
        return int(shape[0]), int(np.prod(shape[1:], dtype=np.int64))
    return int(np.prod(shape[:-1], dtype=np.int64)), int(shape[-1])


def _pairwise_sum(x: Array) -> Array:
    """The sum of every element of `x`, added pairwise in a fixed order.

    Elementwise additions only, so the result is bitwise the same for one
    matrix and for each matrix of a stack under `jax.vmap` (XLA's `reduce`
    orders its additions by the shape it is given, so `jnp.sum` is not).
    """
    v = x.reshape(-1)
    size = 1 << max(0, (v.shape[0] - 1).bit_length())
    if size > v.shape[0]:
        v = jnp.concatenate([v, jnp.zeros((size - v.shape[0],), v.dtype)])
    while v.shape[0] > 1:
        half = v.shape[0] // 2
        v = v[:half] + v[half:]
    return v.reshape(())


def orthogonalize(x: Array, ns_coeffs: tuple = NS_COEFFS, ns_steps: int = NS_STEPS,
                  eps: Any = 1e-7, *, dtype: Any = None) -> Array:
    """Approximately orthogonalize a matrix with the quintic Newton-Schulz iteration.

    X = x (transposed if it has more rows than columns), in `dtype`
    X = X / max(||X||_F, eps)
    ns_steps times:  A = X X^T;  X = a X + (b A + c A A) X      ((a, b, c) = ns_coeffs)

    PyTorch's `_zeropower_via_newtonschulz` (which always computes in
    bfloat16; `dtype=jnp.bfloat16` rounds to bfloat16 too). The result is close to
    U V^T for x = U S V^T, with singular values near 1 (between about 0.7
    and 1.2 for the default coefficients), in x's dtype.

    Args:
      x: a 2-D array.
      ns_coeffs: the coefficients (a, b, c), numbers or scalar arrays.
      ns_steps: number of iterations, a positive int.
      eps: lower bound of the Frobenius norm, > 0.
      dtype: the dtype of the iteration (default: x's).

    Raises:
      ValueError: for an array that is not 2-D.

    References: Jordan et al., "Muon: An optimizer for hidden layers in neural
    networks", 2024, https://kellerjordan.github.io/posts/muon/

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> o = js.orthogonalize(jnp.array([[3.0, 0.0], [0.0, 0.5]]))
        >>> bool(jnp.all(jnp.abs(jnp.diag(o) - 1) < 0.3)), float(o[0, 1])
        (True, 0.0)
    """
    if jnp.ndim(x) != 2:
        raise ValueError(f"`orthogonalize` needs a 2-D array, got shape {jnp.shape(x)}.")
    a, b, c = ns_coeffs
    out_dtype = x.dtype
    work = x.astype(dtype if dtype is not None else x.dtype)
    tall = work.shape[0] > work.shape[1]
    if tall:
        work = work.T
    norm = jnp.sqrt(_pairwise_sum(jnp.square(work.astype(float_dtype()))))
    work = work / jnp.maximum(norm, eps).astype(work.dtype)
    a, b, c = (jnp.asarray(v, work.dtype) for v in (a, b, c))
    for _ in range(ns_steps):
        gram = work @ work.T
        work = a * work + (b * gram + c * (gram @ gram)) @ work
    if tall:
        work = work.T
    return work.astype(out_dtype)


@carries("scale_by_muon")
class ScaleByMuonState(NamedTuple):
    """State of `scale_by_muon`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> js.scale_by_muon().init(jnp.zeros((2, 3)))._fields
        ('count', 'mu', 'hyperparams')
    """

    count: Array  # type: ignore[assignment]  # int32 []: updates done, saturating
    mu: PyTree  # momentum (EMA of gradients), like params (float32 for bf16/f16, or mu_dtype)
    hyperparams: dict  # {"beta", "eps", "ns_a", "ns_b", "ns_c": float []}


def _check_coeffs(owner: str, ns_coeffs: Any) -> tuple:
    coeffs = _checks.sequence(owner, "ns_coeffs", ns_coeffs)
    _checks.same_length(owner, "ns_coeffs", coeffs, "coefficient a, b, c", 3)
    for value in coeffs:
        _hyper.check(owner, "ns_coeffs", value)
        if not _hyper.is_schedule(value) and not _checks.is_traced(value):
            _checks.custom(owner, "ns_coeffs", value, lambda v: np.ndim(v) == 0,
                           "hold scalars")
    return coeffs


@with_groups(tree_arguments=())
def scale_by_muon(ns_coeffs: Any = NS_COEFFS, ns_steps: int = NS_STEPS, beta: Hyper = 0.95,
                  eps: Hyper = 1e-7, mu_dtype: Any = None, *, nesterov: bool = True,
                  adjust_lr_fn: str | None = "original", reshape: str = "first",
                  ns_dtype: Any = None) -> Transformation:
    """Orthogonalize the momentum of each matrix (PyTorch's Muon before the learning rate).

    m = beta * m + (1 - beta) * g                        (PyTorch's `buf.lerp_(g, 1 - beta)`)
    x = beta * m + (1 - beta) * g   if nesterov,  else m
    u = s * orthogonalize(x as an (A, B) matrix, ns_coeffs, ns_steps, eps)
    s = sqrt(max(1, A / B))   ("original", Keller Jordan's)  or  0.2 * sqrt(max(A, B))  ("match_rms_adamw")

    No bias correction (optax's `contrib.scale_by_muon` divides by 1 - beta^k
    and has no shape factor: its `contrib.muon` chains `scale_by_shape`, with
    fan_out / fan_in of its dimension numbers). An array of
    rank > 2 is reshaped to (d0, d1*...*dn) (`reshape="first"`: PyTorch's
    (out, in, kh, kw) convolutions) or (d0*...*dn-1, dn) (`"last"`: flax's
    (kh, kw, in, out)), orthogonalized and reshaped back; A, B are that
    matrix's dimensions (PyTorch uses the first two dimensions of the
    parameter). Reduces over each array (`per_array`; on `flat_params`
    buffers, over each original array). Matrices of the same (reshaped)
    shape are stacked and orthogonalized together under `jax.vmap`, so the
    compiled program grows with the number of distinct shapes, not of
    matrices (the stack is a copy of those momenta, and the result is
    sliced back: transient arrays of their size while the update runs); the
    numbers are those of each matrix alone.

    Args:
      ns_coeffs: Newton-Schulz coefficients (a, b, c), each a number, scalar
        array or schedule (default PyTorch's (3.4445, -4.7750, 2.0315)).
      ns_steps: Newton-Schulz iterations, a positive int (PyTorch's 5).
      beta: momentum, in [0, 1) (PyTorch's `momentum`, 0.95).
      eps: lower bound of the Frobenius norm before the iteration, > 0.
      mu_dtype: dtype of the momentum.
      nesterov: Nesterov momentum (PyTorch's default).
      adjust_lr_fn: "original" (or None) or "match_rms_adamw", as PyTorch.
      reshape: "first" or "last", how an array of rank > 2 becomes a matrix.
      ns_dtype: dtype of the iteration; default the computation dtype
        (float32, float64 under x64). PyTorch computes it in bfloat16;
        `jnp.bfloat16` rounds to bfloat16 too, though not as PyTorch does
        step for step.

    Raises:
      ValueError: for an argument out of range, or (at the first update) an
        array of rank < 2.

    References: Jordan et al., "Muon", 2024; Liu et al., "Muon is Scalable
    for LLM Training", 2025 (match_rms_adamw).

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> tx = js.scale_by_muon(nesterov=False)
        >>> u, _ = tx.update(jnp.array([[2.0, 0.0], [0.0, 2.0]]), tx.init(jnp.zeros((2, 2))))
        >>> round(float(u[0, 0]), 2), float(u[0, 1])
        (1.11, 0.0)
    """
    owner = "scale_by_muon"
    coeffs = _check_coeffs(owner, ns_coeffs)
    _checks.integer(owner, "ns_steps", ns_steps, lo=1, hi=_checks.INT32_MAX)
    _hyper.check(owner, "beta", beta, lo=0, hi=1, hi_open=True)
    _hyper.check(owner, "eps", eps, lo=0, lo_open=True)
    _checks.boolean(owner, "nesterov", nesterov)
    if adjust_lr_fn is None:
        adjust_lr_fn = "original"
    _checks.choice(owner, "adjust_lr_fn", adjust_lr_fn, _ADJUST)
    _checks.choice(owner, "reshape", reshape, _RESHAPE)
    steps = int(ns_steps)
    caller = _checks.caller(owner)

    def step(hp, g, m):  # elementwise: runs on whole flat buffers
        m = hp.beta * m + (1 - hp.beta) * g
        return (hp.beta * m + (1 - hp.beta) * g if nesterov else m), m

    def finish(hp, x):  # per matrix; the same for x reshaped to as_matrix(x.shape)
        if x.ndim < 2:
            raise ValueError(f"`{caller}` orthogonalizes matrices (arrays of rank >= 2), got an "
                             f"array of shape {x.shape}; leave vectors to another "
                             f"optimizer (`muon` gives them AdamW).")
        rows, cols = as_matrix(x.shape, reshape)
        o = orthogonalize(x.reshape(rows, cols), (hp.ns_a, hp.ns_b, hp.ns_c), steps, hp.eps,
                          dtype=ns_dtype)
        if adjust_lr_fn == "original":
            factor = math.sqrt(max(1.0, rows / cols))
        else:
            factor = 0.2 * math.sqrt(max(rows, cols))
        return o.reshape(x.shape) * factor

    return transformation(owner, ScaleByMuonState,
                          {"beta": beta, "eps": eps, "ns_a": coeffs[0], "ns_b": coeffs[1],
                           "ns_c": coeffs[2]}, step,
                          buffers={"mu": Buffer(dtype=mu_dtype)}, per_array=True,
                          finish=finish, batch_as=lambda shape: (as_matrix(shape, reshape) if len(shape) >= 2
                                                  else None))


# ---------------------------------------------------------------- the alias


def _rename_hyperparams(state: Any, rename: Callable[[str], str]) -> Any:
    """The state with every recorded hyperparameter's key passed through `rename`."""
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        named: Any = state
        parts = {f: _rename_hyperparams(getattr(named, f), rename) for f in named._fields
                 if f != "hyperparams"}
        if "hyperparams" in named._fields and isinstance(named.hyperparams,
                                                         (dict, _hyper.Constants, _hyper.Mixed)):
            parts["hyperparams"] = _hyper.rename(named.hyperparams, rename)
        return named._replace(**parts)
    if isinstance(state, (tuple, list)):
        return type(state)(_rename_hyperparams(s, rename) for s in state)
    if isinstance(state, dict):
        return {k: _rename_hyperparams(v, rename) for k, v in state.items()}
    return state


def _prefixed(tx: Transformation, prefix: str) -> Transformation:
    """`tx` reporting its hyperparameters as `prefix + name` (muon's `adam_*`)."""
    add = lambda k: prefix + k  # noqa: E731
    strip = lambda k: k[len(prefix):] if k.startswith(prefix) else k  # noqa: E731

    def init(params):
        return _rename_hyperparams(tx.init(params), add)

    def update(updates, state, params=None, **extra):
        u, state = tx.update(updates, _rename_hyperparams(state, strip), params, **extra)
        return u, _rename_hyperparams(state, add)

    return describe(optax.GradientTransformationExtraArgs(init, update), name=tx.name,
                    per_array=tx.per_array, needs_params=tx.needs_params, members=(tx,))


def _muon_leaves(muon_mask: MaskOrFn) -> Callable[[PyTree], PyTree]:
    """The function of the params that says which leaves get Muon, checking its answer."""

    def matrices(tree):
        return jax.tree.map(lambda p: jnp.ndim(p) >= 2, tree)

    def select(params):
        from jaxsched._builder import resolve_mask
        if isinstance(params, FlatParams) and not isinstance(muon_mask, FlatParams):
            # the arrays are those of the original tree
            arrays = skeleton(params.layout)
            wanted = matrices(arrays) if muon_mask is None else muon_mask
            check(resolve_mask("muon", wanted, arrays), arrays)
            return resolve_mask("muon", wanted, params)
        chosen = matrices(params) if muon_mask is None else resolve_mask("muon", muon_mask,
                                                                         params)
        check(chosen, params)
        return chosen

    def check(chosen, params):
        flags = jax.tree_util.tree_flatten_with_path(chosen)[0]
        leaves = jax.tree.leaves(params)
        for (path, flag), p in zip(flags, leaves):
            if bool(flag) and jnp.ndim(p) < 2:
                raise ValueError(f"`muon(muon_mask=...)` selects the array of shape "
                                 f"{jnp.shape(p)} at {jax.tree_util.keystr(path)}, but Muon "
                                 f"needs arrays of rank >= 2.")
        if leaves and not any(bool(f) for _, f in flags):
            raise ValueError("`muon`: the parameters have no matrix for Muon (no array of "
                             "rank >= 2 selected); use `adamw` for them, or pass `muon_mask`.")

    return select


@with_groups(tree_arguments=('weight_decay_mask', 'muon_mask'))
def muon(learning_rate: Hyper, ns_coeffs: Any = NS_COEFFS, ns_steps: int = NS_STEPS,
         beta: Hyper = 0.95, eps: Hyper = 1e-7, weight_decay: Hyper = 0.1,
         weight_decay_mask: MaskOrFn = None, mu_dtype: Any = None, *, nesterov: bool = True,
         adjust_lr_fn: str | None = "original", reshape: str = "first", ns_dtype: Any = None,
         muon_mask: MaskOrFn = None, adam_b1: Hyper = 0.9, adam_b2: Hyper = 0.999,
         adam_eps: Hyper = 1e-8, adam_eps_root: Hyper = 0.0, adam_weight_decay: Hyper = 0.01,
         adam_learning_rate: Hyper | None = None) -> Transformation:
    """Muon for the matrices (PyTorch's `torch.optim.Muon`), AdamW for every other leaf.

    matrices:  p -= lr * (s * NS(momentum) + weight_decay * p)      (see `scale_by_muon`)
    the rest:  p -= adam_lr * (m_hat / (sqrt(v_hat + adam_eps_root) + adam_eps) + adam_weight_decay * p)

    The matrix update equals PyTorch's `p *= 1 - lr * wd; p -= s * lr * O`
    (the decay uses the unadjusted rate). PyTorch refuses non-2-D
    parameters and leaves the rest to a second optimizer (usually AdamW);
    this alias does both, with the AdamW part's own hyperparameters
    (`adam_*`, PyTorch AdamW's defaults; `adam_learning_rate` None: the
    Muon learning rate), reported by `hyperparams` as `adam_b1`, ... .

    Which leaves get Muon: `muon_mask` (a tree of bools like the params, or
    a function of them), by default every array of rank >= 2; arrays of
    rank > 2 are reshaped per `reshape`. Exclude embeddings and output
    layers with `muon_mask`, as PyTorch's documentation advises. A tree
    with no array for Muon is an error (use `adamw`), not a silent AdamW.
    On `flat_params` the mask speaks of the original arrays, which must be
    grouped so that each buffer holds only Muon's or only AdamW's arrays
    (`js.flat_params(tree, group=lambda t: jax.tree.map(lambda x: x.ndim >= 2, t))`);
    each matrix is then orthogonalized on its own, as in the tree.

    Positional order as optax's `contrib.muon`; the defaults are PyTorch's
    (optax: eps 1e-8, weight decay 0, bias-corrected momentum, AdamW decay 0).

    Args:
      learning_rate: Muon's rate, >= 0 (number, array or schedule).
      ns_coeffs, ns_steps, beta, eps, mu_dtype, nesterov, adjust_lr_fn,
        reshape, ns_dtype: see `scale_by_muon`.
      weight_decay: decoupled decay of the matrices, >= 0.
      weight_decay_mask: which matrices are decayed (tree of bools or function).
      muon_mask: which leaves get Muon.
      adam_b1, adam_b2: in [0, 1).  adam_eps, adam_eps_root: >= 0.
      adam_weight_decay: >= 0.  adam_learning_rate: >= 0, or None.

    Raises:
      ValueError: for an argument out of range; at `init`, for parameters
        with no array for Muon or a `muon_mask` selecting a vector.
      TypeError: at `init`, for integer or complex parameters.

    References: Jordan et al., "Muon", 2024; Liu et al., "Muon is Scalable
    for LLM Training", 2025.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.muon(0.02)
        >>> params = {"w": jnp.ones((4, 2)), "b": jnp.zeros(2)}
        >>> state = opt.init(params)
        >>> sorted(js.hyperparams(state))[:4]
        ['adam_b1', 'adam_b2', 'adam_eps', 'adam_eps_root']
    """
    select = _muon_leaves(muon_mask)

    def others(params):
        return jax.tree.map(lambda b: not b, select(params))

    def decayed(params):
        chosen = select(params)
        if weight_decay_mask is None:
            return chosen
        from jaxsched._builder import resolve_mask
        wanted = resolve_mask("muon", weight_decay_mask, params)
        return jax.tree.map(lambda a, b: bool(a) and bool(b), chosen, wanted)

    def only(tx, leaves, name, per_array=False):
        return describe(optax.masked(tx, leaves), name=name, per_array=per_array,
                        needs_params=tx.needs_params, members=(tx,))

    with _checks.calling("muon"):
        parts = [only(scale_by_muon(ns_coeffs, ns_steps, beta, eps, mu_dtype, nesterov=nesterov,
                                    adjust_lr_fn=adjust_lr_fn, reshape=reshape,
                                    ns_dtype=ns_dtype), select, "scale_by_muon", True)]
    adam_names = dict(b1="adam_b1", b2="adam_b2", eps="adam_eps", eps_root="adam_eps_root",
                      weight_decay="adam_weight_decay", learning_rate="adam_learning_rate")
    with _checks.calling("muon", **adam_names):
        parts.append(only(_prefixed(scale_by_adam(adam_b1, adam_b2, adam_eps, adam_eps_root,
                                                  mu_dtype=mu_dtype), "adam_"),
                          others, "scale_by_adam"))
        adam_decay = _prefixed(add_decayed_weights(adam_weight_decay, others), "adam_")
        adam_rate = (None if adam_learning_rate is None else
                     only(_prefixed(scale_by_learning_rate(adam_learning_rate), "adam_"),
                          others, "scale_by_learning_rate"))
    with _checks.calling("muon"):
        parts += [add_decayed_weights(weight_decay, decayed), adam_decay]
        if adam_rate is None:
            parts.append(scale_by_learning_rate(learning_rate))
        else:
            parts += [only(scale_by_learning_rate(learning_rate), select,
                           "scale_by_learning_rate"), adam_rate]
        return chain(*parts)
