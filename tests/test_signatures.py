"""Signatures against optax: code ported by replacing `optax.` with `js.` keeps its meaning.

For every public jaxsched function with an optax namesake (top-level optax, or
optax.contrib), each argument jaxsched takes positionally after the first
must be optax's argument at the same position, and an argument both take
must have the same default. The differences that remain (names that differ,
keyword-only arguments optax takes positionally, and flags optax's namesake
lacks that change the algorithm) are listed here with their reason, and each
must be named in docs/migration.md.
"""

from __future__ import annotations

import inspect
import pathlib

import optax
import pytest

import jaxsched as js

MIGRATION = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "migration.md").read_text()

# (function, argument): why jaxsched differs. Each must appear in the migration guide.
KNOWN_DIFFERENCES = {
    ("scale", "factor"): "optax calls it `step_size`",
    ("scale_by_schedule", "schedule"): "optax calls it `step_size_fn`",
    ("adafactor", "min_dim_size_to_factor"): "None: optax's 128 under convention='optax', "
                                             "PyTorch's 0 under convention='pytorch'",
    ("scale_by_factored_rms", "min_dim_size_to_factor"): "as adafactor's",
    ("adafactor", "eps"): "None: optax's 1e-30 or PyTorch's machine epsilon, by convention",
    ("scale_by_factored_rms", "epsilon"): "as adafactor's eps",
    ("adopt", "clip_value_fn"): "None stands for optax's default k**0.25",
    ("scale_by_adopt", "clip_value_fn"): "as adopt's",
    ("muon", "eps"): "PyTorch's Muon default 1e-7 (optax.contrib.muon: 1e-8)",
    ("scale_by_muon", "eps"): "as muon's",
    ("schedule_free_adamw", "warmup_steps"): "0 where optax says None: no warmup either way",
    ("schedule_free_sgd", "warmup_steps"): "as schedule_free_adamw's",
    ("schedule_free_adamw", "weight_decay"): "None where optax says 0.0: no decay either way",
    ("muon", "weight_decay"): "PyTorch's Muon default 0.1 (optax.contrib.muon: 0.0)",
    ("muon", "adam_weight_decay"): "PyTorch AdamW's default 0.01 for the non-matrix leaves",
    ("monitor", "inner"): "a different function from optax.monitor(measures)",
    ("adam", "amsgrad"): "keyword-only bool, not in optax.adam: PyTorch's Adam(amsgrad=True) "
                         "(optax.amsgrad keeps the maximum of the bias-corrected v)",
    ("adamw", "amsgrad"): "as adam's: PyTorch's AdamW(amsgrad=True)",
    ("scale_by_adam", "amsgrad"): "as adam's",
}


def _namesake(name: str):
    for module in (optax, optax.contrib):
        fn = getattr(module, name, None)
        if callable(fn) and not isinstance(fn, type):
            return fn
    return None


def _functions():
    out = []
    for name in sorted(dir(js)):
        obj = getattr(js, name)
        if name.startswith("_") or isinstance(obj, type) or not inspect.isfunction(obj):
            continue
        theirs = _namesake(name)
        if theirs is not None:
            out.append((name, obj, theirs))
    return out


FUNCTIONS = _functions()
POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def test_the_comparison_covers_the_optimizers_and_primitives():
    names = {n for n, _, _ in FUNCTIONS}
    assert {"sgd", "adam", "adamw", "rmsprop", "adagrad", "scale_by_adam", "scale_by_rms",
            "trace", "ema", "clip", "clip_by_global_norm", "add_decayed_weights",
            "scale_by_learning_rate", "chain", "reduce_on_plateau"} <= names


@pytest.mark.parametrize("name,ours,theirs", FUNCTIONS, ids=[n for n, _, _ in FUNCTIONS])
def test_positional_order_and_defaults_match_optax(name, ours, theirs):
    mine = list(inspect.signature(ours).parameters.values())
    other = list(inspect.signature(theirs).parameters.values())
    other_positional = [p for p in other if p.kind in POSITIONAL]
    for i, p in enumerate(mine):
        if p.kind not in POSITIONAL or i == 0:
            continue  # keyword-only arguments cannot be confused; the first is checked below
        assert i < len(other_positional) and other_positional[i].name == p.name, (
            f"js.{name}: positional argument {i} is {p.name!r}, optax's is "
            f"{other_positional[i].name if i < len(other_positional) else None!r}; make it "
            f"keyword-only or follow optax's order")
    other_by_name = {p.name: p for p in other}
    for p in mine:
        q = other_by_name.get(p.name)
        if q is None or p.default is inspect.Parameter.empty:
            continue
        if q.default is inspect.Parameter.empty:
            continue
        assert p.default == q.default or (name, p.name) in KNOWN_DIFFERENCES, (
            f"js.{name}({p.name}=...) defaults to {p.default!r}, optax's to {q.default!r}")
    if mine and mine[0].kind in POSITIONAL and other and mine[0].name != other[0].name:
        assert (name, mine[0].name) in KNOWN_DIFFERENCES, (
            f"js.{name}'s first argument is {mine[0].name!r}, optax's {other[0].name!r}")


@pytest.mark.parametrize("key", sorted(KNOWN_DIFFERENCES), ids=lambda k: f"{k[0]}.{k[1]}")
def test_every_known_difference_is_in_the_migration_guide(key):
    name, arg = key
    assert f"`{name}`" in MIGRATION and f"`{arg}`" in MIGRATION, (
        f"docs/migration.md must explain js.{name}({arg}=...): {KNOWN_DIFFERENCES[key]}")


def test_known_differences_are_still_differences():
    for name, arg in KNOWN_DIFFERENCES:
        ours = set(inspect.signature(getattr(js, name)).parameters)
        assert arg in ours, f"js.{name} no longer has {arg!r}; remove it from KNOWN_DIFFERENCES"
