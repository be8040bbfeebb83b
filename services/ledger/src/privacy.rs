//! Privacy (issue 9): consent records with scope, document reference and expiry; the encrypted
//! canonical template rows (`biometric_templates`, opaque bytes: the ledger never sees a
//! vector or a key); students' last activity for retention; privacy audit rows; and the
//! subject-access record. The ledger implements the domain's [`PrivacyStore`] port with these.

use crate::store::{audit, from_ms, ms, require};
use crate::{LedgerError, Result, Store};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rollcall_domain::gallery::TemplateId;
use rollcall_domain::privacy::{
    ConsentGate, ConsentRecord, PrivacyStore, PrivacyStoreError, SealedTemplate, StoredImage,
};
use rollcall_domain::{StudentId, TenantId};
use serde_json::{json, Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Column, Row};

fn to_hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
    s
}

fn from_hex(s: &str) -> Result<Vec<u8>> {
    let bad = || LedgerError::Corrupt(format!("not hex: {:.16}…", s));
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect()
}

fn invalid(field: &'static str, message: impl Into<String>) -> LedgerError {
    LedgerError::Invalid {
        field,
        message: message.into(),
    }
}

fn school_of(s: &Store) -> Result<String> {
    if s.school_id().is_empty() {
        return Err(invalid("school", "store is not scoped to a school"));
    }
    Ok(s.school_id().to_string())
}

/// The tenant a port call names must be the store's school: one school never reads or
/// writes another's rows through a store scoped to it.
fn same_school(s: &Store, tenant: &TenantId) -> std::result::Result<(), PrivacyStoreError> {
    if s.school_id() != tenant.as_str() {
        return Err(PrivacyStoreError(format!(
            "store is scoped to school {:?}, not {tenant}",
            s.school_id()
        )));
    }
    Ok(())
}

fn port<T>(r: Result<T>) -> std::result::Result<T, PrivacyStoreError> {
    r.map_err(|e| PrivacyStoreError(e.to_string()))
}

fn sealed_of(r: &AnyRow, tenant: &str) -> Result<SealedTemplate> {
    let tid: String = r.try_get(0)?;
    let student: String = r.try_get(1)?;
    Ok(SealedTemplate {
        tenant: TenantId::new(tenant).map_err(|e| LedgerError::Corrupt(e.to_string()))?,
        student: StudentId::new(student).map_err(|e| LedgerError::Corrupt(e.to_string()))?,
        template_id: tid
            .parse::<TemplateId>()
            .map_err(|e| LedgerError::Corrupt(e.to_string()))?,
        model_id: r.try_get(2)?,
        model_version: r.try_get(3)?,
        key_id: r.try_get(4)?,
        nonce: from_hex(&r.try_get::<String, _>(5)?)?,
        ciphertext: from_hex(&r.try_get::<String, _>(6)?)?,
        created_at: from_ms(r.try_get(7)?),
    })
}

/// A row of any table as JSON (column types are not known in advance).
fn row_json(r: &AnyRow) -> Value {
    let mut m = Map::new();
    for (i, c) in r.columns().iter().enumerate() {
        let v = if let Ok(v) = r.try_get::<Option<i64>, _>(i) {
            json!(v)
        } else if let Ok(v) = r.try_get::<Option<String>, _>(i) {
            json!(v)
        } else if let Ok(v) = r.try_get::<Option<f64>, _>(i) {
            json!(v)
        } else if let Ok(v) = r.try_get::<Option<bool>, _>(i) {
            json!(v)
        } else if let Ok(v) = r.try_get::<Option<Vec<u8>>, _>(i) {
            json!(v.map(|b| format!("{} bytes", b.len())))
        } else {
            Value::Null
        };
        m.insert(c.name().to_string(), v);
    }
    Value::Object(m)
}

