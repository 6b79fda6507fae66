"""Parameter groups: other hyperparameters for some parameters, chosen by their path.

`with_groups` gives an optimizer (or a transformation) a keyword-only
`groups=` argument, a mapping from a group name to `group(pattern,
**overrides)`. Given one, the function is called once per group with the
group's overrides on top of its own arguments (and once with its own
arguments, for the parameters no group matches: the "default" group). At
`init` every parameter is given the name of its group from its path; each
group's transformation updates its parameters only, and the updates are put
back together (what `optax.partition`, formerly `multi_transform`, does).
The labels are decided at `init` and travel in the state, so an optimizer
built anew inside a jitted step (with traced hyperparameters) updates a
state built outside it.

Paths: the keys of `jax.tree_util.tree_flatten_with_path`, joined by "/":
a `DictKey` is its key (`str(key)`), a `SequenceKey` its index, a
`GetAttrKey` its attribute name and a `FlattenedIndexKey` its index; the
path of a single-array tree is "". This is `jax.tree_util.keystr(path,
simple=True, separator="/")`: `{"head": {"w": w}, "blocks": [b0, b1]}` has
paths `head/w`, `blocks/0`, `blocks/1`. A flax `nnx.Param` ends in `/value`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import warnings
from typing import Any, Callable, Mapping, NamedTuple, TypeVar, Union, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsched import _checks, _shared_groups
from jaxsched._builder import Transformation, describe, structure
from jaxsched._flat import FlatParams, Shared
from jaxsched._hyper import holds_groups

PyTree = Any
Pattern = Union[str, Callable[[str, Any], Any]]

DEFAULT = "default"  # the group of the parameters that no group matches
SHARED = "/shared"  # the label of a buffer several groups share (no group name has "/")

_KEYS = (jax.tree_util.DictKey, jax.tree_util.SequenceKey, jax.tree_util.GetAttrKey,
         jax.tree_util.FlattenedIndexKey)


# ---------------------------------------------------------------- groups

@dataclasses.dataclass(frozen=True, eq=False)
class Group:
    """What `group` returns: a pattern and the overrides of the parameters it matches."""

    pattern: Pattern
    overrides: Mapping[str, Any]
    frozen: bool = False
    must_match: bool = True

    def matches(self, owner: str, name: str, path: str, leaf: Any) -> bool:
        if isinstance(self.pattern, str):
            return re.search(self.pattern, path) is not None
        result = self.pattern(path, leaf)
        if isinstance(result, np.bool_) or (isinstance(result, jax.Array) and result.shape == ()
                                            and not isinstance(result, jax.core.Tracer)):
            result = bool(result)
        if not isinstance(result, bool):
            raise TypeError(f"`{owner}(groups=...)`: the pattern of group {name!r} must return "
                            f"a Python bool, got {type(result).__name__} {result!r} for the "
                            f"parameter at {path!r}.")
        return result

    def __repr__(self) -> str:
        parts = [repr(self.pattern)] + [f"{k}={v!r}" for k, v in self.overrides.items()]
        if self.frozen:
            parts.append("frozen=True")
        if not self.must_match:
            parts.append("must_match=False")
        return f"group({', '.join(parts)})"


def group(pattern: Pattern, *, frozen: bool = False, must_match: bool = True,
          **overrides: Any) -> Group:
    """Describe a parameter group: the parameters `pattern` matches, and their hyperparameters.

    For the `groups=` argument of every optimizer and of the transformations
    that take hyperparameters: `js.adamw(lr, groups={"head": js.group(...)})`.
    A parameter belongs to the first group (in the mapping's order) whose
    pattern matches its path; parameters no group matches use the
    optimizer's own arguments (the "default" group).

    Paths are the keys of the parameter tree joined by "/" (dict keys as
    strings, sequence indices as numbers, attribute names):
    `{"head": {"w": w}, "blocks": [b0, b1]}` has paths `head/w`, `blocks/0`,
    `blocks/1`, as `jax.tree_util.keystr(path, simple=True, separator="/")`.
    On `js.flat_params` parameters, a buffer built with
    `group=js.group_labels(groups)` belongs to the group it is labelled with;
    any other buffer's path is its key (`float32/True`).

    Args:
      pattern: a regular expression, searched (`re.search`) in each path;
        or a callable `(path, leaf) -> bool` (it is called at `init`, with
        the parameter).
      frozen: the group's updates are exactly zero and it holds no optimizer
        state; takes no overrides.
      must_match: a group that matches no parameter is a ValueError at
        `init` (a typo in a pattern would silently train the wrong
        parameters); False makes it a `UserWarning`.
      **overrides: arguments of the optimizer for this group, each a number,
        array or schedule (a schedule is called with the group's update
        count), e.g. `learning_rate=js.cosine_decay(1e-3, 10_000)`,
        `weight_decay=0.0`. Which names are accepted is checked when the
        optimizer is built.

    Returns:
      a `Group`.

    Raises:
      ValueError: for a pattern that is not a valid regular expression, or
        `frozen=True` with overrides.
      TypeError: for a pattern that is neither a string nor a callable.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.adamw(0.1, weight_decay=0.1, groups={
        ...     "no_decay": js.group(r"(bias|scale)$", weight_decay=0.0),
        ...     "head": js.group(r"^head/", learning_rate=0.01),
        ...     "frozen": js.group(r"^embed/", frozen=True)})
        >>> params = {"embed": {"w": jnp.ones(2)}, "head": {"w": jnp.ones(2)},
        ...           "body": {"w": jnp.ones(2), "bias": jnp.ones(2)}}
        >>> state = opt.init(params)
        >>> float(js.hyperparams(state)["head/learning_rate"])
        0.009999999776482582
        >>> updates, state = opt.update(params, state, params)
        >>> updates["embed"]["w"].tolist()
        [0.0, 0.0]
    """
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(f"`group(pattern=...)` must be a valid regular expression, got "
                             f"{pattern!r} ({err}).") from None
    elif not callable(pattern):
        raise TypeError(f"`group(pattern=...)` must be a regular expression (str) or a "
                        f"callable (path, leaf) -> bool, got {type(pattern).__name__} "
                        f"{pattern!r}.")
    _checks.boolean("group", "frozen", frozen)
    _checks.boolean("group", "must_match", must_match)
    if frozen and overrides:
        raise ValueError(f"`group(frozen=...)` must be False when the group overrides "
                         f"hyperparameters, got True with {', '.join(overrides)}.")
    return Group(pattern, dict(overrides), bool(frozen), bool(must_match))


def check_groups(owner: str, groups: Any) -> dict[str, Group]:
    """The `groups=` argument as a dict, its names and values checked."""
    if not isinstance(groups, Mapping):
        raise TypeError(f"`{owner}(groups=...)` must be a mapping from group names to "
                        f"js.group(...), got {type(groups).__name__} {groups!r}.")
    for name, g in groups.items():
        if not isinstance(name, str):
            raise TypeError(f"`{owner}(groups=...)` keys must be strings, got "
                            f"{type(name).__name__} {name!r}.")
        if "/" in name or not name:
            raise ValueError(f"`{owner}(groups=...)` keys must be non-empty and contain no '/' "
                             f"(it separates the group from the name in "
                             f"`hyperparams(state)`), got {name!r}.")
        if name == DEFAULT:
            raise ValueError(f"`{owner}(groups=...)` keys must not be {DEFAULT!r}, the group of "
                             f"the parameters no group matches, got {name!r}.")
        if not isinstance(g, Group):
            raise TypeError(f"`{owner}(groups=...)` values must be js.group(...), got "
                            f"{type(g).__name__} {g!r} for {name!r}.")
    return dict(groups)


# ---------------------------------------------------------------- paths and labels

def spell(owner: str, path: tuple) -> str:
    """A key path as the "/"-joined string the patterns are searched in."""
    parts = []
    for k in path:
        if isinstance(k, jax.tree_util.DictKey):
            parts.append(str(k.key))
        elif isinstance(k, jax.tree_util.SequenceKey):
            parts.append(str(k.idx))
        elif isinstance(k, jax.tree_util.GetAttrKey):
            parts.append(k.name)
        elif isinstance(k, jax.tree_util.FlattenedIndexKey):
            parts.append(str(k.key))
        else:
            raise TypeError(f"`{owner}(groups=...)` cannot spell the path "
                            f"{jax.tree_util.keystr(path)} of a parameter: its key {k!r} is a "
                            f"{type(k).__name__}, not one of DictKey, SequenceKey, GetAttrKey, "
                            f"FlattenedIndexKey (register the node with "
                            f"jax.tree_util.register_pytree_with_keys).")
    return "/".join(parts)


_NO_LABEL = object()


def _children(node: Any) -> list:
    """A FlatParams's children (buffers, or labels) with their keys, empty ones included."""
    return jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)[0]


