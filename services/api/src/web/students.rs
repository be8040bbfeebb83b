//! The students: the searchable list of the reader's campuses' students (status, balance,
//! classes, guardians); a student's page (status, balance, what needs attention, guardians,
//! consents, classes, packages, attendance history, ledger); registering a student with
//! guardians and consent in one form; editing the student and the guardians; suspending
//! (休学), resuming and leaving the school.

use super::layout::{page, page_keeping};
use super::{check_csrf, local, t, url, words_in_lang_field, Lang, Opt, Words};
use crate::auth::{roles, Staff};
use crate::error::ApiError;
use crate::v1;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use rollcall_domain::ledger::AlertState;
use rollcall_ledger::{as_actor, StudentStatus};
use serde::Deserialize;
use std::collections::HashMap;

/// A student of the list.
struct Row {
    id: String,
    name: String,
    campuses: String,
    /// In the reader's words; empty for an active student.
    status: &'static str,
    available: String,
    classes: String,
    guardians: String,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<div class=card><form method=get action=/app/students id=search><input name=q value="{{ q }}" placeholder="{{ t("search_students") }}" maxlength=100><select name=campus><option value="">{{ t("any_campus") }}</option>
{%- for o in campuses -%}
<option value="{{ o.value }}"{% if o.selected %} selected{% endif %}>{{ o.label }}</option>
{%- endfor -%}
</select><select name=status><option value="">{{ t("all_statuses") }}</option>
{%- for o in statuses -%}
<option value="{{ o.value }}"{% if o.selected %} selected{% endif %}>{{ o.label }}</option>
{%- endfor -%}
</select><button>{{ t("search") }}</button>
{%- if may_register -%}
 <a href=/app/students/new id=register-link>{{ t("register_student") }}</a>
{%- endif -%}
</form></div><div class=card><table id=student-list><tr><th>{{ t("student") }}</th><th>{{ t("name") }}</th><th>{{ t("home_campus") }}</th><th>{{ t("state") }}</th><th>{{ t("balance") }}</th><th>{{ t("classes") }}</th><th>{{ t("guardians") }}</th></tr>
{%- for s in students -%}
<tr><td><a href="/app/students/{{ s.id }}">{{ s.id }}</a></td><td>{{ s.name }}</td><td>{{ s.campuses }}</td><td>{{ s.status }}</td><td>{{ s.available }}</td><td>{{ s.classes }}</td><td>{{ s.guardians }}</td></tr>
{%- endfor -%}
</table>
{%- if more -%}
<p>{{ t("more_students") }}</p>
{%- endif -%}
</div>"#
)]
struct Students {
    lang: Lang,
    q: String,
    campuses: Vec<Opt>,
    statuses: Vec<Opt>,
    may_register: bool,
    students: Vec<Row>,
    more: bool,
}

words_in_lang_field!(Students);

/// A status in the reader's words (an active student: nothing to say).
pub(super) fn status_word(lang: Lang, status: &str) -> &'static str {
    match status {
        "suspended" => t(lang, "status_suspended"),
        "left" => t(lang, "status_left"),
        _ => "",
    }
}

/// The reader's campuses as a select's options, `chosen` selected.
pub(super) fn campus_options(
    all: Vec<(String, String)>,
    staff: &Staff,
    chosen: Option<&str>,
) -> Vec<Opt> {
    all.into_iter()
        .filter(|(c, _)| staff.allows_campus(c))
        .map(|(c, n)| {
            let on = chosen == Some(c.as_str());
            Opt::new(c, n, on)
        })
        .collect()
}