impl Store {
    /// Records a consent decision with its document reference and expiry (append-only).
    /// A grant must come from a registered guardian of the student and name a document; a
    /// withdrawal (`granted = false`) may be recorded by anyone (guardian or staff), named in
    /// `given_by`. Audited.
    pub async fn record_consent_decision(&self, student: &str, r: &ConsentRecord) -> Result<()> {
        let school = school_of(self)?;
        if r.kind.trim().is_empty() {
            return Err(invalid("consent kind", "empty"));
        }
        if r.given_by.trim().is_empty() {
            return Err(invalid("given_by", "who decided must be named"));
        }
        if r.granted {
            if r.document_ref
                .as_deref()
                .map(str::trim)
                .unwrap_or("")
                .is_empty()
            {
                return Err(invalid(
                    "document_ref",
                    "a consent grant needs the reference of the signed document",
                ));
            }
            if let Some(e) = r.expires_at {
                if e <= r.at {
                    return Err(invalid(
                        "expires_at",
                        "the consent expires before it is given",
                    ));
                }
            }
        }
        let mut w = self.write().await?;
        require(w.conn(), "student", &school, student).await?;
        if r.granted {
            let g = sqlx::query(
                "SELECT 1 FROM guardians WHERE school_id = $1 AND id = $2 AND student_id = $3",
            )
            .bind(&school)
            .bind(&r.given_by)
            .bind(student)
            .fetch_optional(w.conn())
            .await?;
            if g.is_none() {
                return Err(invalid(
                    "given_by",
                    format!(
                        "{:?} is not a registered guardian of student {student:?}",
                        r.given_by
                    ),
                ));
            }
        }
        sqlx::query("INSERT INTO consents (school_id, student_id, kind, granted, given_by, at, document_ref, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&school)
            .bind(student)
            .bind(&r.kind)
            .bind(i64::from(r.granted))
            .bind(&r.given_by)
            .bind(ms(r.at))
            .bind(&r.document_ref)
            .bind(r.expires_at.map(ms))
            .execute(w.conn())
            .await?;
        audit(
            w.conn(),
            &school,
            &r.given_by,
            if r.granted {
                "consent"
            } else {
                "consent_withdrawn"
            },
            "student",
            student,
            None,
            Some(json!(r)),
            ms(r.at),
        )
        .await?;
        w.commit().await
    }

    /// Every consent decision of a student, in recording order.
    pub async fn consent_records(&self, student: &str) -> Result<Vec<ConsentRecord>> {
        let school = school_of(self)?;
        let rows = sqlx::query("SELECT kind, granted, given_by, at, document_ref, expires_at FROM consents WHERE school_id = $1 AND student_id = $2 ORDER BY seq")
            .bind(&school)
            .bind(student)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ConsentRecord {
                    kind: r.try_get(0)?,
                    granted: r.try_get::<i64, _>(1)? != 0,
                    given_by: r.try_get(2)?,
                    at: from_ms(r.try_get(3)?),
                    document_ref: r.try_get(4)?,
                    expires_at: r.try_get::<Option<i64>, _>(5)?.map(from_ms),
                })
            })
            .collect()
    }

    /// Inserts or replaces sealed templates (by template id), in one transaction.
    pub async fn put_sealed_templates(&self, rows: &[SealedTemplate]) -> Result<()> {
        let school = school_of(self)?;
        if let Some(r) = rows.iter().find(|r| r.tenant.as_str() != school) {
            return Err(invalid(
                "tenant",
                format!("sealed template of {} given to school {school}", r.tenant),
            ));
        }
        let mut w = self.write().await?;
        for r in rows {
            require(w.conn(), "student", &school, r.student.as_str()).await?;
            sqlx::query(
                "INSERT INTO biometric_templates (school_id, template_id, student_id, model_id, model_version, key_id, nonce_hex, ciphertext_hex, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (school_id, template_id) DO UPDATE SET student_id = excluded.student_id, model_id = excluded.model_id, model_version = excluded.model_version, key_id = excluded.key_id, nonce_hex = excluded.nonce_hex, ciphertext_hex = excluded.ciphertext_hex, created_at = excluded.created_at",
            )
            .bind(&school)
            .bind(r.template_id.to_string())
            .bind(r.student.as_str())
            .bind(&r.model_id)
            .bind(&r.model_version)
            .bind(&r.key_id)
            .bind(to_hex(&r.nonce))
            .bind(to_hex(&r.ciphertext))
            .bind(ms(r.created_at))
            .execute(w.conn())
            .await?;
            // the student's trail records each sealed template (ids and model, never bytes), in
            // the transaction that stores it: an enrollment through the API is attributed to
            // the staff member (actor context), a key rotation to whoever ran it
            audit(
                w.conn(),
                &school,
                "system",
                "template_sealed",
                "student",
                r.student.as_str(),
                None,
                Some(json!({
                    "template_id": r.template_id.to_string(),
                    "model_id": r.model_id,
                    "model_version": r.model_version,
                    "key_id": r.key_id,
                })),
                ms(self.now()),
            )
            .await?;
        }
        w.commit().await
    }

    /// Sealed templates of the school, or of one student, by template id.
    pub async fn sealed_templates(&self, student: Option<&str>) -> Result<Vec<SealedTemplate>> {
        let school = school_of(self)?;
        let rows = sqlx::query(
            "SELECT template_id, student_id, model_id, model_version, key_id, nonce_hex, ciphertext_hex, created_at FROM biometric_templates \
             WHERE school_id = $1 AND ($2 = '' OR student_id = $2) ORDER BY template_id",
        )
        .bind(&school)
        .bind(student.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| sealed_of(r, &school)).collect()
    }

    /// Deletes a student's sealed templates; returns how many.
    pub async fn delete_sealed_templates_of(&self, student: &str) -> Result<usize> {
        let school = school_of(self)?;
        let mut w = self.write().await?;
        let n =
            sqlx::query("DELETE FROM biometric_templates WHERE school_id = $1 AND student_id = $2")
                .bind(&school)
                .bind(student)
                .execute(w.conn())
                .await?
                .rows_affected();
        w.commit().await?;
        Ok(n as usize)
    }

    /// Deletes sealed templates by id; returns how many existed.
    pub async fn delete_sealed_template_ids(&self, ids: &[TemplateId]) -> Result<usize> {
        let school = school_of(self)?;
        let mut w = self.write().await?;
        let mut n = 0;
        for id in ids {
            n += sqlx::query(
                "DELETE FROM biometric_templates WHERE school_id = $1 AND template_id = $2",
            )
            .bind(&school)
            .bind(id.to_string())
            .execute(w.conn())
            .await?
            .rows_affected();
        }
        w.commit().await?;
        Ok(n as usize)
    }

    /// Makes deleted rows physically gone from the database files where this process can:
    /// SQLite checkpoints and truncates the WAL, VACUUMs and truncates again; PostgreSQL
    /// reclaims dead tuples with its (auto)vacuum, see PRIVACY.md.
    pub async fn compact_storage(&self) -> Result<String> {
        match self.backend() {
            crate::Backend::Sqlite => {
                let mut c = self.pool.acquire().await?;
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&mut *c)
                    .await?;
                sqlx::query("VACUUM").execute(&mut *c).await?;
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&mut *c)
                    .await?;
                Ok("sqlite: wal_checkpoint(TRUNCATE), VACUUM".into())
            }
            crate::Backend::Postgres => {
                let _ = sqlx::query("VACUUM biometric_templates")
                    .execute(&self.pool)
                    .await;
                Ok("postgres: VACUUM biometric_templates".into())
            }
        }
    }

    /// For every student, the latest of: registration, attendance (present/late/left early),
    /// check-in event, consent decision.
    pub async fn last_activity_by_student(&self) -> Result<Vec<(String, DateTime<Utc>)>> {
        let school = school_of(self)?;
        let rows = sqlx::query(
            "SELECT s.id, s.created_at, \
               (SELECT MAX(a.at) FROM attendance a WHERE a.school_id = s.school_id AND a.student_id = s.id AND a.status IN ('present', 'late', 'left_early')), \
               (SELECT MAX(e.at) FROM checkin_events e WHERE e.school_id = s.school_id AND e.student_id = s.id), \
               (SELECT MAX(c.at) FROM consents c WHERE c.school_id = s.school_id AND c.student_id = s.id) \
             FROM students s WHERE s.school_id = $1 ORDER BY s.id",
        )
        .bind(&school)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let mut last: i64 = r.try_get(1)?;
                for i in 2..5 {
                    if let Some(v) = r.try_get::<Option<i64>, _>(i)? {
                        last = last.max(v);
                    }
                }
                Ok((r.try_get::<String, _>(0)?, from_ms(last)))
            })
            .collect()
    }

    /// Face images the ledger points at: review items' crops (students: candidates and the
    /// decided student) and hard negatives' crops. Tables that do not exist give nothing.
    pub async fn stored_face_images(&self) -> Result<Vec<StoredImage>> {
        let school = school_of(self)?;
        let mut out = Vec::new();
        if let Ok(rows) = sqlx::query("SELECT crop_path, created_at, decided_at, decided_student, candidates_json FROM review_items WHERE school_id = $1 AND crop_path IS NOT NULL ORDER BY seq")
            .bind(&school)
            .fetch_all(&self.pool)
            .await
        {
            for r in &rows {
                let mut students: Vec<String> = Vec::new();
                if let Some(s) = r.try_get::<Option<String>, _>(3)? {
                    students.push(s);
                }
                let cands: Value =
                    serde_json::from_str(&r.try_get::<String, _>(4)?).unwrap_or(Value::Null);
                for c in cands.as_array().into_iter().flatten() {
                    for k in ["student_id", "student"] {
                        if let Some(s) = c.get(k).and_then(Value::as_str) {
                            students.push(s.to_string());
                        }
                    }
                }
                students.sort();
                students.dedup();
                out.push(StoredImage {
                    path: r.try_get(0)?,
                    created_at: from_ms(r.try_get(1)?),
                    decided_at: r.try_get::<Option<i64>, _>(2)?.map(from_ms),
                    students,
                });
            }
        }
        if let Ok(rows) = sqlx::query("SELECT crop_path, created_at, student_id FROM hard_negatives WHERE school_id = $1 AND crop_path IS NOT NULL ORDER BY seq")
            .bind(&school)
            .fetch_all(&self.pool)
            .await
        {
            for r in &rows {
                let at = from_ms(r.try_get(1)?);
                out.push(StoredImage {
                    path: r.try_get(0)?,
                    created_at: at,
                    // a hard negative is a decision already
                    decided_at: Some(at),
                    students: vec![r.try_get(2)?],
                });
            }
        }
        Ok(out)
    }

    /// Clears `crop_path` of review items and hard negatives pointing at deleted images.
    pub async fn forget_face_images(&self, paths: &[String]) -> Result<usize> {
        let school = school_of(self)?;
        if paths.is_empty() {
            return Ok(0);
        }
        let mut n = 0;
        for table in ["review_items", "hard_negatives"] {
            let mut w = self.write().await?;
            let mut ok = true;
            for p in paths {
                match sqlx::query(&format!(
                    "UPDATE {table} SET crop_path = NULL WHERE school_id = $1 AND crop_path = $2"
                ))
                .bind(&school)
                .bind(p)
                .execute(w.conn())
                .await
                {
                    Ok(r) => n += r.rows_affected() as usize,
                    // the table does not exist in this database
                    Err(_) => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                w.commit().await?;
            }
        }
        Ok(n)
    }

    /// Writes a privacy audit row about a student; `detail` must be a JSON document.
    pub async fn audit_privacy_event(
        &self,
        actor: &str,
        action: &str,
        student: &str,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let school = school_of(self)?;
        let v: Value = serde_json::from_str(detail)
            .map_err(|e| invalid("detail", format!("not JSON: {e}")))?;
        let mut w = self.write().await?;
        audit(
            w.conn(),
            &school,
            actor,
            action,
            "student",
            student,
            None,
            Some(v),
            ms(at),
        )
        .await?;
        w.commit().await
    }

    /// Audit rows about a student (`entity = 'student'`), oldest first: `(at, actor, action,
    /// after_json)`.
    pub async fn student_audit(&self, student: &str) -> Result<Vec<Value>> {
        let school = school_of(self)?;
        let rows = sqlx::query("SELECT at, actor, action, after_json FROM audit_log WHERE school_id = $1 AND entity = 'student' AND entity_id = $2 ORDER BY seq")
            .bind(&school)
            .bind(student)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let after: Option<String> = r.try_get(3)?;
                Ok(json!({
                    "at": from_ms(r.try_get(0)?),
                    "actor": r.try_get::<String, _>(1)?,
                    "action": r.try_get::<String, _>(2)?,
                    "detail": after.and_then(|s| serde_json::from_str::<Value>(&s).ok()),
                }))
            })
            .collect()
    }

    /// Everything the ledger holds about a student (subject access request): profile,
    /// guardians, consent history, packages and balance, ledger entries, attendance, check-in
    /// events, alerts, the student's audit trail, whether sealed biometric templates exist
    /// (never their bytes), and rows of tables other parts may add (`notifications`,
    /// `review_items`) when they exist and have a `student_id` column.
    pub async fn subject_access(&self, student: &str, now: DateTime<Utc>) -> Result<Value> {
        let school = school_of(self)?;
        let profile = sqlx::query("SELECT id, name, home_campus_id, created_at FROM students WHERE school_id = $1 AND id = $2")
            .bind(&school)
            .bind(student)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| LedgerError::NotFound {
                entity: "student",
                id: student.into(),
            })?;
        let guardians = sqlx::query("SELECT id, name, phone, email, language, notify_prefs FROM guardians WHERE school_id = $1 AND student_id = $2 ORDER BY id")
            .bind(&school)
            .bind(student)
            .fetch_all(&self.pool)
            .await?;
        let attendance = sqlx::query("SELECT lesson_id, status, source, camera_id, at FROM attendance WHERE school_id = $1 AND student_id = $2 ORDER BY at, lesson_id")
            .bind(&school)
            .bind(student)
            .fetch_all(&self.pool)
            .await?;
        let events = sqlx::query("SELECT event_key, at, source, camera_id, lesson_id, outcome FROM checkin_events WHERE school_id = $1 AND student_id = $2 ORDER BY seq")
            .bind(&school)
            .bind(student)
            .fetch_all(&self.pool)
            .await?;
        let alerts = sqlx::query("SELECT kind, state, message, created_at, updated_at FROM alerts WHERE school_id = $1 AND student_id = $2 ORDER BY seq")
            .bind(&school)
            .bind(student)
            .fetch_all(&self.pool)
            .await?;
        let sealed = self.sealed_templates(Some(student)).await?;
        let mut other = Map::new();
        for (table, column) in [
            ("outbox", "student_id"),
            ("notifications", "student_id"),
            ("review_items", "decided_student"),
            ("hard_negatives", "student_id"),
        ] {
            // absent tables are simply not part of the export
            let q = format!("SELECT * FROM {table} WHERE school_id = $1 AND {column} = $2");
            if let Ok(rows) = sqlx::query(&q)
                .bind(&school)
                .bind(student)
                .fetch_all(&self.pool)
                .await
            {
                other.insert(
                    table.to_string(),
                    Value::Array(rows.iter().map(row_json).collect()),
                );
            }
        }
        let ms_field = |v: Value| -> Value {
            match v {
                Value::Object(mut m) => {
                    for k in ["at", "created_at", "updated_at"] {
                        if let Some(Value::Number(n)) = m.get(k) {
                            if let Some(x) = n.as_i64() {
                                m.insert(k.into(), json!(from_ms(x)));
                            }
                        }
                    }
                    Value::Object(m)
                }
                v => v,
            }
        };
        Ok(json!({
            "school": school,
            "generated_at": now,
            "profile": ms_field(row_json(&profile)),
            "guardians": guardians.iter().map(row_json).collect::<Vec<_>>(),
            "consents": self.consent_records(student).await?,
            "balance": self.balance(student, now).await?,
            "ledger": self.entries(Some(student)).await?,
            "attendance": attendance.iter().map(|r| ms_field(row_json(r))).collect::<Vec<_>>(),
            "checkin_events": events.iter().map(|r| ms_field(row_json(r))).collect::<Vec<_>>(),
            "alerts": alerts.iter().map(|r| ms_field(row_json(r))).collect::<Vec<_>>(),
            "audit": self.student_audit(student).await?,
            "sealed_biometric_templates": sealed.iter().map(|s| json!({
                "template_id": s.template_id,
                "model_id": s.model_id,
                "model_version": s.model_version,
                "key_id": s.key_id,
                "created_at": s.created_at,
            })).collect::<Vec<_>>(),
            "other": other,
        }))
    }
}