def _items(owner: str, tree: PyTree) -> list[tuple[str, Any, Any]]:
    """(path, leaf, FlatParams buffer label or _NO_LABEL) of every leaf, in tree order."""
    out: list[tuple[str, Any, Any]] = []
    nodes = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=lambda x: isinstance(x, FlatParams))[0]
    for path, node in nodes:
        if not isinstance(node, FlatParams):
            out.append((spell(owner, path), node, _NO_LABEL))
            continue
        labels = [label for _, label in _children(node.labels())]
        for (key, buffer), label in zip(_children(node), labels):
            if jax.tree.leaves(buffer):  # a buffer, not an empty node
                out.append((spell(owner, path + key), buffer, label))
    return out


def labels_of(owner: str, groups: Mapping[str, Group], tree: PyTree) -> list[str]:
    """The group name of every leaf of `tree`, in order; checks every group matches."""
    items = _items(owner, tree)
    labels = []
    shared: set = set()
    for path, leaf, buffer_label in items:
        if isinstance(buffer_label, Shared):
            names = [segment[0] for segment in buffer_label.segments]
            unknown = [n for n in names if not (isinstance(n, str) and (n in groups or n == DEFAULT))]
            if unknown:
                raise ValueError(f"`{owner}(groups=...)`: the flat buffer {path!r} is shared by "
                                 f"the labels {names}, of which {unknown} name no group; build it "
                                 f"with `flat_params(tree, group=js.group_labels(groups), "
                                 f"share=True)`.")
            shared.update(names)
            labels.append(SHARED)
            continue
        if isinstance(buffer_label, str) and (buffer_label in groups or buffer_label == DEFAULT):
            labels.append(buffer_label)
            continue
        for name, g in groups.items():
            if g.matches(owner, name, path, leaf):
                labels.append(name)
                break
        else:
            labels.append(DEFAULT)
    used = set(labels) | shared
    for name, g in groups.items():
        if name in used:
            continue
        paths = ", ".join(repr(p) for p, _, _ in items[:8]) + (", ..." if len(items) > 8 else "")
        message = (f"`{owner}(groups=...)`: group {name!r} ({g!r}) matches no parameter; "
                   f"the parameter paths are {paths or 'none'}.")
        if g.must_match:
            raise ValueError(message + " Pass must_match=False to js.group to allow it.")
        warnings.warn(message, UserWarning, stacklevel=3)
    return labels