/// Campus ids as their names.
fn campus_names(names: &HashMap<String, String>, ids: &[String]) -> String {
    ids.iter()
        .map(|c| names.get(c).cloned().unwrap_or_else(|| c.clone()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) async fn students_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Query(q): Query<v1::SearchQuery>,
) -> Result<Html<String>, ApiError> {
    let found = v1::search_for(&st, &staff, &q).await?;
    let all_campuses = st.store.campuses().await?;
    let names: HashMap<String, String> = all_campuses.iter().cloned().collect();
    let students = found
        .students
        .into_iter()
        .map(|s| Row {
            campuses: campus_names(&names, &s.campuses),
            status: status_word(lang, &s.status),
            available: s.available,
            classes: s.classes.join(", "),
            guardians: s
                .guardians
                .iter()
                .map(|g| match &g.phone {
                    Some(p) => format!("{} {p}", g.name),
                    None => g.name.clone(),
                })
                .collect::<Vec<_>>()
                .join("; "),
            id: s.id,
            name: s.name,
        })
        .collect();
    let body = Students {
        lang,
        q: q.q.clone().unwrap_or_default(),
        campuses: campus_options(all_campuses, &staff, q.campus.as_deref()),
        statuses: ["active", "suspended", "left"]
            .into_iter()
            .map(|c| {
                Opt::new(
                    c,
                    t(lang, &format!("status_{c}")),
                    q.status.as_deref() == Some(c),
                )
            })
            .collect(),
        may_register: staff.require(roles::ENROLL).is_ok(),
        students,
        more: found.more,
    };
    let keep: Vec<(&'static str, String)> = [
        ("q", &q.q),
        ("home_campus", &q.campus),
        ("status", &q.status),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_deref().map(|v| (k, url(v))))
    .collect();
    page_keeping(lang, &staff, t(lang, "students"), body, &keep)
}

/// An alert about the student that is not resolved yet.
struct Attention {
    /// Local "YYYY-MM-DD HH:MM".
    at: String,
    kind: &'static str,
    message: String,
    state: &'static str,
}

/// A package with what is left of it.
struct Package {
    id: String,
    balance: String,
    /// Local "YYYY-MM-DD".
    expires: String,
    expired: bool,
}

/// A ledger entry, newest first.
struct Entry {
    /// Local "YYYY-MM-DD HH:MM".
    at: String,
    kind: &'static str,
    /// Lessons, signed, two decimals.
    units: String,
    lesson: String,
    actor: String,
    note: String,
}

/// A guardian on the student page.
struct Guardian {
    name: String,
    phone: String,
    email: String,
    wechat: String,
    language: &'static str,
    /// Channels and notices in the reader's words.
    notices: String,
}

/// A consent decision on the student page.
struct Consent {
    at: String,
    kind: &'static str,
    granted: bool,
    by: String,
    /// Local date a grant ends by itself.
    until: Option<String>,
}

/// A class the student is in.
struct Class {
    name: String,
    campus: String,
    teacher: String,
}

/// A lesson of the attendance history.
struct Attended {
    /// Local "YYYY-MM-DD HH:MM".
    start: String,
    class: String,
    status: String,
    status_word: &'static str,
    source: &'static str,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<div class=card><div class=row><img class=face src="/api/v1/students/{{ id }}/photo" alt=''><div><h2>{{ name }}</h2>
{%- if !status_word.is_empty() -%}
<p class=err id=student-status>{{ status_word }}{% if let Some(s) = status_since %} · {{ s }}{% endif %}{% if let Some(r) = status_reason %} · {{ r }}{% endif %}</p>
{%- endif -%}
<p>{{ t("balance") }}: <b id=balance>{{ available }}</b></p><p>{{ campuses }}</p>
{%- if let Some(c) = checkin_csrf -%}
<form method=post action=/app/checkin id=checkin-now><input type=hidden name=_csrf value="{{ c }}"><input type=hidden name=who value="{{ id }}"><button>{{ t("checkin") }}</button> <a href="/app/students/{{ id }}/card">{{ t("print_card") }}</a></form>
{%- endif -%}
</div></div>
{%- if let Some(c) = enroll_csrf -%}
<div class=row id=student-actions><a href="/app/students/{{ id }}/edit">{{ t("edit_student") }}</a>
{%- if status == "active" -%}
<form method=post action="/app/students/{{ id }}/status" id=suspend-form><input type=hidden name=_csrf value="{{ c }}"><input type=hidden name=action value=suspend><input name=reason maxlength=500 placeholder="{{ t("status_reason") }}"><button class=alt>{{ t("suspend") }}</button></form>
{%- endif -%}
{%- if status == "suspended" -%}
<form method=post action="/app/students/{{ id }}/status" id=resume-form><input type=hidden name=_csrf value="{{ c }}"><input type=hidden name=action value=resume><button>{{ t("resume") }}</button></form>
{%- endif -%}
{%- if may_leave && status != "left" -%}
<form method=post action="/app/students/{{ id }}/status" id=leave-form onsubmit="return confirm('{{ t("confirm_leave") }}')"><input type=hidden name=_csrf value="{{ c }}"><input type=hidden name=action value=leave><input name=reason maxlength=500 placeholder="{{ t("status_reason") }}"><button class=no>{{ t("leave_school") }}</button></form>
{%- endif -%}
</div>
{%- endif -%}
{%- if let Some(d) = done -%}
<p class=ok id=done>{{ d }}</p>
{%- endif -%}
</div>
{%- if !attention.is_empty() -%}
<div class=card id=student-alerts><h2>{{ t("alerts") }}</h2><table>
{%- for a in attention -%}
<tr><td>{{ a.at }}</td><td class=err>{{ a.kind }}</td><td>{{ a.message }}</td><td>{{ a.state }}</td></tr>
{%- endfor -%}
</table></div>
{%- endif -%}
<div class=card id=guardians><h2>{{ t("guardians") }}</h2><table><tr><th>{{ t("name") }}</th><th>{{ t("phone") }}</th><th>{{ t("email") }}</th><th>{{ t("wechat_id") }}</th><th>{{ t("language") }}</th><th>{{ t("notices") }}</th></tr>
{%- for g in guardians -%}
<tr><td>{{ g.name }}</td><td>{{ g.phone }}</td><td>{{ g.email }}</td><td>{{ g.wechat }}</td><td>{{ g.language }}</td><td>{{ g.notices }}</td></tr>
{%- endfor -%}
</table></div><div class=card id=consents><h2>{{ t("consents") }}</h2><table>
{%- for c in consents -%}
<tr><td>{{ c.at }}</td><td>{{ c.kind }}</td><td>{% if c.granted %}{{ t("consent_granted") }}{% else %}{{ t("consent_refused") }}{% endif %}</td><td>{{ c.by }}{% if let Some(u) = c.until %} · {{ t("consent_until") }} {{ u }}{% endif %}</td></tr>
{%- endfor -%}
</table></div><div class=card id=classes><h2>{{ t("classes") }}</h2><table>
{%- for k in classes -%}
<tr><td>{{ k.name }}</td><td>{{ k.campus }}</td><td>{{ k.teacher }}</td></tr>
{%- endfor -%}
</table></div>
<div class=card><h2>{{ t("packages") }} <a href="/app/students/{{ id }}/money" id=money-link>{{ t("money_title") }}</a></h2><table>
{%- for p in packages -%}
<tr><td>{{ p.id }}</td><td>{{ p.balance }}</td><td>{{ p.expires }}</td><td>{% if p.expired %}{{ t("pkg_expired") }}{% endif %}</td></tr>
{%- endfor -%}
</table></div><div class=card id=history><h2>{{ t("attendance_history") }} <a href="/app/students/{{ id }}/attendance" id=correct-link>{{ t("lm_correct_link") }}</a> <a href="/app/leave?student={{ id }}" id=leave-link>{{ t("lm_leave") }}</a></h2><form method=get action="/app/students/{{ id }}"><label>{{ t("range_from") }} <input type=date name=from value="{{ from }}"></label> <label>{{ t("range_to") }} <input type=date name=to value="{{ to }}"></label> <select name=status><option value="">{{ t("all_statuses") }}</option>
{%- for o in statuses -%}
<option value="{{ o.value }}"{% if o.selected %} selected{% endif %}>{{ o.label }}</option>
{%- endfor -%}
</select><button>{{ t("show_day") }}</button></form><table>
{%- for a in history -%}
<tr><td>{{ a.start }}</td><td>{{ a.class }}</td><td class="{{ a.status }}">{{ a.status_word }}</td><td>{{ a.source }}</td></tr>
{%- endfor -%}
</table></div><div class=card><h2>{{ t("ledger") }}</h2><table>
{%- for e in entries -%}
<tr><td>{{ e.at }}</td><td>{{ e.kind }}</td><td>{{ e.units }}</td><td>{{ e.lesson }}</td><td>{{ e.actor }}</td><td>{{ e.note }}</td></tr>
{%- endfor -%}
</table></div>"#
)]
struct StudentPage<'a> {
    lang: Lang,
    id: &'a str,
    name: &'a str,
    /// `active`, `suspended` or `left`.
    status: &'static str,
    status_word: &'static str,
    /// Local "YYYY-MM-DD".
    status_since: Option<String>,
    status_reason: Option<String>,
    available: String,
    campuses: String,
    /// The CSRF token of the check-in button, for the roles that may check a student in.
    checkin_csrf: Option<&'a str>,
    /// The CSRF token of the edit, suspend and resume forms, for the roles that may use them.
    enroll_csrf: Option<&'a str>,
    may_leave: bool,
    done: Option<&'static str>,
    attention: Vec<Attention>,
    guardians: Vec<Guardian>,
    consents: Vec<Consent>,
    classes: Vec<Class>,
    packages: Vec<Package>,
    /// The history's filter: local dates and status.
    from: String,
    to: String,
    statuses: Vec<Opt>,
    history: Vec<Attended>,
    entries: Vec<Entry>,
}

