//! The point payload both backends store, as JSON, and its parsing back into [`TemplateMeta`].
//!
//! Two layouts ([`Format`]): `Named` (field names spelled out, the template id and an RFC 3339
//! creation time in the payload) for a Qdrant server and for embedded galleries created before
//! 2026-12-04, and `Compact` for new embedded galleries: two-letter field names, the template id
//! left to the point id, the creation time as integer microseconds. A compact payload is
//! ~100 bytes of JSON instead of ~230, one 128-byte block of qdrant-edge's payload storage
//! instead of two (12.8 MB per 100k templates instead of 25.6, paged in as hits are read).

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

/// A gallery's payload layout (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Named,
    Compact,
}

/// The payload's field names in one [`Format`].
pub(crate) struct Keys {
    pub tenant: &'static str,
    pub student: &'static str,
    pub campuses: &'static str,
    pub model_id: &'static str,
    pub model_version: &'static str,
    pub quality: &'static str,
    pub created_at: &'static str,
}

const NAMED: Keys = Keys {
    tenant: TENANT,
    student: STUDENT,
    campuses: CAMPUSES,
    model_id: MODEL_ID,
    model_version: MODEL_VERSION,
    quality: QUALITY,
    created_at: CREATED_AT,
};

const COMPACT: Keys = Keys {
    tenant: "tn",
    student: "st",
    campuses: "cp",
    model_id: "mi",
    model_version: "mv",
    quality: "q",
    created_at: "at",
};

impl Format {
    pub(crate) fn keys(self) -> &'static Keys {
        match self {
            Format::Named => &NAMED,
            Format::Compact => &COMPACT,
        }
    }

    /// The name written in a gallery's format file.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Named => "named",
            Format::Compact => "compact",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        match s.trim() {
            "named" => Some(Format::Named),
            "compact" => Some(Format::Compact),
            _ => None,
        }
    }
}

/// The `Named` payload of `m`.
pub(crate) fn to_json(m: &TemplateMeta) -> Map<String, Value> {
    to_json_as(Format::Named, m)
}

/// The payload of `m` in format `f`.
pub(crate) fn to_json_as(f: Format, m: &TemplateMeta) -> Map<String, Value> {
    let k = f.keys();
    let mut map = Map::new();
    map.insert(k.tenant.into(), json!(m.tenant.as_str()));
    map.insert(k.student.into(), json!(m.student.as_str()));
    map.insert(
        k.campuses.into(),
        json!(m.campuses.iter().map(|c| c.as_str()).collect::<Vec<_>>()),
    );
    map.insert(k.model_id.into(), json!(m.model_id));
    map.insert(k.model_version.into(), json!(m.model_version));
    match f {
        Format::Named => map.insert(k.quality.into(), json!(m.quality)),
        // the shortest decimal that reads back as the same f32 ("0.83", not the f64 widening
        // "0.8299999833106995")
        Format::Compact => map.insert(
            k.quality.into(),
            json!(m
                .quality
                .to_string()
                .parse::<f64>()
                .unwrap_or(f64::from(m.quality))),
        ),
    };
    match f {
        Format::Named => {
            map.insert(TEMPLATE_ID.into(), json!(m.template_id.to_string()));
            map.insert(
                CREATED_AT.into(),
                json!(m
                    .created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            );
        }
        Format::Compact => {
            map.insert(k.created_at.into(), json!(m.created_at.timestamp_micros()));
        }
    }
    map
}

fn bad(field: &str, why: impl std::fmt::Display) -> GalleryError {
    GalleryError::Backend(format!("stored payload field {field:?} is invalid: {why}"))
}

fn str_field<'a>(p: &'a Map<String, Value>, k: &str) -> Result<&'a str, GalleryError> {
    p.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(k, "missing or not a string"))
}

/// A `Named` payload back into its metadata.
pub(crate) fn from_json(p: &Map<String, Value>) -> Result<TemplateMeta, GalleryError> {
    from_json_as(Format::Named, p, None)
}

