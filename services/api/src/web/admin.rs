//! The school's pages: camera health, what biometric data is kept (privacy), attendance
//! reports, and enrollment with live photo feedback.

use super::layout::{page, page_keeping};
use super::{local, t, words_in_lang_field, Lang, Words};
use crate::auth::Staff;
use crate::error::ApiError;
use crate::v1;
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::Extension;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

/// A camera with its state.
struct Camera {
    id: String,
    campus: String,
    door: String,
    state: String,
    /// The chip's class: `present` when online, else `absent`.
    class: &'static str,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<meta http-equiv=refresh content=15><div class=card><table>
{%- for c in cameras -%}
<tr><td>{{ c.id }}</td><td>{{ c.campus }}</td><td>{{ c.door }}</td><td><span class='chip {{ c.class }}'>{{ c.state }}</span></td></tr>
{%- endfor -%}
</table></div>"#
)]
struct Cameras {
    cameras: Vec<Camera>,
}

pub(super) async fn cameras_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
) -> Result<Html<String>, ApiError> {
    let v = v1::cameras_json(&st, &staff).await?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let cameras = v["cameras"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let state = c["state"].as_str().unwrap_or("unknown");
            Camera {
                id: text(&c["id"]),
                campus: text(&c["campus_id"]),
                door: text(&c["door"]),
                state: state.to_string(),
                class: if state == "online" {
                    "present"
                } else {
                    "absent"
                },
            }
        })
        .collect();
    page(lang, &staff, t(lang, "cameras"), Cameras { cameras })
}

/// A retention period: what is kept, for how long.
struct Period {
    what: &'static str,
    n: u64,
    unit: &'static str,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<div class=card><table>
{%- if let Some(periods) = periods -%}
{%- for p in periods -%}
<tr><td>{{ p.what }}</td><td><b>{{ p.n }}</b> {{ p.unit }}</td></tr>
{%- endfor -%}
{%- else -%}
<tr><td>{{ no_job }}</td></tr>
{%- endif -%}
</table><p>{{ about }}</p></div>"#
)]
struct Privacy {
    /// The retention job's periods (`None`: no job runs in this process).
    periods: Option<Vec<Period>>,
    no_job: &'static str,
    about: &'static str,
}

pub(super) async fn privacy_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
) -> Result<Html<String>, ApiError> {
    let p = st.ops.retention_policy();
    let zh = lang == Lang::Zh;
    let words = |en: &'static str, zh_words: &'static str| if zh { zh_words } else { en };
    let rows = [
        (
            "review_crop_days",
            "Face crops of review items waiting for a decision, and of unknown visitors",
            "待审核与陌生访客的人脸截图",
            "days",
            "天",
        ),
        (
            "decided_review_days",
            "Face crops of decided review items",
            "已处理审核项的人脸截图",
            "days after the decision",
            "天（自处理之时起）",
        ),
        (
            "unknown_crop_days",
            "Unknown-visitor crops",
            "陌生访客截图",
            "days",
            "天",
        ),
        (
            "inactive_template_months",
            "Face templates of students with no attendance",
            "无考勤学员的人脸模板",
            "months",
            "个月",
        ),
    ];
    let periods = (!p.is_null()).then(|| {
        rows.iter()
            .map(|&(k, en, zh_label, unit_en, unit_zh)| Period {
                what: words(en, zh_label),
                n: p[k].as_u64().unwrap_or(0),
                unit: words(unit_en, unit_zh),
            })
            .collect()
    });
    let body = Privacy {
        periods,
        no_job: words(
            "No retention job runs in this process.",
            "此进程未运行保留任务。",
        ),
        about: words(
            "The retention job runs hourly and deletes biometric data past these periods; withdrawing consent erases a student's face data at once. See PRIVACY.md.",
            "保留任务每小时运行一次，超过期限的生物特征数据会被删除；撤回同意会立即删除该学员的全部人脸数据。详见 PRIVACY.md。",
        ),
    };
    page(lang, &staff, t(lang, "privacy"), body)
}

#[derive(Deserialize, Default)]
pub(super) struct RangeQ {
    from: Option<String>,
    to: Option<String>,
}

/// The school's local days `from..=to` (YYYY-MM-DD; by default the last 31 days up to today)
/// as UTC bounds, with the days themselves.
fn local_days(
    st: &AppState,
    q: &RangeQ,
) -> Result<(DateTime<Utc>, DateTime<Utc>, NaiveDate, NaiveDate), ApiError> {
    let parse = |field: &str, v: &Option<String>| -> Result<Option<NaiveDate>, ApiError> {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map_err(|_| ApiError::invalid(format!("{field} {s:?}: expected YYYY-MM-DD")))
            })
            .transpose()
    };
    let today = local(st, st.store.now()).date_naive();
    let to = parse("to", &q.to)?.unwrap_or(today);
    let from = parse("from", &q.from)?.unwrap_or(to - Duration::days(30));
    if from > to {
        return Err(ApiError::invalid("from: must not be after to"));
    }
    if (to - from).num_days() > 366 {
        return Err(ApiError::invalid("from..to: at most a year"));
    }
    let off = Duration::minutes(st.store.tz_offset_minutes());
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() - off;
    Ok((midnight(from), midnight(to) + Duration::days(1), from, to))
}