def group_labels(groups: Mapping[str, Group]) -> Callable[[PyTree], PyTree]:
    """A function giving each parameter the name of its group, "default" where none matches.

    Its result is a tree like the parameters holding group names: the
    `group=` of `js.flat_params` (one buffer per group and dtype, so that the
    grouped optimizer updates each group as one array; with `share=True`
    one buffer per dtype for all trainable groups, updated in one pass, and
    one per frozen group) or the `param_labels` of `optax.multi_transform`.

    labels(tree)[path] = the first group whose pattern matches path, else "default"

    Args:
      groups: the mapping given to the optimizer's `groups=`.

    Returns:
      a function of the parameter tree.

    Raises:
      ValueError: (when called) for a group that matches no parameter,
        unless it was made with `must_match=False`.

    Example:
        >>> import jax, jax.numpy as jnp, jaxsched as js
        >>> groups = {"head": js.group(r"^head/", learning_rate=0.01)}
        >>> tree = {"body": {"w": jnp.ones(3)}, "head": {"w": jnp.ones(2)}}
        >>> js.group_labels(groups)(tree)
        {'body': {'w': 'default'}, 'head': {'w': 'head'}}
        >>> flat = js.flat_params(tree, group=js.group_labels(groups))
        >>> state = js.adam(0.1, groups=groups).init(flat)  # each group updates one buffer
        >>> [m.shape for m in jax.tree.leaves(state.groups["head"][0].mu)]
        [(2,)]
    """
    checked = check_groups("group_labels", groups)

    def labels(tree: PyTree) -> PyTree:
        return structure(tree).unflatten(labels_of("group_labels", checked, tree))

    # `flat_params(share=True)` keeps the frozen groups in buffers of their own.
    labels.separate = frozenset(name for name, g in checked.items() if g.frozen)  # type: ignore[attr-defined]
    return labels


