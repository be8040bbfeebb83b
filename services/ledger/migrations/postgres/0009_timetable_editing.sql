-- 9: the timetable edited from the staff app (issue 21 item 6): a class's capacity, default
-- room and kind (a group, or 1-on-1 slots); weekly series of lessons with an end date;
-- holidays (school-local dates) on which a series makes no lesson; cancelled lessons kept
-- apart (a cancelled lesson leaves `lessons`, so no check-in, finalisation, reminder or list
-- can meet it); a lesson's series.
ALTER TABLE classes ADD COLUMN capacity BIGINT;
ALTER TABLE classes ADD COLUMN room_id TEXT;
ALTER TABLE classes ADD COLUMN kind TEXT NOT NULL DEFAULT 'group';
ALTER TABLE lessons ADD COLUMN series_id TEXT;
CREATE INDEX lessons_by_series ON lessons (school_id, series_id);
CREATE INDEX lessons_by_start ON lessons (school_id, start_ms);
CREATE TABLE lesson_series (
    school_id TEXT NOT NULL,
    id TEXT NOT NULL,
    class_id TEXT NOT NULL,
    weekday BIGINT NOT NULL,
    start_local TEXT NOT NULL,
    minutes BIGINT NOT NULL,
    first_day TEXT NOT NULL,
    last_day TEXT NOT NULL,
    room_id TEXT,
    teacher TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (school_id, id),
    FOREIGN KEY (school_id, class_id) REFERENCES classes(school_id, id)
);
CREATE TABLE holidays (
    school_id TEXT NOT NULL,
    day TEXT NOT NULL,
    name TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (school_id, day)
);
CREATE TABLE cancelled_lessons (
    school_id TEXT NOT NULL,
    id TEXT NOT NULL,
    class_id TEXT NOT NULL,
    campus_id TEXT NOT NULL,
    room_id TEXT,
    teacher TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    series_id TEXT,
    reason TEXT NOT NULL,
    cancelled_by TEXT NOT NULL,
    cancelled_at BIGINT NOT NULL,
    -- who was booked (student ids, JSON) and what went with the lesson (leave, make-ups)
    booked_json TEXT NOT NULL,
    PRIMARY KEY (school_id, id, cancelled_at)
);
CREATE INDEX cancelled_lessons_by_start ON cancelled_lessons (school_id, start_ms);
