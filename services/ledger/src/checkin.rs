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

use crate::audit::{audit_stmts, write_audit, AuditEntry};
use crate::db::{list_marks, run_ready, values_marks, AnyDb, Arg, Db, LiteDb, Row, Stmt};
use crate::store::*;
use crate::{LedgerError, Result};
use rollcall_domain::ledger::*;
use serde_json::json;
use std::collections::{HashMap, HashSet};

/// Check-ins applied per round of statements (a larger batch runs several rounds in the same
/// transaction): bounds the statements' placeholders (about 14 per row).
pub(crate) const ROUND: usize = 64;

/// The first column of `rows` (keys returned by a `RETURNING` or a key lookup).
fn first_texts(rows: &[Row]) -> Result<HashSet<String>> {
    rows.iter().map(|r| r.text(0)).collect()
}

/// How a round ended.
enum Round {
    /// One result per check-in; `None` for one whose event key was stored already.
    Done(Vec<Option<Applied>>),
    /// An event key was stored by another writer meanwhile: the caller rolls back.
    Taken,
    /// A deduction's idempotency key was already taken (a ledger that is not in the state the
    /// reads implied): the caller rolls back (and commits a batch one check-in at a time).
    Conflict,
}

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

type Applied = (CheckInOutcome, Vec<String>, Units);

/// What a write transaction of check-ins did.
enum Body {
    /// Committed: one result per check-in (`None` for the duplicates listed).
    Done {
        results: Vec<Option<Applied>>,
        duplicates: Vec<usize>,
    },
    /// Rolled back: an event key taken by another writer.
    Aborted,
    /// Rolled back: a deduction's idempotency key was taken.
    Conflict,
}

/// A balance alert of a round, with the student's packages right after the change.
struct Raised {
    item: usize,
    draft: AlertDraft,
    packages: Option<(Vec<PackageState>, Units)>,
}

/// How a round sends its statements.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// The deductions with the other writes, in one [`Db::fetch_many`]: one round trip on
    /// PostgreSQL; a taken deduction key is learnt afterwards and rolls the round back.
    Together,
    /// The deductions first, on their own: a single check-in whose deduction key is taken is
    /// then recorded as a lesson already paid (the retry of a [`Round::Conflict`]).
    DeductionsFirst,
}

impl Store {
    /// Applies one check-in: exactly one attendance record and at most one deduction per
    /// (student, lesson), whatever the number of reports, cameras or processes.
    pub async fn check_in(&self, ci: &CheckIn) -> Result<CheckInResult> {
        let mut body = self.in_write_tx(vec![ci.clone()], Writes::Together).await?;
        if matches!(body, Body::Conflict) {
            body = self
                .in_write_tx(vec![ci.clone()], Writes::DeductionsFirst)
                .await?;
        }
        match body {
            Body::Done { mut results, .. } => match results.pop().flatten() {
                Some((outcome, alerts, avail)) => Ok(self.result(ci, outcome, alerts, avail)),
                // its event key is stored already
                None => self.duplicate_result(ci).await,
            },
            Body::Aborted => self.duplicate_result(ci).await,
            Body::Conflict => Err(LedgerError::Corrupt(format!(
                "check-in {}: deduction key conflict on retry",
                ci.key()
            ))),
        }
    }

    async fn duplicate_result(&self, ci: &CheckIn) -> Result<CheckInResult> {
        let b = self.balance(&ci.student_id, ci.at).await?;
        Ok(self.result(
            ci,
            CheckInOutcome::DuplicateEvent,
            Vec::new(),
            b.available_units,
        ))
    }

