//! A round of check-ins, step by step: read what the round needs (stored event keys, the
//! students under lock, their booked lessons), match each check-in to its lesson by the pure
//! rule, record attendance (reading the packages and the notices' recipients in the same
//! statement), read the statuses of attendance rows stored before, then decide
//! ([`super::decide`]) and write ([`super::write`]).

use super::write::Sent;
use super::{Applied, Item, RoundOutcome, Writes};
use crate::db::{list_marks, values_marks, Arg, Db, Row, Stmt};
use crate::notices::{recipients_stmt, NotifyCtx, Recipients};
use crate::store::*;
use crate::{LedgerError, Result};
use rollcall_domain::ledger::*;
use std::collections::{HashMap, HashSet};

/// How far ahead of a lesson a check-in may come (a lesson's window opens at most 12 h early).
const EARLY_MS: i64 = 12 * 3_600_000;

/// The first column of `rows` (keys returned by a `RETURNING` or a key lookup).
pub(super) fn first_texts(rows: &[Row]) -> Result<HashSet<String>> {
    rows.iter().map(|r| r.text(0)).collect()
}

/// The booked lesson each check-in of a round falls in, with its attendance status (`None`:
/// an unscheduled visit).
pub(super) type Matched = Vec<Option<(BookedLesson, AttendanceStatus)>>;

/// What step 1 of a round reads.
struct RoundInputs {
    /// The round's event keys that are stored already (answered as duplicates).
    stored: HashSet<String>,
    /// The students found (locked, in id order), each with the school's time zone, policy and
    /// notification settings.
    students: Vec<Row>,
    /// Each student's booked lessons around the check-ins.
    booked: HashMap<String, Vec<BookedLesson>>,
}

/// The check-ins of a round that write attendance: the first of each (student, lesson).
pub(super) struct AttendancePlan<'a> {
    /// The check-in that inserts each (student, lesson)'s attendance row.
    pub(super) first_of: HashMap<(&'a str, &'a str), usize>,
    /// Those check-ins, in order, each with its lesson and status.
    pub(super) inserts: Vec<(usize, &'a BookedLesson, AttendanceStatus)>,
}

/// What step 3 (attendance) learns.
pub(super) struct AttendanceRead {
    /// Per check-in: its attendance row was inserted by this round (so it is charged and its
    /// arrival notified).
    pub(super) new: Vec<bool>,
    /// Each student's packages (with balances) and overdraft, read after the students' locks.
    pub(super) packages: StudentPackages,
    /// The ledger rows of these (student, lesson) pairs (whether a lesson is paid already).
    pub(super) lesson_rows: LessonRows,
    /// The names and guardians the arrival notices need (empty when notifications are off).
    pub(super) recipients: Recipients,
}

impl Store {
    /// Applies `items` (distinct event keys; one student's in their order) inside an open write
    /// transaction, in three statements on PostgreSQL (see [`Db::fetch_many`]):
    ///
    /// 1. the event keys already stored, the students (row locks in id order) and the lessons
    ///    they are booked into ([`read_round_inputs`]);
    /// 2. the attendance rows, and the students' packages with the lessons' ledger rows;
    /// 3. the deductions, alerts, check-in events and audit rows.
    ///
    /// The rules run in memory between them. On [`RoundOutcome::Refused`] the caller must roll
    /// back what this wrote.
    pub(super) async fn round(
        &self,
        db: &mut dyn Db,
        school: &str,
        items: &[Item],
        writes: Writes,
    ) -> Result<RoundOutcome> {
        let mut students: Vec<&str> = items.iter().map(|i| i.ci.student_id.as_str()).collect();
        students.sort_unstable();
        students.dedup();
        let inputs = read_round_inputs(db, school, items, &students).await?;

        let live: Vec<usize> = (0..items.len())
            .filter(|&i| !inputs.stored.contains(&items[i].key))
            .collect();
        let mut out: Vec<Option<Applied>> = vec![None; items.len()];
        if live.is_empty() {
            return Ok(RoundOutcome::Applied(out));
        }
        let known = first_texts(&inputs.students)?;
        if let Some(&i) = live
            .iter()
            .find(|&&i| !known.contains(&items[i].ci.student_id))
        {
            return Err(LedgerError::NotFound {
                entity: "student",
                id: items[i].ci.student_id.clone(),
            });
        }
        let notify = match inputs.students.first() {
            Some(r) => NotifyCtx::new(r.int(1)?, r.text(2)?, r.opt_text(3)?)?,
            None => None,
        };
        let items: Vec<Item> = live.iter().map(|&i| items[i].clone()).collect();
        let students: Vec<&str> = students
            .into_iter()
            .filter(|s| items.iter().any(|i| i.ci.student_id == *s))
            .collect();
        match self
            .apply(
                db,
                school,
                &items,
                &students,
                &inputs.booked,
                notify,
                writes,
            )
            .await?
        {
            RoundOutcome::Applied(applied) => {
                for (i, a) in live.into_iter().zip(applied) {
                    out[i] = a;
                }
                Ok(RoundOutcome::Applied(out))
            }
            refused @ RoundOutcome::Refused(_) => Ok(refused),
        }
    }