words_in_lang_field!(StudentPage<'_>);

/// A guardian's channels and notices (`GuardianPrefs`) in the reader's words.
fn notices_words(lang: Lang, prefs: &str) -> String {
    let Ok(p) = rollcall_ledger::GuardianPrefs::parse(prefs) else {
        return prefs.to_string();
    };
    let channels = if p.channels.is_empty() {
        t(lang, "default_channels").to_string()
    } else {
        p.channels
            .iter()
            .map(|c| t(lang, &format!("channel_{c}")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let events = match &p.events {
        None => t(lang, "all_notices").to_string(),
        Some(v) if v.is_empty() => t(lang, "no_notices").to_string(),
        Some(v) => v
            .iter()
            .map(|k| t(lang, &format!("notice_{}", k.as_str())))
            .collect::<Vec<_>>()
            .join(", "),
    };
    format!("{channels}: {events}")
}

/// The student page's query: the history's filter and what the last form did.
#[derive(Deserialize, Default)]
pub(super) struct StudentQ {
    from: Option<String>,
    to: Option<String>,
    status: Option<String>,
    done: Option<String>,
}

pub(super) async fn student_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path(id): Path<String>,
    Query(q): Query<StudentQ>,
) -> Result<Html<String>, ApiError> {
    let s = v1::student_in_reach(&st, &staff, &id).await?;
    let b = st.store.balance(&id, st.store.now()).await?;
    let state = st.store.student_state(&id).await?;
    let names: HashMap<String, String> = st.store.campuses().await?.into_iter().collect();
    // what needs attention about this student (e.g. a check-in approved without lessons
    // left), until it is resolved
    let open: Vec<_> = st
        .store
        .alerts(None)
        .await?
        .into_iter()
        .filter(|a| a.student_id == id && a.state != AlertState::Resolved)
        .collect();
    // in the reader's words, with the student's and the classes' names
    let alert_names = if open.is_empty() {
        crate::alert_text::AlertNames::default()
    } else {
        crate::alert_text::AlertNames {
            students: [(id.clone(), s.name.clone())].into_iter().collect(),
            classes: crate::alert_text::AlertNames::class_names(&st).await?,
            cameras: HashMap::new(),
        }
    };
    let attention = open
        .into_iter()
        .map(|a| Attention {
            at: local(&st, a.created_at)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            kind: t(lang, a.kind.as_str()),
            message: crate::alert_text::alert_text(
                lang == Lang::Zh,
                &a,
                &alert_names,
                st.store.tz_offset_minutes(),
            ),
            state: t(lang, a.state.as_str()),
        })
        .collect();
    let packages = b
        .packages
        .iter()
        .map(|p| Package {
            id: p.package.package_id.to_string(),
            balance: p.balance.to_string(),
            expires: local(&st, p.package.expires_at)
                .format("%Y-%m-%d")
                .to_string(),
            expired: p.expired,
        })
        .collect();
    let entries = st
        .store
        .entries(Some(&id))
        .await?
        .iter()
        .rev()
        .map(|e| Entry {
            at: local(&st, e.at).format("%Y-%m-%d %H:%M").to_string(),
            kind: t(lang, e.entry.kind.as_str()),
            units: format!("{:+.2}", e.entry.units as f64 / 100.0),
            lesson: e.entry.lesson_id.clone().unwrap_or_default(),
            actor: e.actor.clone(),
            note: e.note.clone().unwrap_or_default(),
        })
        .collect();
    let gs = st.store.guardian_details(&id).await?;
    let guardian_name = |gid: &str| {
        gs.iter()
            .find(|g| g.id == gid)
            .map_or_else(|| gid.to_string(), |g| g.name.clone())
    };
    let consents = st
        .store
        .consent_records(&id)
        .await?
        .into_iter()
        .map(|c| Consent {
            // the last day it holds (an expiry at midnight ends the day before)
            until: c.expires_at.map(|e| {
                local(&st, e - chrono::Duration::seconds(1))
                    .format("%Y-%m-%d")
                    .to_string()
            }),
            at: local(&st, c.at).format("%Y-%m-%d").to_string(),
            kind: match c.kind.as_str() {
                rollcall_domain::privacy::FACE_CONSENT => t(lang, "face_consent"),
                _ => t(lang, "other_consent"),
            },
            granted: c.granted,
            by: guardian_name(&c.given_by),
        })
        .collect();
    let guardians = gs
        .iter()
        .map(|g| Guardian {
            name: g.name.clone(),
            phone: g.phone.clone().unwrap_or_default(),
            email: g.email.clone().unwrap_or_default(),
            wechat: g.wechat_id.clone().unwrap_or_default(),
            language: t(lang, &format!("lang_{}", g.language)),
            notices: notices_words(lang, &g.notify_prefs),
        })
        .collect();
    let classes = st
        .store
        .enrolled_classes(&id)
        .await?
        .into_iter()
        .map(|k| Class {
            name: k.name,
            campus: names.get(&k.campus_id).cloned().unwrap_or(k.campus_id),
            teacher: k.teacher,
        })
        .collect();
    let range = v1::RangeQuery {
        from: q.from.clone(),
        to: q.to.clone(),
        status: q.status.clone(),
    };
    let (from, to, rows) = v1::student_history(&st, &id, &range).await?;
    let history = rows
        .into_iter()
        .map(|a| Attended {
            start: local(&st, a.start).format("%Y-%m-%d %H:%M").to_string(),
            class: a.class_name,
            status_word: t(lang, &a.status),
            status: a.status,
            source: match a.source.as_deref() {
                Some("face") => t(lang, "source_face"),
                Some("review") => t(lang, "source_review"),
                Some("manual") => t(lang, "source_manual"),
                Some("qr") => t(lang, "source_qr"),
                _ => "",
            },
        })
        .collect();
    let may_enroll = staff.require(roles::ENROLL).is_ok();
    let body = StudentPage {
        lang,
        id: &id,
        name: &s.name,
        status: state.status.as_str(),
        status_word: status_word(lang, state.status.as_str()),
        status_since: state
            .since
            .map(|t| local(&st, t).format("%Y-%m-%d").to_string()),
        status_reason: state.reason.clone(),
        available: b.available.to_string(),
        campuses: campus_names(&names, &s.campuses),
        checkin_csrf: staff
            .require(roles::DESK)
            .ok()
            .and(staff.csrf.as_deref())
            .filter(|_| state.status != StudentStatus::Left),
        enroll_csrf: staff.csrf.as_deref().filter(|_| may_enroll),
        may_leave: staff.require(roles::MANAGE).is_ok(),
        done: match q.done.as_deref() {
            Some("registered") => Some(t(lang, "done_registered")),
            Some("edited") => Some(t(lang, "done_edited")),
            Some("guardian_added") => Some(t(lang, "done_guardian_added")),
            Some("guardian_removed") => Some(t(lang, "done_guardian_removed")),
            Some("suspend") => Some(t(lang, "done_suspended")),
            Some("resume") => Some(t(lang, "done_resumed")),
            Some("leave") => Some(t(lang, "done_left")),
            _ => None,
        },
        attention,
        guardians,
        consents,
        classes,
        packages,
        from: local(&st, from).format("%Y-%m-%d").to_string(),
        to: local(&st, to - chrono::Duration::days(1))
            .format("%Y-%m-%d")
            .to_string(),
        statuses: ["present", "late", "absent", "excused", "left_early"]
            .into_iter()
            .map(|c| Opt::new(c, t(lang, c), q.status.as_deref() == Some(c)))
            .collect(),
        history,
        entries,
    };
    page(lang, &staff, &s.name, body)
}

// -------------------------------------------------------------------------------------------
// forms: register, edit, guardians, status
// -------------------------------------------------------------------------------------------

/// The fields of a submitted form, by name (a field left out reads as empty).
type Fields = HashMap<String, String>;

/// The field an error message is about: the ledger's `invalid <field>: …` or the API's
/// `<field>: …` (the part before the colon).
fn error_field(message: &str) -> String {
    let m = message.strip_prefix("invalid ").unwrap_or(message);
    let f = m.split(':').next().unwrap_or("").trim();
    f.rsplit('.').next().unwrap_or(f).to_string()
}

/// An error of a form, said in the reader's words: which field to fix (and the server's detail
/// for readers of English); `None` for an error that is not about the input (it becomes the
/// error page).
fn form_error(lang: Lang, e: &ApiError) -> Option<String> {
    if e.status != axum::http::StatusCode::UNPROCESSABLE_ENTITY
        && e.status != axum::http::StatusCode::CONFLICT
    {
        return None;
    }
    if e.status == axum::http::StatusCode::CONFLICT {
        return Some(match e.code {
            "already_exists" => t(lang, "err_id_taken").to_string(),
            _ => t(lang, "err_conflict").to_string(),
        });
    }
    let key = match error_field(&e.message).as_str() {
        "name" | "body" => "name",
        "guardian name" => "guardian_name",
        "home_campus_id" | "campus" => "home_campus",
        "phone" => "phone",
        "email" => "email",
        "wechat_id" => "wechat_id",
        "language" => "language",
        "channels" | "notify_prefs" => "channels",
        "notices" => "notices",
        "document_ref" => "document_ref",
        "expires_at" | "consent_expires" => "consent_expires",
        "given_by" => "given_by",
        "guardians" | "guardian" => "guardians",
        "student" | "id" => "student",
        "reason" => "status_reason",
        _ => "",
    };
    let what = if key.is_empty() {
        t(lang, "err_invalid").to_string()
    } else {
        format!("{} {}", t(lang, "fix_field"), t(lang, key))
    };
    Some(match lang {
        Lang::En => format!("{what} ({})", e.message),
        Lang::Zh => what,
    })
}

/// A guardian's part of a form (`g1_…`, `g2_…`): empty when nothing of it was filled in.
fn guardian_in(f: &Fields, g: &str) -> Option<v1::GuardianIn> {
    let v = |k: &str| f.get(&format!("{g}_{k}")).cloned().unwrap_or_default();
    let on = |k: &str| f.get(&format!("{g}_{k}")).is_some();
    let any = ["name", "phone", "email", "wechat"]
        .iter()
        .any(|k| !v(k).trim().is_empty());
    if !any {
        return None;
    }
    Some(v1::GuardianIn {
        id: None,
        name: v("name"),
        phone: Some(v("phone")),
        email: Some(v("email")),
        wechat_id: Some(v("wechat")),
        language: Some(v("language")),
        channels: CHANNELS
            .iter()
            .filter(|c| on(&format!("ch_{c}")))
            .map(|c| c.to_string())
            .collect(),
        notices: Some(
            NOTICES
                .iter()
                .filter(|n| on(&format!("n_{n}")))
                .map(|n| n.to_string())
                .collect(),
        ),
    })
}

const CHANNELS: &[&str] = &["sms", "wechat", "email"];
const NOTICES: &[&str] = &[
    "arrival",
    "absence",
    "absence_streak",
    "low_balance",
    "expiring_package",
    "zero_balance",
];

/// A guardian's part of a form, as shown: prefix, title, field values, checked boxes.
struct GuardianFields {
    /// `g1`, `g2`.
    g: String,
    title: String,
    name: String,
    phone: String,
    email: String,
    wechat: String,
    zh: bool,
    channels: Vec<Opt>,
    notices: Vec<Opt>,
    /// The form posts to (edit pages: one form per guardian).
    action: Option<String>,
    /// Edit page: a guardian that may be removed (the student has another).
    removable: bool,
    /// Edit page: the form adding a guardian.
    adding: bool,
}

fn guardian_fields(
    lang: Lang,
    g: &str,
    title: String,
    f: &Fields,
    fresh: bool,
    action: Option<String>,
) -> GuardianFields {
    let v = |k: &str| f.get(&format!("{g}_{k}")).cloned().unwrap_or_default();
    // a fresh form offers every notice and SMS; a submitted one keeps what was ticked
    let on = |k: &str, default: bool| {
        if fresh {
            default
        } else {
            f.contains_key(&format!("{g}_{k}"))
        }
    };
    GuardianFields {
        g: g.into(),
        title,
        name: v("name"),
        phone: v("phone"),
        email: v("email"),
        wechat: v("wechat"),
        zh: v("language") != "en",
        channels: CHANNELS
            .iter()
            .map(|c| {
                Opt::new(
                    *c,
                    t(lang, &format!("channel_{c}")),
                    on(&format!("ch_{c}"), *c == "sms"),
                )
            })
            .collect(),
        notices: NOTICES
            .iter()
            .map(|n| {
                Opt::new(
                    *n,
                    t(lang, &format!("notice_{n}")),
                    on(&format!("n_{n}"), true),
                )
            })
            .collect(),
        action,
        removable: false,
        adding: false,
    }
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"
{%- if let Some(e) = error -%}
<p class='card err' id=form-error>{{ e }}</p>
{%- endif -%}
<form method=post action=/app/students/new id=register><input type=hidden name=_csrf value="{{ csrf }}"><div class=card><label>{{ t("name") }} <input name=name value="{{ name }}" required maxlength=200 autofocus></label> <label>{{ t("student") }} <input name=id value="{{ id }}" maxlength=64 placeholder="{{ t("id_auto") }}"></label> <label>{{ t("home_campus") }} <select name=home_campus_id required>
{%- for o in campuses -%}
<option value="{{ o.value }}"{% if o.selected %} selected{% endif %}>{{ o.label }}</option>
{%- endfor -%}
</select></label></div>
{%- for g in guardians -%}
<fieldset class=card id="{{ g.g }}"><legend>{{ g.title }}</legend><label>{{ t("name") }} <input name="{{ g.g }}_name" value="{{ g.name }}" maxlength=200></label> <label>{{ t("phone") }} <input name="{{ g.g }}_phone" value="{{ g.phone }}" maxlength=30 inputmode=tel></label> <label>{{ t("email") }} <input name="{{ g.g }}_email" value="{{ g.email }}" maxlength=254 type=email></label> <label>{{ t("wechat_id") }} <input name="{{ g.g }}_wechat" value="{{ g.wechat }}" maxlength=64></label> <label>{{ t("language") }} <select name="{{ g.g }}_language"><option value=zh{% if g.zh %} selected{% endif %}>中文</option><option value=en{% if !g.zh %} selected{% endif %}>English</option></select></label><p>{{ t("channels") }}:
{%- for o in g.channels -%}
 <label><input type=checkbox name="{{ g.g }}_ch_{{ o.value }}"{% if o.selected %} checked{% endif %}>{{ o.label }}</label>
{%- endfor -%}
</p><p>{{ t("notices") }}:
{%- for o in g.notices -%}
 <label><input type=checkbox name="{{ g.g }}_n_{{ o.value }}"{% if o.selected %} checked{% endif %}>{{ o.label }}</label>
{%- endfor -%}
</p></fieldset>
{%- endfor -%}
<fieldset class=card id=consent><legend>{{ t("face_consent") }}</legend><label><input type=radio name=consent value=granted{% if consent == "granted" %} checked{% endif %}>{{ t("consent_granted") }}</label> <label><input type=radio name=consent value=refused{% if consent == "refused" %} checked{% endif %}>{{ t("consent_refused") }}</label> <label><input type=radio name=consent value=none{% if consent == "none" %} checked{% endif %}>{{ t("consent_later") }}</label> <label>{{ t("given_by") }} <select name=consent_by><option value=0{% if consent_by != "1" %} selected{% endif %}>{{ t("guardian_1") }}</option><option value=1{% if consent_by == "1" %} selected{% endif %}>{{ t("guardian_2") }}</option></select></label> <label>{{ t("document_ref") }} <input name=document_ref value="{{ document_ref }}" maxlength=200></label> <label>{{ t("consent_expires") }} <input type=date name=consent_expires value="{{ consent_expires }}"></label></fieldset><button>{{ t("register_student") }}</button></form>"#
)]
struct RegisterPage<'a> {
    lang: Lang,
    csrf: &'a str,
    error: Option<String>,
    id: String,
    name: String,
    campuses: Vec<Opt>,
    guardians: Vec<GuardianFields>,
    /// `granted`, `refused` or `none`.
    consent: String,
    consent_by: String,
    document_ref: String,
    /// The signed form's expiry, a local date (empty: until withdrawn).
    consent_expires: String,
}

words_in_lang_field!(RegisterPage<'_>);

async fn register_body<'a>(
    st: &AppState,
    staff: &'a Staff,
    lang: Lang,
    f: &Fields,
    error: Option<String>,
) -> Result<RegisterPage<'a>, ApiError> {
    let fresh = f.is_empty();
    let v = |k: &str| f.get(k).cloned().unwrap_or_default();
    Ok(RegisterPage {
        lang,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        error,
        id: v("id"),
        name: v("name"),
        campuses: campus_options(
            st.store.campuses().await?,
            staff,
            Some(&v("home_campus_id")),
        ),
        guardians: ["g1", "g2"]
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let title = t(lang, if i == 0 { "guardian_1" } else { "guardian_2" }).to_string();
                guardian_fields(lang, g, title, f, fresh, None)
            })
            .collect(),
        consent: if fresh {
            "granted".into()
        } else {
            v("consent")
        },
        consent_by: v("consent_by"),
        document_ref: v("document_ref"),
        consent_expires: v("consent_expires"),
    })
}

