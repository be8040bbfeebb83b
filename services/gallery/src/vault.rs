//! Canonical templates, encrypted (issue 9): every enrolled template is also kept in the SQL
//! database as AES-256-GCM ciphertext ([`SealedTemplate`] rows behind the domain's
//! [`PrivacyStore`] port), so that the Qdrant index can be rebuilt from them
//! ([`rebuild_index`]) and a database backup holds no plaintext biometrics.
//!
//! Keys come from configuration, never from the repository and never into a log: a
//! [`Keyring`] is parsed from `ROLLCALL_TEMPLATE_KEYS=id1:BASE64KEY,id2:BASE64KEY` (32-byte
//! keys, standard base64) with the sealing key named by `ROLLCALL_TEMPLATE_KEY_ID` (default:
//! the last key listed). Old keys stay listed until [`rotate`] has resealed every row with the
//! current one. The ciphertext is bound to its row (tenant, student, template id, model) as
//! associated data, so a row copied onto another student does not open.

use crate::{Gallery, GalleryError};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use rollcall_domain::gallery::{Template, TemplateId};
use rollcall_domain::privacy::{PrivacyStore, PrivacyStoreError, SealedTemplate};
use rollcall_domain::{StudentId, TenantId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Environment variable holding the keys (`id:base64,…`).
pub const KEYS_ENV: &str = "ROLLCALL_TEMPLATE_KEYS";
/// Environment variable naming the current (sealing) key id.
pub const KEY_ID_ENV: &str = "ROLLCALL_TEMPLATE_KEY_ID";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("template keys: {0}")]
    Config(String),
    #[error("no template key {0:?} in {KEYS_ENV} (needed to open sealed templates)")]
    UnknownKey(String),
    #[error("sealed template {0} does not open: wrong key or tampered row")]
    Tampered(TemplateId),
    #[error("sealed template {0} holds malformed data: {1}")]
    Malformed(TemplateId, String),
    #[error(transparent)]
    Store(#[from] PrivacyStoreError),
    #[error(transparent)]
    Gallery(#[from] GalleryError),
}

/// Named AES-256 keys and the id of the one that seals. `Debug` never shows key bytes.
#[derive(Clone)]
pub struct Keyring {
    keys: BTreeMap<String, [u8; 32]>,
    current: String,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("current", &self.current)
            .finish()
    }
}

