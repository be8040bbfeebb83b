-- 4: staff accounts, sessions, API tokens, review queue, audit actor role/ip
CREATE TABLE staff_accounts (
    school_id TEXT NOT NULL REFERENCES schools(id),
    username TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    campuses TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (school_id, username)
);
CREATE TABLE staff_sessions (
    token_hash TEXT PRIMARY KEY,
    school_id TEXT NOT NULL,
    username TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    FOREIGN KEY (school_id, username) REFERENCES staff_accounts(school_id, username)
);
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    school_id TEXT NOT NULL,
    id TEXT NOT NULL,
    username TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    UNIQUE (school_id, id),
    FOREIGN KEY (school_id, username) REFERENCES staff_accounts(school_id, username)
);
CREATE TABLE review_items (
    seq BIGSERIAL PRIMARY KEY,
    school_id TEXT NOT NULL,
    campus_id TEXT NOT NULL,
    camera_id TEXT,
    track_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    crop_path TEXT,
    candidates_json TEXT NOT NULL,
    state TEXT NOT NULL,
    decided_by TEXT,
    decided_at BIGINT,
    decided_student TEXT,
    UNIQUE (school_id, track_key)
);
CREATE INDEX review_items_by_state ON review_items (school_id, state, created_at);
CREATE TABLE hard_negatives (
    seq BIGSERIAL PRIMARY KEY,
    school_id TEXT NOT NULL,
    review_id BIGINT NOT NULL,
    student_id TEXT NOT NULL,
    crop_path TEXT,
    created_at BIGINT NOT NULL
);
ALTER TABLE audit_log ADD COLUMN actor_role TEXT;
ALTER TABLE audit_log ADD COLUMN actor_ip TEXT;
