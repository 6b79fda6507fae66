"""Parameters held as a few flat buffers: an optimizer update whose cost does not grow with the number of arrays.

On XLA:CPU every array an update reads or writes costs a kernel and compile
time, so a tree of thousands of small arrays updates many times slower than
the same parameters in one array, whatever the optimizer does. `FlatParams`
stores the tree as one flat buffer per dtype (and per group label); the
model reads the arrays as views through `unflatten()`, whose gradient is one
concatenation per buffer. `jax.grad` with respect to a `FlatParams` therefore
returns a `FlatParams` of flat gradients, and every optimizer, jaxsched's or
optax's, updates a handful of buffers.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsched import _checks
from jaxsched._builder import structure

PyTree = Any


class _Fields(NamedTuple):
    treedef: Any
    shapes: tuple  # per leaf
    places: tuple  # per leaf: (buffer index, offset)
    sizes: tuple  # per buffer: elements used (the tail up to the padded size is zero)
    padded: tuple  # per buffer: allocated elements
    dtypes: tuple  # per buffer: dtype name
    labels: tuple  # per buffer: the group label


class _Layout:
    """Where every leaf lives: the static part of a `FlatParams` pytree.

    Interned, so that equal layouts are one object: `jit` hashes and compares
    it on every call, and comparing thousands of shapes each time would cost
    more than the update.
    """

    _interned: dict = {}
    fields: _Fields

    def __new__(cls, fields: _Fields):
        layout = cls._interned.get(fields)
        if layout is None:
            layout = super().__new__(cls)
            layout.fields = fields
            cls._interned[fields] = layout
        return layout

    def __getattr__(self, name):
        return getattr(self.__dict__["fields"], name)

    def __reduce__(self):
        return _Layout, (self.fields,)


def _views(layout: _Layout, buffers: tuple) -> list:
    leaves = []
    for shape, (b, offset) in zip(layout.shapes, layout.places):
        size = math.prod(shape)
        leaves.append(jax.lax.slice_in_dim(buffers[b], offset, offset + size).reshape(shape))
    return leaves


def _concat(layout: _Layout, leaves: list) -> tuple:
    parts: list = [[] for _ in layout.sizes]
    for leaf, (b, _) in zip(leaves, layout.places):
        parts[b].append(jnp.ravel(leaf).astype(layout.dtypes[b]))
    buffers = []
    for b, pieces in enumerate(parts):
        tail = layout.padded[b] - layout.sizes[b]
        if tail:
            pieces.append(jnp.zeros((tail,), layout.dtypes[b]))
        buffers.append(pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces))
    return tuple(buffers)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _unflatten(layout: _Layout, buffers: tuple) -> list:
    return _views(layout, buffers)


def _unflatten_fwd(layout, buffers):
    return _views(layout, buffers), None


def _unflatten_bwd(layout, _, cotangents):
    return (_concat(layout, list(cotangents)),)


_unflatten.defvjp(_unflatten_fwd, _unflatten_bwd)


@jax.tree_util.register_pytree_with_keys_class
class FlatParams:
    """A parameter tree stored as one flat buffer per dtype and group.

    A pytree whose leaves are the buffers, so `jax.grad`, `jax.jit`, optimizer
    states, checkpoints and sharding see a few arrays. Build one with
    `flat_params`; read the original tree with `unflatten()`.

    Example:
        >>> import jax, jax.numpy as jnp, jaxsched as js
        >>> flat = js.flat_params({"w": jnp.ones((2, 3)), "b": jnp.zeros(3)})
        >>> [x.shape for x in jax.tree.leaves(flat)]
        [(9,)]
        >>> grads = jax.grad(lambda f: jnp.sum(f.unflatten()["w"] ** 2))(flat)
        >>> grads.unflatten()["w"].tolist()
        [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]
    """

    __slots__ = ("buffers", "layout")

    def __init__(self, buffers: tuple, layout: _Layout):
        self.buffers = tuple(buffers)
        self.layout = layout

    def tree_flatten(self):
        return self.buffers, self.layout

    def tree_flatten_with_keys(self):
        """Each buffer keyed by its dtype and label, e.g. `['float32/True']`."""
        keys = [jax.tree_util.DictKey(d if label is None else f"{d}/{label}")
                for d, label in zip(self.layout.dtypes, self.layout.labels)]
        return list(zip(keys, self.buffers)), self.layout

    @classmethod
    def tree_unflatten(cls, layout, buffers):
        return cls(buffers, layout)

    def unflatten(self) -> PyTree:
        """The parameter tree, as views of the buffers.

        Under `jit` the views cost nothing; the gradient flows back into the
        buffers as one concatenation per buffer.
        """
        leaves = _unflatten(self.layout, self.buffers)
        return jax.tree.unflatten(self.layout.treedef, leaves)

    def __contains__(self, key) -> bool:
        """`key in flat` is `key in flat.unflatten()`, without building the views."""
        skeleton = jax.tree.unflatten(self.layout.treedef, [0] * len(self.layout.shapes))
        return isinstance(skeleton, Mapping) and key in skeleton

    def labels(self) -> "FlatParams":
        """A `FlatParams` holding each buffer's group label in place of the buffer.

        With boolean groups it is the mask to pass to `add_decayed_weights`
        or `adamw`: `js.adamw(lr, mask=flat.labels())`.
        """
        return FlatParams(self.layout.labels, self.layout)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{d}[{n}]" for d, n in zip(self.layout.dtypes, self.layout.sizes))
        return f"FlatParams({len(self.layout.shapes)} arrays in {sizes})"


def _hashable_label(label: Any, path: tuple) -> Any:
    """A group label as a dict key: scalar arrays (`x.ndim > 1` on a jnp array) become Python values."""
    if isinstance(label, (np.ndarray, np.generic, jax.Array)) and np.size(label) == 1:
        try:
            label = np.asarray(label).item()
        except jax.errors.ConcretizationTypeError:
            raise TypeError(f"`flat_params(group=...)` labels must be concrete, got a traced "
                            f"value at {jax.tree_util.keystr(path)}.") from None
    try:
        hash(label)
    except TypeError:
        raise TypeError(f"`flat_params(group=...)` labels must be hashable, got "
                        f"{type(label).__name__} at {jax.tree_util.keystr(path)}.") from None
    return label


def flat_params(tree: PyTree, group: PyTree | Callable | None = None,
                multiple_of: int = 1) -> FlatParams:
    """Store a parameter tree as one flat buffer per dtype and group label.

    buffer[d, label] = concatenate(ravel(x) for x in leaves with dtype d and that label)

    Use it when a model has many small arrays: the optimizer then updates a
    few buffers instead of every array (see benchmarks/update.py for when it
    pays). Elementwise transformations and global-norm clipping give the same
    numbers as on the tree; a per-array transformation (`clip_by_norm`) sees
    a whole buffer as one array. Donate the buffers to the jitted train step
    (`donate_argnums`), so that they update in place.

    Args:
      tree: the parameters, a pytree of floating-point arrays (`None` leaves
        and empty subtrees are kept in the structure).
      group: optional labels, a pytree like `tree` of hashable values (or a
        function of `tree` returning one); arrays with different labels go
        to different buffers. Boolean labels make `FlatParams.labels()` a
        weight-decay mask.
      multiple_of: pad every buffer with zeros to a multiple of this size,
        an int >= 1 (the number of devices, to shard the buffers evenly).

    Returns:
      a `FlatParams`.

    Raises:
      TypeError: if a leaf is not a floating-point array, or `group` has not
        the structure of `tree`.
      ValueError: if `multiple_of` is < 1.

    Example:
        >>> import jax, jax.numpy as jnp, jaxsched as js
        >>> tree = {"w": jnp.ones((4, 4)), "b": jnp.zeros(4)}
        >>> flat = js.flat_params(tree, group={"w": True, "b": False}, multiple_of=8)
        >>> flat
        FlatParams(2 arrays in float32[4], float32[16])
        >>> opt = js.adamw(1e-3, mask=flat.labels())  # decay "w" only
        >>> [m.shape for m in jax.tree.leaves(opt.init(flat)[0].mu)]
        [(8,), (16,)]
    """
    _checks.integer("flat_params", "multiple_of", multiple_of, lo=1)
    if isinstance(tree, FlatParams):
        raise TypeError("`flat_params(tree=...)` is already a FlatParams.")
    path_leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    leaves = [x for _, x in path_leaves]
    if group is None:
        labels = [None] * len(leaves)
    else:
        group_tree = group(tree) if callable(group) else group
        labels, group_def = jax.tree_util.tree_flatten(group_tree)
        if structure(group_tree) != treedef:
            raise TypeError(f"`flat_params(group=...)` must have the structure of the "
                            f"parameters, got {group_def} for {treedef}.")
    keys: dict = {}
    places, shapes, counts = [], [], []
    for (path, leaf), label in zip(path_leaves, labels):
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(f"`flat_params(tree=...)` holds only floating-point arrays, got "
                            f"{dtype} at {jax.tree_util.keystr(path)}.")
        label = _hashable_label(label, path)
        key = (str(dtype), label)
        if key not in keys:
            keys[key] = len(keys)
            counts.append(0)
        b = keys[key]
        shape = tuple(np.shape(leaf))
        places.append((b, counts[b]))
        shapes.append(shape)
        counts[b] += math.prod(shape)
    padded = tuple(-(-n // multiple_of) * multiple_of for n in counts)
    layout = _Layout(_Fields(treedef, tuple(shapes), tuple(places), tuple(counts), padded,
                             tuple(k[0] for k in keys), tuple(k[1] for k in keys)))
    return FlatParams(_concat(layout, leaves), layout)
