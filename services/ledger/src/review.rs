//! The review queue: tracks the matcher could not decide, the staff member's decision flowing
//! into the ledger (a check-in through the same exactly-once path as the camera's), and the
//! hard negatives that reassignments record (migration 4).

use crate::audit::who;
use crate::notices::{enqueue_at, NoticeDraft, NoticeKind};
use crate::store::{audit, from_ms, ms, require};
use crate::{LedgerError, Result, Store};
use chrono::{DateTime, Utc};
use rollcall_domain::ledger::AttendanceSource;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

impl Store {
    /// Queues a track the matcher could not decide. Idempotent on the track key: a second
    /// report of the same track returns the existing item's id and `false`.
    pub async fn create_review_item(&self, r: &NewReviewItem) -> Result<(i64, bool)> {
        let school = self.need_school()?.to_string();
        if r.track_key.is_empty() {
            return Err(LedgerError::Invalid {
                field: "track_key",
                message: "empty".into(),
            });
        }
        let cands = serde_json::to_string(&r.candidates)
            .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        let mut w = self.write().await?;
        require(w.conn(), "campus", &school, &r.campus_id).await?;
        let now = ms(self.now());
        let ins = sqlx::query("INSERT INTO review_items (school_id, campus_id, camera_id, track_key, created_at, seen_at, reason, crop_path, candidates_json, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending') ON CONFLICT (school_id, track_key) DO NOTHING RETURNING seq")
            .bind(&school)
            .bind(&r.campus_id)
            .bind(&r.camera_id)
            .bind(&r.track_key)
            .bind(now)
            .bind(ms(r.seen_at))
            .bind(&r.reason)
            .bind(&r.crop_path)
            .bind(&cands)
            .fetch_optional(w.conn())
            .await?;
        let (id, created) = match ins {
            Some(row) => (row.try_get::<i64, _>(0)?, true),
            None => {
                let row = sqlx::query(
                    "SELECT seq FROM review_items WHERE school_id = $1 AND track_key = $2",
                )
                .bind(&school)
                .bind(&r.track_key)
                .fetch_one(w.conn())
                .await?;
                (row.try_get::<i64, _>(0)?, false)
            }
        };
        if created {
            audit(
                w.conn(),
                &school,
                &who("matcher"),
                "create",
                "review_item",
                &id.to_string(),
                None,
                Some(json!(r)),
                now,
            )
            .await?;
            // "review needed" to staff, in the same transaction (the outbox pattern)
            let top = r
                .candidates
                .first()
                .map(|c| format!("{} ({:.2})", c.student_id, c.score))
                .unwrap_or_else(|| "no candidate".into());
            let draft = NoticeDraft {
                notice_id: format!("review:{id}"),
                kind: NoticeKind::ReviewNeeded,
                student_id: None,
                class_id: None,
                params: json!({"message": format!(
                    "{} at {} (campus {}), best match {top}",
                    r.reason,
                    r.camera_id.as_deref().unwrap_or("?"),
                    r.campus_id
                ), "review_id": id}),
                at: r.seen_at,
            };
            enqueue_at(w.conn(), &school, &draft, self.now()).await?;
        }
        w.commit().await?;
        Ok((id, created))
    }

    /// Review items, newest first; `state` filters, `campuses` limits to a scope.
    pub async fn review_items(
        &self,
        state: Option<ReviewState>,
        limit: i64,
    ) -> Result<Vec<ReviewItem>> {
        let school = self.need_school()?;
        let rows = match state {
            Some(s) => sqlx::query(&format!("SELECT {REVIEW_COLS} FROM review_items WHERE school_id = $1 AND state = $2 ORDER BY seq DESC LIMIT $3"))
                .bind(school)
                .bind(s.as_str())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
            None => sqlx::query(&format!("SELECT {REVIEW_COLS} FROM review_items WHERE school_id = $1 ORDER BY seq DESC LIMIT $2"))
                .bind(school)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
        };
        rows.iter().map(review_from_row).collect()
    }

