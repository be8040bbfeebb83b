//! The check-in write path: one check-in, or a batch of them (group commit), in one
//! transaction with a fixed number of statements per batch.
//!
//! A batch reads what it needs with one set-based query per table (students, booked lessons,
//! this lesson's ledger rows, packages with their balances) and writes with one multi-row
//! `INSERT … ON CONFLICT DO NOTHING RETURNING` per table (attendance, ledger, alerts, check-in
//! events, audit), so its cost is about a dozen statements whatever its size; the rules
//! (`match_checkin`, `decide_deduction`, the alert rules) run in memory between them, one
//! check-in after the other, on the state the earlier ones left. A single check-in is a batch
//! of one, so both paths are the same code.
//!
//! Exactly once still comes from the database, not from the reads: an attendance row is
//! acted upon only when its insert returned it, a deduction only when its idempotency key was
//! inserted, an event only when its key was; a batch that finds an event key taken after all
//! (another writer committed it) is rolled back whole.
//!
//! A round is a sequence of named steps, each a function of its own: [`round`] reads the
//! stored event keys, locks the students and reads their booked lessons; [`round`]'s
//! `apply` then matches each check-in to its lesson (the pure rule), records attendance and
//! reads the packages, decides each charge in memory ([`decide`]), and writes the deductions,
//! notices, alerts, events and audit rows ([`write`]). Every step returns
//! `Result<_, LedgerError>`; a round that must be rolled back is a [`RoundOutcome::Refused`],
//! never a nested result.

mod decide;
mod round;
mod write;

use crate::db::{run_ready, AnyDb, Db, LiteDb};
use crate::store::*;
use crate::{LedgerError, Result};
use rollcall_domain::ledger::*;
use std::collections::HashSet;

/// Check-ins applied per round of statements (a larger batch runs several rounds in the same
/// transaction): bounds the statements' placeholders (about 14 per row).
pub(crate) const ROUND: usize = 64;

/// One check-in of a round.
#[derive(Clone)]
struct Item {
    ci: CheckIn,
    key: String,
    at: i64,
}

impl Item {
    fn new(ci: &CheckIn) -> Item {
        Item {
            ci: ci.clone(),
            key: ci.key(),
            at: ms(ci.at),
        }
    }
}

/// What one applied check-in came to.
#[derive(Clone)]
struct Applied {
    outcome: CheckInOutcome,
    /// The dedup keys of the alerts it raised.
    alerts: Vec<String>,
    /// The student's available units right after it.
    available: Units,
}

/// Why a round (and the transaction it is part of) must be rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// An event key was stored by another writer meanwhile: the check-in is a duplicate.
    EventKeyTaken,
    /// A deduction's idempotency key was already taken (a ledger that is not in the state the
    /// reads implied): a batch is then committed one check-in at a time, and a single check-in
    /// is retried with [`Writes::DeductionsFirst`].
    DeductionKeyTaken,
}

/// How a round, or a write transaction of rounds, ended: the one result type of the check-in
/// steps (`Result<RoundOutcome, LedgerError>`).
enum RoundOutcome {
    /// Applied (a transaction: committed): one result per check-in, `None` for one that was
    /// not applied because its event key was stored already or repeated earlier in the batch.
    Applied(Vec<Option<Applied>>),
    /// Refused: the caller rolls back what the round wrote.
    Refused(Refusal),
}

/// How a round sends its statements.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// The deductions with the other writes, in one [`Db::fetch_many`]: one round trip on
    /// PostgreSQL; a taken deduction key is learnt afterwards and rolls the round back.
    Together,
    /// The deductions first, on their own: a single check-in whose deduction key is taken is
    /// then recorded as a lesson already paid (the retry of a
    /// [`Refusal::DeductionKeyTaken`]).
    DeductionsFirst,
}

impl Store {
    /// Applies one check-in: exactly one attendance record and at most one deduction per
    /// (student, lesson), whatever the number of reports, cameras or processes.
    pub async fn check_in(&self, ci: &CheckIn) -> Result<CheckInResult> {
        let mut done = self.in_write_tx(vec![ci.clone()], Writes::Together).await?;
        if matches!(done, RoundOutcome::Refused(Refusal::DeductionKeyTaken)) {
            done = self
                .in_write_tx(vec![ci.clone()], Writes::DeductionsFirst)
                .await?;
        }
        match done {
            RoundOutcome::Applied(mut results) => match results.pop().flatten() {
                Some(applied) => Ok(self.result(ci, applied)),
                // its event key is stored already
                None => self.duplicate_result(ci).await,
            },
            RoundOutcome::Refused(Refusal::EventKeyTaken) => self.duplicate_result(ci).await,
            RoundOutcome::Refused(Refusal::DeductionKeyTaken) => Err(LedgerError::Corrupt(
                format!("check-in {}: deduction key conflict on retry", ci.key()),
            )),
        }
    }

    /// The answer to a check-in whose event key is stored already: nothing applied, the
    /// student's balance as it stands.
    async fn duplicate_result(&self, ci: &CheckIn) -> Result<CheckInResult> {
        let b = self.balance(&ci.student_id, ci.at).await?;
        Ok(self.result(
            ci,
            Applied {
                outcome: CheckInOutcome::DuplicateEvent,
                alerts: Vec::new(),
                available: b.available_units,
            },
        ))
    }

    fn result(&self, ci: &CheckIn, applied: Applied) -> CheckInResult {
        CheckInResult {
            student_id: ci.student_id.clone(),
            at: ci.at,
            source: ci.source,
            camera_id: ci.camera_id.clone(),
            outcome: applied.outcome,
            balance_units: applied.available,
            balance: fmt_units(applied.available),
            alerts: applied.alerts,
        }
    }

