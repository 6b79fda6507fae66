"""Shared test setup.

Tests in tests/x64/ need `jax_enable_x64`, a process-wide switch read at
import; tests/test_x64.py runs them in their own process with JAX_ENABLE_X64=1,
so the normal run does not collect them.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))  # tests import `reference`

collect_ignore = ["x64"]
