//! Privacy commands (issue 9): `rollcall consent grant|withdraw|show`, `rollcall privacy
//! retention|rotate-key|new-key|status`, `rollcall export --student ID --out DIR`; `erase` and
//! `gallery rebuild` live in `cmd_gallery` and call the same library functions.
//!
//! Template keys come from `ROLLCALL_TEMPLATE_KEYS` / `ROLLCALL_TEMPLATE_KEY_ID` (PRIVACY.md);
//! they are never printed, except by `privacy new-key`, which makes a fresh one on request.

use crate::cmd_gallery::{dim_for, keys, open_gallery, open_school, DataOpts};
use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, NaiveDate, Utc};
use rollcall_domain::clock::{Clock, SystemClock};
use rollcall_domain::privacy::{consent_status, ConsentRecord, FACE_CONSENT};
use rollcall_domain::{StudentId, TenantId};
use rollcall_gallery::privacy::{self as gp, RetentionConfig};
use rollcall_gallery::vault::{self, Keyring, KEYS_ENV};
use rollcall_ledger::{NewGuardian, NewStudent, Store};
use serde_json::{json, Value};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConsentCmd {
    /// Record a guardian's consent to face recognition (registers the student with --name and
    /// the guardian with --guardian-name when they are new).
    Grant {
        #[arg(long)]
        student: String,
        /// Guardian id (a guardian of this student).
        #[arg(long)]
        guardian: String,
        /// Reference of the signed consent document.
        #[arg(long)]
        document: String,
        /// End of the consent (RFC 3339 or YYYY-MM-DD); none = until withdrawn.
        #[arg(long)]
        expires: Option<String>,
        /// When it was given (RFC 3339); default now.
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        guardian_name: Option<String>,
        #[command(flatten)]
        data: DataOpts,
    },
    /// Record a withdrawal and erase the student's biometric data at once (receipt printed).
    Withdraw {
        #[arg(long)]
        student: String,
        /// Who withdrew (guardian id, or the staff member recording it).
        #[arg(long)]
        by: String,
        #[arg(long)]
        document: Option<String>,
        #[command(flatten)]
        data: DataOpts,
    },
    /// Consent history and current status of a student.
    Show {
        #[arg(long)]
        student: String,
        #[command(flatten)]
        data: DataOpts,
    },
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum PrivacyCmd {
    /// Run the retention job once (idempotent; prints the counts).
    Retention {
        /// Evaluate as of this time (RFC 3339); default now.
        #[arg(long)]
        now: Option<String>,
        #[arg(long, env = "ROLLCALL_RETENTION_REVIEW_DAYS", default_value_t = 7)]
        review_days: u32,
        #[arg(long, env = "ROLLCALL_RETENTION_UNKNOWN_DAYS", default_value_t = 7)]
        unknown_days: u32,
        #[arg(long, env = "ROLLCALL_RETENTION_DECIDED_DAYS", default_value_t = 30)]
        decided_days: u32,
        #[arg(long, env = "ROLLCALL_RETENTION_INACTIVE_MONTHS", default_value_t = 36)]
        inactive_months: u32,
        #[command(flatten)]
        data: DataOpts,
    },
    /// Reseal every encrypted template with the current key (ROLLCALL_TEMPLATE_KEY_ID).
    RotateKey {
        #[command(flatten)]
        data: DataOpts,
    },
    /// Print a fresh random key entry `ID:BASE64` to add to ROLLCALL_TEMPLATE_KEYS.
    NewKey {
        #[arg(long)]
        id: String,
    },
    /// Retention settings and students whose biometric data lacks valid consent.
    Status {
        #[command(flatten)]
        data: DataOpts,
    },
}

fn parse_time(s: &str, what: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| anyhow!("{what}: {s:?} is neither RFC 3339 nor YYYY-MM-DD"))?;
    Ok(d.and_hms_opt(0, 0, 0)
        .ok_or_else(|| anyhow!("{what}: bad date"))?
        .and_utc())
}

fn ids(school: &Store, student: &str) -> anyhow::Result<(TenantId, StudentId)> {
    Ok((
        TenantId::new(school.school_id()).map_err(|e| anyhow!("school id: {e}"))?,
        StudentId::new(student).map_err(|e| anyhow!("--student: {e}"))?,
    ))
}

