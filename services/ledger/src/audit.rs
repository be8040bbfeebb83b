//! The audit log, the bottom of the ledger: who changed what (the actor context that
//! attributes rows to the staff member behind an API request) and the statements writing rows.
//! Every feature writes its audit rows through here, in the change's own transaction; reading
//! them back is the store's ([`crate::store`]'s `audit_log`).

use crate::db::{values_marks, Arg, Db, Stmt};
use crate::Result;
use serde::Serialize;
use serde_json::Value;

/// The name written in audit rows for a change: the context's actor when set, else `default`
/// (the process that made it: "matcher", "admin-cli", …).
pub(crate) fn who(default: &str) -> String {
    current_actor()
        .map(|a| a.name)
        .unwrap_or_else(|| default.to_string())
}

/// Audit rows per statement: 10 placeholders each, as many rows as two check-in rounds write.
const ROWS_PER_STATEMENT: usize = 128;

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

/// One audit row to write (see [`write_audit`]).
pub(crate) struct AuditEntry<'a> {
    pub actor: String,
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub at: i64,
}

/// Writes audit rows with one statement per [`ROWS_PER_STATEMENT`] (see [`audit_stmts`]).
pub(crate) async fn write_audit(
    db: &mut dyn Db,
    school: &str,
    rows: &[AuditEntry<'_>],
) -> Result<()> {
    for st in audit_stmts(school, rows) {
        db.execute(&st.sql, st.args).await?;
    }
    Ok(())
}

/// The statements writing audit rows (one per [`ROWS_PER_STATEMENT`] rows); an API request's staff
/// member (the task's actor) is the author of all of them, with role and IP.
pub(crate) fn audit_stmts(school: &str, rows: &[AuditEntry<'_>]) -> Vec<Stmt> {
    let ctx = current_actor();
    rows.chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            let sql = format!(
                "INSERT INTO audit_log (school_id, actor, action, entity, entity_id, at, before_json, after_json, actor_role, actor_ip) VALUES {}",
                values_marks(chunk.len(), 10, 1)
            );
            let mut args: Vec<Arg> = Vec::with_capacity(chunk.len() * 10);
            for r in chunk {
                args.extend([
                    school.into(),
                    ctx.as_ref()
                        .map_or(r.actor.as_str(), |a| a.name.as_str())
                        .into(),
                    r.action.into(),
                    r.entity.into(),
                    (&r.entity_id).into(),
                    r.at.into(),
                    r.before.as_ref().map(|v| v.to_string()).into(),
                    r.after.as_ref().map(|v| v.to_string()).into(),
                    ctx.as_ref().map(|a| a.role.clone()).into(),
                    ctx.as_ref().and_then(|a| a.ip.clone()).into(),
                ]);
            }
            Stmt::new(sql, args, 0)
        })
        .collect()
}
