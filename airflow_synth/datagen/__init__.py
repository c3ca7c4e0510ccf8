"""Declared-truth source data: a YAML spec in, a Postgres database with known answers out.

A pipeline test that cannot know the right answer only proves the code ran. A *data spec*
describes a source database (tables, keys, relationships, column distributions) and
**declared truths** — facts the generator honours exactly, to the row, at any size: a
monthly rate curve of a boolean outcome, shares per category, the number of children per
parent row. :func:`answer_key` computes those facts from the spec alone, so a golden test
compares a query's result with it (:func:`assert_truths`).

Python API (no Airflow import)::

    from airflow_synth.datagen import load_spec, generate, answer_key, seed_database
    from airflow_synth.datagen import generate_tables, integrity_problems

    spec = load_spec("specs/userbookings.yaml")
    for table, frame in generate(spec, seed=42, rows={"users": 10_000}, batch_rows=100_000):
        ...                                    # DataFrames, parents before children
    assert integrity_problems(spec, generate_tables(spec)) == []   # keys and FKs intact
    key = answer_key(spec, rows={"users": 10_000})     # {truth name: Truth}
    with psycopg.connect(dsn) as conn:
        seed_database(conn, spec, seed=42)     # migrations + COPY, skipped if already loaded

Spec format (YAML)::

    name: shop                                 # required
    migrations: ../sql/shop/migrations         # Flyway-style V<n>__*.sql, relative to the spec
    tables:
      customers:
        rows: 5000                             # a fixed count (resizable at generate time) ...
        primary_key: id                        # default: the table's id column
        columns:
          id: {type: id, format: sequence, start: 1}      # or format: random_string, length: 10
          signup: {type: date, start: 2023-01-01, end: 2024-12-31, growth: 3}
          segment: {type: categorical, values: {consumer: 0.8, business: 0.2}}
          tier:                                # conditional shares
            type: categorical
            given: segment
            values_by: {consumer: {free: 0.9, pro: 0.1}, business: {pro: 0.6, team: 0.4}}
          churned:                             # boolean with a monthly rate curve
            type: boolean
            rate_by_month: {month_of: signup, curve: {"2023-01": 0.10, "2024-12": 0.25}}
            propensity: [{column: segment, in: [business], weight: -1.0}]
      orders:
        rows:                                  # ... or a declared number per parent row
          per: customers
          via: customer_id
          counts: {distribution: negative_binomial, mean: 4, dispersion: 1.5, zero_share: 0.2}
          rank_by: [{column: segment, in: [business], weight: 1.0}]
        columns:
          customer_id: {type: reference, references: customers.id}
          amount:
            type: float
            distribution: {name: lognormal, meanlog: 3.5, sdlog: 0.8}
            clip: [1, 5000]
            digits: 2
            null_share: 0.01
    truths:
      churn_by_month: {kind: rate_by_month, column: customers.churned}
      segment_shares: {kind: shares, column: customers.segment}
      orders_per_customer: {kind: children_per_parent, table: orders}
      customers_rows: {kind: row_count, table: customers}

Column types and their keys:

* ``id``: ``format: sequence`` (``start``) or ``random_string`` (``length`` 6-10, ``prefix``);
  unique by construction.
* ``categorical``: ``values: {value: share}`` (shares must add up to 1; ``~`` is NULL);
  or ``given: <column>`` + ``values_by: {given value: {value: share}}`` (+ ``default``);
  or ``map: {from, values, default}``; or ``bins: {from, edges, labels, missing}``.
  ``blend: {share, values}`` replaces that share of rows with a draw from ``values``;
  ``split: {separator: "|", into: [a, b, c]}`` writes one value as several columns
  (consistent combinations such as action/type/detail; an empty part is NULL).
* ``boolean``: ``rate: 0.4`` or ``rate_by_month: {month_of: <date column>, curve: {"YYYY-MM":
  rate}}`` (knots, linearly interpolated, flat beyond the ends); ``propensity`` terms decide
  *which* rows are True while the count stays exact.
* ``integer`` / ``float``: ``distribution: {name: normal|lognormal|gamma|exponential|uniform|
  poisson|constant, ...}``, ``params_by: {given, values: {value: {param: x}}}``,
  ``replace: {share, values}`` (e.g. typos), ``clip: [low, high]``, ``round:
  round|floor|ceil|none``, ``digits``, ``null_share`` (a number or ``{given, values, default}``).
* ``date`` / ``timestamp``: ``start``, ``end``, ``growth`` (density at the end / at the
  start); or derived: ``from: <date column>``, ``plus_days`` / ``minus_days`` (numeric
  definitions), ``when: <condition>`` (NULL otherwise). Timestamps get a random time of day.
* ``reference``: ``references: <table>.<primary key>``, ``popularity: {name: uniform}`` or
  ``{name: zipf, exponent: 1.1}``. Every value points at an existing parent row.
  ``null_share: 0.2``: an optional parent (NULL on that share of rows, drawn at random).
  A composite foreign key lists the parent's whole composite key and names the columns it
  writes: ``references: [partsupp.part_id, partsupp.supplier_id]``, ``into: [part_id,
  supplier_id]`` (default: the parent's names); the entry's own name is not loaded.
  ``distinct_per: <the table's rows.via>`` makes a link (many-to-many) table: within each
  parent the values never repeat (``partsupp`` per ``part`` with k different suppliers).
  A reference to the column's own table is a hierarchy (``manager_id: {type: reference,
  references: employees.id, roots: 1}``): the first ``roots`` rows are NULL, every other
  row points at a uniformly drawn earlier row, so there is never a cycle.
* ``sequence``: ``per: <the table's rows.via>``, ``start`` (default 1): numbered start,
  start+1, ... within each parent row, consecutive (``line_number`` per order, or a
  ``year`` per employee with ``start: 2020``).
* Any column: ``hidden: true`` (drives other columns but is not loaded), ``description``.

Keys: ``primary_key: id`` (the default: the table's ``id`` column) or a composite key
``primary_key: [order_id, line_number]``. A composite key must be unique by construction,
which load_spec checks: the table's ``rows.via`` column plus a ``sequence`` or a
``distinct_per`` reference counted within it (or the table's id column). Rows of one parent
are made together, so within a parent is enough. Child dates after the parent's date:
``from: <parent>.<date column>`` with ``plus_days`` clipped at 0 (``order_date`` never
before the customer's ``signup_date``). :func:`integrity_problems` checks any set of frames
against the keys a spec declares (keys unique, no dangling single or composite reference,
hierarchies without cycles, sequences without gaps).

Conditions (``when``, ``propensity``, ``rank_by``): ``{column, in | not_in | equals |
is_null | between}``; a term adds ``weight`` where the condition holds, or ``weight * x``
(``weight * |x - distance_from|``) for a numeric column without a condition. In a child
table, ``<parent>.<column>`` names a column of the parent row.

Exact by construction (honoured to the row): categoricals with ``values``, categoricals
``given`` an exact column (joint counts), booleans, start/end dates (rows per month), and
children per parent. Truth kinds: ``shares``, ``rate``, ``rate_by_month``,
``children_per_parent``, ``row_count``. See :mod:`airflow_synth.datagen.exact` for how
counts stay exact when rows are streamed in batches.
"""

from airflow_synth.datagen.generate import GENERATOR_VERSION, generate, generate_tables
from airflow_synth.datagen.golden import (
    Tolerance,
    TruthReport,
    TruthResult,
    assert_truths,
    check_truths,
    observe,
)
from airflow_synth.datagen.integrity import assert_integrity, integrity_problems
from airflow_synth.datagen.load import SeedError, SeedResult, seed_database
from airflow_synth.datagen.spec import DataSpec, SpecError, load_spec, parse_spec
from airflow_synth.datagen.truths import Truth, answer_key

__all__ = [
    "GENERATOR_VERSION",
    "DataSpec",
    "SeedError",
    "SeedResult",
    "SpecError",
    "Tolerance",
    "Truth",
    "TruthReport",
    "TruthResult",
    "answer_key",
    "assert_integrity",
    "assert_truths",
    "check_truths",
    "generate",
    "generate_tables",
    "integrity_problems",
    "load_spec",
    "observe",
    "parse_spec",
    "seed_database",
]
