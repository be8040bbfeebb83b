//! Schema migrations: numbered `.sql` files per backend under `services/ledger/migrations/`
//! (`sqlite/` and `postgres/`, the same version numbers in both), compiled in. Timestamps are
//! stored as BIGINT milliseconds since the Unix epoch (UTC), money as BIGINT cents, lesson
//! quantities as BIGINT hundredths of a lesson. The two backends differ only in the
//! auto-increment key column (`INTEGER PRIMARY KEY AUTOINCREMENT` / `BIGSERIAL PRIMARY KEY`).

/// One migration: its version (applied in increasing order, once, recorded in
/// `schema_migrations`), what it does, and its SQL for each backend.
pub struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

macro_rules! migration {
    ($version:literal, $file:literal, $description:literal) => {
        Migration {
            version: $version,
            description: $description,
            sqlite: include_str!(concat!("../migrations/sqlite/", $file, ".sql")),
            postgres: include_str!(concat!("../migrations/postgres/", $file, ".sql")),
        }
    };
}

/// Every migration, by version.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_initial_schema", "initial schema"),
    migration!(
        2,
        "0002_notification_outbox",
        "notification outbox and settings"
    ),
    migration!(
        3,
        "0003_privacy_templates",
        "privacy: consent document/expiry, encrypted canonical templates"
    ),
    migration!(
        4,
        "0004_staff_and_review",
        "staff accounts, sessions, API tokens, review queue, audit actor role/ip"
    ),
    migration!(
        5,
        "0005_parked_check_ins",
        "parked check-ins (the runtime could not commit them)"
    ),
    migration!(
        6,
        "0006_orders_payments_refunds",
        "sales: orders, gift lessons, discounts, payments, instalments; refund policy and requests"
    ),
    migration!(
        7,
        "0007_student_status_and_wechat",
        "students: status (active, suspended, left); guardians: WeChat id"
    ),
    migration!(
        8,
        "0008_leave_decisions_and_makeups",
        "leave requests decided by staff; make-ups linked to the missed lesson; school settings"
    ),
    migration!(
        9,
        "0009_timetable_editing",
        "classes' capacity, room and kind; weekly series; holidays; cancelled lessons"
    ),
    migration!(
        10,
        "0010_teacher_rates_and_alert_data",
        "teacher pay rates per teacher from a local date; alerts' structured data"
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Versions increase by one from 1; each backend's files name the same tables; the only
    /// difference between the backends is the auto-increment key column.
    #[test]
    fn migrations_are_numbered_and_agree_between_backends() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.description);
            assert!(m.sqlite.starts_with(&format!("-- {}:", m.version)));
            assert!(m.postgres.starts_with(&format!("-- {}:", m.version)));
            assert_eq!(
                m.sqlite
                    .replace("INTEGER PRIMARY KEY AUTOINCREMENT", "{serial}"),
                m.postgres.replace("BIGSERIAL PRIMARY KEY", "{serial}"),
                "migration {} differs between the backends beyond the key column",
                m.version
            );
        }
    }
}
