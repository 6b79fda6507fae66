"""One flat-buffer layer: parameters, gradients and state held as a few flat buffers.

On XLA:CPU every array an update reads or writes costs a kernel and compile
time, so a tree of thousands of small arrays updates many times slower than
the same parameters in one array, whatever the optimizer does. A `Layout`
places every array of a tree in one of a few buffers (one per dtype, group
label and sharding); `FlatParams` holds the buffers and reads the arrays
back as views through `unflatten()`, whose gradient is one concatenation per
buffer. `jax.grad` with respect to a `FlatParams` therefore returns a
`FlatParams` of flat gradients, and every optimizer updates a handful of
buffers. `fuse` runs a transformation on the same layout for code that keeps
its parameters as a tree.

A flat buffer is a layout, not a new algorithm: elementwise formulas run on
it unchanged, and a jaxsched transformation that reduces per array (a norm,
a trust ratio) reduces per original array on it (`_builder` asks the layout
for segment sums, or runs the formula on each array's view). A sharded
array (not fully replicated) keeps a buffer of its own, in its own shape and
sharding.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxsched import _checks

PyTree = Any


class _Fields(NamedTuple):
    treedef: Any
    shapes: tuple  # per leaf
    places: tuple  # per leaf: (buffer index, offset)
    sizes: tuple  # per buffer: elements used, alignment gaps included
    padded: tuple  # per buffer: allocated elements (the tail after `sizes` is padding)
    dtypes: tuple  # per buffer: dtype name
    labels: tuple  # per buffer: the group label
    whole: tuple  # per buffer: True if it is one array kept in its own shape (no copy)
    align: int  # every array starts at a multiple of this many elements


class Layout:
    """Where every leaf of a tree lives: the static part of a `FlatParams` pytree.

    Interned, so that equal layouts are one object: `jit` hashes and compares
    it on every call, and comparing thousands of shapes each time would cost
    more than the update.
    """

    _interned: dict = {}
    fields: _Fields
    _cache: dict

    def __new__(cls, fields: _Fields):
        layout = cls._interned.get(fields)
        if layout is None:
            layout = super().__new__(cls)
            layout.fields = fields
            layout._cache = {}
            cls._interned[fields] = layout
        return layout

    def __getattr__(self, name):
        return getattr(self.__dict__["fields"], name)

    def __reduce__(self):
        return Layout, (self.fields,)

    def paths(self) -> list:
        """The keystr of every leaf, in tree order."""
        skeleton = jax.tree.unflatten(self.treedef, list(range(len(self.shapes))))
        return [jax.tree_util.keystr(p) for p, _ in
                jax.tree_util.tree_flatten_with_path(skeleton)[0]]

    def concat_order(self) -> list:
        """The leaves' indices by (buffer, offset): the order they are concatenated in
        (tree order, unless groups share a buffer)."""
        if "concat_order" not in self._cache:
            self._cache["concat_order"] = sorted(range(len(self.places)),
                                                 key=lambda i: self.places[i])
        return self._cache["concat_order"]

    def segments(self, b: int) -> tuple:
        """(offset, size, shape) of every array in buffer `b`, by offset."""
        key = ("segments", b)
        if key not in self._cache:
            self._cache[key] = tuple(sorted(
                (offset, math.prod(shape), shape)
                for shape, (bb, offset) in zip(self.shapes, self.places) if bb == b))
        return self._cache[key]

    def array_sum(self, b: int) -> Callable[[jax.Array], jax.Array]:
        """For buffer `b`: x -> the sum of x over each array, at every element of it.

        The padding and alignment gaps get 0 and enter no array's sum. Where
        the buffer is a few runs of equally shaped arrays at a constant
        stride (the layers of a model, arrays of one size), each array
        pattern of a run is one reduction over a static 2-D view of the
        buffer (rows of >= 64 elements: a product with a vector of ones,
        which XLA:CPU runs as fast as the sum of one array) and the sums
        come back by broadcasting (no scatter, no gather). Otherwise, with
        arrays aligned to >= 8 elements (`flat_params(align=...)`), or all
        starting and ending at multiples of one block of >= 8 elements, the
        sums are block sums of a reshape plus a segment sum over the blocks;
        else a segment sum over the elements.
        """
        sums, spread = self.array_reduce(b)
        return lambda x: spread(sums(x))

    def array_reduce(self, b: int) -> tuple[Callable[[jax.Array], jax.Array],
                                            Callable[[jax.Array], jax.Array]]:
        """For buffer `b`: (sums, spread), `array_sum(b)` in two steps.

        `sums(x)` is a small vector holding each array's sum of x (one
        entry per array, or per block of an array; gaps and padding get
        entries of 0); `spread(c)` gives every element of the buffer its
        array's entry of `c`, any elementwise function of `sums` outputs.
        A formula of the sums alone (a trust ratio) then runs on the small
        vector, and the elements see one value per array.
        """
        if self.whole[b]:
            return jnp.sum, lambda c: c
        key = ("reduce", b)
        if key not in self._cache:
            self._cache[key] = _segment_sum_fns(self.segments(b), self.padded[b], self.align)
        return self._cache[key]


# At most this many reductions (array patterns) for the run plan, and at most
# one per 4 arrays unless there is one: more, and the block segment sum (a few
# ops whatever the number of arrays) is used. Each reduction costs compile
# time (`fuse` over 1,000 arrays of random sizes in buckets of 8 compiled
# 2.3x slower with one per array).
_MAX_RUN_COLUMNS = 32
# Longest repeating pattern of arrays looked for (arrays per model layer).
_MAX_PERIOD = 32


def _run_plan(segments: tuple, length: int) -> Optional[list]:
    """The buffer as runs of a repeating pattern of arrays, or None if that needs too many
    reductions (more than `_MAX_RUN_COLUMNS`, or more than one per 4 arrays).

    A run is (offset, rows, stride, columns): `rows` repetitions, `stride`
    elements apart, of the arrays `columns` = ((start, size), ...) relative
    to the repetition's start, so that the run is the static view
    `x[offset:offset + rows * stride].reshape(rows, stride)` and each array
    pattern a column range of it. Arrays of no elements are left out.
    """
    segs = [(o, s) for o, s, _ in segments if s > 0]
    n = len(segs)

    def next_start(i: int) -> int:
        return segs[i][0] if i < n else length

    def repeats(i: int, period: int) -> tuple:
        o = segs[i][0]
        if i + period >= n:
            return 1, next_start(i + period) - o
        stride = segs[i + period][0] - o
        pattern = [(segs[i + j][0] - o, segs[i + j][1]) for j in range(period)]
        rows = 0
        while i + (rows + 1) * period <= n:
            first = i + rows * period
            base = o + rows * stride
            if any(segs[first + j] != (base + c, size) for j, (c, size) in enumerate(pattern)):
                break
            if next_start(first + period) < base + stride:
                break
            rows += 1
        return rows, stride

    plan: list = []
    columns = 0
    i = 0
    while i < n:
        best = None  # (arrays covered, period, rows, stride)
        for period in range(1, min(_MAX_PERIOD, n - i) + 1):
            rows, stride = repeats(i, period)
            if rows >= 1 and (rows >= 2 or period == 1):
                if best is None or rows * period > best[0]:
                    best = (rows * period, period, rows, stride)
        assert best is not None  # period 1 always fits
        _, period, rows, stride = best
        o = segs[i][0]
        plan.append((o, rows, stride, tuple((segs[i + j][0] - o, segs[i + j][1])
                                            for j in range(period))))
        columns += period
        if columns > _MAX_RUN_COLUMNS:
            return None
        i += rows * period
    return plan if columns == 1 or 4 * columns <= n else None


# Row sums through a matrix-vector product with a vector of ones, in pieces of
# at most this many elements: XLA:CPU runs such a product as a loop that it
# vectorizes (it fuses a matrix-vector dot whose vector has <= 16 KiB), about
# twice as fast as its row reduction, and as fast as the sum of one array.
_ROW_PIECE = 4096
_MIN_ROW_PIECE = 64


def _row_piece(size: int) -> int | None:
    """The largest divisor of `size` in [_MIN_ROW_PIECE, _ROW_PIECE], or None."""
    for c in range(min(size, _ROW_PIECE), _MIN_ROW_PIECE - 1, -1):
        if size % c == 0:
            return c
    return None


def _row_sums(m: jax.Array) -> jax.Array:
    """The sum of every row of the matrix `m`."""
    rows, size = m.shape
    piece = _row_piece(size) if m.dtype in (jnp.float32, jnp.float64) else None
    if piece is None:
        return jnp.sum(m, axis=1)
    ones = jnp.ones((piece,), m.dtype)
    parts = jnp.dot(ones, m.reshape(rows * size // piece, piece).T,
                    precision=jax.lax.Precision.HIGHEST)
    return parts if piece == size else jnp.sum(parts.reshape(rows, size // piece), axis=1)


def _run_sum_fns(plan: list, length: int) -> tuple:
    # The sums are assembled per block of `unit` elements (every array and
    # run starts on a block) and broadcast to the elements by `spread`: the
    # consumer then reads one small vector, not a concatenation of pieces.
    unit = math.gcd(length, *(v for offset, _, stride, columns in plan
                              for v in (offset, stride, *(start for start, _ in columns))))

    def sums(x: jax.Array) -> jax.Array:
        pieces: list = []
        position = 0
        for offset, rows, stride, columns in plan:
            if offset > position:
                pieces.append(jnp.zeros(((offset - position) // unit,), x.dtype))
            view = jax.lax.slice_in_dim(x, offset, offset + rows * stride).reshape(rows, stride)
            # Each array's sum also fills the gap after it (up to the next
            # array): fewer pieces to assemble, and no array reads a gap.
            ends = [start for start, _ in columns[1:]] + [stride]
            row = [jnp.broadcast_to(_row_sums(jax.lax.slice_in_dim(view, start, start + size,
                                                                   axis=1))[:, None],
                                    (rows, (end - start) // unit))
                   for (start, size), end in zip(columns, ends)]
            whole = row[0] if len(row) == 1 else jnp.concatenate(row, axis=1)
            pieces.append(whole.reshape(rows * stride // unit))
            position = offset + rows * stride
        if length > position:
            pieces.append(jnp.zeros(((length - position) // unit,), x.dtype))
        return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces)

    def spread(blocks: jax.Array) -> jax.Array:
        return jnp.broadcast_to(blocks[:, None], (length // unit, unit)).reshape(length)

    return sums, spread


def _segment_sum_fns(segments: tuple, length: int, align: int) -> tuple:
    plan = _run_plan(segments, length)
    if plan is not None:
        return _run_sum_fns(plan, length)
    return _block_sum_fns(segments, length, align)


def _block_sum_fns(segments: tuple, length: int, align: int) -> tuple:
    n = len(segments)
    block = align if align >= 8 else 1
    if block == 1:  # arrays that all start and end at multiples of one size: its blocks
        common = math.gcd(length, *(o for o, _, _ in segments), *(o + s for o, s, _ in segments))
        block = common if common >= 8 else 1
    blocks = length // block
    ids = np.full(blocks, n, np.int32)  # gaps and padding: segment n (dropped)
    valid = np.zeros(blocks, np.int32)  # elements of the block that belong to an array
    for k, (offset, size, _) in enumerate(segments):
        first, last = offset // block, -(-(offset + size) // block)
        ids[first:last] = k
        valid[first:last] = block
        if (offset + size) % block:
            valid[last - 1] = (offset + size) % block
    ids_dev: dict = {}

    def constants() -> dict:
        if "ids" not in ids_dev:  # device constants, passed to the program as arguments
            with jax.ensure_compile_time_eval():
                ids_dev["ids"] = jnp.asarray(ids)
                ids_dev["valid"] = jnp.asarray(valid)
        return ids_dev

    def sums(x: jax.Array) -> jax.Array:
        """The sum of every array, then 0 (the gaps' segment n)."""
        seg_ids = constants()["ids"]
        if block == 1:
            return jax.ops.segment_sum(jnp.where(seg_ids < n, x, 0), seg_ids, n + 1,
                                       indices_are_sorted=True)
        xb = x.reshape(blocks, block)
        inside = jnp.arange(block, dtype=jnp.int32)[None, :] < ids_dev["valid"][:, None]
        partial = jnp.sum(jnp.where(inside, xb, 0), axis=1)
        return jax.ops.segment_sum(partial, seg_ids, n + 1, indices_are_sorted=True)

    def spread(c: jax.Array) -> jax.Array:
        per_block = c[constants()["ids"]]
        if block == 1:
            return per_block
        return jnp.broadcast_to(per_block[:, None], (blocks, block)).reshape(length)

    return sums, spread


def array_views(layout: Layout, b: int, buffer: jax.Array) -> list:
    """The view of every array of buffer `b` in `buffer`, in its shape, by offset."""
    if layout.whole[b]:
        return [buffer]
    return [jax.lax.slice_in_dim(buffer, offset, offset + size).reshape(shape)
            for offset, size, shape in layout.segments(b)]


def assemble(layout: Layout, b: int, results: list, gap_values: Optional[jax.Array],
             dtype: Any) -> jax.Array:
    """Buffer `b` from one result per array (by offset, as `array_views` gives them).

    The gaps and padding take the matching elements of `gap_values` (zeros if None).
    """
    if layout.whole[b]:
        return results[0]
    parts: list = []
    position = 0

    def gap(start: int, stop: int) -> None:
        parts.append(jnp.zeros((stop - start,), dtype) if gap_values is None
                     else gap_values[start:stop])

    for (offset, size, _), result in zip(layout.segments(b), results):
        if offset > position:
            gap(position, offset)
        parts.append(jnp.ravel(result))
        position = offset + size
    if layout.padded[b] > position:
        gap(position, layout.padded[b])
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts)


