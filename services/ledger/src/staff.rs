//! Staff accounts, roles and campus scopes, login sessions and API tokens (migration 4). The
//! review queue is in `review.rs`, the actor context of audit rows in `audit.rs`.
//!
//! Secrets are never stored: sessions and API tokens are kept as SHA-256 hex digests computed
//! by the caller, passwords as argon2id PHC strings computed by the caller (the API crate).

use crate::audit::who;
use crate::store::{audit, from_ms, ms, require};
use crate::{LedgerError, Result, Store};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

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
        let now = ms(self.now());
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
        let now = ms(self.now());
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
        .bind(ms(self.now()))
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
            ms(self.now()),
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
        let now = ms(self.now());
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
        let now = self.now();
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
}
