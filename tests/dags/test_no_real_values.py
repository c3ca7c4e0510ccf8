"""No real value leaves a run: planted values are grepped for everywhere a run writes.

A table of distinctive values (e-mails, names, phones, free-text notes, category labels,
an extreme amount, an extreme date) runs through the ready ESL TaskGroup with nothing
declared. None of its values may appear in the task logs, any XCom, the manifest,
``metadata.json``, ``quality.json``, ``privacy.json`` or ``report.html``; category labels
only in ``report.html``, and only those held by at least 5 real rows; and no published
e-mail, name, phone or note equals a real one.
"""

from __future__ import annotations

import io
import json
import re
from datetime import date, timedelta
from typing import Any

import numpy as np
import psycopg
import pyarrow.parquet as pq
import pytest
from dagtest_helpers import load_dag_module, published_key

from airflow_synth.core.publish.layout import DatasetLayout

pytestmark = pytest.mark.dags

BUCKET = "synthetic"
DATASET = "planted_people"
ROWS = 1_200
FREQUENT_LABELS = ("SEGZEBRA7731", "SEGOKAPI4420")
RARE_LABEL = "SEGRAREONE9911"
EXTREME_AMOUNT = "987654321"
EXTREME_DATE = "2099-07-15"


def planted_rows() -> list[tuple]:
    rng = np.random.default_rng(17)
    amounts = rng.gamma(2.0, 60.0, ROWS).round(2)
    days = rng.integers(0, 3 * 365, ROWS)
    rows = []
    for i in range(1, ROWS + 1):
        segment = RARE_LABEL if i == 7 else FREQUENT_LABELS[int(rng.random() < 0.3)]
        amount = 987654321.125 if i == 11 else float(amounts[i - 1])
        signup = (
            date.fromisoformat(EXTREME_DATE)
            if i == 13
            else date(2021, 1, 1) + timedelta(days=int(days[i - 1]))
        )
        rows.append(
            (
                100_000 + i,
                f"zq{i:04d}.plantedmail@leaky-domain.test",
                f"Quetzalia Plantedname{i:04d}",
                f"+49 151 7{i:07d}",
                segment,
                amount,
                signup,
                f"planted secret note {i:04d} about a private matter of this customer",
            )
        )
    return rows


@pytest.fixture(scope="module")
def planted(source_dsn: str, seeded_source) -> list[tuple]:
    rows = planted_rows()
    with psycopg.connect(source_dsn) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS planted_people")
        cur.execute(
            "CREATE TABLE planted_people (person_id bigint PRIMARY KEY, email text, "
            "full_name text, phone text, segment text, amount numeric(14,3), signup date, "
            "notes text)"
        )
        with cur.copy("COPY planted_people FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    return rows


def xcom_text(dag_run: Any) -> str:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id)
        ).all()
        return json.dumps([XComModel.deserialize_value(r) for r in rows], default=str)


def s3_text(s3_client: Any, key: str) -> str:
    return s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode("utf-8")


def appears(value: str, text: str) -> bool:
    """Whether ``value`` is in ``text``; a number only as a number of its own.

    A planted id 100198 is not leaked by a log timestamp ``05:21:02.100198Z`` or a UUID
    chunk: digits glued to letters, dots, colons or dashes are part of another token.
    """
    if value.isdigit():
        return re.search(rf"(?<![\w.:-]){value}(?!\w)", text) is not None
    return value in text


def secrets(rows: list[tuple]) -> list[str]:
    """Values that must appear nowhere: PII, notes, the rare label, the extremes."""
    found = [RARE_LABEL, EXTREME_AMOUNT, EXTREME_DATE]
    for row in rows[:300]:
        found += [row[1], row[2], row[3], row[7], str(row[0])]
    return found


