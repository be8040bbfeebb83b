-- 10: teacher pay rates stored per teacher (per lesson held and per attending student, cents, from a school-local date on); alerts' structured data (JSON: names, counts, dates) so each reader sees them in their own language
CREATE TABLE teacher_rates (
    school_id TEXT NOT NULL,
    teacher TEXT NOT NULL,
    effective_from TEXT NOT NULL,
    per_lesson_cents BIGINT NOT NULL,
    per_student_cents BIGINT NOT NULL,
    set_by TEXT NOT NULL,
    set_at BIGINT NOT NULL,
    PRIMARY KEY (school_id, teacher, effective_from)
);
ALTER TABLE alerts ADD COLUMN data_json TEXT;
