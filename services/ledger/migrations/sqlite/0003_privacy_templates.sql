-- 3: privacy: consent document/expiry, encrypted canonical templates
-- Nonces and ciphertexts are stored as lowercase hex text (portable between the backends).
ALTER TABLE consents ADD COLUMN document_ref TEXT;
ALTER TABLE consents ADD COLUMN expires_at BIGINT;
CREATE TABLE biometric_templates (
    school_id TEXT NOT NULL,
    template_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    key_id TEXT NOT NULL,
    nonce_hex TEXT NOT NULL,
    ciphertext_hex TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (school_id, template_id),
    FOREIGN KEY (school_id, student_id) REFERENCES students(school_id, id)
);
CREATE INDEX biometric_templates_by_student ON biometric_templates (school_id, student_id);