impl Keyring {
    /// Parses `id1:BASE64,id2:BASE64`; `current` names the sealing key (default: the last).
    /// Errors never quote key material.
    pub fn parse(spec: &str, current: Option<&str>) -> Result<Keyring, VaultError> {
        let mut keys = BTreeMap::new();
        let mut last = None;
        for (i, part) in spec.split(',').map(str::trim).enumerate() {
            if part.is_empty() {
                continue;
            }
            let (id, b64) = part.split_once(':').ok_or_else(|| {
                VaultError::Config(format!("entry {} is not ID:BASE64KEY", i + 1))
            })?;
            let id = id.trim();
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(VaultError::Config(format!(
                    "entry {}: key id must be non-empty letters, digits, - or _",
                    i + 1
                )));
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| VaultError::Config(format!("key {id:?} is not valid base64")))?;
            let key: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
                VaultError::Config(format!(
                    "key {id:?} is {} bytes; AES-256 needs 32",
                    raw.len()
                ))
            })?;
            if keys.insert(id.to_string(), key).is_some() {
                return Err(VaultError::Config(format!("key id {id:?} listed twice")));
            }
            last = Some(id.to_string());
        }
        let current = match current.map(str::trim).filter(|c| !c.is_empty()) {
            Some(c) => c.to_string(),
            None => last.ok_or_else(|| VaultError::Config(format!("{KEYS_ENV} lists no key")))?,
        };
        if !keys.contains_key(&current) {
            return Err(VaultError::Config(format!(
                "current key id {current:?} is not among the listed keys"
            )));
        }
        Ok(Keyring { keys, current })
    }

    /// From `ROLLCALL_TEMPLATE_KEYS` / `ROLLCALL_TEMPLATE_KEY_ID`; `Ok(None)` when unset.
    pub fn from_env() -> Result<Option<Keyring>, VaultError> {
        match std::env::var(KEYS_ENV) {
            Ok(s) if !s.trim().is_empty() => {
                let cur = std::env::var(KEY_ID_ENV).ok();
                Keyring::parse(&s, cur.as_deref()).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// A fresh random key in the `id:BASE64` form (for `rollcall privacy new-key`).
    pub fn generate_entry(id: &str) -> String {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        format!(
            "{id}:{}",
            base64::engine::general_purpose::STANDARD.encode(k)
        )
    }

    pub fn current_id(&self) -> &str {
        &self.current
    }

    pub fn key_ids(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }

    fn cipher(&self, id: &str) -> Result<Aes256Gcm, VaultError> {
        let k = self
            .keys
            .get(id)
            .ok_or_else(|| VaultError::UnknownKey(id.to_string()))?;
        Ok(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(k)))
    }
}

/// What is encrypted: everything of the template that the row does not hold in clear.
#[derive(Serialize, Deserialize)]
struct Plain {
    campuses: Vec<rollcall_domain::CampusId>,
    quality: f32,
    vector: Vec<f32>,
}

fn aad(tenant: &TenantId, student: &StudentId, id: TemplateId, model: &str, ver: &str) -> Vec<u8> {
    format!("rollcall-template-v1\n{tenant}\n{student}\n{id}\n{model}\n{ver}").into_bytes()
}

/// Encrypts a template with the current key (random 96-bit nonce).
pub fn seal(keys: &Keyring, t: &Template) -> Result<SealedTemplate, VaultError> {
    let m = &t.meta;
    let plain = serde_json::to_vec(&Plain {
        campuses: m.campuses.clone(),
        quality: m.quality,
        vector: t.vector.clone(),
    })
    .map_err(|e| VaultError::Malformed(m.template_id, e.to_string()))?;
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let a = aad(
        &m.tenant,
        &m.student,
        m.template_id,
        &m.model_id,
        &m.model_version,
    );
    let ciphertext = keys
        .cipher(&keys.current)?
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &a,
            },
        )
        .map_err(|_| VaultError::Malformed(m.template_id, "encryption failed".into()))?;
    Ok(SealedTemplate {
        tenant: m.tenant.clone(),
        student: m.student.clone(),
        template_id: m.template_id,
        model_id: m.model_id.clone(),
        model_version: m.model_version.clone(),
        key_id: keys.current.clone(),
        nonce: nonce.to_vec(),
        ciphertext,
        created_at: m.created_at,
    })
}

/// Decrypts a sealed row back into the template.
pub fn open(keys: &Keyring, s: &SealedTemplate) -> Result<Template, VaultError> {
    if s.nonce.len() != 12 {
        return Err(VaultError::Malformed(
            s.template_id,
            "nonce is not 12 bytes".into(),
        ));
    }
    let a = aad(
        &s.tenant,
        &s.student,
        s.template_id,
        &s.model_id,
        &s.model_version,
    );
    let plain = keys
        .cipher(&s.key_id)?
        .decrypt(
            Nonce::from_slice(&s.nonce),
            Payload {
                msg: &s.ciphertext,
                aad: &a,
            },
        )
        .map_err(|_| VaultError::Tampered(s.template_id))?;
    let p: Plain = serde_json::from_slice(&plain)
        .map_err(|e| VaultError::Malformed(s.template_id, e.to_string()))?;
    Ok(Template {
        meta: rollcall_domain::gallery::TemplateMeta {
            template_id: s.template_id,
            student: s.student.clone(),
            tenant: s.tenant.clone(),
            campuses: p.campuses,
            model_id: s.model_id.clone(),
            model_version: s.model_version.clone(),
            quality: p.quality,
            created_at: s.created_at,
        },
        vector: p.vector,
    })
}

/// Seals templates and stores them (all or nothing).
pub async fn store_templates(
    keys: &Keyring,
    store: &dyn PrivacyStore,
    templates: &[Template],
) -> Result<usize, VaultError> {
    let rows = templates
        .iter()
        .map(|t| seal(keys, t))
        .collect::<Result<Vec<_>, _>>()?;
    store.put_sealed(&rows).await?;
    Ok(rows.len())
}

