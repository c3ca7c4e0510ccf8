"""Postgres -> Parquet: airflow-synth's extract against ``psql \\copy``, ADBC and pandas.

Every method reads the same freshly generated 14-column table of the embedded PostgreSQL:

- ``psql``: ``psql \\copy (SELECT ...) TO '/dev/null'``, the wire-speed limit (no file written);
- ``ours``: :func:`~airflow_synth.core.extract.stream.stream_query_to_parquet` (ADBC reader);
- ``adbc``: the ADBC PostgreSQL driver's record batches streamed into Parquet with
  pyarrow's defaults but zstd (as ours), the plain use of the same driver;
- ``pandas``: ``pandas.read_sql`` + ``DataFrame.to_parquet`` (zstd), the baseline to beat.

Every method that writes a file writes zstd-compressed Parquet of the same rows into the
same temporary folder (the file is removed after each run); psql's ``/dev/null`` is the
limit that no file format can beat.

Comparisons are paired: one unrecorded warm-up round runs every method first (the server's
caches, the page cache), then each recorded round runs every method once, in an order
rotated from round to round, so drift on a shared machine hits all methods alike. Medians
are reported per method, and the ratios are medians of the per-round ratios (each from
runs made back to back). Each run happens in a fresh grandchild process whose peak RSS
(``wait4``'s ``ru_maxrss``) is its peak memory (a process started by ``exec`` from this one
would report our own high-water mark instead) and whose user + system time is the
client's CPU (the server's is not counted: it is the same query for every method).

The machine's conditions are printed with the numbers (cores, load average before and
after each size, the versions of the ADBC driver, pyarrow and PostgreSQL), and the end
recaps every goal with its verdict: on a shared machine, ratios measured in one run are
the comparable numbers, not the seconds.

``python -m benchmarks extract`` runs 1M rows (a few minutes); ``--big`` adds 10M rows
(pandas needs ~16 GB there) and checks that our peak memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TABLE_SQL = """
DROP TABLE IF EXISTS {table};
CREATE TABLE {table} AS
SELECT g AS id, md5(g::text) AS user_key, (g % 97)::int AS small_int, g * 1.5 AS ratio,
       random() * 1000 AS amount, (ARRAY['a','b','c','d'])[1 + g % 4] AS category,
       'label_' || (g % 1000) AS label, date '2020-01-01' + (g % 1500) AS day,
       timestamp '2020-01-01' + g * interval '1 second' AS ts, (g % 3 = 0) AS flag,
       CASE WHEN g % 10 = 0 THEN NULL ELSE g % 1000 END AS maybe_null,
       (g % 50)::float8 / 7 AS score, repeat('x', (g % 20)) AS padding, g % 7 AS weekday
FROM generate_series(1, {rows}) AS g;
"""

METHODS = ("psql", "ours", "adbc", "pandas")
GOALS = {"psql": 0.6, "pandas": 4.0}  # ours' throughput as a multiple of theirs
PEAK_GROWTH_GOAL = 1.2  # ours' peak memory at 10M rows over that at 1M rows

#: Runs one method in a forked grandchild; prints {"seconds", "peak_mib", "cpu_s", "rows"}.
CHILD = r"""
import json, os, sys, time
method, dsn, query, out, psql = sys.argv[1:6]
if method == "ours":  # every method's imports happen before the clock starts
    import adbc_driver_postgresql.dbapi
    import psycopg
    from airflow_synth.core.extract.stream import stream_query_to_parquet
elif method == "adbc":
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow.parquet as pq
elif method == "pandas":
    import pandas as pd
    from sqlalchemy import create_engine

read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(read_end)
    rows = -1
    if method == "psql":
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        os.execv(psql, [psql, "-X", "-q", "-d", dsn, "-c", f"\\copy ({query}) TO '/dev/null'"])
    started = time.perf_counter()
    if method == "ours":
        with psycopg.connect(dsn) as conn:
            rows = stream_query_to_parquet(conn, query, out).rows
    elif method == "adbc":
        with adbc.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute(query)
            reader = cur.fetch_record_batch()
            with pq.ParquetWriter(out, reader.schema, compression="zstd") as writer:
                rows = 0
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows
    elif method == "pandas":
        engine = create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
        frame = pd.read_sql(query, engine)
        frame.to_parquet(out, compression="zstd")
        rows = len(frame)
    seconds = time.perf_counter() - started
    os.write(write_end, json.dumps({"rows": rows, "seconds": seconds}).encode())
    os._exit(0)
