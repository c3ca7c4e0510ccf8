-- The nightly-reuse DAG test's own small source table (test_model_reuse_dag.py).
SELECT guest_id, nights, country, spend, stays
FROM reuse_nightly_source