    pub async fn review_item(&self, id: i64) -> Result<ReviewItem> {
        let r = sqlx::query(&format!(
            "SELECT {REVIEW_COLS} FROM review_items WHERE school_id = $1 AND seq = $2"
        ))
        .bind(self.need_school()?)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| LedgerError::NotFound {
            entity: "review item",
            id: id.to_string(),
        })?;
        review_from_row(&r)
    }

    /// Decides a pending review item.
    ///
    /// * approve: checks in the top candidate (or `student` when given and among the
    ///   candidates);
    /// * reassign: checks in `student` (any student of the school) and records the crop as a
    ///   hard negative of the top candidate;
    /// * reject: nobody is checked in.
    ///
    /// The item is claimed first with a conditional update (`state = 'pending'`): a second
    /// decision, by anyone, gets [`LedgerError::Conflict`] and changes nothing. The check-in uses the event key `review:{id}`, so it is applied at
    /// most once; if it fails the claim is rolled back to pending.
    pub async fn decide_review(
        &self,
        id: i64,
        decision: ReviewDecision,
        student: Option<&str>,
        decided_by: &str,
    ) -> Result<ReviewOutcome> {
        let school = self.need_school()?.to_string();
        let item = self.review_item(id).await?;
        if item.state != ReviewState::Pending {
            return Err(stale(&item));
        }
        let top = item.candidates.first().map(|c| c.student_id.clone());
        let target: Option<String> = match decision {
            ReviewDecision::Reject => None,
            ReviewDecision::Approve => {
                let s = match student {
                    Some(s) => {
                        if !item.candidates.iter().any(|c| c.student_id == s) {
                            return Err(LedgerError::Invalid {
                                field: "student",
                                message: format!(
                                    "{s} is not a candidate of review item {id}; reassign instead"
                                ),
                            });
                        }
                        s.to_string()
                    }
                    None => top.clone().ok_or_else(|| LedgerError::Invalid {
                        field: "student",
                        message: "the item has no candidate; reassign or reject".into(),
                    })?,
                };
                Some(s)
            }
            ReviewDecision::Reassign => Some(
                student
                    .ok_or_else(|| LedgerError::Invalid {
                        field: "student",
                        message: "reassign needs the right student".into(),
                    })?
                    .to_string(),
            ),
        };
        let new_state = match decision {
            ReviewDecision::Approve => ReviewState::Approved,
            ReviewDecision::Reject => ReviewState::Rejected,
            ReviewDecision::Reassign => ReviewState::Reassigned,
        };
        let now = self.now();
        // claim
        {
            let mut w = self.write().await?;
            if let Some(s) = &target {
                require(w.conn(), "student", &school, s).await?;
            }
            let claimed = sqlx::query("UPDATE review_items SET state = $1, decided_by = $2, decided_at = $3, decided_student = $4 WHERE school_id = $5 AND seq = $6 AND state = 'pending' RETURNING seq")
                .bind(new_state.as_str())
                .bind(decided_by)
                .bind(ms(now))
                .bind(&target)
                .bind(&school)
                .bind(id)
                .fetch_optional(w.conn())
                .await?;
            if claimed.is_none() {
                drop(w);
                return Err(stale(&self.review_item(id).await?));
            }
            let wrong = match (decision, &top, &target) {
                (ReviewDecision::Reassign, Some(t), Some(s)) if t != s => Some(t.clone()),
                _ => None,
            };
            if let Some(wrong) = &wrong {
                sqlx::query("INSERT INTO hard_negatives (school_id, review_id, student_id, crop_path, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&school)
                    .bind(id)
                    .bind(wrong)
                    .bind(&item.crop_path)
                    .bind(ms(now))
                    .execute(w.conn())
                    .await?;
            }
            audit(
                w.conn(),
                &school,
                &who(decided_by),
                new_state.as_str(),
                "review_item",
                &id.to_string(),
                Some(json!({"state": "pending"})),
                Some(json!({"state": new_state, "student": target, "hard_negative": wrong})),
                ms(now),
            )
            .await?;
            w.commit().await?;
        }
        let check_in = match &target {
            None => None,
            Some(s) => {
                let ci = crate::CheckIn {
                    student_id: s.clone(),
                    at: item.seen_at,
                    source: AttendanceSource::Review,
                    camera_id: item.camera_id.clone(),
                    event_key: Some(format!("review:{id}")),
                };
                match self.check_in(&ci).await {
                    Ok(r) => Some(r),
                    Err(e) => {
                        // give the item back to the queue
                        let mut w = self.write().await?;
                        sqlx::query("UPDATE review_items SET state = 'pending', decided_by = NULL, decided_at = NULL, decided_student = NULL WHERE school_id = $1 AND seq = $2")
                            .bind(&school)
                            .bind(id)
                            .execute(w.conn())
                            .await?;
                        sqlx::query(
                            "DELETE FROM hard_negatives WHERE school_id = $1 AND review_id = $2",
                        )
                        .bind(&school)
                        .bind(id)
                        .execute(w.conn())
                        .await?;
                        audit(
                            w.conn(),
                            &school,
                            &who(decided_by),
                            "reopen",
                            "review_item",
                            &id.to_string(),
                            Some(json!({"state": new_state})),
                            Some(json!({"state": "pending", "error": e.to_string()})),
                            ms(self.now()),
                        )
                        .await?;
                        w.commit().await?;
                        return Err(e);
                    }
                }
            }
        };
        Ok(ReviewOutcome {
            item: self.review_item(id).await?,
            check_in,
        })
    }

    /// Hard negatives recorded by reassignments (crop shown to be NOT this student).
    pub async fn hard_negatives(&self) -> Result<Vec<HardNegative>> {
        let rows = sqlx::query("SELECT review_id, student_id, crop_path, created_at FROM hard_negatives WHERE school_id = $1 ORDER BY seq")
            .bind(self.need_school()?)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(HardNegative {
                    review_id: r.try_get(0)?,
                    student_id: r.try_get(1)?,
                    crop_path: r.try_get(2)?,
                    created_at: from_ms(r.try_get(3)?),
                })
            })
            .collect()
    }
}

