//! The point payload both backends store, as JSON, and its parsing back into [`TemplateMeta`].

use rollcall_domain::gallery::{GalleryError, TemplateId, TemplateMeta};
use rollcall_domain::{CampusId, StudentId, TenantId};
use serde_json::{json, Map, Value};

pub(crate) const TENANT: &str = "tenant";
pub(crate) const STUDENT: &str = "student";
pub(crate) const TEMPLATE_ID: &str = "template_id";
pub(crate) const CAMPUSES: &str = "campuses";
pub(crate) const MODEL_ID: &str = "model_id";
pub(crate) const MODEL_VERSION: &str = "model_version";
pub(crate) const QUALITY: &str = "quality";
pub(crate) const CREATED_AT: &str = "created_at";

pub(crate) fn to_json(m: &TemplateMeta) -> Map<String, Value> {
    let v = json!({
        TENANT: m.tenant.as_str(),
        STUDENT: m.student.as_str(),
        TEMPLATE_ID: m.template_id.to_string(),
        CAMPUSES: m.campuses.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        MODEL_ID: m.model_id,
        MODEL_VERSION: m.model_version,
        QUALITY: m.quality,
        CREATED_AT: m.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    });
    match v {
        Value::Object(map) => map,
        _ => unreachable!("json! of an object literal is an object"),
    }
}

fn bad(field: &str, why: impl std::fmt::Display) -> GalleryError {
    GalleryError::Backend(format!("stored payload field {field:?} is invalid: {why}"))
}

fn str_field<'a>(p: &'a Map<String, Value>, k: &str) -> Result<&'a str, GalleryError> {
    p.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(k, "missing or not a string"))
}

pub(crate) fn from_json(p: &Map<String, Value>) -> Result<TemplateMeta, GalleryError> {
    let campuses = match p.get(CAMPUSES) {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .map(|c| {
                c.as_str()
                    .ok_or_else(|| bad(CAMPUSES, "not a string"))
                    .and_then(|s| CampusId::new(s).map_err(|e| bad(CAMPUSES, e)))
            })
            .collect::<Result<Vec<_>, _>>()?,
        // A single-element keyword array may come back from a server as a bare string.
        Some(Value::String(s)) => vec![CampusId::new(s.as_str()).map_err(|e| bad(CAMPUSES, e))?],
        Some(_) => return Err(bad(CAMPUSES, "not an array")),
    };
    Ok(TemplateMeta {
        template_id: str_field(p, TEMPLATE_ID)?
            .parse::<TemplateId>()
            .map_err(|e| bad(TEMPLATE_ID, e))?,
        student: StudentId::new(str_field(p, STUDENT)?).map_err(|e| bad(STUDENT, e))?,
        tenant: TenantId::new(str_field(p, TENANT)?).map_err(|e| bad(TENANT, e))?,
        campuses,
        model_id: str_field(p, MODEL_ID)?.to_string(),
        model_version: str_field(p, MODEL_VERSION)?.to_string(),
        quality: p
            .get(QUALITY)
            .and_then(Value::as_f64)
            .ok_or_else(|| bad(QUALITY, "not a number"))? as f32,
        created_at: chrono::DateTime::parse_from_rfc3339(str_field(p, CREATED_AT)?)
            .map_err(|e| bad(CREATED_AT, e))?
            .with_timezone(&chrono::Utc),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips() {
        let m = TemplateMeta {
            template_id: TemplateId::from_u128(42),
            student: StudentId::new("s-1").unwrap(),
            tenant: TenantId::new("school").unwrap(),
            campuses: vec![
                CampusId::new("north").unwrap(),
                CampusId::new("south").unwrap(),
            ],
            model_id: "arcface".into(),
            model_version: "1.2".into(),
            quality: 0.75,
            created_at: chrono::DateTime::parse_from_rfc3339("2026-11-23T09:00:00.123456Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
        };
        assert_eq!(from_json(&to_json(&m)).unwrap(), m);
        let mut broken = to_json(&m);
        broken.insert(STUDENT.into(), Value::from(3));
        assert!(matches!(from_json(&broken), Err(GalleryError::Backend(_))));
    }
}
