"""Extract: SQL files and Postgres rows streamed to private staging as Parquet.

The first room of the pipeline (see ``../shared/design.md``): everything here touches real
rows, so nothing here logs, returns or raises a cell value.
"""