os.close(write_end)
started = time.perf_counter()
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
report = json.loads(os.read(read_end, 4096) or b'{"rows": -1}')
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit(f"{method} failed with status {status}")
report.setdefault("seconds", wall)  # psql: from fork to exit, connection included
report["peak_mib"] = usage.ru_maxrss / 1024
report["cpu_s"] = usage.ru_utime + usage.ru_stime  # the client's, all threads
print(json.dumps(report))
"""


def available_methods() -> list[str]:
    """The methods this environment can run (ADBC only when its driver is installed)."""
    try:
        import adbc_driver_postgresql  # noqa: F401
    except ImportError:
        print("adbc: skipped (pip install adbc-driver-postgresql to compare with it)")
        return [m for m in METHODS if m != "adbc"]
    return list(METHODS)


def run_once(method: str, dsn: str, query: str, out: Path, psql: Path) -> dict:
    """One run of ``method`` in a fresh process: seconds, peak MiB, rows."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, method, dsn, query, str(out), str(psql)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{proc.stderr[-3000:]}")
    out.unlink(missing_ok=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(
    methods: list[str],
    dsn: str,
    query: str,
    tmp: Path,
    psql: Path,
    repeats: int,
    skip_warmup: frozenset[str] = frozenset(),
) -> dict[str, list[dict]]:
    """A warm-up round, then ``repeats`` rounds of every method in a rotated order.

    ``skip_warmup`` leaves methods out of the warm-up round (pandas at 10M rows: its 140 s
    run would only warm the caches that the other methods' warm-up runs already warmed).
    """
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    for round_no in range(-1, repeats):
        shift = max(round_no, 0) % len(methods)
        order = methods[shift:] + methods[:shift]
        for method in order:
            if round_no < 0 and method in skip_warmup:
                continue
            result = run_once(method, dsn, query, tmp / f"{method}.parquet", psql)
            label = "warm-up" if round_no < 0 else f"round {round_no + 1}"
            print(
                f"  {label:8s} {method:7s} {result['seconds']:7.2f} s  "
                f"client CPU {result['cpu_s']:6.2f} s  peak {result['peak_mib']:7.0f} MiB",
                flush=True,
            )
            if round_no >= 0:
                runs[method].append(result)
    return runs


def summarise(rows: int, runs: dict[str, list[dict]]) -> dict:
    """Medians per method and paired ratios of ours against each other method."""
    summary: dict = {"rows": rows, "methods": {}, "ours_vs": {}}
    for method, results in runs.items():
        seconds = statistics.median(r["seconds"] for r in results)
        summary["methods"][method] = {
            "seconds": seconds,
            "rows_per_s": rows / seconds,
            "peak_mib": statistics.median(r["peak_mib"] for r in results),
            "cpu_s": statistics.median(r["cpu_s"] for r in results),
        }
    ours = runs["ours"]
    for method, results in runs.items():
        if method == "ours":
            continue
        # ours' throughput as a multiple of theirs, paired round by round
        ratios = [b["seconds"] / a["seconds"] for a, b in zip(ours, results, strict=True)]
        memory = [a["peak_mib"] / b["peak_mib"] for a, b in zip(ours, results, strict=True)]
        summary["ours_vs"][method] = {
            "throughput": statistics.median(ratios),
            "peak_memory": statistics.median(memory),
        }
    return summary


def print_summary(summary: dict) -> None:
    print(f"\n{summary['rows']:,} rows, medians:")
    for method, m in summary["methods"].items():
        print(
            f"  {method:7s} {m['seconds']:7.2f} s  {m['rows_per_s'] / 1e6:6.2f} M rows/s  "
            f"client CPU {m['cpu_s']:6.2f} s  peak {m['peak_mib']:7.0f} MiB"
        )
    for method, r in summary["ours_vs"].items():
        goal = GOALS.get(method)
        verdict = ""
        if goal is not None:
            verdict = f"  (goal >= {goal}x: {'met' if r['throughput'] >= goal else 'MISSED'})"
        print(
            f"  ours vs {method:7s} throughput {r['throughput']:5.2f}x, "
            f"peak memory {r['peak_memory']:5.2f}x{verdict}"
        )


def conditions(dsn: str | None = None) -> str:
    """The machine's state and the versions that decide the numbers, in one line."""
    import os
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "absent"

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = (
        f"{os.cpu_count()} cores, load average {load}; adbc-driver-postgresql "
        f"{installed('adbc-driver-postgresql')}, pyarrow {installed('pyarrow')}"
    )
    if dsn is not None:
        with psycopg_connect(dsn) as conn:
            server = conn.execute("SHOW server_version").fetchone()[0]
        text += f", PostgreSQL {server}"
    return text


def goal_lines(summaries: list[dict]) -> list[str]:
    """Every goal with its measured value and verdict (ours' throughput ratios, peak growth)."""
    lines = []
    for summary in summaries:
        for method, goal in GOALS.items():
            ratio = summary["ours_vs"].get(method, {}).get("throughput")
            if ratio is None:
                continue
            verdict = "met" if ratio >= goal else "MISSED"
            lines.append(
                f"  {summary['rows']:>11,} rows: ours vs {method:6s} {ratio:5.2f}x "
                f"(goal >= {goal}x: {verdict})"
            )
    if len(summaries) == 2:
        small, big = (s["methods"]["ours"]["peak_mib"] for s in summaries)
        verdict = "met" if big / small <= PEAK_GROWTH_GOAL else "MISSED"
        lines.append(
            f"  peak memory at {summaries[1]['rows']:,} / at {summaries[0]['rows']:,} rows: "
            f"{big / small:.2f}x ({small:.0f} -> {big:.0f} MiB; goal <= {PEAK_GROWTH_GOAL}x: "
            f"{verdict})"
        )
    return lines


def build_table(dsn: str, rows: int) -> str:
    import psycopg

    table = f"bench_extract_{rows}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute(TABLE_SQL.format(table=table, rows=int(rows)))
        conn.execute(f"VACUUM ANALYZE {table}")  # hint bits set: no method pays for them
        print(
            f"\ntable {table}: {rows:,} rows x 14 columns built in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the default size")
    parser.add_argument(
        "--big", action="store_true", help="also measure --big-rows (long; pandas needs ~16 GB)"
    )
    parser.add_argument("--big-rows", type=int, default=10_000_000, help="rows of the big size")
    parser.add_argument("--repeats", type=int, default=3, help="recorded rounds per size")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated subset of {','.join(METHODS)} (ours is always run)",
    )
    parser.add_argument("--json", type=Path, help="also write the summaries to this file")
    args = parser.parse_args(argv)
    wanted = {m.strip() for m in args.methods.split(",")} | {"ours"}
    methods = [m for m in available_methods() if m in wanted]
    sizes = [args.rows] + ([args.big_rows] if args.big else [])

    from airflow_synth.local import LocalStack
    from airflow_synth.local.postgres import pg_bin_dir

    summaries = []
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        stack = LocalStack(Path(tmp) / "stack")
        stack.pg.start()
        try:
            dsn = stack.pg.dsn("postgres")
            psql = pg_bin_dir() / "psql"
            for rows in sizes:
                table = build_table(dsn, rows)
                query = f"SELECT * FROM {table}"
                skip = frozenset({"pandas"}) if rows > 1_000_000 else frozenset()
                before = conditions(dsn)
                print(f"before: {before}", flush=True)
                runs = measure(methods, dsn, query, Path(tmp), psql, args.repeats, skip)
                after = conditions()
                print(f"after:  {after}", flush=True)
                for method, results in runs.items():
                    wrong = [r["rows"] for r in results if method != "psql" and r["rows"] != rows]
                    if wrong:
                        raise RuntimeError(f"{method} returned {wrong[0]} rows, not {rows}")
                summary = summarise(rows, runs)
                summary["conditions"] = {"before": before, "after": after}
                print_summary(summary)
                summaries.append(summary)
                with psycopg_connect(dsn) as conn:
                    conn.execute(f"DROP TABLE {table}")
        finally:
            stack.pg.stop()
    print("\ngoals (medians of the paired per-round ratios):")
    for line in goal_lines(summaries):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=2))
    return 0


def psycopg_connect(dsn: str):  # noqa: ANN201 - psycopg is imported lazily
    import psycopg

    return psycopg.connect(dsn, autocommit=True)


if __name__ == "__main__":
    raise SystemExit(main())
