-- 8: leave requests decided by staff (pending, approved, refused: who, when, why); make-ups linked to the missed lesson and who booked them; school settings (the monthly make-up limit)
ALTER TABLE leave_requests ADD COLUMN state TEXT NOT NULL DEFAULT 'pending';
UPDATE leave_requests SET state = 'approved' WHERE approved <> 0;
ALTER TABLE leave_requests ADD COLUMN requested_by TEXT;
ALTER TABLE leave_requests ADD COLUMN decided_by TEXT;
ALTER TABLE leave_requests ADD COLUMN decided_at BIGINT;
ALTER TABLE leave_requests ADD COLUMN decision_note TEXT;
CREATE INDEX leave_requests_by_state ON leave_requests (school_id, state);
ALTER TABLE makeups ADD COLUMN missed_lesson_id TEXT;
ALTER TABLE makeups ADD COLUMN booked_by TEXT;
CREATE INDEX makeups_by_student_time ON makeups (school_id, student_id, booked_at);
CREATE TABLE school_settings (
    school_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value_json TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (school_id, name)
);
