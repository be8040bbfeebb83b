-- 6: sales (orders with package lines, gift lessons, discounts), payments and instalments, the refund policy table and refund requests
ALTER TABLE packages ADD COLUMN gift_lessons BIGINT NOT NULL DEFAULT 0;
ALTER TABLE packages ADD COLUMN order_id TEXT;
ALTER TABLE packages ADD COLUMN list_price_cents BIGINT;
ALTER TABLE packages ADD COLUMN discount_cents BIGINT NOT NULL DEFAULT 0;
ALTER TABLE packages ADD COLUMN discount_reason TEXT;
CREATE TABLE orders (
    school_id TEXT NOT NULL,
    id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    campus_id TEXT,
    salesperson TEXT,
    list_cents BIGINT NOT NULL,
    discount_cents BIGINT NOT NULL,
    due_cents BIGINT NOT NULL,
    note TEXT,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (school_id, id),
    FOREIGN KEY (school_id, student_id) REFERENCES students(school_id, id)
);
CREATE INDEX orders_by_student ON orders (school_id, student_id);
CREATE TABLE payments (
    seq BIGSERIAL PRIMARY KEY,
    school_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    campus_id TEXT,
    amount_cents BIGINT NOT NULL,
    method TEXT NOT NULL,
    reference TEXT,
    received_at BIGINT NOT NULL,
    received_by TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    UNIQUE (school_id, idempotency_key),
    FOREIGN KEY (school_id, order_id) REFERENCES orders(school_id, id)
);
CREATE INDEX payments_by_order ON payments (school_id, order_id);
CREATE INDEX payments_by_time ON payments (school_id, received_at);
CREATE TABLE instalments (
    school_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    n BIGINT NOT NULL,
    due_on TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    reminded_at BIGINT,
    PRIMARY KEY (school_id, order_id, n),
    FOREIGN KEY (school_id, order_id) REFERENCES orders(school_id, id)
);
CREATE TABLE refund_policies (
    school_id TEXT NOT NULL,
    policy_json TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (school_id)
);
CREATE TABLE refund_requests (
    seq BIGSERIAL PRIMARY KEY,
    school_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    package_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    method TEXT NOT NULL,
    state TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    quote_json TEXT NOT NULL,
    decided_by TEXT,
    decided_at BIGINT,
    decision_note TEXT,
    refund_cents BIGINT,
    FOREIGN KEY (school_id, student_id) REFERENCES students(school_id, id)
);
CREATE UNIQUE INDEX refund_requests_one_pending ON refund_requests (school_id, package_id) WHERE state = 'pending';
CREATE INDEX refund_requests_by_state ON refund_requests (school_id, state);