pub(super) async fn register_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
) -> Result<Html<String>, ApiError> {
    let body = register_body(&st, &staff, lang, &Fields::new(), None).await?;
    page(lang, &staff, t(lang, "register_student"), body)
}

/// The registration form as the API's registration (one or two guardians; the consent, which
/// ends at the end of `consent_expires`, a local date of a school `tz_offset_minutes` east of
/// UTC).
fn registration(f: &Fields, tz_offset_minutes: i64) -> Result<v1::Registration, ApiError> {
    let v = |k: &str| f.get(k).cloned().unwrap_or_default();
    let guardians: Vec<_> = ["g1", "g2"]
        .iter()
        .filter_map(|g| guardian_in(f, g))
        .collect();
    let consent = match v("consent").as_str() {
        "granted" | "refused" => Some(v1::ConsentIn {
            kind: None,
            granted: v("consent") == "granted",
            given_by: Some(if v("consent_by") == "1" && guardians.len() == 2 {
                1
            } else {
                0
            }),
            document_ref: Some(v("document_ref")),
            expires_at: match v("consent_expires").trim() {
                "" => None,
                d => {
                    let day = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
                        ApiError::invalid(format!(
                            "consent_expires: {d:?} is not a date (YYYY-MM-DD)"
                        ))
                    })?;
                    // valid through that day at the school
                    let next = day
                        .succ_opt()
                        .unwrap_or(day)
                        .and_time(chrono::NaiveTime::MIN);
                    Some(next.and_utc() - chrono::Duration::minutes(tz_offset_minutes))
                }
            },
        }),
        "none" | "" => None,
        other => {
            return Err(ApiError::invalid(format!(
                "consent: {other:?}: granted, refused or none"
            )))
        }
    };
    Ok(v1::Registration {
        id: Some(v("id")),
        name: v("name"),
        home_campus_id: v("home_campus_id"),
        guardians,
        consent,
    })
}