# ---------------------------------------------------------------- the grouped transformation

def _shared_views(state: Any) -> list:
    shared = state.shared
    if not isinstance(shared, _shared_groups.SharedState):
        return []
    return [(name, tuple(_shared_groups.pick(s, g) for s in shared.states))
            for g, name in enumerate(shared.names)]


@holds_groups("groups", unprefixed=DEFAULT, more=_shared_views)
class GroupsState(NamedTuple):
    """State of an optimizer with parameter groups (`groups=`).

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.sgd(0.1, groups={"b": js.group("b", frozen=True)})
        >>> state = opt.init({"w": jnp.ones(2), "b": jnp.ones(2)})
        >>> state.groups["b"], state.labels
        ((), {'b': {'b': None}, 'w': {'default': None}})
    """

    groups: dict  # {group name: the group's state ("default": unmatched parameters; frozen: ())}
    reset: dict  # {group name: bool []}: re-initialise the group at its next update
    #              (the groups sharing a flat buffer have their marks in `shared`)
    labels: Any  # like the parameters, each leaf replaced by {group name: None}: no arrays
    shared: Any = ()  # the state of the groups sharing flat buffers (`_shared_groups`)


def _part(treedef: Any, leaves: list, members: list[int]) -> PyTree:
    """The tree with the leaves not in `members` replaced by `optax.MaskedNode()`."""
    chosen = set(members)
    return treedef.unflatten([x if i in chosen else optax.MaskedNode()
                              for i, x in enumerate(leaves)])


def _restricted(mask: Any) -> Any:
    """A mask of the whole tree (or a function of it) for one group's part of the tree."""
    if mask is None or callable(mask):
        return mask

    def restrict(part: PyTree) -> PyTree:
        masked = lambda x: isinstance(x, optax.MaskedNode)  # noqa: E731
        return jax.tree.map(lambda p, m: p if masked(p) else m, part, mask, is_leaf=masked)

    return restrict


def _reinitialised(tx: Transformation, inner: Any, fresh: jax.Array, like: PyTree) -> Any:
    """`inner`, or where `fresh` is True, `tx`'s initial state (elementwise selects, which
    XLA fuses into the update)."""
    new = tx.init(like)
    return jax.tree.map(lambda n, o: jnp.where(fresh, jnp.asarray(n, jnp.result_type(o)), o),
                        new, inner)


