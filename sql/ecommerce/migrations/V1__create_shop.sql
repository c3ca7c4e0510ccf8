-- Example source database "shop" generated from specs/ecommerce.yaml: customers buy products
-- on devices. Plain PostgreSQL DDL with Flyway naming (applied by
-- airflow_synth.demo.migrations.apply_migrations or `flyway migrate`). Never edit an applied
-- migration: add V<n+1>.

CREATE TABLE customers (
    id           bigint PRIMARY KEY,
    signup_date  date NOT NULL,
    country      varchar NOT NULL,
    segment      varchar NOT NULL,
    marketing_opt_in boolean NOT NULL
);

CREATE TABLE products (
    id        bigint PRIMARY KEY,
    category  varchar NOT NULL,
    price     numeric(10, 2) NOT NULL CHECK (price > 0)
);

CREATE TABLE devices (
    id           bigint PRIMARY KEY,
    device_type  varchar NOT NULL,
    os           varchar NOT NULL
);

CREATE TABLE transactions (
    id              bigint PRIMARY KEY,
    customer_id     bigint NOT NULL REFERENCES customers (id),
    product_id      bigint NOT NULL REFERENCES products (id),
    device_id       bigint NOT NULL REFERENCES devices (id),
    created_at      timestamp NOT NULL,
    payment_method  varchar NOT NULL,
    quantity        integer NOT NULL CHECK (quantity > 0),
    refunded        boolean NOT NULL
);

CREATE INDEX transactions_customer_id_idx ON transactions (customer_id);
CREATE INDEX transactions_created_at_idx ON transactions (created_at);
