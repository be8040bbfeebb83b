-- 5: parked check-ins (the runtime could not commit them)
CREATE TABLE parked_check_ins (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    school_id TEXT NOT NULL,
    event_key TEXT NOT NULL,
    student_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    source TEXT NOT NULL,
    camera_id TEXT,
    reason TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    parked_at BIGINT NOT NULL,
    UNIQUE (school_id, event_key)
);
