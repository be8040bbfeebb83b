-- 2: notification outbox and settings
CREATE TABLE notify_settings (
    school_id TEXT PRIMARY KEY REFERENCES schools(id),
    settings_json TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE outbox (
    seq BIGSERIAL PRIMARY KEY,
    school_id TEXT NOT NULL,
    delivery_key TEXT NOT NULL,
    notice_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    student_id TEXT,
    recipient_kind TEXT NOT NULL,
    recipient_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    language TEXT NOT NULL,
    params_json TEXT NOT NULL,
    urgent BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    claimed_by TEXT,
    claim_until BIGINT,
    sent_at BIGINT,
    last_error TEXT,
    updated_at BIGINT NOT NULL,
    UNIQUE (school_id, delivery_key)
);
CREATE INDEX outbox_due ON outbox (school_id, state, due_at);
CREATE INDEX outbox_by_notice ON outbox (school_id, notice_id);