/// What [`rebuild_index`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebuildReport {
    pub tenant: TenantId,
    /// Templates written to the index from the database.
    pub restored: usize,
    /// Templates in the index that the database does not hold (removed: the database is
    /// canonical).
    pub removed_stale: usize,
    pub students: usize,
}

/// Rebuilds the tenant's part of the gallery index from the sealed templates: every sealed
/// template is decrypted and upserted (same template ids, so the search results are identical),
/// and index entries the database does not hold are deleted and purged.
pub async fn rebuild_index(
    keys: &Keyring,
    store: &dyn PrivacyStore,
    gallery: &dyn Gallery,
    tenant: &TenantId,
) -> Result<RebuildReport, VaultError> {
    let sealed = store.sealed(tenant, None).await?;
    let templates = sealed
        .iter()
        .map(|s| open(keys, s))
        .collect::<Result<Vec<_>, _>>()?;
    let want: BTreeSet<TemplateId> = templates.iter().map(|t| t.meta.template_id).collect();
    let stale: Vec<TemplateId> = gallery
        .tenant_templates(tenant)
        .await?
        .into_iter()
        .map(|t| t.meta.template_id)
        .filter(|id| !want.contains(id))
        .collect();
    let students: BTreeSet<&StudentId> = templates.iter().map(|t| &t.meta.student).collect();
    let students = students.len();
    let restored = templates.len();
    for chunk in templates.chunks(256) {
        gallery.upsert(chunk.to_vec()).await?;
    }
    if !stale.is_empty() {
        gallery.delete_templates(tenant, &stale).await?;
        gallery.purge().await?;
    }
    Ok(RebuildReport {
        tenant: tenant.clone(),
        restored,
        removed_stale: stale.len(),
        students,
    })
}

/// Brings the tenant's index in step with the sealed templates after a crash, touching only
/// the difference: a template sealed but not indexed (the process died between the two steps
/// of an enrollment) is indexed from its sealed copy; one indexed without a sealed copy (died
/// between the two steps of dropping or erasing templates) is removed from the index. Nothing
/// is written when the two agree.
pub async fn reconcile_index(
    keys: &Keyring,
    store: &dyn PrivacyStore,
    gallery: &dyn Gallery,
    tenant: &TenantId,
) -> Result<RebuildReport, VaultError> {
    let sealed = store.sealed(tenant, None).await?;
    let indexed: BTreeSet<TemplateId> = gallery
        .tenant_templates(tenant)
        .await?
        .into_iter()
        .map(|t| t.meta.template_id)
        .collect();
    let canonical: BTreeSet<TemplateId> = sealed.iter().map(|s| s.template_id).collect();
    let missing = sealed
        .iter()
        .filter(|s| !indexed.contains(&s.template_id))
        .map(|s| open(keys, s))
        .collect::<Result<Vec<_>, _>>()?;
    let stale: Vec<TemplateId> = indexed.difference(&canonical).copied().collect();
    let students = missing
        .iter()
        .map(|t| &t.meta.student)
        .collect::<BTreeSet<_>>()
        .len();
    let restored = missing.len();
    for chunk in missing.chunks(256) {
        gallery.upsert(chunk.to_vec()).await?;
    }
    if !stale.is_empty() {
        gallery.delete_templates(tenant, &stale).await?;
    }
    Ok(RebuildReport {
        tenant: tenant.clone(),
        restored,
        removed_stale: stale.len(),
        students,
    })
}

/// What [`rotate`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RotateReport {
    pub tenant: TenantId,
    pub current_key: String,
    pub resealed: usize,
    pub already_current: usize,
    /// Key ids no sealed row of the tenant uses any more (they may be removed from the
    /// configuration once every tenant is rotated).
    pub unused_keys: Vec<String>,
    pub at: DateTime<Utc>,
}

