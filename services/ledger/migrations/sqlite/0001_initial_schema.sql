-- 1: initial schema
CREATE TABLE schools (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tz_offset_minutes BIGINT NOT NULL DEFAULT 0,
    policy_json TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE campuses (
    school_id TEXT NOT NULL REFERENCES schools(id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (school_id, id)
);
CREATE TABLE rooms (
    school_id TEXT NOT NULL,
    id TEXT NOT NULL,
    campus_id TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (school_id, id),
    FOREIGN KEY (school_id, campus_id) REFERENCES campuses(school_id, id)
);
CREATE TABLE cameras (
    school_id TEXT NOT NULL,
    id TEXT NOT NULL,
    campus_id TEXT NOT NULL,
    door TEXT NOT NULL,
    PRIMARY KEY (school_id, id),
    FOREIGN KEY (school_id, campus_id) REFERENCES campuses(school_id, id)
);
CREATE TABLE students (
    school_id TEXT NOT NULL REFERENCES schools(id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    home_campus_id TEXT,
    lock_seq BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (school_id, id)
);
CREATE TABLE guardians (
    school_id TEXT NOT NULL,
    id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    name TEXT NOT NULL,
    phone TEXT,
    email TEXT,
    language TEXT NOT NULL DEFAULT 'en',
    notify_prefs TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (school_id, id),
    FOREIGN KEY (school_id, student_id) REFERENCES students(school_id, id)
);
CREATE TABLE consents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    school_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    granted BIGINT NOT NULL,
    given_by TEXT NOT NULL,
    at BIGINT NOT NULL,
    FOREIGN KEY (school_id, student_id) REFERENCES students(school_id, id)
);
CREATE TABLE classes (
    school_id TEXT NOT NULL,
    id TEXT NOT NULL,
    course TEXT NOT NULL,
    name TEXT NOT NULL,
    campus_id TEXT NOT NULL,
    teacher TEXT NOT NULL,
    policy_json TEXT NOT NULL,
    PRIMARY KEY (school_id, id),
    FOREIGN KEY (school_id, campus_id) REFERENCES campuses(school_id, id)
);
CREATE TABLE lessons (
    school_id TEXT NOT NULL,
    id TEXT NOT NULL,
    class_id TEXT NOT NULL,
    campus_id TEXT NOT NULL,
    room_id TEXT,
    teacher TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    finalized_at BIGINT,
    PRIMARY KEY (school_id, id),
    FOREIGN KEY (school_id, class_id) REFERENCES classes(school_id, id),
    FOREIGN KEY (school_id, campus_id) REFERENCES campuses(school_id, id)
);
CREATE INDEX lessons_by_class_start ON lessons (school_id, class_id, start_ms);
CREATE INDEX lessons_by_end ON lessons (school_id, end_ms);
CREATE TABLE enrollments (
    school_id TEXT NOT NULL,
    class_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    enrolled_at BIGINT NOT NULL,
    PRIMARY KEY (school_id, class_id, student_id),
    FOREIGN KEY (school_id, class_id) REFERENCES classes(school_id, id),
    FOREIGN KEY (school_id, student_id) REFERENCES students(school_id, id)
);
CREATE INDEX enrollments_by_student ON enrollments (school_id, student_id);
CREATE TABLE makeups (
    school_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    lesson_id TEXT NOT NULL,
    booked_at BIGINT NOT NULL,
    PRIMARY KEY (school_id, student_id, lesson_id),
    FOREIGN KEY (school_id, lesson_id) REFERENCES lessons(school_id, id),
    FOREIGN KEY (school_id, student_id) REFERENCES students(school_id, id)
);
CREATE TABLE packages (
    school_id TEXT NOT NULL,
    id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    campus_id TEXT,
    lessons_bought BIGINT NOT NULL,
    unit_price_cents BIGINT NOT NULL,
    price_paid_cents BIGINT NOT NULL,
    bought_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (school_id, id),
    FOREIGN KEY (school_id, student_id) REFERENCES students(school_id, id)
);
CREATE INDEX packages_by_student ON packages (school_id, student_id);
CREATE TABLE ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    school_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    package_id TEXT,
    lesson_id TEXT,
    units BIGINT NOT NULL,
    amount_cents BIGINT NOT NULL,
    idempotency_key TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    note TEXT,
    UNIQUE (school_id, idempotency_key),
    FOREIGN KEY (school_id, student_id) REFERENCES students(school_id, id)
);
CREATE INDEX ledger_by_student ON ledger (school_id, student_id);
CREATE INDEX ledger_by_package ON ledger (school_id, package_id);
CREATE TABLE attendance (
    school_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    lesson_id TEXT NOT NULL,
    status TEXT NOT NULL,
    source TEXT,
    camera_id TEXT,
    at BIGINT NOT NULL,
    UNIQUE (school_id, student_id, lesson_id),
    FOREIGN KEY (school_id, lesson_id) REFERENCES lessons(school_id, id),
    FOREIGN KEY (school_id, student_id) REFERENCES students(school_id, id)
);
CREATE INDEX attendance_by_lesson ON attendance (school_id, lesson_id);
CREATE TABLE checkin_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    school_id TEXT NOT NULL,
    event_key TEXT NOT NULL,
    student_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    source TEXT NOT NULL,
    camera_id TEXT,
    lesson_id TEXT,
    outcome TEXT NOT NULL,
    UNIQUE (school_id, event_key)
);
CREATE TABLE leave_requests (
    school_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    lesson_id TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    approved BIGINT NOT NULL,
    reason TEXT,
    PRIMARY KEY (school_id, student_id, lesson_id),
    FOREIGN KEY (school_id, lesson_id) REFERENCES lessons(school_id, id)
);
CREATE TABLE alerts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    school_id TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    student_id TEXT NOT NULL,
    class_id TEXT,
    package_id TEXT,
    message TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (school_id, dedup_key)
);
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    school_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    before_json TEXT,
    after_json TEXT
);
