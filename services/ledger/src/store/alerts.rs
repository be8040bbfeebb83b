//! Alerts: raising one (deduplicated, audited, notified), camera alerts, reading and deciding
//! them.

use super::base::{audit, from_ms, ms, parse_enum};
use super::packages::load_packages_of;
use super::Store;
use crate::db::AnyDb;
use crate::notices::{enqueue_alert, needs_packages};
use crate::{LedgerError, Result};
use chrono::{DateTime, Utc};
use rollcall_domain::ledger::*;
use serde::Serialize;
use serde_json::json;
use sqlx::{AnyConnection, Row};

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertView {
    pub id: i64,
    pub kind: AlertKind,
    pub state: AlertState,
    pub dedup_key: String,
    pub student_id: String,
    pub class_id: Option<String>,
    pub package_id: Option<String>,
    /// In English, as written when it was raised.
    pub message: String,
    /// What it is about, as data (so each reader sees it in their own language): as stored, or
    /// for an alert stored before its data was, read back from its message.
    pub data: AlertData,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An alert's data as stored (`None`: nothing to store).
pub(crate) fn alert_data_json(a: &AlertDraft) -> Option<String> {
    (!a.data.is_empty()).then(|| serde_json::to_string(&a.data).unwrap_or_default())
}

/// An alert's data from its stored JSON, else from its message.
fn data_of(kind: AlertKind, key: &str, message: &str, json: Option<&str>) -> AlertData {
    json.and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(|| AlertData::from_message(kind, key, message))
}

/// Raises alert `a` at `at` (ms) unless its dedup key exists: the alert row, its audit row and
/// its notice (outbox rows created at `now`), all on `c`; a new alert's key is pushed on
/// `raised`.
pub(crate) async fn raise_alert(
    c: &mut AnyConnection,
    school: &str,
    a: &AlertDraft,
    at: i64,
    raised: &mut Vec<String>,
    now: DateTime<Utc>,
) -> Result<()> {
    let ins = sqlx::query(
        "INSERT INTO alerts (school_id, dedup_key, kind, student_id, class_id, package_id, message, state, created_at, updated_at, data_json) VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $8, $9) ON CONFLICT (school_id, dedup_key) DO NOTHING RETURNING seq",
    )
    .bind(school)
    .bind(&a.dedup_key)
    .bind(a.kind.as_str())
    .bind(&a.student_id)
    .bind(&a.class_id)
    .bind(&a.package_id)
    .bind(&a.message)
    .bind(at)
    .bind(alert_data_json(a))
    .fetch_optional(&mut *c)
    .await?;
    if ins.is_some() {
        audit(
            c,
            school,
            "rules",
            "raise",
            "alert",
            &a.dedup_key,
            None,
            Some(json!(a)),
            at,
        )
        .await?;
        raised.push(a.dedup_key.clone());
        let packages = if needs_packages(a) {
            load_packages_of(&mut AnyDb(&mut *c), school, &[a.student_id.as_str()])
                .await?
                .remove(&a.student_id)
        } else {
            None
        };
        let packages = packages.as_ref().map(|(p, od)| (p.as_slice(), *od));
        enqueue_alert(&mut *c, school, a, at, packages, now).await?;
    }
    Ok(())
}

impl Store {
    /// Moves an alert to another state (audited).
    pub async fn set_alert_state(&self, id: i64, state: AlertState, actor: &str) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        let before: String =
            sqlx::query("SELECT state FROM alerts WHERE school_id = $1 AND seq = $2")
                .bind(&school)
                .bind(id)
                .fetch_optional(w.conn())
                .await?
                .ok_or_else(|| LedgerError::NotFound {
                    entity: "alert",
                    id: id.to_string(),
                })?
                .try_get(0)?;
        let now = ms(self.now());
        sqlx::query(
            "UPDATE alerts SET state = $1, updated_at = $2 WHERE school_id = $3 AND seq = $4",
        )
        .bind(state.as_str())
        .bind(now)
        .bind(&school)
        .bind(id)
        .execute(w.conn())
        .await?;
        audit(
            w.conn(),
            &school,
            actor,
            "alert_state",
            "alert",
            &id.to_string(),
            Some(json!({"state": before})),
            Some(json!({"state": state})),
            now,
        )
        .await?;
        w.commit().await
    }

    /// Alerts, newest first, optionally only in one state.
    pub async fn alerts(&self, state: Option<AlertState>) -> Result<Vec<AlertView>> {
        let rows = sqlx::query(
            "SELECT seq, kind, state, dedup_key, student_id, class_id, package_id, message, created_at, updated_at, data_json FROM alerts \
             WHERE school_id = $1 AND ($2 = '' OR state = $2) ORDER BY seq DESC",
        )
        .bind(self.need_school()?)
        .bind(state.map(|s| s.as_str()).unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind = parse_enum(&r.try_get::<String, _>(1)?, AlertKind::parse, "alert kind")?;
                let key: String = r.try_get(3)?;
                let message: String = r.try_get(7)?;
                let json: Option<String> = r.try_get(10)?;
                Ok(AlertView {
                    id: r.try_get(0)?,
                    kind,
                    state: parse_enum(
                        &r.try_get::<String, _>(2)?,
                        AlertState::parse,
                        "alert state",
                    )?,
                    data: data_of(kind, &key, &message, json.as_deref()),
                    dedup_key: key,
                    student_id: r.try_get(4)?,
                    class_id: r.try_get(5)?,
                    package_id: r.try_get(6)?,
                    message,
                    created_at: from_ms(r.try_get(8)?),
                    updated_at: from_ms(r.try_get(9)?),
                })
            })
            .collect()
    }

    /// Raises a camera-health alert (offline or stale), one per outage: `dedup_key` names the
    /// outage (e.g. `camera:{id}:{since_ms}`), so repeated reports of it are no-ops. Camera
    /// alerts belong to no student (`student_id` is empty). Returns whether it was new.
    pub async fn raise_camera_alert(
        &self,
        camera: &str,
        dedup_key: &str,
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let school = self.need_school()?.to_string();
        let message = format!("camera {camera}: {message}");
        // the runtime says what happened in words; the facts are read from them and the key
        let mut data = AlertData::from_message(AlertKind::CameraOffline, dedup_key, &message);
        data.camera_id = Some(camera.to_string());
        let draft = AlertDraft {
            kind: AlertKind::CameraOffline,
            dedup_key: dedup_key.to_string(),
            student_id: String::new(),
            class_id: None,
            package_id: None,
            message,
            data,
        };
        let mut raised = Vec::new();
        let mut w = self.write().await?;
        raise_alert(w.conn(), &school, &draft, ms(at), &mut raised, self.now()).await?;
        w.commit().await?;
        Ok(!raised.is_empty())
    }

    /// Resolves the open camera alerts of `camera` (it is back online); returns how many.
    pub async fn resolve_camera_alerts(&self, camera: &str) -> Result<usize> {
        let school = self.need_school()?.to_string();
        let prefix = format!("camera:{camera}:");
        let rows = sqlx::query(
            "SELECT seq, dedup_key FROM alerts WHERE school_id = $1 AND kind = $2 AND state <> 'resolved'",
        )
        .bind(&school)
        .bind(AlertKind::CameraOffline.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut n = 0;
        for r in rows {
            let key: String = r.try_get(1)?;
            if key.starts_with(&prefix) {
                self.set_alert_state(r.try_get(0)?, AlertState::Resolved, "system")
                    .await?;
                n += 1;
            }
        }
        Ok(n)
    }
}
