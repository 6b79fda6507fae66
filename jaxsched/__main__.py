"""`python -m jaxsched` and the `jaxsched` console script (see `jaxsched._cli`)."""

from __future__ import annotations

import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `jaxsched` command line (plot, show, list); returns the exit status.

    Example:
        >>> from jaxsched.__main__ import main
        >>> main(["show", "cosine_decay(1.0, 10)", "--steps", "0,5", "--width", "3"])
        cosine_decay(learning_rate=1.0, decay_steps=10, alpha=0.0)
        step  value
           0  1
           5  0.5
        █▇▁  steps 0..5, values 0.5..1
        0
    """
    from jaxsched._cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
