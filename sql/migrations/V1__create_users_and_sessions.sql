-- Demo source database "userbookings": the two tables of Kaggle's Airbnb "new user
-- bookings" data (train_users_2.csv and sessions.csv), which Gretel's ESL demo used.
-- Plain PostgreSQL DDL with Flyway naming, so `flyway migrate` can run it as well as
-- airflow_synth.demo.migrations.apply_migrations. Never edit an applied migration: add V<n+1>.

CREATE TABLE users (
    id                      varchar PRIMARY KEY,
    date_account_created    date NOT NULL,
    timestamp_first_active  timestamp NOT NULL,
    date_first_booking      date,
    gender                  varchar NOT NULL,
    age                     double precision,
    signup_method           varchar NOT NULL,
    signup_flow             integer NOT NULL,
    language                varchar NOT NULL,
    affiliate_channel       varchar NOT NULL,
    affiliate_provider      varchar NOT NULL,
    first_affiliate_tracked varchar,
    signup_app              varchar NOT NULL,
    first_device_type       varchar NOT NULL,
    first_browser           varchar NOT NULL,
    country_destination     varchar NOT NULL,
    -- 'NDF' (no destination found) means the user never booked.
    CONSTRAINT users_booking_iff_destination
        CHECK ((date_first_booking IS NULL) = (country_destination = 'NDF')),
    CONSTRAINT users_booking_not_before_account
        CHECK (date_first_booking >= date_account_created)
);

COMMENT ON TABLE users IS
    'Airbnb-style new users (demo data); country_destination is where they first booked, NDF = never';
COMMENT ON COLUMN users.age IS
    'Self-reported; NULL for ~40% and sometimes implausible (1-4, 100+, birth years), as in the real data';
COMMENT ON COLUMN users.gender IS '-unknown-, FEMALE, MALE or OTHER';

CREATE TABLE sessions (
    user_id       varchar NOT NULL,
    action        varchar NOT NULL,
    action_type   varchar,
    action_detail varchar,
    device_type   varchar NOT NULL,
    secs_elapsed  double precision,
    CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT sessions_secs_elapsed_not_negative CHECK (secs_elapsed >= 0)
);

COMMENT ON TABLE sessions IS
    'Web/app activity log of the users (demo data): one row per action, grouped by user';
COMMENT ON COLUMN sessions.secs_elapsed IS 'Seconds spent on the action; long-tailed, ~1% NULL';

CREATE INDEX sessions_user_id_idx ON sessions (user_id);
