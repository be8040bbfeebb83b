//! Staff accounts, login sessions, API tokens, the review queue and the actor context that
//! attributes audit rows to the staff member behind an API request (migration 4).
//!
//! Secrets are never stored: sessions and API tokens are kept as SHA-256 hex digests computed
//! by the caller, passwords as argon2id PHC strings computed by the caller (the API crate).

use crate::store::{audit, from_ms, ms, require};
use crate::{LedgerError, Result, Store};
use chrono::{DateTime, Utc};
use rollcall_domain::ledger::AttendanceSource;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

// -------------------------------------------------------------------------------------------
// Actor context
// -------------------------------------------------------------------------------------------

/// Who is behind the current change (an authenticated staff member of the API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub name: String,
    pub role: String,
    pub ip: Option<String>,
}

tokio::task_local! {
    static ACTOR: Actor;
}

/// Runs `f` with `actor` as the author of every audit row it writes (the actor argument of
/// the store's methods is then replaced by the actor's name; role and IP are recorded too).
pub async fn as_actor<F: std::future::Future>(actor: Actor, f: F) -> F::Output {
    ACTOR.scope(actor, f).await
}

/// Runs the synchronous `f` with `actor` (when `Some`) as the author of its audit rows: how a
/// blocking thread keeps the actor of the task that handed it work.
pub(crate) fn with_actor_sync<R>(actor: Option<Actor>, f: impl FnOnce() -> R) -> R {
    match actor {
        Some(a) => ACTOR.sync_scope(a, f),
        None => f(),
    }
}

/// The actor of the current task, if any.
pub fn current_actor() -> Option<Actor> {
    ACTOR.try_with(|a| a.clone()).ok()
}

// -------------------------------------------------------------------------------------------
// Staff
// -------------------------------------------------------------------------------------------

/// A staff role, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Manager,
    Teacher,
    FrontDesk,
    Viewer,
}

impl Role {
    pub const ALL: &'static [Role] = &[
        Role::Admin,
        Role::Manager,
        Role::Teacher,
        Role::FrontDesk,
        Role::Viewer,
    ];
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Teacher => "teacher",
            Role::FrontDesk => "front_desk",
            Role::Viewer => "viewer",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.iter().copied().find(|r| r.as_str() == s)
    }
}

/// Campuses an account may see: all, or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampusScope {
    All,
    Only(Vec<String>),
}