    /// Several check-ins in one transaction (group commit): one `BEGIN`/`COMMIT`, one WAL
    /// flush and a handful of statements for the lot. Results come back in the order of `cis`,
    /// each exactly what [`Store::check_in`] would have returned had they been committed one
    /// after the other (per student, in their order; different students do not interact).
    ///
    /// Event keys already stored, or repeated inside the batch, are answered as
    /// [`CheckInOutcome::DuplicateEvent`] without being applied. Students are locked in id
    /// order, so two processes committing overlapping batches cannot deadlock each other. If
    /// anything in the batch fails (an unknown student, a lost race for an event key with
    /// another process, a database error), the whole transaction is rolled back and the
    /// check-ins are committed one by one instead, so one bad check-in costs the others
    /// nothing and each gets its own result or error.
    pub async fn check_in_batch(&self, cis: &[CheckIn]) -> Vec<Result<CheckInResult>> {
        if cis.len() > 1 {
            match self.try_check_in_batch(cis).await {
                Ok(Some(results)) => return results.into_iter().map(Ok).collect(),
                Ok(None) => {
                    tracing::debug!(n = cis.len(), "group commit: key conflict; one by one")
                }
                Err(e) => {
                    tracing::debug!(n = cis.len(), error = %e, "group commit failed; one by one")
                }
            }
        }
        let mut out = Vec::with_capacity(cis.len());
        for ci in cis {
            out.push(self.check_in(ci).await);
        }
        out
    }

    /// `Ok(None)`: the transaction was rolled back (a key taken by another writer after the
    /// duplicate check, or a deduction key conflict).
    async fn try_check_in_batch(&self, cis: &[CheckIn]) -> Result<Option<Vec<CheckInResult>>> {
        let RoundOutcome::Applied(results) =
            self.in_write_tx(cis.to_vec(), Writes::Together).await?
        else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(cis.len());
        for (r, ci) in results.into_iter().zip(cis) {
            out.push(match r {
                Some(applied) => self.result(ci, applied),
                None => self.duplicate_result(ci).await?,
            });
        }
        Ok(Some(out))
    }

    /// Applies `cis` in one write transaction, committed when every round went through. On
    /// SQLite it runs on the check-in path's own connection, all of it on one blocking thread
    /// (see [`crate::db`]); elsewhere on a sqlx write transaction.
    async fn in_write_tx(&self, cis: Vec<CheckIn>, writes: Writes) -> Result<RoundOutcome> {
        let school = self.need_school()?.to_string();
        if let Some(lite) = self.lite_connection() {
            // this process's writers queue here (as `Store::write` does), not in SQLite
            let guard = self.writer_lock().await;
            let store = self.clone();
            // the API's staff member stays the author of the audit rows on that thread
            let actor = crate::audit::current_actor();
            return tokio::task::spawn_blocking(move || {
                crate::audit::with_actor_sync(actor, || {
                    let _guard = guard;
                    let mut conn = lite.lock().unwrap_or_else(|p| p.into_inner());
                    let Some(c) = conn.as_mut() else {
                        return Err(LedgerError::Invalid {
                            field: "store",
                            message: "closed".into(),
                        });
                    };
                    c.execute_batch("BEGIN IMMEDIATE")
                        .map_err(crate::db::lite)?;
                    let body =
                        run_ready(store.apply_in_rounds(&mut LiteDb(c), &school, &cis, writes));
                    let end = match &body {
                        Ok(RoundOutcome::Applied(_)) => "COMMIT",
                        _ => "ROLLBACK",
                    };
                    let ended = c.execute_batch(end).map_err(crate::db::lite);
                    match (body, ended) {
                        (Ok(b), Ok(())) => Ok(b),
                        (Err(e), _) | (Ok(_), Err(e)) => {
                            if !c.is_autocommit() {
                                let _ = c.execute_batch("ROLLBACK");
                            }
                            Err(e)
                        }
                    }
                })
            })
            .await
            .map_err(|e| LedgerError::Corrupt(format!("check-in thread: {e}")))?;
        }
        let mut w = self.write().await?;
        let body = self
            .apply_in_rounds(&mut AnyDb(w.conn()), &school, &cis, writes)
            .await?;
        if matches!(body, RoundOutcome::Applied(_)) {
            w.commit().await?;
        } // else dropping `w` rolls back
        Ok(body)
    }

    /// The statements of [`Store::in_write_tx`], inside its transaction: event keys repeated
    /// in the batch are left unapplied (duplicates), the rest is applied in rounds of at most
    /// [`ROUND`], students in id order. The first refused round refuses the whole.
    async fn apply_in_rounds(
        &self,
        db: &mut dyn Db,
        school: &str,
        cis: &[CheckIn],
        writes: Writes,
    ) -> Result<RoundOutcome> {
        let items: Vec<Item> = cis.iter().map(Item::new).collect();
        // Lock order: by student id (stable, so one student's check-ins keep their order).
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| items[a].ci.student_id.cmp(&items[b].ci.student_id));
        let mut seen = HashSet::new();
        let applied: Vec<usize> = order
            .into_iter()
            .filter(|&i| seen.insert(items[i].key.as_str()))
            .collect();
        let mut results: Vec<Option<Applied>> = vec![None; items.len()];
        for round in applied.chunks(ROUND) {
            let batch: Vec<Item> = round.iter().map(|&i| items[i].clone()).collect();
            match self.round(db, school, &batch, writes).await? {
                RoundOutcome::Applied(rs) => {
                    for (&i, r) in round.iter().zip(rs) {
                        results[i] = r;
                    }
                }
                refused @ RoundOutcome::Refused(_) => return Ok(refused),
            }
        }
        Ok(RoundOutcome::Applied(results))
    }
}
