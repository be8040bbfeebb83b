//! Reading the audit log back (the rows are written through [`crate::audit`]).

use super::base::from_ms;
use super::Store;
use crate::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

/// One stored audit row.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub seq: i64,
    pub actor: String,
    pub actor_role: Option<String>,
    pub actor_ip: Option<String>,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub at: DateTime<Utc>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl Store {
    /// Audit rows, newest first (for the API's audit view and tests).
    pub async fn audit_rows(&self, limit: i64) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query("SELECT seq, actor, actor_role, actor_ip, action, entity, entity_id, at, before_json, after_json FROM audit_log WHERE school_id = $1 ORDER BY seq DESC LIMIT $2")
            .bind(self.need_school()?)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let j = |i: usize| -> Result<Option<Value>> {
                    Ok(r.try_get::<Option<String>, _>(i)?
                        .and_then(|s| serde_json::from_str(&s).ok()))
                };
                Ok(AuditRow {
                    seq: r.try_get(0)?,
                    actor: r.try_get(1)?,
                    actor_role: r.try_get(2)?,
                    actor_ip: r.try_get(3)?,
                    action: r.try_get(4)?,
                    entity: r.try_get(5)?,
                    entity_id: r.try_get(6)?,
                    at: from_ms(r.try_get(7)?),
                    before: j(8)?,
                    after: j(9)?,
                })
            })
            .collect()
    }
}
