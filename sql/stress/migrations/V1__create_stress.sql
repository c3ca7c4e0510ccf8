-- Stress source database "stress" generated from specs/stress.yaml: a TPC-H-like schema with
-- every relational shape a multi-table pipeline must keep intact. Every primary and foreign
-- key is declared, composite ones too, so PostgreSQL itself proves the generated data's
-- integrity when it is loaded (seed_database re-adds each foreign key after the COPY, which
-- checks every row). Flyway naming (applied by airflow_synth.demo.migrations.apply_migrations
-- or `flyway migrate`). Never edit an applied migration: add V<n+1>.

CREATE TABLE region (
    id    bigint PRIMARY KEY,
    name  varchar NOT NULL
);

CREATE TABLE nation (
    id         bigint PRIMARY KEY,
    region_id  bigint NOT NULL REFERENCES region (id),
    name       varchar NOT NULL
);

CREATE TABLE customers (
    id               bigint PRIMARY KEY,
    nation_id        bigint NOT NULL REFERENCES nation (id),
    signup_date      date NOT NULL,
    segment          varchar NOT NULL,
    vip              boolean NOT NULL,
    account_balance  numeric(12, 2) NOT NULL
);

-- A self-reference: the org chart. The root has no manager.
CREATE TABLE employees (
    id          bigint PRIMARY KEY,
    manager_id  bigint REFERENCES employees (id),
    department  varchar NOT NULL,
    hire_date   date NOT NULL,
    salary      numeric(12, 2) NOT NULL,
    CHECK (manager_id IS NULL OR manager_id <> id)
);

-- A composite key with a per-parent sequence: years 2020, 2021, ... per employee.
CREATE TABLE salary_history (
    employee_id  bigint NOT NULL REFERENCES employees (id),
    year         integer NOT NULL,
    bonus        numeric(12, 2) NOT NULL CHECK (bonus >= 0),
    PRIMARY KEY (employee_id, year)
);

-- clerk_id is a nullable foreign key: online orders have no clerk.
CREATE TABLE orders (
    id               bigint PRIMARY KEY,
    customer_id      bigint NOT NULL REFERENCES customers (id),
    clerk_id         bigint REFERENCES employees (id),
    channel          varchar NOT NULL CHECK ((channel = 'online') = (clerk_id IS NULL)),
    order_date       date NOT NULL,
    status           varchar NOT NULL,
    priority         varchar NOT NULL,
    discount_amount  numeric(10, 2) NOT NULL CHECK (discount_amount >= 0)
);

CREATE TABLE part (
    id            bigint PRIMARY KEY,
    brand         varchar NOT NULL,
    type          varchar NOT NULL,
    size          integer NOT NULL CHECK (size BETWEEN 1 AND 50),
    retail_price  numeric(10, 2) NOT NULL CHECK (retail_price > 0)
);

CREATE TABLE supplier (
    id               bigint PRIMARY KEY,
    nation_id        bigint NOT NULL REFERENCES nation (id),
    account_balance  numeric(12, 2) NOT NULL
);

-- A many-to-many link table: its key is the pair of foreign keys.
CREATE TABLE partsupp (
    part_id        bigint NOT NULL REFERENCES part (id),
    supplier_id    bigint NOT NULL REFERENCES supplier (id),
    available_qty  integer NOT NULL,
    supply_cost    numeric(10, 2) NOT NULL,
    PRIMARY KEY (part_id, supplier_id)
);

-- Several parents: orders, and partsupp through a composite foreign key (part and supplier
-- with it). The key is the order plus a line number counted within the order.
CREATE TABLE lineitem (
    order_id        bigint NOT NULL REFERENCES orders (id),
    line_number     integer NOT NULL CHECK (line_number >= 1),
    part_id         bigint NOT NULL REFERENCES part (id),
    supplier_id     bigint NOT NULL REFERENCES supplier (id),
    quantity        integer NOT NULL CHECK (quantity BETWEEN 1 AND 50),
    extended_price  numeric(12, 2) NOT NULL,
    discount        numeric(4, 2) NOT NULL CHECK (discount BETWEEN 0 AND 0.1),
    line_status     varchar NOT NULL,
    return_flag     varchar NOT NULL,
    ship_mode       varchar NOT NULL,
    ship_date       date NOT NULL,
    receipt_date    date NOT NULL CHECK (receipt_date > ship_date),
    PRIMARY KEY (order_id, line_number),
    FOREIGN KEY (part_id, supplier_id) REFERENCES partsupp (part_id, supplier_id)
);

CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE INDEX lineitem_part_supplier_idx ON lineitem (part_id, supplier_id);

-- Related to nothing.
CREATE TABLE holidays (
    id               bigint PRIMARY KEY,
    holiday_date     date NOT NULL,
    country_code     varchar NOT NULL,
    name             varchar NOT NULL,
    is_bank_holiday  boolean NOT NULL
);