/// A payload in format `f` back into its metadata; `point` is the point's template id (a
/// `Compact` payload does not repeat it).
pub(crate) fn from_json_as(
    f: Format,
    p: &Map<String, Value>,
    point: Option<TemplateId>,
) -> Result<TemplateMeta, GalleryError> {
    let k = f.keys();
    let campuses = match p.get(k.campuses) {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .map(|c| {
                c.as_str()
                    .ok_or_else(|| bad(k.campuses, "not a string"))
                    .and_then(|s| CampusId::new(s).map_err(|e| bad(k.campuses, e)))
            })
            .collect::<Result<Vec<_>, _>>()?,
        // A single-element keyword array may come back from a server as a bare string.
        Some(Value::String(s)) => {
            vec![CampusId::new(s.as_str()).map_err(|e| bad(k.campuses, e))?]
        }
        Some(_) => return Err(bad(k.campuses, "not an array")),
    };
    let (template_id, created_at) = match f {
        Format::Named => (
            str_field(p, TEMPLATE_ID)?
                .parse::<TemplateId>()
                .map_err(|e| bad(TEMPLATE_ID, e))?,
            chrono::DateTime::parse_from_rfc3339(str_field(p, CREATED_AT)?)
                .map_err(|e| bad(CREATED_AT, e))?
                .with_timezone(&chrono::Utc),
        ),
        Format::Compact => (
            point.ok_or_else(|| bad("id", "a compact payload needs its point's id"))?,
            p.get(k.created_at)
                .and_then(Value::as_i64)
                .and_then(chrono::DateTime::from_timestamp_micros)
                .ok_or_else(|| bad(k.created_at, "not a time in microseconds"))?,
        ),
    };
    Ok(TemplateMeta {
        template_id,
        student: StudentId::new(str_field(p, k.student)?).map_err(|e| bad(k.student, e))?,
        tenant: TenantId::new(str_field(p, k.tenant)?).map_err(|e| bad(k.tenant, e))?,
        campuses,
        model_id: str_field(p, k.model_id)?.to_string(),
        model_version: str_field(p, k.model_version)?.to_string(),
        quality: p
            .get(k.quality)
            .and_then(Value::as_f64)
            .ok_or_else(|| bad(k.quality, "not a number"))? as f32,
        created_at,
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

        let compact = to_json_as(Format::Compact, &m);
        assert!(!compact.contains_key(TEMPLATE_ID) && compact.contains_key("st"));
        let id = Some(m.template_id);
        assert_eq!(from_json_as(Format::Compact, &compact, id).unwrap(), m);
        // the id comes from the point; without it the payload is incomplete
        assert!(from_json_as(Format::Compact, &compact, None).is_err());
        // each format reads only its own field names
        assert!(from_json_as(Format::Named, &compact, id).is_err());
        assert!(from_json_as(Format::Compact, &to_json(&m), id).is_err());
    }

    #[test]
    fn compact_payload_is_under_one_storage_block() {
        let m = TemplateMeta {
            template_id: TemplateId::from_u128(u128::MAX),
            student: StudentId::new("student-000123").unwrap(),
            tenant: TenantId::new("acme-tutoring").unwrap(),
            campuses: vec![CampusId::new("north").unwrap()],
            model_id: "mobilefacenet_128".into(),
            model_version: "1".into(),
            quality: 0.8312,
            created_at: chrono::Utc::now(),
        };
        let named = serde_json::to_vec(&to_json(&m)).unwrap().len();
        let compact = serde_json::to_vec(&to_json_as(Format::Compact, &m))
            .unwrap()
            .len();
        let text = serde_json::to_string(&to_json_as(Format::Compact, &m)).unwrap();
        assert!(compact <= 128, "compact payload of {compact} bytes: {text}");
        assert!(named >= compact + 80, "named {named}, compact {compact}");
    }
}