def map_arrays(layout: Layout, b: int, fn: Callable[..., tuple], args: list,
               gap_values: list) -> list:
    """Run `fn` on the view of every array of buffer `b` in each of `args`.

    `fn(*views) -> tuple of arrays shaped like the views`; the results are
    concatenated back into buffers; the gaps and padding take the matching
    element of `gap_values[j]` (a buffer, or None for zeros).
    """
    if layout.whole[b]:
        return list(fn(*args))
    views = zip(*(array_views(layout, b, a) for a in args))
    results = list(zip(*(tuple(fn(*v)) for v in views)))
    if not results:  # a buffer of padding only
        results = [() for _ in gap_values]
    return [assemble(layout, b, list(r), g, args[0].dtype) for r, g in zip(results, gap_values)]


def _views(layout: Layout, buffers: tuple) -> list:
    leaves = []
    for shape, (b, offset) in zip(layout.shapes, layout.places):
        if layout.whole[b]:
            leaves.append(buffers[b])
            continue
        size = math.prod(shape)
        leaves.append(jax.lax.slice_in_dim(buffers[b], offset, offset + size).reshape(shape))
    return leaves


def _concat(layout: Layout, leaves: list) -> tuple:
    parts: list = [[] for _ in layout.sizes]
    ends = [0] * len(layout.sizes)
    for i in layout.concat_order():
        leaf, (b, offset) = leaves[i], layout.places[i]
        if layout.whole[b]:
            parts[b].append(jnp.asarray(leaf).astype(layout.dtypes[b]))
            continue
        if offset > ends[b]:
            parts[b].append(jnp.zeros((offset - ends[b],), layout.dtypes[b]))
        parts[b].append(jnp.ravel(leaf).astype(layout.dtypes[b]))
        ends[b] = offset + math.prod(np.shape(leaf))
    buffers = []
    for b, pieces in enumerate(parts):
        if not layout.whole[b]:
            tail = layout.padded[b] - ends[b]
            if tail:
                pieces.append(jnp.zeros((tail,), layout.dtypes[b]))
        buffers.append(pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces))
    return tuple(buffers)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _unflatten(layout: Layout, buffers: tuple) -> list:
    return _views(layout, buffers)