    /// Steps 2–9 of a round, on the check-ins whose event keys are new (every result `Some`).
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        db: &mut dyn Db,
        school: &str,
        items: &[Item],
        students: &[&str],
        booked: &HashMap<String, Vec<BookedLesson>>,
        notify: Option<NotifyCtx>,
        writes: Writes,
    ) -> Result<RoundOutcome> {
        // 2. The booked lessons matched to each check-in by the pure rule.
        let matched = match_lessons(items, booked);
        // 3. Attendance: the first check-in of each (student, lesson) inserts; the row decides.
        let plan = plan_attendance(items, &matched);
        let mut read = record_attendance(
            db,
            school,
            items,
            students,
            &matched,
            &plan,
            notify.is_some(),
        )
        .await?;
        let stored = load_prior_statuses(db, school, students, &plan, &read.new).await?;
        // 4. Charges, in order, on each student's packages as the earlier check-ins left them.
        let mut decided = self.decide_charges(items, &matched, &plan, &mut read, &stored)?;
        // 5. Deductions: acted upon only when their idempotency key was inserted.
        let mut deductions = super::decide::deductions_stmt(school, items, &decided.entries);
        if writes == Writes::DeductionsFirst {
            if let Some(st) = deductions.take() {
                if let Some(refused) =
                    super::decide::write_deductions_first(db, st, items.len() == 1, &mut decided)
                        .await?
                {
                    return Ok(RoundOutcome::Refused(refused));
                }
            }
        }
        // 6.–9. Notices, alerts, check-in events and audit rows (with the deductions: one
        //    statement), then the new alerts' audit rows and notices.
        let batch = super::write::build_writes(
            school,
            items,
            &matched,
            &read,
            &mut decided,
            deductions,
            notify.as_ref(),
            self.now(),
        )?;
        let new_alerts = match batch.send(db, items.len(), decided.entries.len()).await? {
            Sent::Written { new_alerts } => new_alerts,
            Sent::Refused(refused) => return Ok(RoundOutcome::Refused(refused)),
        };
        let alerts = super::write::audit_and_notify_alerts(
            db,
            school,
            items,
            &decided.raised,
            &new_alerts,
            notify.as_ref(),
            self.now(),
        )
        .await?;
        Ok(RoundOutcome::Applied(
            decided
                .outcomes
                .into_iter()
                .zip(alerts)
                .zip(decided.avail)
                .map(|((outcome, alerts), available)| {
                    Some(Applied {
                        outcome,
                        alerts,
                        available,
                    })
                })
                .collect(),
        ))
    }
}

/// Step 1: the round's event keys already stored; the students: row locks in id order on
/// PostgreSQL (concurrent check-ins of one student wait here until commit; SQLite's transaction
/// already holds the database's only write lock), unknown students caught, the school's
/// notification settings along; and the lessons they are booked into around the check-ins
/// (windows open at most 12 h early). The keys and lessons are read on the snapshot taken
/// before the lock: a key stored meanwhile is caught by the events insert (step 8), and
/// check-ins do not change the timetable.
async fn read_round_inputs(
    db: &mut dyn Db,
    school: &str,
    items: &[Item],
    students: &[&str],
) -> Result<RoundInputs> {
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
    let to = items.iter().map(|i| i.at).max().unwrap_or(0) + EARLY_MS;
    let mut stmts = vec![
        Stmt::new(keys_sql, keys_args, 1),
        Stmt::new(lock_sql, lock_args, 4),
    ];
    stmts.extend(booked_lessons_stmt(school, students, from, to));
    let mut got = db.fetch_many(stmts).await?.into_iter();
    Ok(RoundInputs {
        stored: first_texts(&got.next().unwrap_or_default())?,
        students: got.next().unwrap_or_default(),
        booked: parse_booked_lessons(got.next().unwrap_or_default())?,
    })
}