#[async_trait]
impl ConsentGate for Store {
    async fn consent_history(
        &self,
        tenant: &TenantId,
        student: &StudentId,
    ) -> std::result::Result<Vec<ConsentRecord>, PrivacyStoreError> {
        same_school(self, tenant)?;
        port(self.consent_records(student.as_str()).await)
    }
}

#[async_trait]
impl PrivacyStore for Store {
    async fn append_consent(
        &self,
        tenant: &TenantId,
        student: &StudentId,
        record: &ConsentRecord,
    ) -> std::result::Result<(), PrivacyStoreError> {
        same_school(self, tenant)?;
        port(self.record_consent_decision(student.as_str(), record).await)
    }

    async fn put_sealed(
        &self,
        rows: &[SealedTemplate],
    ) -> std::result::Result<(), PrivacyStoreError> {
        for r in rows {
            same_school(self, &r.tenant)?;
        }
        port(self.put_sealed_templates(rows).await)
    }

    async fn sealed(
        &self,
        tenant: &TenantId,
        student: Option<&StudentId>,
    ) -> std::result::Result<Vec<SealedTemplate>, PrivacyStoreError> {
        same_school(self, tenant)?;
        port(self.sealed_templates(student.map(|s| s.as_str())).await)
    }

    async fn delete_sealed_student(
        &self,
        tenant: &TenantId,
        student: &StudentId,
    ) -> std::result::Result<usize, PrivacyStoreError> {
        same_school(self, tenant)?;
        port(self.delete_sealed_templates_of(student.as_str()).await)
    }

