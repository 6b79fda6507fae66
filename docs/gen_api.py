"""Generate docs/api.md, the API reference, from the docstrings of every public name.

    python docs/gen_api.py            # rewrite docs/api.md
    python docs/gen_api.py --check    # exit 1 if docs/api.md is out of date

The public names are `jaxsched.__all__` when it exists, otherwise every name
in `dir(jaxsched)` that does not start with "_" and is not a module. Names
are grouped by the module that defines them; a module not listed in `GROUPS`
gets a section titled from its own docstring, so new names always appear.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pathlib
import re
import sys
import typing
from types import ModuleType
from typing import Any, Sequence

HERE = pathlib.Path(__file__).resolve().parent
API_MD = HERE / "api.md"

# Module -> section title, in page order. Unlisted modules follow, alphabetically.
GROUPS: dict[str, str] = {
    "jaxsched._decays": "Schedules: TensorFlow decays",
    "jaxsched._cyclical": "Schedules: one-cycle and cyclical",
    "jaxsched._warmup": "Schedules: warmup",
    "jaxsched._combine": "Schedules: constants and combinations",
    "jaxsched._schedule": "Schedule base class and configs",
    "jaxsched._optimizers": "Optimizers",
    "jaxsched._transforms": "Gradient transformations",
    "jaxsched._hyper": "Reading hyperparameters",
    "jaxsched._plot": "Plotting and tables",
    "jaxsched._lr_finder": "Learning-rate range test",
}


def public_names(module: ModuleType) -> list[str]:
    """`module.__all__`, or its non-underscore, non-module attributes, sorted."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return sorted(n for n in dir(module)
                  if not n.startswith("_") and not inspect.ismodule(getattr(module, n)))


class _Text:
    """An annotation shown as its text (no quotes) by `inspect.Signature`."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _clean(text: str) -> str:
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def signature(name: str, obj: Any) -> str | None:
    """`name(arg: Type = default, ...) -> Return`, or None if not introspectable."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    is_class = inspect.isclass(obj)

    def ann(a: Any) -> Any:
        if a is inspect.Parameter.empty:
            return a
        if isinstance(a, str):
            return _Text(a)
        if isinstance(a, typing.ForwardRef):
            return _Text(a.__forward_arg__)
        return _Text(inspect.formatannotation(a))

    params = [p.replace(annotation=ann(p.annotation)) for p in sig.parameters.values()]
    ret = inspect.Signature.empty if is_class else ann(sig.return_annotation)
    text = str(sig.replace(parameters=params, return_annotation=ret))
    return _clean(f"{name}{text}")


def _split_example(doc: str) -> tuple[str, str]:
    """(body, example): the docstring before and from its `Example:` section."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if re.fullmatch(r"\s*Examples?:\s*", line):
            return "\n".join(lines[:i]).rstrip(), "\n".join(lines[i + 1:])
    return doc.rstrip(), ""


def _dedent(text: str) -> str:
    lines = text.splitlines()
    indents = [len(l) - len(l.lstrip()) for l in lines if l.strip()]
    cut = min(indents, default=0)
    return "\n".join(l[cut:] for l in lines).strip("\n")


def _methods(obj: type) -> list[tuple[str, str]]:
    """Public methods and properties defined on the class itself, with summaries."""
    out = []
    for attr, value in vars(obj).items():
        if attr.startswith("_") or not (callable(value) or isinstance(value, property)):
            continue
        doc = inspect.getdoc(value) or ""
        out.append((attr, doc.strip().splitlines()[0] if doc.strip() else ""))
    return out


class _Anchors:
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces to '-',
    and a repeated anchor numbered -1, -2, ... in page order."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def __call__(self, heading: str) -> str:
        base = re.sub(r"[^a-z0-9_\- ]", "", heading.lower()).replace(" ", "-")
        n = self.seen.get(base, 0)
        self.seen[base] = n + 1
        return base if n == 0 else f"{base}-{n}"


def entry(name: str, obj: Any) -> str:
    """The Markdown section of one public name."""
    parts = [f"### `{name}`", ""]
    sig = signature(name, obj)
    if sig is not None:
        parts += ["```python", sig, "```", ""]
    elif not callable(obj):
        parts += ["```python", _clean(f"{name} = {obj!r}"), "```", ""]
    doc = inspect.getdoc(obj) or ""
    if not doc.strip():
        parts += ["*(no docstring)*", ""]
        return "\n".join(parts)
    summary, _, rest = doc.strip().partition("\n")
    parts += [summary.strip(), ""]
    body, example = _split_example(rest)
    body = body.strip("\n")
    if body.strip():
        parts += ["```text", _clean(body), "```", ""]
    if inspect.isclass(obj):
        methods = _methods(obj)
        if methods:
            parts += ["Methods:", ""]
            parts += [f"- `{m}`: {summ}" if summ else f"- `{m}`" for m, summ in methods]
            parts += [""]
    if example.strip():
        parts += ["Example:", "", "```pycon", _clean(_dedent(example)), "```", ""]
    return "\n".join(parts)


def _group_title(module_name: str) -> str:
    if module_name in GROUPS:
        return GROUPS[module_name]
    try:
        doc = inspect.getdoc(importlib.import_module(module_name)) or ""
    except ImportError:
        doc = ""
    first = doc.strip().splitlines()[0].rstrip(".") if doc.strip() else module_name
    return first


def generate() -> str:
    """The full text of docs/api.md."""
    import jaxsched

    names = public_names(jaxsched)
    by_module: dict[str, list[str]] = {}
    for name in names:
        obj = getattr(jaxsched, name)
        module = getattr(obj, "__module__", None) or "jaxsched"
        if not isinstance(module, str) or not module.startswith("jaxsched"):
            module = "jaxsched"
        by_module.setdefault(module, []).append(name)
    order = [m for m in GROUPS if m in by_module]
    order += sorted(m for m in by_module if m not in GROUPS)

    anchors = _Anchors()
    anchors("API reference")
    targets: dict[str, str] = {}
    for module in order:
        anchors(_group_title(module))
        for name in by_module[module]:
            targets[name] = anchors(name)

    lines = ["# API reference", "",
             "<!-- Generated by docs/gen_api.py from the docstrings; do not edit by hand. "
             "Regenerate with `python docs/gen_api.py`. -->", "",
             f"Every public name of `jaxsched` ({len(names)} names), grouped by topic. "
             "`import jaxsched as js` is assumed; every example runs as a doctest "
             "(`tests/test_docs.py`). Formulas use `t` for the step.", ""]
    for module in order:
        title = _group_title(module)
        links = ", ".join(f"[`{n}`](#{targets[n]})" for n in by_module[module])
        lines += [f"- **{title}**: {links}"]
    lines += [""]
    for module in order:
        lines += [f"## {_group_title(module)}", ""]
        for name in by_module[module]:
            lines += [entry(name, getattr(jaxsched, name))]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if the file differs from the docstrings")
    parser.add_argument("--output", default=str(API_MD), help="where to write (docs/api.md)")
    args = parser.parse_args(argv)
    text = generate()
    path = pathlib.Path(args.output)
    if args.check:
        current = path.read_text() if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run `python docs/gen_api.py`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    path.write_text(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
