//! Set-up of a school's sites: campuses, rooms and cameras (the insert helpers are also used by
//! the CSV import, inside its single transaction).

use super::base::{audit, check_id, check_name, ms, require};
use super::Store;
use crate::Result;
use serde_json::json;
use sqlx::AnyConnection;

pub(crate) async fn insert_campus(
    c: &mut AnyConnection,
    school: &str,
    id: &str,
    name: &str,
    actor: &str,
    now: i64,
) -> Result<()> {
    check_id("campus", id)?;
    check_name("name", name)?;
    sqlx::query("INSERT INTO campuses (school_id, id, name) VALUES ($1, $2, $3)")
        .bind(school)
        .bind(id)
        .bind(name)
        .execute(&mut *c)
        .await?;
    audit(
        c,
        school,
        actor,
        "create",
        "campus",
        id,
        None,
        Some(json!({"name": name})),
        now,
    )
    .await
}

impl Store {
    pub async fn create_campus(&self, id: &str, name: &str) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        insert_campus(w.conn(), &school, id, name, "setup", ms(self.now())).await?;
        w.commit().await
    }

    pub async fn create_room(&self, id: &str, campus: &str, name: &str) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        require(w.conn(), "campus", &school, campus).await?;
        sqlx::query("INSERT INTO rooms (school_id, id, campus_id, name) VALUES ($1, $2, $3, $4)")
            .bind(&school)
            .bind(id)
            .bind(campus)
            .bind(name)
            .execute(w.conn())
            .await?;
        audit(
            w.conn(),
            &school,
            "setup",
            "create",
            "room",
            id,
            None,
            Some(json!({"campus": campus, "name": name})),
            ms(self.now()),
        )
        .await?;
        w.commit().await
    }

    pub async fn create_camera(&self, id: &str, campus: &str, door: &str) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        require(w.conn(), "campus", &school, campus).await?;
        sqlx::query("INSERT INTO cameras (school_id, id, campus_id, door) VALUES ($1, $2, $3, $4)")
            .bind(&school)
            .bind(id)
            .bind(campus)
            .bind(door)
            .execute(w.conn())
            .await?;
        audit(
            w.conn(),
            &school,
            "setup",
            "create",
            "camera",
            id,
            None,
            Some(json!({"campus": campus, "door": door})),
            ms(self.now()),
        )
        .await?;
        w.commit().await
    }
}