fn stale(item: &ReviewItem) -> LedgerError {
    LedgerError::Conflict(format!(
        "review item {} was already {} by {} at {}",
        item.id,
        item.state.as_str(),
        item.decided_by.as_deref().unwrap_or("?"),
        item.decided_at.map(|t| t.to_rfc3339()).unwrap_or_default()
    ))
}

const REVIEW_COLS: &str = "seq, campus_id, camera_id, track_key, created_at, seen_at, reason, crop_path, candidates_json, state, decided_by, decided_at, decided_student";

fn review_from_row(r: &AnyRow) -> Result<ReviewItem> {
    let state: String = r.try_get(9)?;
    Ok(ReviewItem {
        id: r.try_get(0)?,
        campus_id: r.try_get(1)?,
        camera_id: r.try_get(2)?,
        track_key: r.try_get(3)?,
        created_at: from_ms(r.try_get(4)?),
        seen_at: from_ms(r.try_get(5)?),
        reason: r.try_get(6)?,
        crop_path: r.try_get(7)?,
        candidates: serde_json::from_str(&r.try_get::<String, _>(8)?)
            .map_err(|e| LedgerError::Corrupt(format!("review candidates: {e}")))?,
        state: ReviewState::parse(&state)
            .ok_or_else(|| LedgerError::Corrupt(format!("review state {state:?}")))?,
        decided_by: r.try_get(10)?,
        decided_at: r.try_get::<Option<i64>, _>(11)?.map(from_ms),
        decided_student: r.try_get(12)?,
    })
}

/// A candidate of a review item: a student and the similarity of the best template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewCandidate {
    pub student_id: String,
    pub score: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewReviewItem {
    pub campus_id: String,
    pub camera_id: Option<String>,
    /// Identifies the track (e.g. `face:{camera}:{track}:{first_seen}`); idempotency key.
    pub track_key: String,
    pub seen_at: DateTime<Utc>,
    pub reason: String,
    /// Best crop, relative to the data directory (e.g. `crops/review/….jpg`).
    pub crop_path: Option<String>,
    /// Top candidates, best first.
    pub candidates: Vec<ReviewCandidate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    Pending,
    Approved,
    Rejected,
    Reassigned,
}

impl ReviewState {
    pub fn as_str(&self) -> &'static str {
        match self {
            ReviewState::Pending => "pending",
            ReviewState::Approved => "approved",
            ReviewState::Rejected => "rejected",
            ReviewState::Reassigned => "reassigned",
        }
    }
    pub fn parse(s: &str) -> Option<ReviewState> {
        [
            ReviewState::Pending,
            ReviewState::Approved,
            ReviewState::Rejected,
            ReviewState::Reassigned,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    Approve,
    Reject,
    Reassign,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReviewItem {
    pub id: i64,
    pub campus_id: String,
    pub camera_id: Option<String>,
    pub track_key: String,
    pub created_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    pub reason: String,
    pub crop_path: Option<String>,
    pub candidates: Vec<ReviewCandidate>,
    pub state: ReviewState,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_student: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReviewOutcome {
    pub item: ReviewItem,
    pub check_in: Option<crate::CheckInResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HardNegative {
    pub review_id: i64,
    pub student_id: String,
    pub crop_path: Option<String>,
    pub created_at: DateTime<Utc>,
}