def _unflatten_fwd(layout, buffers):
    return _views(layout, buffers), None


def _unflatten_bwd(layout, _, cotangents):
    return (_concat(layout, list(cotangents)),)


_unflatten.defvjp(_unflatten_fwd, _unflatten_bwd)


@jax.tree_util.register_pytree_with_keys_class
class FlatParams:
    """A parameter tree stored as one flat buffer per dtype, group and sharding.

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

    def __init__(self, buffers: tuple, layout: Layout):
        self.buffers = tuple(buffers)
        self.layout = layout

    def tree_flatten(self):
        return self.buffers, self.layout

    def tree_flatten_with_keys(self):
        """Each buffer keyed by its dtype and label, e.g. `['float32/True']`."""
        keys = [jax.tree_util.DictKey(d if label is None else f"{d}/{label}")
                for d, label in zip(self.layout.dtypes, self.layout.labels)]
        seen: dict = {}
        for i, k in enumerate(keys):  # buckets of one group: numbered
            n = seen.get(k.key, 0)
            seen[k.key] = n + 1
            if n:
                keys[i] = jax.tree_util.DictKey(f"{k.key}#{n}")
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


def is_flat(x: Any) -> bool:
    return isinstance(x, FlatParams)


def buffer_places(tree: PyTree) -> list:
    """For every leaf of `tree`: (layout, buffer index) if it is a FlatParams buffer, else None."""
    places: list = []
    for top in jax.tree.leaves(tree, is_leaf=is_flat):
        if isinstance(top, FlatParams):  # a buffer masked out by `optax.masked` has no leaf
            places.extend((top.layout, b) for b, buffer in enumerate(top.buffers)
                          for _ in jax.tree.leaves(buffer))
        else:
            places.append(None)
    return places


def skeleton(layout: Layout) -> PyTree:
    """The original tree with `jax.ShapeDtypeStruct` leaves (no arrays built)."""
    dtype_of = {}
    for i, (b, _) in enumerate(layout.places):
        dtype_of[i] = layout.dtypes[b]
    return jax.tree.unflatten(layout.treedef, [jax.ShapeDtypeStruct(s, dtype_of[i])
                                               for i, s in enumerate(layout.shapes)])


def _hashable_label(owner: str, label: Any, path: tuple) -> Any:
    """A group label as a dict key: scalar arrays (`x.ndim > 1` on a jnp array) become Python values."""
    if isinstance(label, (np.ndarray, np.generic, jax.Array)) and np.size(label) == 1:
        try:
            label = np.asarray(label).item()
        except jax.errors.ConcretizationTypeError:
            raise TypeError(f"`{owner}(group=...)` labels must be concrete, got a traced "
                            f"value at {jax.tree_util.keystr(path)}.") from None
    try:
        hash(label)
    except TypeError:
        raise TypeError(f"`{owner}(group=...)` labels must be hashable, got "
                        f"{type(label).__name__} at {jax.tree_util.keystr(path)}.") from None
    return label


@dataclasses.dataclass(frozen=True)
class Shared:
    """The label of a buffer several labels share: `(label, start, stop)` of each label's
    segment, in buffer order (the first starts at 0; a gap belongs to the segment before)."""

    segments: tuple

    def __str__(self) -> str:
        return "shared"


def sharding_key(leaf: Any) -> Any:
    """The sharding of a leaf placed across devices in some way other than full
    replication (it keeps a buffer of its own); None otherwise (and for tracers)."""
    sharding = getattr(leaf, "sharding", None) if isinstance(leaf, jax.Array) else None
    if sharding is None or isinstance(leaf, jax.core.Tracer):
        return None
    try:
        return None if sharding.is_fully_replicated else sharding
    except Exception:  # pragma: no cover - a sharding without the property
        return None


def build_layout(owner: str, tree: PyTree, labels: Optional[list] = None, *,
                 multiple_of: int = 1, align: int = 1, max_arrays: Optional[int] = None,
                 max_flat_size: Optional[int] = None,
                 share: Optional[Callable[[Any], bool]] = None) -> Layout:
    """Place every leaf of `tree`: the one layout of `flat_params` and `fuse`.

    Leaves with the same dtype, label and sharding share a buffer (at most
    `max_arrays` per buffer); a leaf that is sharded (not fully replicated)
    or larger than `max_flat_size` is a buffer of its own, in its own shape.
    Each array starts at a multiple of `align`; each flat buffer is padded to
    a multiple of lcm(multiple_of, align). Labels for which `share(label)`
    is True share one buffer per dtype and sharding, each label's arrays a
    contiguous segment (the buffer's label is a `Shared`).
    """
    path_leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    if labels is None:
        labels = [None] * len(path_leaves)
    labels = [_hashable_label(owner, label, path) for (path, _), label in zip(path_leaves, labels)]
    order = list(range(len(path_leaves)))
    if share is not None:  # each label's arrays together, labels in order of appearance
        rank = {label: r for r, label in reversed(list(enumerate(labels)))}
        order.sort(key=lambda i: rank[labels[i]])
    unit = math.lcm(multiple_of, align)
    keys: dict = {}  # (dtype, label, sharding) -> the open buffer's index
    segments: dict = {}  # shared buffer -> [[label, start, stop], ...]
    places: list = [None] * len(path_leaves)
    shapes: list = [None] * len(path_leaves)
    counts: list[int] = []
    members: list[int] = []
    dtypes: list = []
    buffer_labels: list = []
    whole: list = []
    for i in order:
        (path, leaf), label = path_leaves[i], labels[i]
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(f"`{owner}(tree=...)` holds only floating-point arrays, got "
                            f"{dtype} at {jax.tree_util.keystr(path)}.")
        shape = tuple(np.shape(leaf))
        size = math.prod(shape)
        sharded = sharding_key(leaf)
        alone = sharded is not None or (max_flat_size is not None and size > max_flat_size)
        shared = share is not None and not alone and share(label)
        key = (str(dtype), Shared if shared else label, sharded)
        b = None if alone else keys.get(key)
        if b is None or (max_arrays is not None and members[b] >= max_arrays):
            b = len(counts)
            counts.append(0)
            members.append(0)
            dtypes.append(str(dtype))
            buffer_labels.append(label)
            whole.append(alone)
            if not alone:
                keys[key] = b
        offset = -(-counts[b] // align) * align
        places[i] = (b, offset)
        shapes[i] = shape
        counts[b] = offset + size
        members[b] += 1
        if shared:
            runs = segments.setdefault(b, [])
            if runs and runs[-1][0] == label:
                runs[-1][2] = offset + size
            else:
                runs.append([label, offset, offset + size])
    for b, runs in segments.items():
        buffer_labels[b] = Shared(tuple((label, 0 if r == 0 else start, stop)
                                        for r, (label, start, stop) in enumerate(runs)))
    padded = tuple(n if w else -(-n // unit) * unit for n, w in zip(counts, whole))
    return Layout(_Fields(treedef, tuple(shapes), tuple(places), tuple(counts), padded,
                          tuple(dtypes), tuple(buffer_labels), tuple(whole), align))


_concat_compiled = jax.jit(_concat, static_argnums=0)


def flatten(layout: Layout, tree: PyTree) -> FlatParams:
    """`tree` (with `layout`'s structure and shapes) as a FlatParams.

    Compiled once per layout when no buffer is kept whole (op by op, each
    distinct array shape would compile its own ravel: seconds for a few
    hundred shapes); a whole buffer keeps its array and its sharding.
    """
    leaves = jax.tree.leaves(tree)
    if any(layout.whole):
        return FlatParams(_concat(layout, leaves), layout)
    return FlatParams(_concat_compiled(layout, leaves), layout)


def check_matches(owner: str, layout: Layout, tree: PyTree, what: str = "the tree") -> None:
    """ValueError naming the first path where `tree` differs from `layout`."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    got = [(jax.tree_util.keystr(p), tuple(np.shape(x))) for p, x in flat]
    want = list(zip(layout.paths(), layout.shapes))
    if got == want and jax.tree.structure(tree) == layout.treedef:
        return
    for (gp, gs), (wp, ws) in zip(got, want):
        if gp != wp:
            raise ValueError(f"`{owner}`: {what} does not match the layout: first difference at "
                             f"{gp or 'the root'} (the layout has {wp or 'the root'} there).")
        if gs != ws:
            raise ValueError(f"`{owner}`: {what} does not match the layout: {gp} has shape "
                             f"{gs}, the layout {ws}.")
    if len(got) != len(want):
        extra = got[len(want)][0] if len(got) > len(want) else want[len(got)][0]
        raise ValueError(f"`{owner}`: {what} does not match the layout: first difference at "
                         f"{extra} (only in {'the tree' if len(got) > len(want) else 'the layout'}).")
    raise ValueError(f"`{owner}`: {what} does not match the layout: structures differ "
                     f"({jax.tree.structure(tree)} vs {layout.treedef}).")


def flat_params(tree: PyTree, group: PyTree | Callable | None = None,
                multiple_of: int = 1, align: int = 1, *, share: bool = False) -> FlatParams:
    """Store a parameter tree as one flat buffer per dtype, group label and sharding.

    buffer[d, label] = concatenate(ravel(x) for x in leaves with dtype d and that label)

    Use it when a model has many small arrays: the optimizer then updates a
    few buffers instead of every array (see benchmarks/update.py for when it
    pays). Every jaxsched transformation gives the numbers it gives on the
    tree: elementwise ones and global norms run on the buffers, and per-array
    ones (`clip_by_norm`) reduce per original array. An optax transformation
    used directly on a `FlatParams` sees each buffer as one array: use only
    elementwise ones there (or `js.fuse`, which checks). An array sharded
    across devices (not fully replicated) keeps a buffer of its own, in its
    own shape and sharding. Donate the buffers to the jitted train step
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
      align: start every array at a multiple of this many elements, an int
        >= 1. Per-array reductions (`clip_by_norm`, trust ratios) over runs
        of equally shaped arrays (a model's layers) are fast at any `align`;
        for arrays with no repeating pattern, 64 makes them faster (block
        sums of 64 elements), at the cost of up to `align - 1` zeros per
        array.
      share: (with `group`) the labels share one buffer per dtype, each
        label's arrays a contiguous segment, so that an optimizer with
        parameter groups updates all of them in one pass over the buffer
        (`group=js.group_labels(groups)`; the labels of frozen groups keep
        buffers of their own, which hold no optimizer state). Keyword-only.

    Returns:
      a `FlatParams`.

    Raises:
      TypeError: if a leaf is not a floating-point array, or `group` has not
        the structure of `tree`.
      ValueError: if `multiple_of` or `align` is < 1, or `share` is True
        without `group`.

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
    _checks.integer("flat_params", "align", align, lo=1)
    _checks.boolean("flat_params", "share", share)
    if share and group is None:
        raise ValueError("`flat_params(share=...)` must be False without `group=`, got True.")
    if isinstance(tree, FlatParams):
        raise TypeError("`flat_params(tree=...)` is already a FlatParams.")
    treedef: Any = jax.tree.structure(tree)
    labels = None
    if group is not None:
        group_tree = group(tree) if callable(group) else group
        labels, group_def = jax.tree_util.tree_flatten(group_tree)
        group_structure: Any = jax.tree.structure(group_tree)
        if group_structure != treedef:
            raise TypeError(f"`flat_params(group=...)` must have the structure of the "
                            f"parameters, got {group_def} for {treedef}.")
    separate = frozenset(getattr(group, "separate", ())) if share else frozenset()
    layout = build_layout("flat_params", tree, labels, multiple_of=multiple_of, align=align,
                          share=(lambda label: label not in separate) if share else None)
    return flatten(layout, tree)
