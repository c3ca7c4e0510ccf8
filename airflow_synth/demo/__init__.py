"""The demo source database: an Airbnb-style ``users``/``sessions`` schema and its data.

``migrations.apply_migrations`` creates the schema from ``sql/migrations`` (Flyway-style),
``generate`` makes realistic data (pure numpy/pandas), and ``seed.seed_demo_database``
loads it with COPY, skipping the load when the same data is already there. No Airflow here.
"""

from airflow_synth.demo.generate import GENERATOR_VERSION, generate_users, iter_sessions
from airflow_synth.demo.migrations import MigrationError, apply_migrations
from airflow_synth.demo.seed import DemoSeedError, SeedResult, seed_demo_database

__all__ = [
    "GENERATOR_VERSION",
    "DemoSeedError",
    "MigrationError",
    "SeedResult",
    "apply_migrations",
    "generate_users",
    "iter_sessions",
    "seed_demo_database",
]