/// Reseals every row of the tenant not sealed with the current key (fresh nonces).
pub async fn rotate(
    keys: &Keyring,
    store: &dyn PrivacyStore,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> Result<RotateReport, VaultError> {
    let sealed = store.sealed(tenant, None).await?;
    let mut out = Vec::new();
    let mut already = 0;
    for s in &sealed {
        if s.key_id == keys.current {
            already += 1;
            continue;
        }
        out.push(seal(keys, &open(keys, s)?)?);
    }
    for chunk in out.chunks(256) {
        store.put_sealed(chunk).await?;
    }
    let unused = keys
        .keys
        .keys()
        .filter(|k| **k != keys.current)
        .cloned()
        .collect();
    Ok(RotateReport {
        tenant: tenant.clone(),
        current_key: keys.current.clone(),
        resealed: out.len(),
        already_current: already,
        unused_keys: unused,
        at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_domain::gallery::TemplateMeta;

    fn key(b: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([b; 32])
    }

    fn template() -> Template {
        Template {
            meta: TemplateMeta {
                template_id: TemplateId::from_u128(7),
                student: StudentId::new("s1").unwrap(),
                tenant: TenantId::new("t").unwrap(),
                campuses: vec![rollcall_domain::CampusId::new("north").unwrap()],
                model_id: "m".into(),
                model_version: "1".into(),
                quality: 0.5,
                created_at: DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap(),
            },
            vector: vec![0.25, -0.5, 0.125, 0.8125],
        }
    }

    #[test]
    fn keyring_parsing_refuses_bad_config_without_quoting_keys() {
        let k = Keyring::parse(&format!("a:{},b:{}", key(1), key(2)), None).unwrap();
        assert_eq!(k.current_id(), "b");
        assert_eq!(
            Keyring::parse(&format!("a:{},b:{}", key(1), key(2)), Some("a"))
                .unwrap()
                .current_id(),
            "a"
        );
        for bad in [
            String::new(),
            "nocolon".into(),
            "a:!!!".into(),
            format!(
                "a:{}",
                base64::engine::general_purpose::STANDARD.encode([1u8; 16])
            ),
            format!("a:{},a:{}", key(1), key(2)),
            format!(":{}", key(1)),
        ] {
            let e = Keyring::parse(&bad, None).unwrap_err().to_string();
            assert!(!e.contains(&key(1)) && !e.contains(&key(2)), "{e}");
        }
        assert!(Keyring::parse(&format!("a:{}", key(1)), Some("zz")).is_err());
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(&key(1)) && dbg.contains("current"), "{dbg}");
    }

    #[test]
    fn seal_open_round_trip_binds_the_row_and_needs_the_key() {
        let k = Keyring::parse(&format!("a:{}", key(1)), None).unwrap();
        let t = template();
        let s = seal(&k, &t).unwrap();
        assert_eq!(s.key_id, "a");
        assert_eq!(open(&k, &s).unwrap(), t);
        // no plaintext vector bytes in the row
        let needle: Vec<u8> = t.vector[..2].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert!(!s.ciphertext.windows(needle.len()).any(|w| w == needle));
        assert!(!String::from_utf8_lossy(&s.ciphertext).contains("0.8125"));
        // a different nonce each time
        assert_ne!(seal(&k, &t).unwrap().nonce, s.nonce);
        // moved onto another student: refused
        let mut moved = s.clone();
        moved.student = StudentId::new("s2").unwrap();
        assert!(matches!(open(&k, &moved), Err(VaultError::Tampered(_))));
        // flipped bit: refused
        let mut flipped = s.clone();
        flipped.ciphertext[3] ^= 1;
        assert!(matches!(open(&k, &flipped), Err(VaultError::Tampered(_))));
        // wrong key under the same id: refused; unknown id: named
        let other = Keyring::parse(&format!("a:{}", key(9)), None).unwrap();
        assert!(matches!(open(&other, &s), Err(VaultError::Tampered(_))));
        let none = Keyring::parse(&format!("b:{}", key(1)), None).unwrap();
        assert!(matches!(open(&none, &s), Err(VaultError::UnknownKey(id)) if id == "a"));
        let mut short = s;
        short.nonce.pop();
        assert!(matches!(open(&k, &short), Err(VaultError::Malformed(..))));
    }
}