    fn result(
        &self,
        ci: &CheckIn,
        outcome: CheckInOutcome,
        alerts: Vec<String>,
        avail: Units,
    ) -> CheckInResult {
        CheckInResult {
            student_id: ci.student_id.clone(),
            at: ci.at,
            source: ci.source,
            camera_id: ci.camera_id.clone(),
            outcome,
            balance_units: avail,
            balance: fmt_units(avail),
            alerts,
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
        let Body::Done {
            results,
            duplicates,
        } = self.in_write_tx(cis.to_vec(), Writes::Together).await?
        else {
            return Ok(None);
        };
        let mut out: Vec<Option<CheckInResult>> = results
            .into_iter()
            .zip(cis)
            .map(|(r, ci)| r.map(|(o, a, v)| self.result(ci, o, a, v)))
            .collect();
        for i in duplicates {
            out[i] = Some(self.duplicate_result(&cis[i]).await?);
        }
        out.into_iter()
            .map(|r| r.ok_or_else(|| LedgerError::Corrupt("batch result missing".into())))
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// Applies `cis` in one write transaction, committed when every round went through. On
    /// SQLite it runs on the check-in path's own connection, all of it on one blocking thread
    /// (see [`crate::db`]); elsewhere on a sqlx write transaction.
    async fn in_write_tx(&self, cis: Vec<CheckIn>, writes: Writes) -> Result<Body> {
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
                    let body = run_ready(store.body(&mut LiteDb(c), &school, &cis, writes));
                    let end = match &body {
                        Ok(Body::Done { .. }) => "COMMIT",
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
            .body(&mut AnyDb(w.conn()), &school, &cis, writes)
            .await?;
        if matches!(body, Body::Done { .. }) {
            w.commit().await?;
        } // else dropping `w` rolls back
        Ok(body)
    }

    /// The statements of [`Store::in_write_tx`], inside its transaction: event keys repeated
    /// in the batch are answered as duplicates, the rest is applied in rounds of at most
    /// [`ROUND`], students in id order.
    async fn body(
        &self,
        db: &mut dyn Db,
        school: &str,
        cis: &[CheckIn],
        writes: Writes,
    ) -> Result<Body> {
        let items: Vec<Item> = cis.iter().map(Item::new).collect();
        // Lock order: by student id (stable, so one student's check-ins keep their order).
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| items[a].ci.student_id.cmp(&items[b].ci.student_id));
        let mut seen = HashSet::new();
        let mut applied = Vec::with_capacity(items.len());
        let mut duplicates = Vec::new();
        for &i in &order {
            if seen.insert(items[i].key.as_str()) {
                applied.push(i);
            } else {
                duplicates.push(i);
            }
        }
        let mut results: Vec<Option<Applied>> = vec![None; items.len()];
        for round in applied.chunks(ROUND) {
            let batch: Vec<Item> = round.iter().map(|&i| items[i].clone()).collect();
            match self.round(db, school, &batch, writes).await? {
                Round::Done(rs) => {
                    for (&i, r) in round.iter().zip(rs) {
                        match r {
                            Some(r) => results[i] = Some(r),
                            None => duplicates.push(i),
                        }
                    }
                }
                Round::Taken => return Ok(Body::Aborted),
                Round::Conflict => return Ok(Body::Conflict),
            }
        }
        Ok(Body::Done {
            results,
            duplicates,
        })
    }

    /// Applies `items` (distinct event keys; one student's in their order) inside an open write
    /// transaction, in three statements on PostgreSQL (see [`Db::fetch_many`]):
    ///
    /// 1. the event keys already stored, the students (row locks in id order) and the lessons
    ///    they are booked into;
    /// 2. the attendance rows, and the students' packages with the lessons' ledger rows;
    /// 3. the deductions, alerts, check-in events and audit rows.
    ///
    /// The rules run in memory between them. On `Taken` or `Conflict` the caller must roll back
    /// what this wrote.
    async fn round(
        &self,
        db: &mut dyn Db,
        school: &str,
        items: &[Item],
        writes: Writes,
    ) -> Result<Round> {
        let mut students: Vec<&str> = items.iter().map(|i| i.ci.student_id.as_str()).collect();
        students.sort_unstable();
        students.dedup();

        // 1. Event keys already stored (answered as duplicates); the students: row locks in
        //    id order on PostgreSQL (concurrent check-ins of one student wait here until
        //    commit; SQLite's transaction already holds the database's only write lock),
        //    unknown students caught, the school's notification settings along; and the
        //    lessons they are booked into around the check-ins (windows open at most 12 h
        //    early). The keys and lessons are read on the snapshot taken before the lock: a
        //    key stored meanwhile is caught by the events insert (step 8), and check-ins do
        //    not change the timetable.
        let keys_sql = format!(
            "SELECT event_key FROM checkin_events WHERE school_id = $1 AND event_key IN ({})",
            list_marks(items.len(), 2)
        );
        let mut keys_args: Vec<Arg> = vec![school.into()];
        keys_args.extend(items.iter().map(|i| Arg::from(&i.key)));
        let lock_sql = format!(
            "SELECT st.id, sc.tz_offset_minutes, sc.policy_json, \
             (SELECT n.settings_json FROM notify_settings n WHERE n.school_id = sc.id) \
             FROM students st JOIN schools sc ON sc.id = st.school_id \
             WHERE st.school_id = $1 AND st.id IN ({}) ORDER BY st.id{}",
            list_marks(students.len(), 2),
            if db.backend() == Backend::Postgres {
                " FOR UPDATE OF st"
            } else {
                ""
            }
        );
        let mut lock_args: Vec<Arg> = vec![school.into()];
        lock_args.extend(students.iter().map(|s| Arg::from(*s)));
        let from = items.iter().map(|i| i.at).min().unwrap_or(0);
        let to = items.iter().map(|i| i.at).max().unwrap_or(0) + 12 * 3_600_000;
        let mut stmts = vec![
            Stmt::new(keys_sql, keys_args, 1),
            Stmt::new(lock_sql, lock_args, 4),
        ];
        stmts.extend(booked_lessons_stmt(school, &students, from, to));
        let mut got = db.fetch_many(stmts).await?.into_iter();
        let stored = first_texts(&got.next().unwrap_or_default())?;
        let rows = got.next().unwrap_or_default();
        let booked = parse_booked_lessons(got.next().unwrap_or_default())?;

        let live: Vec<usize> = (0..items.len())
            .filter(|&i| !stored.contains(&items[i].key))
            .collect();
        let mut out: Vec<Option<Applied>> = vec![None; items.len()];
        if live.is_empty() {
            return Ok(Round::Done(out));
        }
        let known = first_texts(&rows)?;
        if let Some(i) = live
            .iter()
            .find(|&&i| !known.contains(&items[i].ci.student_id))
        {
            return Err(LedgerError::NotFound {
                entity: "student",
                id: items[*i].ci.student_id.clone(),
            });
        }
        let notify = match rows.first() {
            Some(r) => crate::outbox::NotifyCtx::new(r.int(1)?, r.text(2)?, r.opt_text(3)?)?,
            None => None,
        };
        let items: Vec<Item> = live.iter().map(|&i| items[i].clone()).collect();
        let students: Vec<&str> = students
            .into_iter()
            .filter(|s| items.iter().any(|i| i.ci.student_id == *s))
            .collect();
        match self
            .apply(db, school, &items, &students, &booked, notify, writes)
            .await?
        {
            Ok(applied) => {
                for (i, a) in live.into_iter().zip(applied) {
                    out[i] = Some(a);
                }
                Ok(Round::Done(out))
            }
            Err(end) => Ok(end),
        }
    }

    /// Steps 2–9 of a round, on the check-ins whose event keys are new; `Err` is the
    /// round's end when it must be rolled back.
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        db: &mut dyn Db,
        school: &str,
        items: &[Item],
        students: &[&str],
        booked: &HashMap<String, Vec<BookedLesson>>,
        notify: Option<crate::outbox::NotifyCtx>,
        writes: Writes,
    ) -> Result<std::result::Result<Vec<Applied>, Round>> {
        let n = items.len();
        let single = n == 1;

        // 2. The booked lessons matched to each check-in by the pure rule.
        let matched: Vec<Option<(BookedLesson, AttendanceStatus)>> = items
            .iter()
            .map(|it| {
                let mine: Vec<BookedLesson> = booked
                    .get(it.ci.student_id.as_str())
                    .map(|ls| {
                        ls.iter()
                            .filter(|l| ms(l.start) <= it.at + 12 * 3_600_000 && ms(l.end) >= it.at)
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                match_checkin(&mine, it.ci.at).map(|(l, s)| (l.clone(), s))
            })
            .collect();

        // 3. Attendance: the first check-in of each (student, lesson) inserts; the row decides.
        //    In the same statement, read after the students' locks: their packages with their
        //    balances, and these lessons' ledger rows.
        let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
        let mut inserts: Vec<usize> = Vec::new();
        for (i, m) in matched.iter().enumerate() {
            if let Some((l, _)) = m {
                let pair = (items[i].ci.student_id.as_str(), l.lesson_id.as_str());
                if let std::collections::hash_map::Entry::Vacant(v) = first_of.entry(pair) {
                    v.insert(i);
                    inserts.push(i);
                }
            }
        }
        let mut stmts = Vec::with_capacity(2);
        if !inserts.is_empty() {
            let sql = format!(
                "INSERT INTO attendance (school_id, student_id, lesson_id, status, source, camera_id, at) VALUES {} \
                 ON CONFLICT (school_id, student_id, lesson_id) DO NOTHING RETURNING student_id, lesson_id",
                values_marks(inserts.len(), 7, 1)
            );
            let mut args: Vec<Arg> = Vec::with_capacity(inserts.len() * 7);
            for &i in &inserts {
                let (l, status) = matched[i].as_ref().expect("inserts are matched check-ins");
                args.extend([
                    school.into(),
                    (&items[i].ci.student_id).into(),
                    (&l.lesson_id).into(),
                    status.as_str().into(),
                    items[i].ci.source.as_str().into(),
                    (&items[i].ci.camera_id).into(),
                    items[i].at.into(),
                ]);
            }
            stmts.push(Stmt::new(sql, args, 2));
        }
        let lessons: Vec<&str> = inserts
            .iter()
            .filter_map(|&i| matched[i].as_ref().map(|(l, _)| l.lesson_id.as_str()))
            .collect();
        let attendance_at = (!stmts.is_empty()).then_some(0);
        let packages_at = packages_stmt(school, students, &lessons).map(|st| {
            stmts.push(st);
            stmts.len() - 1
        });
        // the names and guardians the arrival notices will need (of every student and class
        // that may get one)
        let recipients_at = notify.as_ref().and_then(|_| {
            let classes: Vec<&str> = inserts
                .iter()
                .filter_map(|&i| matched[i].as_ref().map(|(l, _)| l.class_id.as_str()))
                .collect();
            let st = crate::outbox::recipients_stmt(school, students, &classes)?;
            stmts.push(st);
            Some(stmts.len() - 1)
        });
        let mut got = db.fetch_many(stmts).await?;
        let (mut pkgs, lesson_rows) = match packages_at {
            Some(k) => parse_packages(std::mem::take(&mut got[k]))?,
            None => Default::default(),
        };
        let recipients = match recipients_at {
            Some(k) => crate::outbox::Recipients::parse(std::mem::take(&mut got[k]))?,
            None => Default::default(),
        };
        let mut inserted: HashSet<(String, String)> = HashSet::new();
        for r in attendance_at
            .map(|k| std::mem::take(&mut got[k]))
            .unwrap_or_default()
        {
            inserted.insert((r.text(0)?, r.text(1)?));
        }
        let is_new = |i: usize| -> bool {
            matched[i].as_ref().is_some_and(|(l, _)| {
                first_of.get(&(items[i].ci.student_id.as_str(), l.lesson_id.as_str())) == Some(&i)
                    && inserted.contains(&(items[i].ci.student_id.clone(), l.lesson_id.clone()))
            })
        };
        // statuses of rows that were there before this round
        let mut stored: HashMap<(String, String), AttendanceStatus> = HashMap::new();
        let old: Vec<usize> = inserts.iter().copied().filter(|&i| !is_new(i)).collect();
        if !old.is_empty() {
            let lessons: Vec<&str> = old
                .iter()
                .filter_map(|&i| matched[i].as_ref().map(|(l, _)| l.lesson_id.as_str()))
                .collect();
            let sql = format!(
                "SELECT student_id, lesson_id, status FROM attendance WHERE school_id = $1 AND student_id IN ({}) AND lesson_id IN ({})",
                list_marks(students.len(), 2),
                list_marks(lessons.len(), 2 + students.len())
            );
            let mut args: Vec<Arg> = vec![school.into()];
            args.extend(students.iter().map(|s| Arg::from(*s)));
            args.extend(lessons.iter().map(|l| Arg::from(*l)));
            for r in db.fetch(&sql, args).await? {
                let status = r.text(2)?;
                stored.insert(
                    (r.text(0)?, r.text(1)?),
                    parse_enum(&status, AttendanceStatus::parse, "attendance status")?,
                );
            }
        }

        // 4. Charges, in order, on each student's packages as the earlier check-ins left them.
        let charged: Vec<usize> = (0..n).filter(|&i| is_new(i)).collect();
        let mut outcomes: Vec<CheckInOutcome> = Vec::with_capacity(n);
        let mut avail: Vec<Units> = Vec::with_capacity(n);
        let mut before: Vec<Units> = Vec::with_capacity(n);
        let mut entries: Vec<(usize, Entry)> = Vec::new();
        let mut raised: Vec<Raised> = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let student = it.ci.student_id.as_str();
            let (p, od) = pkgs.entry(student.to_string()).or_default();
            before.push(available_units(p, *od, it.ci.at));
            let outcome = match &matched[i] {
                None => CheckInOutcome::Unscheduled,
                Some((l, status)) if is_new(i) => {
                    let rows = lesson_rows
                        .get(&(student.to_string(), l.lesson_id.clone()))
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    let (d, entry) =
                        self.plan_charge(p, *od, rows, student, l, UNITS_PER_LESSON, it.ci.at);
                    if let Some(e) = entry {
                        apply_entry(p, od, &e);
                        let (_, drafts) = self.balance_alerts(student, p, *od, it.ci.at);
                        for draft in drafts {
                            raised.push(Raised {
                                item: i,
                                draft,
                                packages: Some((p.clone(), *od)),
                            });
                        }
                        entries.push((i, e));
                    }
                    if let DeductionDecision::Insufficient { reason, .. } = &d {
                        raised.push(Raised {
                            item: i,
                            draft: zero_balance_alert(student, &l.class_id, &l.lesson_id, *reason),
                            packages: None,
                        });
                    }
                    CheckInOutcome::Recorded {
                        lesson_id: l.lesson_id.clone(),
                        class_id: l.class_id.clone(),
                        status: *status,
                        deduction: d,
                    }
                }
                Some((l, _)) => {
                    let pair = (student, l.lesson_id.as_str());
                    let status = match first_of.get(&pair) {
                        Some(&f) if is_new(f) => matched[f].as_ref().map(|(_, s)| *s),
                        _ => stored
                            .get(&(student.to_string(), l.lesson_id.clone()))
                            .copied(),
                    }
                    .ok_or_else(|| {
                        LedgerError::Corrupt(format!(
                            "attendance of {student}/{} vanished",
                            l.lesson_id
                        ))
                    })?;
                    CheckInOutcome::AlreadyRecorded {
                        lesson_id: l.lesson_id.clone(),
                        status,
                    }
                }
            };
            avail.push(available_units(p, *od, it.ci.at));
            outcomes.push(outcome);
        }

        // 5. Deductions: acted upon only when their idempotency key was inserted.
        let deductions = (!entries.is_empty()).then(|| {
            let sql = format!(
                "INSERT INTO ledger (school_id, student_id, kind, package_id, lesson_id, units, amount_cents, idempotency_key, at, actor, note) VALUES {} \
                 ON CONFLICT (school_id, idempotency_key) DO NOTHING RETURNING idempotency_key",
                values_marks(entries.len(), 11, 1)
            );
            let mut args: Vec<Arg> = Vec::with_capacity(entries.len() * 11);
            for (i, e) in &entries {
                args.extend([
                    school.into(),
                    (&e.student_id).into(),
                    e.kind.as_str().into(),
                    (&e.package_id).into(),
                    (&e.lesson_id).into(),
                    e.units.into(),
                    e.amount_cents.into(),
                    (&e.idempotency_key).into(),
                    items[*i].at.into(),
                    items[*i].ci.source.as_str().into(),
                    Arg::Null,
                ]);
            }
            Stmt::new(sql, args, 1)
        });
        let mut deductions = match (deductions, writes) {
            (Some(st), Writes::DeductionsFirst) => {
                let keys = first_texts(&db.fetch(&st.sql, st.args).await?)?;
                if keys.len() < entries.len() {
                    if !single {
                        return Ok(Err(Round::Conflict));
                    }
                    // one check-in: as if the charge found the lesson paid (nothing deducted,
                    // no balance alert, the balance as it was)
                    if let CheckInOutcome::Recorded { deduction, .. } = &mut outcomes[0] {
                        *deduction = DeductionDecision::Nothing;
                    }
                    raised.clear();
                    avail[0] = before[0];
                }
                None
            }
            (st, _) => st,
        };

        // 6. Arrival notices of the new attendance rows; 7. alerts, one per dedup key (each
        //    new one is then audited and notified); 8. the check-in events (one whose key is
        //    taken rolls the round back); 9. one audit row per change (attendance and
        //    deduction, or the visit): with the deductions, one statement.
        let mut stmts: Vec<Stmt> = Vec::with_capacity(6);
        let deduction_at = deductions.take().map(|st| {
            stmts.push(st);
            stmts.len() - 1
        });
        if let Some(ctx) = &notify {
            let arrivals: Vec<crate::outbox::NoticeDraft> = charged
                .iter()
                .filter_map(|&i| {
                    matched[i].as_ref().map(|(l, status)| {
                        crate::outbox::arrival(&items[i].ci.student_id, l, *status, items[i].ci.at)
                    })
                })
                .collect();
            stmts.extend(crate::outbox::outbox_stmts(
                school,
                ctx,
                &arrivals,
                &recipients,
            )?);
        }
        let mut seen = HashSet::new();
        raised.retain(|r| seen.insert(r.draft.dedup_key.clone()));
        let alerts_at = (!raised.is_empty()).then(|| {
            let sql = format!(
                "INSERT INTO alerts (school_id, dedup_key, kind, student_id, class_id, package_id, message, state, created_at, updated_at) VALUES {} \
                 ON CONFLICT (school_id, dedup_key) DO NOTHING RETURNING dedup_key",
                (0..raised.len())
                    .map(|r| {
                        let b = 1 + r * 8;
                        format!(
                            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, 'open', ${}, ${})",
                            b, b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 7
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut args: Vec<Arg> = Vec::with_capacity(raised.len() * 8);
            for r in &raised {
                let a = &r.draft;
                args.extend([
                    school.into(),
                    (&a.dedup_key).into(),
                    a.kind.as_str().into(),
                    (&a.student_id).into(),
                    (&a.class_id).into(),
                    (&a.package_id).into(),
                    (&a.message).into(),
                    items[r.item].at.into(),
                ]);
            }
            stmts.push(Stmt::new(sql, args, 1));
            stmts.len() - 1
        });
        let sql = format!(
            "INSERT INTO checkin_events (school_id, event_key, student_id, at, source, camera_id, lesson_id, outcome) VALUES {} \
             ON CONFLICT (school_id, event_key) DO NOTHING RETURNING event_key",
            values_marks(n, 8, 1)
        );
        let mut args: Vec<Arg> = Vec::with_capacity(n * 8);
        for (i, it) in items.iter().enumerate() {
            let tag = match &outcomes[i] {
                CheckInOutcome::Recorded { .. } => "recorded",
                CheckInOutcome::AlreadyRecorded { .. } => "already_recorded",
                CheckInOutcome::Unscheduled => "unscheduled",
                CheckInOutcome::DuplicateEvent => "duplicate",
            };
            args.extend([
                school.into(),
                (&it.key).into(),
                (&it.ci.student_id).into(),
                it.at.into(),
                it.ci.source.as_str().into(),
                (&it.ci.camera_id).into(),
                matched[i].as_ref().map(|(l, _)| l.lesson_id.clone()).into(),
                tag.into(),
            ]);
        }
        stmts.push(Stmt::new(sql, args, 1));
        let events_at = stmts.len() - 1;
        let mut audits: Vec<AuditEntry> = Vec::new();
        for (i, it) in items.iter().enumerate() {
            if matches!(outcomes[i], CheckInOutcome::AlreadyRecorded { .. }) {
                continue;
            }
            let lesson = matched[i].as_ref().map(|(l, _)| l.lesson_id.as_str());
            audits.push(AuditEntry {
                actor: it.ci.source.as_str().into(),
                action: if lesson.is_some() { "check_in" } else { "visit" },
                entity: "attendance",
                entity_id: format!("{}/{}", lesson.unwrap_or("-"), it.ci.student_id),
                before: None,
                after: Some(json!({
                    "event": it.key, "camera": it.ci.camera_id, "at": it.ci.at, "outcome": outcomes[i]
                })),
                at: it.at,
            });
        }
        stmts.extend(audit_stmts(school, &audits));
        let got = db.fetch_many(stmts).await?;
        if got[events_at].len() < n {
            return Ok(Err(Round::Taken));
        }
        if let Some(k) = deduction_at {
            if first_texts(&got[k])?.len() < entries.len() {
                return Ok(Err(Round::Conflict));
            }
        }
        let mut alerts: Vec<Vec<String>> = vec![Vec::new(); n];
        if let Some(k) = alerts_at {
            let new = first_texts(&got[k])?;
            let mut audits: Vec<AuditEntry> = Vec::new();
            let mut notices = Vec::new();
            for r in raised.iter().filter(|r| new.contains(&r.draft.dedup_key)) {
                let at = items[r.item].at;
                audits.push(AuditEntry {
                    actor: "rules".into(),
                    action: "raise",
                    entity: "alert",
                    entity_id: r.draft.dedup_key.clone(),
                    before: None,
                    after: Some(json!(r.draft)),
                    at,
                });
                alerts[r.item].push(r.draft.dedup_key.clone());
                let snapshot = r.packages.as_ref().map(|(p, od)| (p.as_slice(), *od));
                notices
                    .push(crate::outbox::alert_notice(db, school, &r.draft, at, snapshot).await?);
            }
            crate::outbox::enqueue_with(db, school, notify.as_ref(), &notices).await?;
            write_audit(db, school, &audits).await?;
        }
        Ok(Ok(outcomes
            .into_iter()
            .zip(alerts)
            .zip(avail)
            .map(|((o, a), v)| (o, a, v))
            .collect()))
    }
}
