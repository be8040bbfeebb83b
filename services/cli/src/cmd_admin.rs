//! `rollcall admin create|token|tokens|revoke-token`: staff accounts for the API and web app
//! (the first admin is created here; later accounts can be created by an admin through the
//! API) and their bearer API tokens.

use crate::cmd_gallery::{open_school, DataOpts};
use anyhow::{anyhow, Context};
use rollcall_ledger::{CampusScope, NewStaff, Role};
use serde_json::{json, Value};
use std::io::Read;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCmd {
    /// Create a staff account (password read from stdin, never from the command line).
    Create {
        #[arg(long)]
        username: String,
        /// Display name (default: the username).
        #[arg(long)]
        name: Option<String>,
        /// admin, manager, teacher, front_desk or viewer.
        #[arg(long, default_value = "admin")]
        role: String,
        /// Campus the account may see (repeatable; none = every campus).
        #[arg(long = "campus")]
        campuses: Vec<String>,
        /// Read the password from standard input (first line).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        data: DataOpts,
    },
    /// Create a bearer API token for an existing account; prints it once.
    Token {
        #[arg(long)]
        username: String,
        #[arg(long, default_value = "integration")]
        name: String,
        #[command(flatten)]
        data: DataOpts,
    },
    /// List API tokens (id, account, name, created, revoked; never the secret).
    Tokens {
        /// Only this account's tokens.
        #[arg(long)]
        username: Option<String>,
        #[command(flatten)]
        data: DataOpts,
    },
    /// Revoke an API token by its id (as printed by `token` and `tokens`); audited. A running
    /// `serve` refuses it at most 2 s later (its credential cache; revoking through the API,
    /// `DELETE /api/v1/tokens/{id}`, takes effect at once).
    RevokeToken {
        id: String,
        #[command(flatten)]
        data: DataOpts,
    },
}

pub async fn run(c: AdminCmd) -> anyhow::Result<Value> {
    match c {
        AdminCmd::Create {
            username,
            name,
            role,
            campuses,
            password_stdin: _,
            data,
        } => {
            let role = Role::parse(&role).ok_or_else(|| {
                anyhow!("role {role:?}: expected admin, manager, teacher, front_desk or viewer")
            })?;
            let mut pw = String::new();
            std::io::stdin()
                .read_to_string(&mut pw)
                .context("reading the password from stdin")?;
            let pw = pw.lines().next().unwrap_or("").to_string();
            let hash = rollcall_api::hash_password(&pw).map_err(|e| anyhow!("{}", e.message))?;
            let store = open_school(&data, true).await?;
            let scope = if campuses.is_empty() {
                CampusScope::All
            } else {
                CampusScope::Only(campuses)
            };
            let n = NewStaff {
                display_name: name.unwrap_or_else(|| username.clone()),
                username,
                role,
                campuses: scope,
            };
            store.create_staff(&n, &hash).await?;
            store.close().await;
            Ok(json!({"created": n, "school": store.school_id()}))
        }
        AdminCmd::Token {
            username,
            name,
            data,
        } => {
            let store = open_school(&data, false).await?;
            let token = rollcall_api::auth::new_token("rc_");
            let id = rollcall_api::auth::new_token("")[..12].to_string();
            store
                .create_api_token(
                    &username,
                    &id,
                    &name,
                    &rollcall_api::auth::token_hash(&token),
                )
                .await?;
            store.close().await;
            Ok(json!({"id": id, "username": username, "name": name, "token": token}))
        }
        AdminCmd::Tokens { username, data } => {
            let store = open_school(&data, false).await?;
            let tokens = store.list_api_tokens(username.as_deref()).await?;
            store.close().await;
            Ok(json!({"tokens": tokens}))
        }
        AdminCmd::RevokeToken { id, data } => {
            let store = open_school(&data, false).await?;
            let t = store.revoke_api_token(&id).await;
            store.close().await;
            Ok(json!({"revoked": t?}))
        }
    }
}
