-- Bookkeeping of the demo data loader (airflow_synth.demo.seed): which generator settings
-- the users/sessions tables currently hold, so `make demo` can skip an identical reload.
-- At most one row (the singleton key is always true).

CREATE TABLE demo_seed_info (
    singleton             boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    n_users               bigint NOT NULL,
    avg_sessions_per_user double precision NOT NULL,
    seed                  bigint NOT NULL,
    generator_version     varchar NOT NULL,
    users_loaded          bigint NOT NULL,
    sessions_loaded       bigint NOT NULL,
    load_seconds          double precision NOT NULL,
    loaded_at             timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE demo_seed_info IS 'Settings of the last demo data load (one row)';