def combine(owner: str, transforms: Mapping[str, Transformation | None],
            groups: Mapping[str, Group]) -> Transformation:
    """One transformation updating each group's parameters with its own transformation.

    `transforms` maps every group name, and "default", to its transformation
    (None for a frozen group).
    """

    def shared_leaves(tree: PyTree, labels: list) -> list[tuple[int, tuple]]:
        """(position, segments) of each shared buffer of `tree`."""
        return [(i, buffer_label.segments) for i, ((_, _, buffer_label), label)
                in enumerate(zip(_items(owner, tree), labels)) if label == SHARED]

    def leaf_infos(shared: list, names: tuple) -> list:
        return [_shared_groups.Leaf(i, tuple(names.index(n) for n, _, _ in segments),
                                    tuple(start for _, start, _ in segments))
                for i, segments in shared]

    def init_shared(labels: list, leaves: list, params: PyTree) -> Any:
        """The state of the groups sharing buffers (() if none do); refuses what they cannot do."""
        if SHARED not in labels:
            return ()
        shared = shared_leaves(params, labels)
        present = {n for _, segments in shared for n, _, _ in segments}
        frozen = [n for n in present if transforms[n] is None]
        if frozen:
            raise ValueError(f"`{owner}(groups=...)`: the frozen group {frozen[0]!r} shares a "
                             f"flat buffer; build it with `flat_params(tree, "
                             f"group=js.group_labels(groups), share=True)`, which keeps frozen "
                             f"groups apart, so that they hold no state.")
        apart = sorted({lab for lab in labels if lab in present})
        if apart:
            raise ValueError(f"`{owner}(groups=...)`: group {apart[0]!r} has parameters both in "
                             f"a shared flat buffer and outside it; put all of its parameters "
                             f"in the `flat_params(..., share=True)` buffers.")
        names = tuple(n for n in transforms if n in present)
        try:
            per_group = [_shared_groups.specs_of(transforms[n]) for n in names]
            _shared_groups.check_specs(names, per_group)
            members = [leaves[i] for i, _ in shared]
            state = _shared_groups.init(names, per_group, members)
            infos = leaf_infos(shared, names)  # a trial update, traced only
            jax.eval_shape(lambda st, m: _shared_groups.update(owner, per_group, st, m, m, infos),
                           state, members)
        except _shared_groups.NotShareable as err:
            raise ValueError(f"`{owner}(groups=...)`: the groups {', '.join(map(repr, names))} "
                             f"cannot share a flat buffer exactly: {err}. Build the parameters "
                             f"with one buffer per group (`flat_params(tree, "
                             f"group=js.group_labels(groups))`, share=False).") from None
        return state

    def init(params: PyTree) -> GroupsState:
        labels = labels_of(owner, groups, params)
        treedef = structure(params)
        leaves = treedef.flatten_up_to(params)
        shared = init_shared(labels, leaves, params)
        in_shared = set(shared.names) if shared else set()
        states: dict = {}
        for name, tx in transforms.items():
            members = [i for i, label in enumerate(labels) if label == name]
            states[name] = (() if tx is None or name in in_shared
                            else tx.init(_part(treedef, leaves, members)))
        reset = {name: jnp.zeros([], jnp.bool_) for name, tx in transforms.items()
                 if tx is not None and name not in in_shared}  # shared ones: in `shared`
        return GroupsState(states, reset, treedef.unflatten([{lab: None} for lab in labels]),
                           shared)

    def update(updates: PyTree, state: GroupsState, params: PyTree = None, **extra_args: Any):
        treedef = structure(updates)
        try:
            marks = treedef.flatten_up_to(state.labels)
        except (ValueError, TypeError):
            marks = None
        if marks is None or not all(isinstance(m, dict) and len(m) == 1 for m in marks):
            raise ValueError(f"`{owner}`: the tree passed to update does not match the one "
                             f"given to init (whose group labels the state holds).")
        if set(state.groups) != set(transforms):
            raise ValueError(f"`{owner}`: the state has the groups {', '.join(state.groups)}, "
                             f"this optimizer {', '.join(transforms)}: build both with the "
                             f"same `groups=`.")
        labels = [next(iter(m)) for m in marks]
        leaves = treedef.flatten_up_to(updates)
        param_leaves = None if params is None else treedef.flatten_up_to(params)
        out = list(leaves)
        new_states: dict = {}
        shared = state.shared
        in_shared = set(shared.names) if shared else set()
        if shared:
            infos = leaf_infos(shared_leaves(updates, labels), shared.names)
            per_group = [_shared_groups.specs_of(transforms[n]) for n in shared.names]
            u, shared = _shared_groups.update(
                owner, per_group, shared, [leaves[info.position] for info in infos],
                None if param_leaves is None else [param_leaves[info.position] for info in infos],
                infos)
            for info, x in zip(infos, u):
                out[info.position] = x
        for name, tx in transforms.items():
            members = [i for i, label in enumerate(labels) if label == name]
            if name in in_shared:
                new_states[name] = ()
                continue
            if tx is None:
                for i in members:
                    out[i] = jnp.zeros_like(leaves[i])
                new_states[name] = state.groups[name]
                continue
            u_part = _part(treedef, leaves, members)
            p_part = None if param_leaves is None else _part(treedef, param_leaves, members)
            inner = _reinitialised(tx, state.groups[name], state.reset[name],
                                   u_part if p_part is None else p_part)
            u, new_states[name] = tx.update(u_part, inner, p_part, **extra_args)
            for i, x in zip(members, jax.tree.leaves(u)):
                out[i] = x
        reset = {name: jnp.zeros_like(flag) for name, flag in state.reset.items()}
        return treedef.unflatten(out), GroupsState(new_states, reset, state.labels, shared)

    active = [tx for tx in transforms.values() if tx is not None]
    return describe(optax.GradientTransformationExtraArgs(init, update), name=owner,
                    needs_params=any(getattr(tx, "needs_params", True) for tx in active),
                    per_array=any(getattr(tx, "per_array", False) for tx in active))


