"""Postgres -> Parquet: airflow-synth's streaming extract against pandas ``read_sql``.

Both run on the same freshly generated 14-column table in the embedded PostgreSQL, each in
its own child process so peak memory (max RSS) is measured per method. Prints seconds,
peak MB and the ratios ours/baseline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TABLE_SQL = """
DROP TABLE IF EXISTS bench_extract;
CREATE TABLE bench_extract AS
SELECT g AS id, md5(g::text) AS user_key, (g % 97)::int AS small_int, g * 1.5 AS ratio,
       random() * 1000 AS amount, (ARRAY['a','b','c','d'])[1 + g % 4] AS category,
       'label_' || (g % 1000) AS label, date '2020-01-01' + (g % 1500) AS day,
       timestamp '2020-01-01' + g * interval '1 second' AS ts, (g % 3 = 0) AS flag,
       CASE WHEN g % 10 = 0 THEN NULL ELSE g % 1000 END AS maybe_null,
       (g % 50)::float8 / 7 AS score, repeat('x', (g % 20)) AS padding, g % 7 AS weekday
FROM generate_series(1, %(rows)s) AS g;
"""

CHILD = r"""
import json, resource, sys, time
method, dsn, out = sys.argv[1:4]
started = time.perf_counter()
if method == "ours":
    import psycopg
    from airflow_synth.core.extract.stream import stream_query_to_parquet
    with psycopg.connect(dsn) as conn:
        rows = stream_query_to_parquet(conn, "SELECT * FROM bench_extract", out).rows
else:
    import pandas as pd
    from sqlalchemy import create_engine
    engine = create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
    frame = pd.read_sql("SELECT * FROM bench_extract", engine)
    frame.to_parquet(out)
    rows = len(frame)
seconds = time.perf_counter() - started
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak_mb}))
"""


def run_child(method: str, dsn: str, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, method, dsn, str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)

    from airflow_synth.local import LocalStack

    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        stack = LocalStack(Path(tmp) / "stack")
        stack.pg.start()
        try:
            dsn = stack.pg.dsn("postgres")
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as conn:
                started = time.perf_counter()
                conn.execute(TABLE_SQL.replace("%(rows)s", str(int(args.rows))))
                print(
                    f"table of {args.rows} rows x 14 columns built in "
                    f"{time.perf_counter() - started:.1f} s"
                )
            results = {}
            for method in ("pandas_read_sql", "ours"):
                results[method] = run_child(method, dsn, Path(tmp) / f"{method}.parquet")
                r = results[method]
                print(
                    f"{method:16s} {r['seconds']:7.2f} s  peak {r['peak_mb']:7.0f} MB"
                    f"  rows {r['rows']}"
                )
            base, ours = results["pandas_read_sql"], results["ours"]
            print(
                f"ratio ours/pandas: time {ours['seconds'] / base['seconds']:.2f}x, "
                f"peak memory {ours['peak_mb'] / base['peak_mb']:.2f}x"
            )
        finally:
            stack.pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
