"""Run the benchmarks: ``python -m benchmarks [NAME] [ARGS]``.

``python -m benchmarks extract|privacy|multitable|fidelity|filters|big_table|shards|nightly
[ARGS]`` runs one of them with its own arguments (``python -m benchmarks multitable
--help``). Without a name every benchmark runs: the extract benchmark first with the
arguments (``--rows``: rows extracted), then privacy and multi-table at their own defaults.
"""

import sys

from benchmarks import (
    big_table,
    extract,
    fidelity,
    filters,
    multitable,
    nightly,
    privacy,
    shards,
)

BENCHMARKS = {
    "extract": extract,
    "privacy": privacy,
    "multitable": multitable,
    "fidelity": fidelity,
    "filters": filters,
    "big_table": big_table,
    "shards": shards,
    "nightly": nightly,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in BENCHMARKS:
        return BENCHMARKS[argv[0]].main(argv[1:])
    return extract.main(argv) or privacy.main([]) or multitable.main([])


raise SystemExit(main())
