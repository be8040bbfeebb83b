//! The vocabulary of notices: what a notice is about, who receives it, on which channels, and
//! the life cycle of its outbox rows.

use serde::{Deserialize, Serialize};

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($var),+ }
        impl $name {
            pub fn as_str(&self) -> &'static str { match self { $($name::$var => $s),+ } }
            pub fn parse(s: &str) -> Option<$name> { match s { $($s => Some($name::$var),)+ _ => None } }
            pub const ALL: &'static [$name] = &[$($name::$var),+];
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

str_enum!(
    /// What a notice is about (the template to render).
    NoticeKind { Arrival => "arrival", Absence => "absence", AbsenceStreak => "absence_streak",
                 LowBalance => "low_balance", ExpiringPackage => "expiring_package",
                 ZeroBalance => "zero_balance", ReviewNeeded => "review_needed",
                 CameraOffline => "camera_offline", CheckInFailed => "check_in_failed",
                 LessonReminder => "lesson_reminder", FeeDue => "fee_due",
                 LessonChanged => "lesson_changed" }
);
str_enum!(
    /// Life cycle of an outbox row.
    OutboxState { Pending => "pending", Sent => "sent", Dead => "dead" }
);
str_enum!(
    /// Who a row goes to.
    RecipientKind { Guardian => "guardian", Staff => "staff" }
);

/// Channels a recipient may ask for. `sms` and `wechat` go through the webhook gateway.
pub const CHANNELS: &[&str] = &["sms", "wechat", "webhook", "email", "log"];

impl NoticeKind {
    /// Whether guardians and staff receive this kind (before preferences).
    pub fn audience(&self) -> (bool, bool) {
        use NoticeKind::*;
        match self {
            Arrival | Absence | LowBalance | ExpiringPackage | ZeroBalance | LessonReminder
            | FeeDue | LessonChanged => (true, false),
            AbsenceStreak => (true, true),
            ReviewNeeded | CameraOffline | CheckInFailed => (false, true),
        }
    }
}
