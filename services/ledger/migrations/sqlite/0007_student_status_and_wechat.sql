-- 7: students: status (active, suspended, left) with when and why; guardians: WeChat id
ALTER TABLE students ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE students ADD COLUMN status_since BIGINT;
ALTER TABLE students ADD COLUMN status_reason TEXT;
ALTER TABLE guardians ADD COLUMN wechat_id TEXT;
