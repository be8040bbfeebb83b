//! The school's notification settings: reading them, replacing them (validated, audited).

use crate::db::ms;
use crate::notices::NotifySettings;
use crate::store::{audit, Store};
use crate::{LedgerError, Result};
use serde_json::json;
use sqlx::Row;

impl Store {
    /// The school this store is scoped to (every outbox method needs one).
    pub(super) fn outbox_school(&self) -> Result<String> {
        let s = self.school_id();
        if s.is_empty() {
            return Err(LedgerError::Invalid {
                field: "school",
                message: "store is not scoped to a school".into(),
            });
        }
        Ok(s.to_string())
    }

    /// The school's notification settings (defaults, notifications off, when never set).
    pub async fn notify_settings(&self) -> Result<NotifySettings> {
        let r = sqlx::query("SELECT settings_json FROM notify_settings WHERE school_id = $1")
            .bind(self.outbox_school()?)
            .fetch_optional(&self.pool)
            .await?;
        match r {
            Some(r) => serde_json::from_str(&r.try_get::<String, _>(0)?)
                .map_err(|e| LedgerError::Corrupt(format!("notify settings: {e}"))),
            None => Ok(NotifySettings::default()),
        }
    }

    /// Replaces the school's notification settings (validated, audited).
    pub async fn set_notify_settings(&self, s: &NotifySettings, actor: &str) -> Result<()> {
        s.validate()?;
        let school = self.outbox_school()?;
        let before = self.notify_settings().await?;
        let js = serde_json::to_string(s).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        let now = ms(self.now());
        let mut w = self.write().await?;
        sqlx::query(
            "INSERT INTO notify_settings (school_id, settings_json, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (school_id) DO UPDATE SET settings_json = excluded.settings_json, updated_at = excluded.updated_at",
        )
        .bind(&school)
        .bind(&js)
        .bind(now)
        .execute(w.conn())
        .await?;
        audit(
            w.conn(),
            &school,
            actor,
            "notify_settings",
            "school",
            &school,
            Some(json!(before)),
            Some(json!(s)),
            now,
        )
        .await?;
        w.commit().await
    }
}
