"""Run every benchmark: ``python -m benchmarks [--rows N]``.

The extract benchmark runs first and gets the arguments (``--rows``: rows extracted); the
privacy benchmark then runs at its own defaults (``python -m benchmarks.privacy --help``).
"""

import sys

from benchmarks import extract, privacy


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return extract.main(argv) or privacy.main([])


raise SystemExit(main())
