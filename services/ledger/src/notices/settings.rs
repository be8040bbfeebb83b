//! Who receives notices and when: the school's notification settings (staff recipients,
//! default channels, quiet hours) and each guardian's preferences.

use super::kinds::{NoticeKind, CHANNELS};
use crate::{LedgerError, Result};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Quiet hours in the school's local time, `"HH:MM"` each; `start > end` spans midnight,
/// `start == end` is no quiet hours. Notices caused inside them are deferred to `end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    pub start: String,
    pub end: String,
}

fn hhmm(field: &'static str, s: &str) -> Result<i64> {
    let bad = || LedgerError::Invalid {
        field,
        message: format!("{s:?} is not HH:MM"),
    };
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..24).contains(&h) || !(0..60).contains(&m) || s.len() != 5 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl QuietHours {
    pub fn validate(&self) -> Result<()> {
        hhmm("quiet_hours.start", &self.start)?;
        hhmm("quiet_hours.end", &self.end)?;
        Ok(())
    }

    /// When a notice caused at `at` may be sent: `at` itself outside quiet hours, else the end
    /// of the quiet period. `tz_offset_minutes` is the school's offset from UTC.
    pub fn release_at(&self, at: DateTime<Utc>, tz_offset_minutes: i64) -> Result<DateTime<Utc>> {
        let (s, e) = (
            hhmm("quiet_hours.start", &self.start)?,
            hhmm("quiet_hours.end", &self.end)?,
        );
        let local = at + Duration::minutes(tz_offset_minutes);
        let day_ms = local.timestamp_millis().rem_euclid(86_400_000);
        let minute = day_ms / 60_000;
        let midnight = local - Duration::milliseconds(day_ms);
        let quiet_end_local = if s == e {
            return Ok(at);
        } else if s < e {
            if minute >= s && minute < e {
                midnight + Duration::minutes(e)
            } else {
                return Ok(at);
            }
        } else if minute >= s {
            midnight + Duration::days(1) + Duration::minutes(e)
        } else if minute < e {
            midnight + Duration::minutes(e)
        } else {
            return Ok(at);
        };
        Ok(quiet_end_local - Duration::minutes(tz_offset_minutes))
    }
}

/// A staff member who receives staff notices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffRecipient {
    pub id: String,
    /// One of [`CHANNELS`].
    pub channel: String,
    /// Phone, e-mail address or gateway id, per channel.
    pub address: String,
    #[serde(default = "default_language")]
    pub language: String,
    /// Kinds this person receives; `None`: every staff kind.
    #[serde(default)]
    pub events: Option<Vec<NoticeKind>>,
}

fn default_language() -> String {
    "zh-CN".into()
}

/// Per-school notification settings (stored in `notify_settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifySettings {
    /// Off: no outbox rows are written.
    pub enabled: bool,
    #[serde(default)]
    pub staff: Vec<StaffRecipient>,
    /// Channels of guardians with no preference of their own.
    #[serde(default = "default_channels")]
    pub default_channels: Vec<String>,
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// Absence notices skip quiet hours.
    #[serde(default)]
    pub urgent_absence: bool,
}

fn default_channels() -> Vec<String> {
    vec!["sms".into()]
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            enabled: false,
            staff: Vec::new(),
            default_channels: default_channels(),
            quiet_hours: None,
            urgent_absence: false,
        }
    }
}

fn check_channel(field: &'static str, c: &str) -> Result<()> {
    if CHANNELS.contains(&c) {
        Ok(())
    } else {
        Err(LedgerError::Invalid {
            field,
            message: format!("unknown channel {c:?} (one of {})", CHANNELS.join(", ")),
        })
    }
}

impl NotifySettings {
    pub fn validate(&self) -> Result<()> {
        for c in &self.default_channels {
            check_channel("default_channels", c)?;
        }
        for s in &self.staff {
            check_channel("staff.channel", &s.channel)?;
            if s.id.is_empty() || s.address.is_empty() {
                return Err(LedgerError::Invalid {
                    field: "staff",
                    message: "a staff recipient needs an id and an address".into(),
                });
            }
        }
        if let Some(q) = &self.quiet_hours {
            q.validate()?;
        }
        Ok(())
    }
}

/// A guardian's preferences, stored in `guardians.notify_prefs`: either a comma-separated list
/// of channels (`sms,email`; every event) or JSON
/// `{"channels":["wechat"],"events":["absence","low_balance"],"quiet_hours":{"start":"21:30","end":"07:00"}}`.
/// Empty: the school's default channels, every event, the school's quiet hours.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardianPrefs {
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub events: Option<Vec<NoticeKind>>,
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
}

impl GuardianPrefs {
    pub fn parse(s: &str) -> Result<GuardianPrefs> {
        let s = s.trim();
        let p = if s.is_empty() {
            GuardianPrefs::default()
        } else if s.starts_with('{') {
            serde_json::from_str(s).map_err(|e| LedgerError::Invalid {
                field: "notify_prefs",
                message: e.to_string(),
            })?
        } else {
            GuardianPrefs {
                channels: s
                    .split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect(),
                ..Default::default()
            }
        };
        for c in &p.channels {
            check_channel("notify_prefs", c)?;
        }
        if let Some(q) = &p.quiet_hours {
            q.validate()?;
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notices::NoticeKind;
    use chrono::TimeZone;

    fn q(s: &str, e: &str) -> QuietHours {
        QuietHours {
            start: s.into(),
            end: e.into(),
        }
    }

    #[test]
    fn quiet_hours_defer_to_the_end_in_school_time() {
        // school at UTC+8
        let tz = 480;
        let at = |h, m| Utc.with_ymd_and_hms(2026, 1, 5, h, m, 0).unwrap();
        let overnight = q("21:00", "07:00");
        // 22:30 local = 14:30 UTC → 07:00 local next day = 23:00 UTC same day
        assert_eq!(overnight.release_at(at(14, 30), tz).unwrap(), at(23, 0));
        // 06:00 local = 22:00 UTC (previous local day) → 07:00 local = 23:00 UTC
        assert_eq!(overnight.release_at(at(22, 0), tz).unwrap(), at(23, 0));
        // 12:00 local: not quiet
        assert_eq!(overnight.release_at(at(4, 0), tz).unwrap(), at(4, 0));
        let day = q("12:00", "13:30");
        assert_eq!(day.release_at(at(4, 15), tz).unwrap(), at(5, 30));
        assert_eq!(day.release_at(at(5, 30), tz).unwrap(), at(5, 30));
        assert_eq!(
            q("08:00", "08:00").release_at(at(0, 0), tz).unwrap(),
            at(0, 0)
        );
    }

    #[test]
    fn bad_settings_and_prefs_are_refused_with_the_field() {
        for bad in ["25:00", "7:00", "07:60", "x", ""] {
            let e = q(bad, "07:00").validate().unwrap_err().to_string();
            assert!(e.contains("quiet_hours.start"), "{e}");
        }
        let s = NotifySettings {
            default_channels: vec!["pigeon".into()],
            ..Default::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("pigeon"));
        assert!(GuardianPrefs::parse("sms,fax").is_err());
        assert!(GuardianPrefs::parse("{not json").is_err());
        let p = GuardianPrefs::parse(" sms , email ").unwrap();
        assert_eq!(p.channels, vec!["sms", "email"]);
        let p = GuardianPrefs::parse(r#"{"channels":["wechat"],"events":["absence"]}"#).unwrap();
        assert_eq!(p.events, Some(vec![NoticeKind::Absence]));
        assert_eq!(GuardianPrefs::parse("").unwrap(), GuardianPrefs::default());
    }
}
