"""The package type-checks: `python -m mypy` (configured in pyproject.toml) passes.

The public names are re-exported as `from m import x as x`, the form type
checkers treat as public, so users' own type checks see them.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_mypy_passes_on_the_package():
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_public_names_are_explicit_reexports():
    text = (REPO / "jaxsched" / "__init__.py").read_text()
    import jaxsched as js
    for name in dir(js):
        if name.startswith("_") or name in ("annotations",):
            continue
        obj = getattr(js, name)
        if getattr(obj, "__module__", "").startswith("jaxsched."):
            assert f"{name} as {name}" in text, f"{name} is not re-exported as `{name} as {name}`"
