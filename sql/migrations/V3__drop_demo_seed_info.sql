-- The demo data is now generated from specs/userbookings.yaml and loaded by the generic spec
-- loader (airflow_synth.datagen.seed_database), which keeps its own bookkeeping table
-- synth_seed_info (one row per spec). demo_seed_info (V2) is no longer written: drop it so
-- nobody reads stale settings from it.

DROP TABLE IF EXISTS demo_seed_info;
