"""Test configuration.

`tests/x64/` needs `jax_enable_x64`, a process-wide switch read early, so it
runs in its own process with JAX_ENABLE_X64=1 (started by
`tests/test_x64.py`). A normal run does not collect it.
"""

import os

_X64 = os.environ.get("JAX_ENABLE_X64", "").strip().lower() in ("1", "true", "yes", "on")
collect_ignore = [] if _X64 else ["x64"]


def pytest_collection_modifyitems(config, items):
    """The longest tests first, so that `-n 2` does not end with one worker alone on
    them: the float64 suite's subprocess (about two minutes) was collected last."""
    first = [i for i in items if i.path.name == "test_x64.py"]
    items[:] = first + [i for i in items if i not in first]