/// Step 2 (pure): the booked lesson each check-in falls in, by the domain's `match_checkin`.
fn match_lessons(items: &[Item], booked: &HashMap<String, Vec<BookedLesson>>) -> Matched {
    items
        .iter()
        .map(|it| {
            let mine: Vec<BookedLesson> = booked
                .get(it.ci.student_id.as_str())
                .map(|ls| {
                    ls.iter()
                        .filter(|l| ms(l.start) <= it.at + EARLY_MS && ms(l.end) >= it.at)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            match_checkin(&mine, it.ci.at).map(|(l, s)| (l.clone(), s))
        })
        .collect()
}

/// Which check-ins insert attendance: the first of each (student, lesson) of the round.
fn plan_attendance<'a>(items: &'a [Item], matched: &'a Matched) -> AttendancePlan<'a> {
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut inserts = Vec::new();
    for (i, m) in matched.iter().enumerate() {
        if let Some((l, status)) = m {
            let pair = (items[i].ci.student_id.as_str(), l.lesson_id.as_str());
            if let std::collections::hash_map::Entry::Vacant(v) = first_of.entry(pair) {
                v.insert(i);
                inserts.push((i, l, *status));
            }
        }
    }
    AttendancePlan { first_of, inserts }
}

/// Step 3: inserts the attendance rows of `plan` (`ON CONFLICT DO NOTHING RETURNING`: a row is
/// acted upon only when this round inserted it) and, in the same statement, reads after the
/// students' locks their packages with their balances, these lessons' ledger rows, and (when
/// notifications are on) the names and guardians the arrival notices will need.
async fn record_attendance(
    db: &mut dyn Db,
    school: &str,
    items: &[Item],
    students: &[&str],
    matched: &Matched,
    plan: &AttendancePlan<'_>,
    notify: bool,
) -> Result<AttendanceRead> {
    let mut stmts = Vec::with_capacity(3);
    if !plan.inserts.is_empty() {
        let sql = format!(
            "INSERT INTO attendance (school_id, student_id, lesson_id, status, source, camera_id, at) VALUES {} \
             ON CONFLICT (school_id, student_id, lesson_id) DO NOTHING RETURNING student_id, lesson_id",
            values_marks(plan.inserts.len(), 7, 1)
        );
        let mut args: Vec<Arg> = Vec::with_capacity(plan.inserts.len() * 7);
        for &(i, l, status) in &plan.inserts {
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
    let lessons: Vec<&str> = plan
        .inserts
        .iter()
        .map(|(_, l, _)| l.lesson_id.as_str())
        .collect();
    let attendance_at = (!stmts.is_empty()).then_some(0);
    let packages_at = packages_stmt(school, students, &lessons).map(|st| {
        stmts.push(st);
        stmts.len() - 1
    });
    // the names and guardians the arrival notices will need (of every student and class that
    // may get one)
    let recipients_at = notify
        .then(|| {
            let classes: Vec<&str> = plan
                .inserts
                .iter()
                .map(|(_, l, _)| l.class_id.as_str())
                .collect();
            recipients_stmt(school, students, &classes)
        })
        .flatten()
        .map(|st| {
            stmts.push(st);
            stmts.len() - 1
        });
    let mut got = db.fetch_many(stmts).await?;
    let (packages, lesson_rows) = match packages_at {
        Some(k) => parse_packages(std::mem::take(&mut got[k]))?,
        None => Default::default(),
    };
    let recipients = match recipients_at {
        Some(k) => Recipients::parse(std::mem::take(&mut got[k]))?,
        None => Default::default(),
    };
    let mut inserted: HashSet<(String, String)> = HashSet::new();
    for r in attendance_at
        .map(|k| std::mem::take(&mut got[k]))
        .unwrap_or_default()
    {
        inserted.insert((r.text(0)?, r.text(1)?));
    }
    let new = (0..items.len())
        .map(|i| {
            matched[i].as_ref().is_some_and(|(l, _)| {
                plan.first_of
                    .get(&(items[i].ci.student_id.as_str(), l.lesson_id.as_str()))
                    == Some(&i)
                    && inserted.contains(&(items[i].ci.student_id.clone(), l.lesson_id.clone()))
            })
        })
        .collect();
    Ok(AttendanceRead {
        new,
        packages,
        lesson_rows,
        recipients,
    })
}

/// The statuses of the attendance rows that were there before this round (of the pairs whose
/// insert found a row), by (student, lesson).
async fn load_prior_statuses(
    db: &mut dyn Db,
    school: &str,
    students: &[&str],
    plan: &AttendancePlan<'_>,
    new: &[bool],
) -> Result<HashMap<(String, String), AttendanceStatus>> {
    let mut stored = HashMap::new();
    let lessons: Vec<&str> = plan
        .inserts
        .iter()
        .filter(|(i, _, _)| !new[*i])
        .map(|(_, l, _)| l.lesson_id.as_str())
        .collect();
    if lessons.is_empty() {
        return Ok(stored);
    }
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
    Ok(stored)
}