    async fn delete_sealed_ids(
        &self,
        tenant: &TenantId,
        ids: &[TemplateId],
    ) -> std::result::Result<usize, PrivacyStoreError> {
        same_school(self, tenant)?;
        port(self.delete_sealed_template_ids(ids).await)
    }

    async fn compact(&self) -> std::result::Result<String, PrivacyStoreError> {
        port(self.compact_storage().await)
    }

    async fn last_activity(
        &self,
        tenant: &TenantId,
    ) -> std::result::Result<Vec<(StudentId, DateTime<Utc>)>, PrivacyStoreError> {
        same_school(self, tenant)?;
        let rows = port(self.last_activity_by_student().await)?;
        rows.into_iter()
            .map(|(s, t)| {
                StudentId::new(s)
                    .map(|s| (s, t))
                    .map_err(|e| PrivacyStoreError(e.to_string()))
            })
            .collect()
    }

    async fn audit_privacy(
        &self,
        tenant: &TenantId,
        actor: &str,
        action: &str,
        student: &StudentId,
        detail: &str,
        at: DateTime<Utc>,
    ) -> std::result::Result<(), PrivacyStoreError> {
        same_school(self, tenant)?;
        port(
            self.audit_privacy_event(actor, action, student.as_str(), detail, at)
                .await,
        )
    }

    async fn stored_images(
        &self,
        tenant: &TenantId,
    ) -> std::result::Result<Vec<StoredImage>, PrivacyStoreError> {
        same_school(self, tenant)?;
        port(self.stored_face_images().await)
    }

    async fn forget_images(
        &self,
        tenant: &TenantId,
        paths: &[String],
    ) -> std::result::Result<usize, PrivacyStoreError> {
        same_school(self, tenant)?;
        port(self.forget_face_images(paths).await)
    }

    async fn subject_record(
        &self,
        tenant: &TenantId,
        student: &StudentId,
    ) -> std::result::Result<String, PrivacyStoreError> {
        same_school(self, tenant)?;
        let v = port(self.subject_access(student.as_str(), self.now()).await)?;
        Ok(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        let b = vec![0u8, 1, 0xab, 0xff];
        assert_eq!(to_hex(&b), "0001abff");
        assert_eq!(from_hex("0001abff").unwrap(), b);
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
        assert!(from_hex("é1").is_err());
    }
}
