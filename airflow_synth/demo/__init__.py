"""The demo source database: an Airbnb-style ``users``/``sessions`` schema and its data.

``migrations.apply_migrations`` creates the schema from ``sql/migrations`` (Flyway-style);
the data come from the checked-in spec ``specs/userbookings.yaml`` through
:mod:`airflow_synth.datagen`, and ``seed.seed_demo_database`` loads them with COPY, skipping
the load when the same data are already there. No Airflow here.

Only the migrations are imported eagerly: :mod:`airflow_synth.datagen` itself uses them, and
importing the seeding code here would make the two packages import each other.
"""

from typing import Any

from airflow_synth.demo.migrations import MigrationError, apply_migrations

_LAZY = {
    "DemoSeedError": "airflow_synth.demo.seed",
    "SeedResult": "airflow_synth.demo.seed",
    "seed_demo_database": "airflow_synth.demo.seed",
    "demo_spec": "airflow_synth.demo.generate",
    "generate_users": "airflow_synth.demo.generate",
}

__all__ = ["MigrationError", "apply_migrations", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