impl CampusScope {
    pub fn allows(&self, campus: &str) -> bool {
        match self {
            CampusScope::All => true,
            CampusScope::Only(v) => v.iter().any(|c| c == campus),
        }
    }
    fn encode(&self) -> String {
        match self {
            CampusScope::All => "*".into(),
            CampusScope::Only(v) => v.join(","),
        }
    }
    fn decode(s: &str) -> CampusScope {
        if s == "*" {
            CampusScope::All
        } else {
            CampusScope::Only(
                s.split(',')
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect(),
            )
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StaffAccount {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub campuses: CampusScope,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub password_hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewStaff {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub campuses: CampusScope,
}

/// A logged-in session (looked up by the hash of its cookie).
#[derive(Debug, Clone, Serialize)]
pub struct StaffSession {
    pub account: StaffAccount,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// An API token as listed to staff: never the secret nor its digest. Use is not tracked
/// (no last-used time): recording it would be a write on every authenticated request.
#[derive(Debug, Clone, Serialize)]
pub struct ApiTokenView {
    pub id: String,
    pub username: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub revoked: bool,
    pub revoked_at: Option<DateTime<Utc>>,
}

fn token_from_row(r: &AnyRow) -> Result<ApiTokenView> {
    let revoked_at: Option<i64> = r.try_get(4)?;
    Ok(ApiTokenView {
        id: r.try_get(0)?,
        username: r.try_get(1)?,
        name: r.try_get(2)?,
        created_at: from_ms(r.try_get(3)?),
        revoked: revoked_at.is_some(),
        revoked_at: revoked_at.map(from_ms),
    })
}

const TOKEN_COLS: &str = "id, username, name, created_at, revoked_at";

fn check_username(u: &str) -> Result<()> {
    let ok = !u.is_empty()
        && u.len() <= 64
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(LedgerError::Invalid {
            field: "username",
            message: "1–64 characters: letters, digits, . _ - @".into(),
        })
    }
}

fn account_from_row(r: &AnyRow) -> Result<StaffAccount> {
    let role: String = r.try_get(2)?;
    Ok(StaffAccount {
        username: r.try_get(0)?,
        display_name: r.try_get(1)?,
        role: Role::parse(&role)
            .ok_or_else(|| LedgerError::Corrupt(format!("staff role {role:?}")))?,
        campuses: CampusScope::decode(&r.try_get::<String, _>(3)?),
        password_hash: r.try_get(4)?,
        disabled: r.try_get::<i64, _>(5)? != 0,
        created_at: from_ms(r.try_get(6)?),
    })
}

const ACCOUNT_COLS: &str =
    "a.username, a.display_name, a.role, a.campuses, a.password_hash, a.disabled, a.created_at";

/// The name written in audit rows for changes of this module: the context's actor when set.
fn who(default: &str) -> String {
    current_actor()
        .map(|a| a.name)
        .unwrap_or_else(|| default.to_string())
}

impl Store {
    /// Creates a staff account with an already computed password hash (argon2id PHC string).
    pub async fn create_staff(&self, s: &NewStaff, password_hash: &str) -> Result<()> {
        check_username(&s.username)?;
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        if let CampusScope::Only(cs) = &s.campuses {
            if cs.is_empty() {
                return Err(LedgerError::Invalid {
                    field: "campuses",
                    message: "name at least one campus, or all".into(),
                });
            }
            for c in cs {
                require(w.conn(), "campus", &school, c).await?;
            }
        }
        let now = ms(Utc::now());
        let ins = sqlx::query("INSERT INTO staff_accounts (school_id, username, display_name, role, campuses, password_hash, disabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7) ON CONFLICT (school_id, username) DO NOTHING RETURNING created_at")
            .bind(&school)
            .bind(&s.username)
            .bind(&s.display_name)
            .bind(s.role.as_str())
            .bind(s.campuses.encode())
            .bind(password_hash)
            .bind(now)
            .fetch_optional(w.conn())
            .await?;
        if ins.is_none() {
            return Err(LedgerError::Invalid {
                field: "username",
                message: format!("{} already exists", s.username),
            });
        }
        audit(
            w.conn(),
            &school,
            &who("admin-cli"),
            "create",
            "staff",
            &s.username,
            None,
            Some(json!(s)),
            now,
        )
        .await?;
        w.commit().await
    }

    pub async fn staff(&self, username: &str) -> Result<Option<StaffAccount>> {
        let r = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLS} FROM staff_accounts a WHERE a.school_id = $1 AND a.username = $2"
        ))
        .bind(self.need_school()?)
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(account_from_row).transpose()
    }

    pub async fn list_staff(&self) -> Result<Vec<StaffAccount>> {
        let rows = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLS} FROM staff_accounts a WHERE a.school_id = $1 ORDER BY a.username"
        ))
        .bind(self.need_school()?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(account_from_row).collect()
    }

    /// Stores a new session (token hash → account) and audits the login.
    pub async fn create_session(
        &self,
        username: &str,
        token_hash: &str,
        csrf: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        let now = ms(Utc::now());
        sqlx::query("INSERT INTO staff_sessions (token_hash, school_id, username, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(token_hash)
            .bind(&school)
            .bind(username)
            .bind(csrf)
            .bind(now)
            .bind(ms(expires_at))
            .execute(w.conn())
            .await?;
        // old sessions of everyone are swept here (cheap: indexed by primary key scan is fine
        // at staff scale)
        sqlx::query("DELETE FROM staff_sessions WHERE school_id = $1 AND expires_at < $2")
            .bind(&school)
            .bind(now)
            .execute(w.conn())
            .await?;
        audit(
            w.conn(),
            &school,
            &who(username),
            "login",
            "staff",
            username,
            None,
            None,
            now,
        )
        .await?;
        w.commit().await
    }

    /// The live session of a token hash (expired sessions and disabled accounts give `None`).
    pub async fn session(&self, token_hash: &str) -> Result<Option<StaffSession>> {
        let r = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLS}, s.csrf, s.expires_at FROM staff_sessions s JOIN staff_accounts a ON a.school_id = s.school_id AND a.username = s.username WHERE s.token_hash = $1 AND s.school_id = $2 AND s.expires_at > $3 AND a.disabled = 0"
        ))
        .bind(token_hash)
        .bind(self.need_school()?)
        .bind(ms(Utc::now()))
        .fetch_optional(&self.pool)
        .await?;
        match r {
            None => Ok(None),
            Some(r) => Ok(Some(StaffSession {
                account: account_from_row(&r)?,
                csrf: r.try_get(7)?,
                expires_at: from_ms(r.try_get(8)?),
            })),
        }
    }

    /// Ends a session (logout); audited.
    pub async fn end_session(&self, token_hash: &str) -> Result<bool> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        let r = sqlx::query(
            "DELETE FROM staff_sessions WHERE token_hash = $1 AND school_id = $2 RETURNING username",
        )
        .bind(token_hash)
        .bind(&school)
        .fetch_optional(w.conn())
        .await?;
        let Some(r) = r else {
            return Ok(false);
        };
        let user: String = r.try_get(0)?;
        audit(
            w.conn(),
            &school,
            &who(&user),
            "logout",
            "staff",
            &user,
            None,
            None,
            ms(Utc::now()),
        )
        .await?;
        w.commit().await?;
        Ok(true)
    }

    /// Registers an API token (its hash) for an account.
    pub async fn create_api_token(
        &self,
        username: &str,
        id: &str,
        name: &str,
        token_hash: &str,
    ) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        let now = ms(Utc::now());
        if self.staff(username).await?.is_none() {
            return Err(LedgerError::NotFound {
                entity: "staff",
                id: username.into(),
            });
        }
        sqlx::query("INSERT INTO api_tokens (token_hash, school_id, id, username, name, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(token_hash)
            .bind(&school)
            .bind(id)
            .bind(username)
            .bind(name)
            .bind(now)
            .execute(w.conn())
            .await?;
        audit(
            w.conn(),
            &school,
            &who(username),
            "create",
            "api_token",
            id,
            None,
            Some(json!({"username": username, "name": name})),
            now,
        )
        .await?;
        w.commit().await
    }

    /// The account behind a live API token hash.
    pub async fn api_token_account(&self, token_hash: &str) -> Result<Option<StaffAccount>> {
        let r = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLS} FROM api_tokens t JOIN staff_accounts a ON a.school_id = t.school_id AND a.username = t.username WHERE t.token_hash = $1 AND t.school_id = $2 AND t.revoked_at IS NULL AND a.disabled = 0"
        ))
        .bind(token_hash)
        .bind(self.need_school()?)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(account_from_row).transpose()
    }

    /// API tokens of the school (or of one account), oldest first; no secrets.
    pub async fn list_api_tokens(&self, username: Option<&str>) -> Result<Vec<ApiTokenView>> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE school_id = $1 AND ($2 = '' OR username = $2) ORDER BY created_at, id"
        ))
        .bind(self.need_school()?)
        .bind(username.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// One API token by its id (not its secret).
    pub async fn api_token(&self, id: &str) -> Result<ApiTokenView> {
        let r = sqlx::query(&format!(
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE school_id = $1 AND id = $2"
        ))
        .bind(self.need_school()?)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| LedgerError::NotFound {
            entity: "api token",
            id: id.into(),
        })?;
        token_from_row(&r)
    }

    /// Revokes an API token: from the commit on, [`Store::api_token_account`] no longer
    /// accepts it (a caller caching credentials must drop its cache). Audited in the same
    /// transaction. An unknown id is [`LedgerError::NotFound`]; a token already revoked is
    /// [`LedgerError::Conflict`] (nothing written).
    pub async fn revoke_api_token(&self, id: &str) -> Result<ApiTokenView> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        let now = Utc::now();
        let r = sqlx::query(&format!(
            "UPDATE api_tokens SET revoked_at = $1 WHERE school_id = $2 AND id = $3 AND revoked_at IS NULL RETURNING {TOKEN_COLS}"
        ))
        .bind(ms(now))
        .bind(&school)
        .bind(id)
        .fetch_optional(w.conn())
        .await?;
        let Some(r) = r else {
            drop(w);
            let t = self.api_token(id).await?;
            return Err(LedgerError::Conflict(format!(
                "api token {} was already revoked at {}",
                t.id,
                t.revoked_at.map(|a| a.to_rfc3339()).unwrap_or_default()
            )));
        };
        let t = token_from_row(&r)?;
        audit(
            w.conn(),
            &school,
            &who("admin-cli"),
            "revoke",
            "api_token",
            id,
            Some(json!({"username": t.username, "name": t.name, "revoked_at": null})),
            Some(json!({"username": t.username, "name": t.name, "revoked_at": t.revoked_at})),
            ms(now),
        )
        .await?;
        w.commit().await?;
        Ok(t)
    }

    // ---------------------------------------------------------------------------------------
    // Review queue
    // ---------------------------------------------------------------------------------------

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
        let now = ms(Utc::now());
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
            let draft = crate::outbox::NoticeDraft {
                notice_id: format!("review:{id}"),
                kind: crate::outbox::NoticeKind::ReviewNeeded,
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
            crate::outbox::enqueue(w.conn(), &school, &draft).await?;
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
        let now = Utc::now();
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
                            ms(Utc::now()),
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
