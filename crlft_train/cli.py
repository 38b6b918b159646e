"""`crlft-train` entry point.

The trainer is not built yet: it lands with the `tokenize` contract it consumes. Until then the
command says so plainly instead of pretending to train.
"""

from __future__ import annotations

import sys


def main() -> None:
    sys.stderr.write(
        "crlft-train: not available yet in this release — the trainer arrives after "
        "`sharegpt-tools tokenize` (see README, 'Status').\n"
    )
    sys.exit(2)