pub(super) async fn register_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Form(f): Form<Fields>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, f.get("_csrf").map_or("", String::as_str))?;
    let r = match registration(&f, st.store.tz_offset_minutes()) {
        Ok(r) => v1::register(&st, &staff, &r).await,
        Err(e) => Err(e),
    };
    match r {
        Ok(id) => Ok(
            Redirect::to(&format!("/app/students/{}?done=registered", url(&id))).into_response(),
        ),
        Err(e) => match form_error(lang, &e) {
            // the form again, as it was filled in, with what to fix
            Some(msg) => {
                let body = register_body(&st, &staff, lang, &f, Some(msg)).await?;
                let html = page(lang, &staff, t(lang, "register_student"), body)?;
                Ok((e.status, html).into_response())
            }
            None => Err(e),
        },
    }
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"
{%- if let Some(e) = error -%}
<p class='card err' id=form-error>{{ e }}</p>
{%- endif -%}
<form method=post action="/app/students/{{ id }}/edit" id=edit-student><input type=hidden name=_csrf value="{{ csrf }}"><div class=card><label>{{ t("name") }} <input name=name value="{{ name }}" required maxlength=200></label> <label>{{ t("home_campus") }} <select name=home_campus_id>
{%- for o in campuses -%}
<option value="{{ o.value }}"{% if o.selected %} selected{% endif %}>{{ o.label }}</option>
{%- endfor -%}
</select></label> <button>{{ t("save_changes") }}</button> <a href="/app/students/{{ id }}">{{ t("back") }}</a></div></form>
{%- for g in guardians -%}
<form method=post action="{{ g.action.as_deref().unwrap_or_default() }}"><input type=hidden name=_csrf value="{{ csrf }}"><fieldset class=card id="{{ g.g }}"><legend>{{ g.title }}</legend><label>{{ t("name") }} <input name="{{ g.g }}_name" value="{{ g.name }}" maxlength=200 required></label> <label>{{ t("phone") }} <input name="{{ g.g }}_phone" value="{{ g.phone }}" maxlength=30 inputmode=tel></label> <label>{{ t("email") }} <input name="{{ g.g }}_email" value="{{ g.email }}" maxlength=254 type=email></label> <label>{{ t("wechat_id") }} <input name="{{ g.g }}_wechat" value="{{ g.wechat }}" maxlength=64></label> <label>{{ t("language") }} <select name="{{ g.g }}_language"><option value=zh{% if g.zh %} selected{% endif %}>中文</option><option value=en{% if !g.zh %} selected{% endif %}>English</option></select></label><p>{{ t("channels") }}:
{%- for o in g.channels -%}
 <label><input type=checkbox name="{{ g.g }}_ch_{{ o.value }}"{% if o.selected %} checked{% endif %}>{{ o.label }}</label>
{%- endfor -%}
</p><p>{{ t("notices") }}:
{%- for o in g.notices -%}
 <label><input type=checkbox name="{{ g.g }}_n_{{ o.value }}"{% if o.selected %} checked{% endif %}>{{ o.label }}</label>
{%- endfor -%}
</p><button>{% if g.adding %}{{ t("add_guardian") }}{% else %}{{ t("save_changes") }}{% endif %}</button></fieldset></form>
{%- if g.removable -%}
<form method=post action="{{ g.action.as_deref().unwrap_or_default() }}/remove" class=remove-guardian onsubmit="return confirm('{{ t("confirm_remove_guardian") }}')"><input type=hidden name=_csrf value="{{ csrf }}"><button class=no>{{ t("remove_guardian") }} {{ g.name }}</button></form>
{%- endif -%}
{%- endfor -%}"#
)]
struct EditPage<'a> {
    lang: Lang,
    csrf: &'a str,
    id: &'a str,
    error: Option<String>,
    name: String,
    campuses: Vec<Opt>,
    guardians: Vec<GuardianFields>,
}