pub async fn consent(v: &crate::cmd_vision::VisionOpts, cmd: ConsentCmd) -> anyhow::Result<Value> {
    match cmd {
        ConsentCmd::Grant {
            student,
            guardian,
            document,
            expires,
            at,
            name,
            guardian_name,
            data,
        } => {
            let school = open_school(&data, name.is_some()).await?;
            ids(&school, &student)?;
            if let Some(name) = &name {
                school
                    .ensure_student(&NewStudent {
                        id: student.clone(),
                        name: name.clone(),
                        home_campus_id: None,
                    })
                    .await?;
            }
            if let Some(gname) = &guardian_name {
                let known = school
                    .subject_access(&student, school.now())
                    .await
                    .ok()
                    .and_then(|v| {
                        v["guardians"]
                            .as_array()
                            .map(|g| g.iter().any(|g| g["id"] == guardian.as_str()))
                    })
                    .unwrap_or(false);
                if !known {
                    school
                        .add_guardian(&NewGuardian {
                            id: guardian.clone(),
                            student_id: student.clone(),
                            name: gname.clone(),
                            phone: None,
                            email: None,
                            language: "en".into(),
                            notify_prefs: String::new(),
                        })
                        .await
                        .context("registering the guardian")?;
                }
            }
            let at = match at {
                Some(s) => parse_time(&s, "--at")?,
                None => school.now(),
            };
            let record = ConsentRecord {
                kind: FACE_CONSENT.into(),
                granted: true,
                given_by: guardian,
                at,
                document_ref: Some(document),
                expires_at: expires.map(|e| parse_time(&e, "--expires")).transpose()?,
            };
            school.record_consent_decision(&student, &record).await?;
            let history = school.consent_records(&student).await?;
            school.close().await;
            Ok(json!({
                "student": student,
                "recorded": record,
                "status": consent_status(&history, FACE_CONSENT, school.now().max(at)),
            }))
        }
        ConsentCmd::Withdraw {
            student,
            by,
            document,
            data,
        } => {
            let school = open_school(&data, false).await?;
            let (tenant, sid) = ids(&school, &student)?;
            let gallery = open_gallery(&data, dim_for(v)).await?;
            let receipt = gp::withdraw_consent(
                gallery.as_ref(),
                &school,
                &data.data,
                &tenant,
                &sid,
                &by,
                document,
                school.now(),
            )
            .await?;
            school.close().await;
            Ok(serde_json::to_value(receipt)?)
        }
        ConsentCmd::Show { student, data } => {
            let school = open_school(&data, false).await?;
            let history = school.consent_records(&student).await?;
            school.close().await;
            Ok(json!({
                "student": student,
                "status": consent_status(&history, FACE_CONSENT, school.now()),
                "history": history,
            }))
        }
    }
}

pub async fn privacy(v: &crate::cmd_vision::VisionOpts, cmd: PrivacyCmd) -> anyhow::Result<Value> {
    let dim = dim_for;
    match cmd {
        PrivacyCmd::Retention {
            now,
            review_days,
            unknown_days,
            decided_days,
            inactive_months,
            data,
        } => {
            let now = match now {
                Some(s) => parse_time(&s, "--now")?,
                None => SystemClock.now(),
            };
            let cfg = RetentionConfig {
                review_crop_days: review_days,
                unknown_crop_days: unknown_days,
                decided_review_days: decided_days,
                inactive_template_months: inactive_months,
                ..RetentionConfig::from_env()?
            };
            let school = open_school(&data, false).await?;
            let tenant = TenantId::new(school.school_id()).map_err(|e| anyhow!("{e}"))?;
            let gallery = open_gallery(&data, dim(v)).await?;
            let r = gp::run_retention(gallery.as_ref(), &school, &data.data, &tenant, now, &cfg)
                .await?;
            school.close().await;
            Ok(serde_json::to_value(r)?)
        }
        PrivacyCmd::RotateKey { data } => {
            let keys = keys()?;
            let school = open_school(&data, false).await?;
            let tenant = TenantId::new(school.school_id()).map_err(|e| anyhow!("{e}"))?;
            let r = vault::rotate(&keys, &school, &tenant, school.now()).await?;
            school
                .audit_privacy_event(
                    "cli",
                    "template_key_rotation",
                    "-",
                    &serde_json::to_string(&json!({
                        "current_key": r.current_key,
                        "resealed": r.resealed,
                    }))?,
                    r.at,
                )
                .await?;
            school.close().await;
            Ok(serde_json::to_value(r)?)
        }
        PrivacyCmd::NewKey { id } => {
            let e = Keyring::generate_entry(&id);
            // validate the id the same way the keyring will
            Keyring::parse(&e, None)?;
            Ok(json!({"entry": e, "env": KEYS_ENV}))
        }
        PrivacyCmd::Status { data } => {
            let school = open_school(&data, false).await?;
            let tenant = TenantId::new(school.school_id()).map_err(|e| anyhow!("{e}"))?;
            let gallery = open_gallery(&data, dim(v)).await?;
            let problems = gp::consent_problems(gallery.as_ref(), &school, &tenant, school.now())
                .await?
                .into_iter()
                .map(|(s, st)| json!({"student": s, "consent": st}))
                .collect::<Vec<_>>();
            let keys = Keyring::from_env()?;
            school.close().await;
            Ok(json!({
                "retention": RetentionConfig::from_env()?,
                "template_keys": keys.map(|k| json!({"current": k.current_id(), "ids": k.key_ids()})),
                "biometric_data_without_valid_consent": problems,
            }))
        }
    }
}

pub async fn export(
    v: &crate::cmd_vision::VisionOpts,
    data: &DataOpts,
    student: &str,
    out: &std::path::Path,
) -> anyhow::Result<Value> {
    if out.exists()
        && out
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("--out {} exists and is not empty", out.display());
    }
    let school = open_school(data, false).await?;
    let (tenant, sid) = ids(&school, student)?;
    let gallery = open_gallery(data, dim_for(v)).await?;
    let r = gp::export_student(
        gallery.as_ref(),
        &school,
        &data.data,
        &tenant,
        &sid,
        out,
        school.now(),
    )
    .await?;
    school
        .audit_privacy_event(
            "cli",
            "subject_access_export",
            student,
            &serde_json::to_string(
                &json!({"photos": r.photos.len(), "biometric_data_held": r.biometric_data_held}),
            )?,
            school.now(),
        )
        .await?;
    school.close().await;
    Ok(serde_json::to_value(r)?)
}