def test_a_run_on_planted_values_leaks_none_of_them(planted, dags_folder, s3_client, capfd, caplog):
    dag_run = load_dag_module(dags_folder / "planted_dags.py").dag.test()
    output = "".join(capfd.readouterr()) + caplog.text
    assert dag_run.state == "success", output[-3000:]
    assert "Column 'email'" in output  # the task logs were captured

    # task logs and every XCom: no real value at all, not even a frequent label
    for where, text in {"task log": output, "xcom": xcom_text(dag_run)}.items():
        for value in [*secrets(planted), *FREQUENT_LABELS]:
            assert not appears(value, text), f"real value {value!r} in the {where}"

    # published files: no PII, rare label or extreme; labels only in the report
    layout = DatasetLayout(BUCKET, DATASET, dag_run.run_id)
    manifest = json.loads(s3_text(s3_client, layout.manifest_key))
    names = ("metadata.json", "quality.json", "privacy.json", "report.html")
    files = {name: s3_text(s3_client, published_key(manifest, name)) for name in names}
    files["manifest.json"] = s3_text(s3_client, layout.manifest_key)
    for name, text in files.items():
        for value in secrets(planted):
            assert not appears(value, text), f"real value {value!r} in {name}"
        if name != "report.html":  # the report may show labels that >= 5 real rows hold
            for label in FREQUENT_LABELS:
                assert label not in text, f"category label {label!r} in {name}"
    roles = {r["name"]: r["role"] for r in json.loads(files["metadata.json"])["columns_roles"]}
    assert roles == {
        "person_id": "pii",
        "email": "pii",
        "full_name": "pii",
        "phone": "pii",
        "segment": "modelled",
        "amount": "modelled",
        "signup": "modelled",
        "notes": "pii",
    }

    # the data: identifiers, PII and free text are fresh
    body = s3_client.get_object(Bucket=BUCKET, Key=published_key(manifest, "data.parquet"))[
        "Body"
    ].read()
    table = pq.read_table(io.BytesIO(body)).to_pandas()
    assert len(table) == ROWS
    for index, column in (
        (0, "person_id"),
        (1, "email"),
        (2, "full_name"),
        (3, "phone"),
        (7, "notes"),
    ):
        real = {str(row[index]) for row in planted}
        assert not real & set(table[column].astype(str)), column


CHILD_NOTE = "planted order remark {:05d} for the courier"


@pytest.fixture(scope="module")
def planted_orders(planted, source_dsn: str) -> list[tuple]:
    """A child of planted_people: integer codes, a zero-inflated amount, an order date after
    the person's sign-up, a free-text remark; keys and the foreign key declared."""
    rng = np.random.default_rng(23)
    rows = []
    for n, person in enumerate(planted, start=1):
        for k in range(int(rng.integers(0, 4))):
            order_id = 500_000 + 10 * n + k
            code = int(rng.choice([2, 3, 5, 7, 11]))
            amount = 0.0 if rng.random() < 0.4 else float(round(rng.gamma(2.0, 31.0), 2))
            ordered = person[6] + timedelta(days=int(rng.integers(0, 90)))
            rows.append((order_id, person[0], code, amount, ordered, CHILD_NOTE.format(order_id)))
    with psycopg.connect(source_dsn) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS planted_orders")
        cur.execute(
            "CREATE TABLE planted_orders (order_id bigint PRIMARY KEY, person_id bigint "
            "NOT NULL REFERENCES planted_people (person_id), status_code int, amount "
            "numeric(12,2), ordered date, remark text)"
        )
        with cur.copy("COPY planted_orders FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    return rows


def test_a_table_set_of_planted_values_leaks_none_of_them(
    planted, planted_orders, dags_folder, s3_client, capfd, caplog
):
    """The same through the multi-table TaskGroup and its default (per-table) engine."""
    dag_run = load_dag_module(dags_folder / "planted_dags.py").multitable_dag.test()
    output = "".join(capfd.readouterr()) + caplog.text
    assert dag_run.state == "success", output[-3000:]
    values = [
        *secrets(planted),
        *(str(row[0]) for row in planted_orders[:300]),
        *(row[5] for row in planted_orders[:300]),
    ]
    for where, text in {"task log": output, "xcom": xcom_text(dag_run)}.items():
        for value in [*values, *FREQUENT_LABELS]:
            assert not appears(value, text), f"real value {value!r} in the {where}"
    layout = DatasetLayout(BUCKET, "planted_set", dag_run.run_id)
    manifest = json.loads(s3_text(s3_client, layout.manifest_key))
    names = ["manifest.json", "quality.json", "metadata.json", "reports/report.html"]
    for name in names:
        key = layout.manifest_key if name == "manifest.json" else published_key(manifest, name)
        text = s3_text(s3_client, key)
        for value in values:
            assert not appears(value, text), f"real value {value!r} in {name}"
    orders = pq.read_table(
        io.BytesIO(
            s3_client.get_object(
                Bucket=BUCKET, Key=published_key(manifest, "tables/planted_orders.parquet")
            )["Body"].read()
        )
    ).to_pandas()
    people = pq.read_table(
        io.BytesIO(
            s3_client.get_object(
                Bucket=BUCKET, Key=published_key(manifest, "tables/planted_people.parquet")
            )["Body"].read()
        )
    ).to_pandas()
    real_remarks = {row[5] for row in planted_orders}
    assert not set(orders["remark"]) & real_remarks  # free text issued fresh
    assert not set(orders["order_id"]) & {row[0] for row in planted_orders}
    assert set(orders["status_code"].dropna()) <= {2, 3, 5, 7, 11}  # codes stay codes
    assert (orders["amount"] == 0).mean() > 0.25  # the zero mass survives
    joined = orders.merge(people[["person_id", "signup"]], on="person_id")
    assert len(joined) == len(orders) and (joined["ordered"] >= joined["signup"]).all()
    assert manifest["synthesis"]["synthesizer"]["name"] == "per_table"