words_in_lang_field!(EditPage<'_>);

/// The edit page: the student's name and campus, and one form per guardian (`g` fields of the
/// guardian whose form was sent are `sent`, as submitted, with `error`).
async fn edit_body<'a>(
    st: &AppState,
    staff: &'a Staff,
    lang: Lang,
    id: &'a str,
    sent: Option<(&str, &Fields)>,
    error: Option<String>,
) -> Result<EditPage<'a>, ApiError> {
    let s = st.store.student(id).await?;
    let gs = st.store.guardian_details(id).await?;
    let student_sent = sent.filter(|(which, _)| *which == "student").map(|x| x.1);
    let removable = gs.len() > 1;
    let mut guardians: Vec<GuardianFields> = gs
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let action = Some(format!(
                "/app/students/{}/guardians/{}",
                url(id),
                url(&g.id)
            ));
            let title = format!("{} {}", t(lang, "guardian"), i + 1);
            match sent {
                Some((which, f)) if which == g.id => GuardianFields {
                    removable,
                    ..guardian_fields(lang, "g", title, f, false, action)
                },
                _ => {
                    let mut f = Fields::new();
                    f.insert("g_name".into(), g.name.clone());
                    f.insert("g_phone".into(), g.phone.clone().unwrap_or_default());
                    f.insert("g_email".into(), g.email.clone().unwrap_or_default());
                    f.insert("g_wechat".into(), g.wechat_id.clone().unwrap_or_default());
                    f.insert("g_language".into(), g.language.clone());
                    let p =
                        rollcall_ledger::GuardianPrefs::parse(&g.notify_prefs).unwrap_or_default();
                    for c in &p.channels {
                        f.insert(format!("g_ch_{c}"), "on".into());
                    }
                    for n in NOTICES {
                        let on = p
                            .events
                            .as_ref()
                            .is_none_or(|v| v.iter().any(|k| k.as_str() == *n));
                        if on {
                            f.insert(format!("g_n_{n}"), "on".into());
                        }
                    }
                    GuardianFields {
                        removable,
                        ..guardian_fields(lang, "g", title, &f, false, action)
                    }
                }
            }
        })
        .collect();
    // room for another guardian: the form adding one (as sent, when it was refused)
    if gs.len() < rollcall_ledger::MAX_GUARDIANS {
        let action = Some(format!("/app/students/{}/guardians", url(id)));
        let title = t(lang, "add_guardian").to_string();
        let empty = Fields::new();
        let (f, fresh) = match sent {
            Some(("new", f)) => (f, false),
            _ => (&empty, true),
        };
        guardians.push(GuardianFields {
            adding: true,
            ..guardian_fields(lang, "g", title, f, fresh, action)
        });
    }
    let v = |k: &str, or: String| student_sent.and_then(|f| f.get(k).cloned()).unwrap_or(or);
    Ok(EditPage {
        lang,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        id,
        error,
        name: v("name", s.name.clone()),
        campuses: campus_options(
            st.store.campuses().await?,
            staff,
            Some(&v(
                "home_campus_id",
                s.home_campus_id.clone().unwrap_or_default(),
            )),
        ),
        guardians,
    })
}

