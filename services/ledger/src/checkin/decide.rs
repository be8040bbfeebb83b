//! Step 4 of a round, in memory: each check-in's outcome and charge by the domain's rules
//! (`decide_deduction` through [`Store::plan_charge`], the balance and zero-balance alert
//! rules), one after the other on the packages the earlier ones left; and step 5, the
//! deductions' statement.

use super::round::{first_texts, AttendancePlan, AttendanceRead, Matched};
use super::{Item, Refusal};
use crate::db::{values_marks, Arg, Db, Stmt};
use crate::store::*;
use crate::{LedgerError, Result};
use rollcall_domain::ledger::*;
use std::collections::HashMap;

/// An alert a round raises, with the student's packages right after the change (for the
/// notice of a balance alert).
pub(super) struct Raised {
    /// The check-in that raised it.
    pub(super) item: usize,
    pub(super) draft: AlertDraft,
    pub(super) packages: Option<(Vec<PackageState>, Units)>,
}

/// What the rules decided for a round's check-ins (one element per check-in in `outcomes`,
/// `avail` and `before`).
pub(super) struct Decisions {
    pub(super) outcomes: Vec<CheckInOutcome>,
    /// The student's available units right after each check-in.
    pub(super) avail: Vec<Units>,
    /// The student's available units right before each check-in.
    pub(super) before: Vec<Units>,
    /// The deductions to append, with the check-in of each.
    pub(super) entries: Vec<(usize, Entry)>,
    /// The alerts raised, in order (dedup keys may repeat).
    pub(super) raised: Vec<Raised>,
}

impl Store {
    /// Step 4: decides each check-in in order: an unscheduled visit, a new attendance (charged
    /// on the student's packages as the earlier check-ins of the round left them; balance
    /// alerts; a zero-balance alert when it could not be charged), or an attendance recorded
    /// before (its status, from this round's first check-in of the pair or the stored row).
    pub(super) fn decide_charges(
        &self,
        items: &[Item],
        matched: &Matched,
        plan: &AttendancePlan<'_>,
        read: &mut AttendanceRead,
        stored: &HashMap<(String, String), AttendanceStatus>,
    ) -> Result<Decisions> {
        let n = items.len();
        let mut d = Decisions {
            outcomes: Vec::with_capacity(n),
            avail: Vec::with_capacity(n),
            before: Vec::with_capacity(n),
            entries: Vec::new(),
            raised: Vec::new(),
        };
        for (i, it) in items.iter().enumerate() {
            let student = it.ci.student_id.as_str();
            let (p, od) = read.packages.entry(student.to_string()).or_default();
            d.before.push(available_units(p, *od, it.ci.at));
            let outcome = match &matched[i] {
                None => CheckInOutcome::Unscheduled,
                Some((l, status)) if read.new[i] => {
                    let rows = read
                        .lesson_rows
                        .get(&(student.to_string(), l.lesson_id.clone()))
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    let (decision, entry) =
                        self.plan_charge(p, *od, rows, student, l, UNITS_PER_LESSON, it.ci.at);
                    if let Some(e) = entry {
                        apply_entry(p, od, &e);
                        let (_, drafts) = self.balance_alerts(student, p, *od, it.ci.at);
                        for draft in drafts {
                            d.raised.push(Raised {
                                item: i,
                                draft,
                                packages: Some((p.clone(), *od)),
                            });
                        }
                        d.entries.push((i, e));
                    }
                    if let DeductionDecision::Insufficient { reason, .. } = &decision {
                        d.raised.push(Raised {
                            item: i,
                            draft: zero_balance_alert(student, &l.class_id, &l.lesson_id, *reason),
                            packages: None,
                        });
                    }
                    CheckInOutcome::Recorded {
                        lesson_id: l.lesson_id.clone(),
                        class_id: l.class_id.clone(),
                        status: *status,
                        deduction: decision,
                    }
                }
                Some((l, _)) => {
                    let pair = (student, l.lesson_id.as_str());
                    let status = match plan.first_of.get(&pair) {
                        Some(&f) if read.new[f] => matched[f].as_ref().map(|(_, s)| *s),
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
            d.avail.push(available_units(p, *od, it.ci.at));
            d.outcomes.push(outcome);
        }
        Ok(d)
    }
}

/// Step 5: the statement appending the deductions (`ON CONFLICT DO NOTHING RETURNING` the
/// idempotency keys inserted: a deduction is acted upon only when its key was); `None` when
/// there are none.
pub(super) fn deductions_stmt(
    school: &str,
    items: &[Item],
    entries: &[(usize, Entry)],
) -> Option<Stmt> {
    if entries.is_empty() {
        return None;
    }
    let sql = format!(
        "INSERT INTO ledger (school_id, student_id, kind, package_id, lesson_id, units, amount_cents, idempotency_key, at, actor, note) VALUES {} \
         ON CONFLICT (school_id, idempotency_key) DO NOTHING RETURNING idempotency_key",
        values_marks(entries.len(), 11, 1)
    );
    let mut args: Vec<Arg> = Vec::with_capacity(entries.len() * 11);
    for (i, e) in entries {
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
    Some(Stmt::new(sql, args, 1))
}

/// Step 5 of [`super::Writes::DeductionsFirst`]: writes the deductions on their own. When a key
/// is taken, a batch is refused (`Some`: the round rolls back); a single check-in is recorded
/// as if the charge found the lesson paid: nothing deducted, no balance alert, the balance as
/// it was.
pub(super) async fn write_deductions_first(
    db: &mut dyn Db,
    deductions: Stmt,
    single: bool,
    d: &mut Decisions,
) -> Result<Option<Refusal>> {
    let keys = first_texts(&db.fetch(&deductions.sql, deductions.args).await?)?;
    if keys.len() < d.entries.len() {
        if !single {
            return Ok(Some(Refusal::DeductionKeyTaken));
        }
        if let Some(CheckInOutcome::Recorded { deduction, .. }) = d.outcomes.first_mut() {
            *deduction = DeductionDecision::Nothing;
        }
        d.raised.clear();
        if let (Some(avail), Some(before)) = (d.avail.first_mut(), d.before.first()) {
            *avail = *before;
        }
    }
    Ok(None)
}