def reset_group(opt_state: Any, name: str) -> Any:
    """Re-initialise one parameter group's optimizer state (its count included).

    Every grouped optimizer state inside `opt_state` (also in `optax.chain`,
    `optax.MultiSteps`, flax's `TrainState`) that has the group `name` marks
    it; the group's next update starts from the state `init` gives (count 0,
    so its schedules restart, moments as at init), exactly as a new optimizer
    would, and the other groups go on undisturbed. (Like PyTorch, which
    re-creates a parameter's state when it is next updated: the marked state
    still holds the old arrays until then.) The mark is an array, so a
    jitted train step does not recompile. "default" names the parameters no
    group matches; a frozen group has no state and is left as it is.

    Args:
      opt_state: an optimizer state.
      name: the group's name.

    Returns:
      `opt_state` with the group marked for re-initialisation.

    Raises:
      ValueError: if no grouped state in `opt_state` has a group `name`.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.adam(0.1, groups={"head": js.group("head")})
        >>> params = {"head": jnp.zeros(1), "body": jnp.zeros(1)}
        >>> state = opt.init(params)
        >>> for _ in range(3):
        ...     _, state = opt.update({"head": jnp.ones(1), "body": jnp.ones(1)}, state)
        >>> state = js.reset_group(state, "head")
        >>> _, state = opt.update({"head": jnp.ones(1), "body": jnp.ones(1)}, state)
        >>> int(state.groups["head"][0].count), int(state.groups["default"][0].count)
        (1, 4)
    """
    found: list[tuple[str, ...]] = []

    def mark(x: Any) -> Any:
        if not isinstance(x, GroupsState):
            return x
        found.append(tuple(x.groups))
        if isinstance(x.shared, _shared_groups.SharedState) and name in x.shared.names:
            return x._replace(shared=_shared_groups.reset(x.shared, name))
        if name not in x.reset:
            return x
        return x._replace(reset={**x.reset, name: jnp.ones_like(x.reset[name])})

    out = jax.tree.map(mark, opt_state, is_leaf=lambda x: isinstance(x, GroupsState))
    if not any(name in names for names in found):
        have = ", ".join(sorted({n for names in found for n in names}))
        raise ValueError(f"`reset_group(name=...)` must name a parameter group of the state, "
                         f"got {name!r}; " + (f"its groups are {have}." if found else
                                              "the state has no parameter groups."))
    return out


# ---------------------------------------------------------------- the decorator

F = TypeVar("F", bound=Callable[..., Any])


def with_groups(fn: F | None = None, *, tree_arguments: tuple[str, ...] = ("mask",)) -> Any:
    """Give a transformation-building function a keyword-only `groups=` argument.

    With `groups=None` the function is called as it is. With groups, it is
    called once with its own arguments (the "default" group) and once per
    group that is not frozen, with the group's overrides replacing those
    arguments (under `_checks.in_group`, so errors name the group); the
    results are combined by `combine`. Overrides may name any argument of
    the function; `tree_arguments` (trees like the parameters, such as a
    weight-decay mask) are restricted to each group's part of the tree.
    """
    if fn is None:
        return functools.partial(with_groups, tree_arguments=tree_arguments)
    sig = inspect.signature(fn)
    owner = fn.__name__
    accepted = [p.name for p in sig.parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    def build(args: tuple, kwargs: dict, groups: Any) -> Transformation:
        checked = check_groups(owner, groups)
        for name, g in checked.items():
            unknown = [k for k in g.overrides if k not in accepted]
            if unknown:
                raise ValueError(f"`{owner}(groups=...)`: group {name!r} overrides "
                                 f"{', '.join(unknown)}, which {owner} does not take; {owner} "
                                 f"accepts {', '.join(accepted)}.")
        base = sig.bind(*args, **kwargs).arguments

        def make(name: str | None, overrides: Mapping[str, Any]) -> Transformation:
            arguments = {**base, **overrides}
            for t in tree_arguments:
                if t in arguments:
                    arguments[t] = _restricted(arguments[t])
            with _checks.in_group(name):
                return optax.with_extra_args_support(fn(**arguments))

        transforms: dict[str, Transformation | None] = {DEFAULT: make(None, {})}
        for name, g in checked.items():
            transforms[name] = None if g.frozen else make(name, g.overrides)
        return combine(owner, transforms, checked)

    @functools.wraps(fn)
    def wrapper(*args: Any, groups: Mapping[str, Group] | None = None, **kwargs: Any) -> Any:
        if groups is None:
            return fn(*args, **kwargs)
        return build(args, kwargs, groups)

    parameter = inspect.Parameter("groups", inspect.Parameter.KEYWORD_ONLY, default=None,
                                  annotation="Mapping[str, Group] | None")
    wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[*sig.parameters.values(), parameter])
    return cast(F, wrapper)
