"""Run every benchmark: ``python -m benchmarks [--rows N]``."""

from benchmarks.extract import main

raise SystemExit(main())