/// A class's attendance rate.
struct Rate {
    class: String,
    /// Whole percent (the bar's width).
    percent: u64,
    /// Percent with one decimal.
    shown: String,
}

/// A weekday's row of the heat map.
struct HeatRow {
    day: &'static str,
    cells: Vec<HeatCell>,
}

/// An hour of a weekday: how many check-ins, and how dark its cell is.
struct HeatCell {
    /// Empty for none.
    count: String,
    /// 0.00 to 1.00.
    alpha: String,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<form method=get action=/app/reports class=card id=range>{{ t("range_from") }} <input type=date name=from value={{ from }}> {{ t("range_to") }} <input type=date name=to value={{ to }}> <button class=alt>{{ t("show_day") }}</button></form><div class=card><h2>{{ t("rate") }}</h2><table>
{%- for r in rates -%}
<tr><td>{{ r.class }}</td><td style=width:60%><div class=bar style='width:{{ r.percent }}%'></div></td><td>{{ r.shown }}%</td></tr>
{%- endfor -%}
</table></div><div class=card><h2>{{ t("heat") }}</h2><table><tr><th></th>
{%- for h in hours.clone() -%}
<th>{{ h }}</th>
{%- endfor -%}
</tr>
{%- for row in heat -%}
<tr><th>{{ row.day }}</th>
{%- for c in row.cells -%}
<td style='background:rgba(34,170,102,{{ c.alpha }})'>{{ c.count }}</td>
{%- endfor -%}
</tr>
{%- endfor -%}
</table></div>"#
)]
struct Reports {
    lang: Lang,
    from: NaiveDate,
    to: NaiveDate,
    rates: Vec<Rate>,
    /// The heat map's hours.
    hours: std::ops::Range<u32>,
    heat: Vec<HeatRow>,
}

words_in_lang_field!(Reports);

pub(super) async fn reports_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Query(q): Query<RangeQ>,
) -> Result<Html<String>, ApiError> {
    let (from, to, from_day, to_day) = local_days(&st, &q)?;
    let rep = v1::attendance_report(&st, &staff, from, to).await?;
    let rates = rep["per_class"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let bp = r["rate_bp"].as_u64().unwrap_or(0);
            Rate {
                class: r["key"].as_str().unwrap_or("").to_string(),
                percent: bp / 100,
                shown: format!("{:.1}", bp as f64 / 100.0),
            }
        })
        .collect();
    let cells = v1::heatmap(&st, &staff, from, to).await?;
    let mut grid: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    for c in &cells {
        *grid.entry((c.weekday, c.hour)).or_default() += c.count;
    }
    let max = grid.values().copied().max().unwrap_or(1).max(1);
    let hours = 7..22;
    let days = if lang == Lang::Zh {
        ["一", "二", "三", "四", "五", "六", "日"]
    } else {
        ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    };
    let heat = (0u32..)
        .zip(days)
        .map(|(wd, day)| HeatRow {
            day,
            cells: hours
                .clone()
                .map(|h| {
                    let n = grid.get(&(wd, h)).copied().unwrap_or(0);
                    HeatCell {
                        count: if n > 0 { n.to_string() } else { String::new() },
                        alpha: format!("{:.2}", n as f64 / max as f64),
                    }
                })
                .collect(),
        })
        .collect();
    let body = Reports {
        lang,
        from: from_day,
        to: to_day,
        rates,
        hours,
        heat,
    };
    let keep = [("from", from_day.to_string()), ("to", to_day.to_string())];
    page_keeping(lang, &staff, t(lang, "reports"), body, &keep)
}

/// The enrollment form; its script posts the photo to the API with the page's CSRF token and
/// shows the answer (the face's quality, or why it was refused).
#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<div class=card><p><label>{{ t("student") }}<br><input id=sid></label></p><p><label>{{ t("photo") }}<br><input id=file type=file accept='image/jpeg,image/png,image/webp' capture=user></label></p><button id=go>{{ t("upload") }}</button><p id=hint class=err hidden>{{ t("convert_photo") }}</p><pre id=out></pre></div>{% raw %}<script>document.getElementById('go').onclick=async()=>{const f=document.getElementById('file').files[0];const s=document.getElementById('sid').value;const out=document.getElementById('out');if(!f||!s){out.textContent='?';return}out.textContent='…';const r=await fetch('/api/v1/students/'+encodeURIComponent(s)+'/photos?filename='+encodeURIComponent(f.name),{method:'POST',headers:{'Content-Type':f.type,'X-CSRF-Token':document.querySelector('meta[name=csrf]').content},body:f});const j=await r.json();document.getElementById('hint').hidden=!(j.error&&j.error.code==='unsupported_photo_format');out.textContent=JSON.stringify(j,null,2)}</script>{% endraw %}"#
)]
struct Enroll {
    lang: Lang,
}

words_in_lang_field!(Enroll);

pub(super) async fn enroll_page(
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
) -> Result<Html<String>, ApiError> {
    page(lang, &staff, t(lang, "enroll"), Enroll { lang })
}