pub(super) async fn edit_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let s = v1::student_in_reach(&st, &staff, &id).await?;
    let body = edit_body(&st, &staff, lang, &id, None, None).await?;
    page(lang, &staff, &s.name, body)
}

/// A form's error as the edit page again with what to fix, or the error page.
async fn edit_again(
    st: &AppState,
    staff: &Staff,
    lang: Lang,
    id: &str,
    sent: (&str, &Fields),
    e: ApiError,
) -> Result<Response, ApiError> {
    match form_error(lang, &e) {
        Some(msg) => {
            let s = st.store.student(id).await?;
            let body = edit_body(st, staff, lang, id, Some(sent), Some(msg)).await?;
            let html = page(lang, staff, &s.name, body)?;
            Ok((e.status, html).into_response())
        }
        None => Err(e),
    }
}

pub(super) async fn edit_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, f.get("_csrf").map_or("", String::as_str))?;
    let e = v1::StudentEdit {
        name: f.get("name").cloned(),
        home_campus_id: f.get("home_campus_id").cloned(),
    };
    match v1::edit_student(&st, &staff, &id, &e).await {
        Ok(()) => {
            Ok(Redirect::to(&format!("/app/students/{}?done=edited", url(&id))).into_response())
        }
        Err(e) => edit_again(&st, &staff, lang, &id, ("student", &f), e).await,
    }
}

pub(super) async fn guardian_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path((id, guardian)): Path<(String, String)>,
    Form(f): Form<Fields>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, f.get("_csrf").map_or("", String::as_str))?;
    // the scope first: a guardian of a student out of reach is not looked at
    v1::student_in_reach(&st, &staff, &id).await?;
    let g = guardian_in(&f, "g").unwrap_or_default();
    match v1::edit_guardian(&st, &staff, &id, &guardian, &g).await {
        Ok(_) => {
            Ok(Redirect::to(&format!("/app/students/{}?done=edited", url(&id))).into_response())
        }
        Err(e) => edit_again(&st, &staff, lang, &id, (&guardian, &f), e).await,
    }
}

/// Adds a guardian (a student has at most two, as at registration); the edit page again with
/// what to fix when refused.
pub(super) async fn guardian_add_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, f.get("_csrf").map_or("", String::as_str))?;
    v1::student_in_reach(&st, &staff, &id).await?;
    let g = guardian_in(&f, "g").unwrap_or_default();
    match v1::add_guardian_for(&st, &staff, &id, &g).await {
        Ok(_) => Ok(
            Redirect::to(&format!("/app/students/{}?done=guardian_added", url(&id)))
                .into_response(),
        ),
        Err(e) => edit_again(&st, &staff, lang, &id, ("new", &f), e).await,
    }
}

