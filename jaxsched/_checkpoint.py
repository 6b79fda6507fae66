"""Checking a restored optimizer state (or schedule) against the one it replaces.

Optimizer states, schedules and the plateau state are plain pytrees of arrays
with fixed dtypes, so any checkpoint library saves them (orbax-checkpoint,
`flax.serialization`, `numpy.savez` of the leaves). What a library gives back
may have lost the Python types (NamedTuples become dicts or lists) or come
from a different optimizer; `restore_state` checks it against a freshly
built template, leaf by leaf, and rebuilds the template's types.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsched import _hyper

PyTree = Any

_OWNER = "restore_state"


def _key_name(k: Any) -> str:
    for attr in ("name", "key", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _flat(tree: PyTree) -> tuple[list[tuple[tuple[str, ...], str, Any]], Any]:
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    return ([(tuple(_key_name(k) for k in path), jax.tree_util.keystr(path), leaf)
             for path, leaf in leaves], treedef)


def _unmixed(key: tuple[str, ...], want_keys: set) -> tuple[str, ...]:
    """`key` without an `arrays` right after `hyperparams`, unless the template has it.

    A state's hyperparameter arrays beside numbers are saved under
    `hyperparams/arrays/<name>` by what reads `state.hyperparams` (a `Mixed`):
    flax's `to_state_dict`, and checkpoints of states made before the numbers
    moved into the state's class. A state's leaves have them at
    `hyperparams/<name>`.
    """
    if key in want_keys:
        return key
    for i in range(len(key) - 2):
        if key[i:i + 2] == ("hyperparams", "arrays"):
            return key[:i + 1] + key[i + 2:]
    return key


def _dtype(x: Any) -> Any:
    if isinstance(x, (bool, np.bool_)):
        return np.dtype(bool)
    if isinstance(x, int):
        return "python int"
    if isinstance(x, float):
        return "python float"
    return jnp.dtype(getattr(x, "dtype", None) or np.asarray(x).dtype)


def _same_kind(want: Any, got: Any) -> bool:
    dw, dg = _dtype(want), _dtype(got)
    if dw == dg:
        return True
    # A Python number in the template (a schedule's hyperparameter) comes back
    # from most libraries as a 0-d array; accept any int/float array for it.
    if dw == "python int":
        return isinstance(dg, np.dtype) and np.issubdtype(dg, np.integer)
    if dw == "python float":
        return isinstance(dg, np.dtype) and np.issubdtype(dg, np.floating)
    return False


def _restore_leaf(want: Any, got: Any) -> Any:
    if isinstance(want, (bool, int, float)) and not isinstance(want, np.generic):
        return type(want)(np.asarray(got).item())
    if isinstance(want, np.ndarray):
        return np.asarray(got)
    if isinstance(got, jax.Array):
        return got
    return jnp.asarray(got, dtype=_dtype(want))


def restore_state(template: PyTree, restored: PyTree) -> PyTree:
    """Check a restored state against a template and return it in the template's types.

    For every leaf of `template` (at path p): `restored` must have a leaf at
    the same path, of the same shape and dtype; `restored` must have no other
    leaves. Paths are compared by their keys only, so a NamedTuple field
    `.mu`, a dict key `['mu']` and a state-dict key `'mu'` match, as do a
    tuple index `[0]` and a state-dict key `'0'` (what
    `flax.serialization.to_state_dict` gives back; orbax restores a tuple
    without a target as a list, index `[0]`). The result
    has the structure and Python types of `template` and the values of
    `restored`; arrays are not copied or cast. Hyperparameters the template
    holds as numbers are its own: values saved for them are dropped; arrays
    saved beside numbers may sit under `hyperparams/arrays/<name>` (flax's
    `to_state_dict` form).

    Build the template the same way the saved state was built (the same
    optimizer, `opt.init(params)`); under `jax.eval_shape` it costs nothing.

    Args:
      template: the state the restored one must look like (arrays or
        `jax.ShapeDtypeStruct`s).
      restored: what the checkpoint library returned.

    Returns:
      `restored`'s leaves in `template`'s pytree structure.

    Raises:
      ValueError: naming the first offending path (in `template`'s `keystr`
        form) when a leaf is missing, extra, or of another shape or dtype.

    Example:
        >>> import jax, jax.numpy as jnp, numpy as np, jaxsched as js
        >>> opt = js.adam(1e-3)
        >>> state = opt.init({"w": jnp.zeros(3)})
        >>> saved = jax.tree.map(np.asarray, state)  # what a checkpoint gives back
        >>> js.restore_state(state, saved)[0].count
        Array(0, dtype=int32)
        >>> js.restore_state(state, (saved[0]._replace(count=np.int64(0)), saved[1]))
        Traceback (most recent call last):
        ...
        ValueError: `restore_state(restored=...)` has dtype int64 at [0].count, expected int32.
        >>> js.restore_state(state, {"0": {"count": np.int32(0)}})
        Traceback (most recent call last):
        ...
        ValueError: `restore_state(restored=...)` is missing [0].mu['w'] (and 1 more leaf) of the template.
    """
    want, treedef = _flat(template)
    want_keys = {key for key, _, _ in want}
    got = [(_unmixed(key, want_keys), path, leaf) for key, path, leaf in _flat(restored)[0]]
    # Hyperparameters given as numbers are held by the state's class, not its leaves
    # (`_hyper.new_state`). Entries saved under such a name (from a state that had an
    # array or schedule there, or from an earlier form that saved the numbers) are
    # dropped: the template's numbers are the optimizer's own.
    def holds_numbers(x: Any) -> bool:
        return _hyper.held_constants(x) is not None

    fixed = [tuple(_key_name(k) for k in path) + ("hyperparams", name) for path, x in
             jax.tree_util.tree_flatten_with_path(template, is_leaf=holds_numbers)[0]
             for name in getattr(_hyper.held_constants(x), "names", ())]
    got = [g for g in got if not any(g[0][:len(f)] == f for f in fixed)]
    got_by_key: dict[tuple[str, ...], tuple[str, Any]] = {}
    for key, path, leaf in got:
        got_by_key[key] = (path, leaf)
    where = f"`{_OWNER}(restored=...)`"
    missing = [path for key, path, _ in want if key not in got_by_key]
    if missing:
        n = len(missing) - 1
        more = f" (and {n} more {'leaf' if n == 1 else 'leaves'})" if n else ""
        raise ValueError(f"{where} is missing {missing[0]}{more} of the template.")
    extra = [path for key, path, _ in got if key not in want_keys]
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise ValueError(f"{where} has {extra[0]}{more}, which the template does not have "
                         f"(a state of another optimizer or configuration?).")
    leaves = []
    for key, path, w in want:
        _, g = got_by_key[key]
        if np.shape(w) != np.shape(g):
            raise ValueError(f"{where} has shape {tuple(np.shape(g))} at {path}, expected "
                             f"{tuple(np.shape(w))}.")
        if not _same_kind(w, g):
            raise ValueError(f"{where} has dtype {_dtype(g)} at {path}, expected {_dtype(w)}.")
        leaves.append(_restore_leaf(w, g))
    return jax.tree_util.tree_unflatten(treedef, leaves)