/// Removes a guardian (the student keeps at least one).
pub(super) async fn guardian_remove_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path((id, guardian)): Path<(String, String)>,
    Form(f): Form<Fields>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, f.get("_csrf").map_or("", String::as_str))?;
    v1::student_in_reach(&st, &staff, &id).await?;
    match v1::remove_guardian_for(&st, &staff, &id, &guardian).await {
        Ok(_) => Ok(
            Redirect::to(&format!("/app/students/{}?done=guardian_removed", url(&id)))
                .into_response(),
        ),
        Err(e) => edit_again(&st, &staff, lang, &id, ("none", &Fields::new()), e).await,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct StatusForm {
    _csrf: String,
    action: String,
    reason: Option<String>,
}

/// Suspend, resume or leave (the roles of the API's routes: enrolling staff suspend and
/// resume, managers and admins record a leaving).
pub(super) async fn status_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Form(f): Form<StatusForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    v1::student_in_reach(&st, &staff, &id).await?;
    let reason = f.reason.as_deref();
    let r = match f.action.as_str() {
        "suspend" => {
            staff.require(roles::ENROLL)?;
            as_actor(staff.actor(), st.store.suspend_student(&id, reason))
                .await
                .map(|_| ())
        }
        "resume" => {
            staff.require(roles::ENROLL)?;
            as_actor(staff.actor(), st.store.resume_student(&id))
                .await
                .map(|_| ())
        }
        "leave" => {
            staff.require(roles::MANAGE)?;
            as_actor(staff.actor(), st.store.leave_school(&id, reason))
                .await
                .map(|_| ())
        }
        other => {
            return Err(ApiError::invalid(format!(
                "action: {other:?}: suspend, resume or leave"
            )))
        }
    };
    r?;
    Ok(Redirect::to(&format!("/app/students/{}?done={}", url(&id), f.action)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_its_field() {
        assert_eq!(
            error_field("invalid phone: \"x\" is not a phone number"),
            "phone"
        );
        assert_eq!(error_field("consent.given_by: the index"), "given_by");
        assert_eq!(error_field("home_campus_id: choose"), "home_campus_id");
        let e = ApiError::invalid("invalid email: \"a\" is not an e-mail address");
        let zh = form_error(Lang::Zh, &e).unwrap();
        assert!(zh.contains(t(Lang::Zh, "email")), "{zh}");
        let en = form_error(Lang::En, &e).unwrap();
        assert!(
            en.contains("E-mail") && en.contains("not an e-mail address"),
            "{en}"
        );
        assert!(form_error(Lang::En, &ApiError::not_found("x")).is_none());
    }

    #[test]
    fn a_registration_form_reads_its_guardians_and_consent() {
        let mut f = Fields::new();
        for (k, v) in [
            ("name", "小明"),
            ("home_campus_id", "north"),
            ("g1_name", "Mum"),
            ("g1_phone", "138 0000 0000"),
            ("g1_language", "zh"),
            ("g1_ch_wechat", "on"),
            ("g1_n_arrival", "on"),
            ("g2_name", ""),
            ("consent", "granted"),
            ("consent_by", "1"),
            ("document_ref", "F-1"),
        ] {
            f.insert(k.into(), v.into());
        }
        let r = registration(&f, 0).unwrap();
        assert_eq!(r.guardians.len(), 1, "an empty second guardian is none");
        assert_eq!(r.guardians[0].channels, vec!["wechat".to_string()]);
        assert_eq!(r.guardians[0].notices, Some(vec!["arrival".to_string()]));
        let c = r.consent.unwrap();
        assert!(c.granted);
        assert_eq!(c.given_by, Some(0), "the second guardian was not given");
        assert_eq!(c.expires_at, None);
        // the form's expiry: the end of that day at the school (UTC+8 here)
        f.insert("consent_expires".into(), "2027-08-31".into());
        let c = registration(&f, 8 * 60).unwrap().consent.unwrap();
        assert_eq!(
            c.expires_at.map(|e| e.to_rfc3339()),
            Some("2027-08-31T16:00:00+00:00".into())
        );
        f.insert("consent_expires".into(), "31/08/2027".into());
        assert!(registration(&f, 0).is_err());
        f.insert("consent_expires".into(), String::new());
        f.insert("consent".into(), "maybe".into());
        assert!(registration(&f, 0).is_err());
    }

    #[test]
    fn every_word_of_these_pages_is_in_both_languages() {
        let keys = [
            "search_students",
            "any_campus",
            "all_statuses",
            "search",
            "register_student",
            "name",
            "home_campus",
            "classes",
            "guardians",
            "more_students",
            "status_suspended",
            "status_left",
            "status_active",
            "edit_student",
            "status_reason",
            "suspend",
            "resume",
            "confirm_leave",
            "leave_school",
            "phone",
            "email",
            "wechat_id",
            "language",
            "notices",
            "consents",
            "consent_granted",
            "consent_refused",
            "consent_later",
            "attendance_history",
            "default_channels",
            "all_notices",
            "no_notices",
            "channel_sms",
            "channel_wechat",
            "channel_email",
            "notice_arrival",
            "notice_absence",
            "notice_absence_streak",
            "notice_low_balance",
            "notice_expiring_package",
            "notice_zero_balance",
            "face_consent",
            "other_consent",
            "lang_zh",
            "lang_en",
            "source_face",
            "source_review",
            "source_manual",
            "source_qr",
            "done_registered",
            "done_edited",
            "done_suspended",
            "done_resumed",
            "done_left",
            "err_id_taken",
            "fix_field",
            "guardian_name",
            "channels",
            "document_ref",
            "given_by",
            "student",
            "id_auto",
            "guardian_1",
            "guardian_2",
            "guardian",
            "save_changes",
            "back",
            "add_guardian",
            "remove_guardian",
            "confirm_remove_guardian",
            "done_guardian_added",
            "done_guardian_removed",
            "consent_expires",
            "consent_until",
        ];
        for k in keys {
            for l in [Lang::En, Lang::Zh] {
                assert_ne!(t(l, k), "?", "{k} in {l:?}");
            }
            assert_ne!(t(Lang::En, k), t(Lang::Zh, k), "{k}: the same in both");
        }
    }
}
