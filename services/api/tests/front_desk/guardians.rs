//! Issue 21 item 1's gaps, through the API and the staff app, on SQLite and PostgreSQL: a
//! student's guardians added (at most two, as at registration) and removed (at least one
//! stays) on the edit page and through the API, audited; the consent's expiry on the
//! registration form. A child module of `api.rs` (its harness).

use super::*;

rollcall_testkit::per_backend!(
    guardians_are_added_and_removed_within_one_and_two,
    registration_form_records_the_consents_expiry,
    guardian_routes_are_audited_as_their_staff,
);

async fn page(c: &Client, path: &str) -> String {
    let r = c.get(path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.text()
}

/// Registers `name` at north with one guardian through the API; the student's id.
async fn registered(c: &Client, name: &str) -> String {
    let r = c
        .post(
            "/api/v1/students/registrations",
            json!({"name": name, "home_campus_id": "north",
                   "guardians": [{"name": "Mum", "phone": "13800000001"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["student"]["id"].as_str().unwrap().to_string()
}

async fn guardians_are_added_and_removed_within_one_and_two(db: Db) {
    let sv = server(db, 1 << 20).await;
    let (a, s) = (&sv.addr, &sv.store);
    let desk = Client::login(a, "front_desk").await;
    let id = registered(&desk, "Xiaohong").await;
    let edit = format!("/app/students/{id}/edit");
    // one guardian: the edit page offers a second, and no removal
    let p = page(&desk, &edit).await;
    let add = format!("action=\"/app/students/{id}/guardians\"");
    assert!(p.contains(&add) && p.contains("Add a guardian"), "{p}");
    assert!(!p.contains("class=remove-guardian"), "{p}");
    // a bad phone: the page again, in Chinese, saying which field; nothing added
    let r = http(
        a,
        "POST",
        &format!("/app/students/{id}/guardians"),
        &[
            ("cookie", &format!("{}; lang=zh", desk.cookie)),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        format!(
            "_csrf={}&g_name=Dad&g_phone=call+me&g_language=en",
            desk.csrf
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("id=form-error") && r.text().contains("电话"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("value=\"call me\""), "kept: {}", r.text());
    assert_eq!(s.guardian_details(&id).await.unwrap().len(), 1);
    // the second guardian
    let r = desk
        .form(
            &format!("/app/students/{id}/guardians"),
            "g_name=Dad&g_phone=13900000002&g_email=dad%40example.com&g_wechat=dad_wx&g_language=en&g_ch_wechat=on&g_n_arrival=on",
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let done = format!("/app/students/{id}?done=guardian_added");
    assert_eq!(r.header("location"), Some(done.as_str()));
    assert!(page(&desk, &done).await.contains("The guardian was added."));
    let gs = s.guardian_details(&id).await.unwrap();
    assert_eq!(gs.len(), 2);
    let dad = gs.iter().find(|g| g.name == "Dad").unwrap().clone();
    assert_eq!(dad.id, format!("{id}-g2"));
    assert_eq!(dad.wechat_id.as_deref(), Some("dad_wx"));
    assert!(dad.notify_prefs.contains("wechat"), "{}", dad.notify_prefs);
    // two: no third, neither on the page nor by the form or the API
    let p = page(&desk, &edit).await;
    assert!(!p.contains(&add), "{p}");
    assert_eq!(p.matches("class=remove-guardian").count(), 2, "{p}");
    let r = desk
        .form(
            &format!("/app/students/{id}/guardians"),
            "g_name=Gran&g_phone=13700000000",
            None,
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("at most 2 guardians"), "{}", r.text());
    let r = desk
        .post(
            &format!("/api/v1/students/{id}/guardians"),
            json!({"id": "gran", "name": "Gran"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(s.guardian_details(&id).await.unwrap().len(), 2);
    // remove one on the page: the other stays, and may not be removed
    let r = desk
        .form(
            &format!("/app/students/{id}/guardians/{}/remove", dad.id),
            "",
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("/app/students/{id}?done=guardian_removed").as_str())
    );
    let gs = s.guardian_details(&id).await.unwrap();
    assert_eq!(gs.len(), 1);
    let mum = gs[0].id.clone();
    let r = desk
        .form(
            &format!("/app/students/{id}/guardians/{mum}/remove"),
            "",
            None,
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("id=form-error"), "{}", r.text());
    assert_eq!(s.guardian_details(&id).await.unwrap().len(), 1);
    // the API: add (the old route), remove, the last one stays, an unknown one, another campus
    let r = desk
        .post(
            &format!("/api/v1/students/{id}/guardians"),
            json!({"id": "gran", "name": "Gran"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let south = Client::login(a, "desk_south").await;
    let r = south
        .send(
            "DELETE",
            &format!("/api/v1/students/{id}/guardians/gran"),
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden_campus"));
    let r = desk
        .send(
            "DELETE",
            &format!("/api/v1/students/{id}/guardians/nobody"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = desk
        .send(
            "DELETE",
            &format!("/api/v1/students/{id}/guardians/gran"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["removed"]["name"], "Gran");
    let r = desk
        .send(
            "DELETE",
            &format!("/api/v1/students/{id}/guardians/{mum}"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    // a viewer may do neither
    let viewer = Client::login(a, "viewer").await;
    let r = viewer
        .form(
            &format!("/app/students/{id}/guardians"),
            "g_name=Gran",
            None,
        )
        .await;
    assert_eq!(r.status, 403);
    let r = viewer
        .send(
            "DELETE",
            &format!("/api/v1/students/{id}/guardians/{mum}"),
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden_role"));
    // removing audited what was removed
    let rows = s.audit_rows(50).await.unwrap();
    let removed: Vec<_> = rows
        .iter()
        .filter(|r| r.action == "remove" && r.entity == "guardian")
        .collect();
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert_eq!(removed[0].before.as_ref().unwrap()["name"], "Gran");
    assert!(removed[0].after.is_none());
}

async fn registration_form_records_the_consents_expiry(db: Db) {
    let sv = server_at(db, 8 * 60).await;
    let (a, s) = (&sv.addr, &sv.store);
    let desk = Client::login(a, "front_desk").await;
    let p = page(&desk, "/app/students/new?lang=zh").await;
    assert!(
        p.contains("name=consent_expires") && p.contains("同意书有效期至"),
        "{p}"
    );
    let fields = "name=Xiaoming&home_campus_id=north&g1_name=Mum&g1_phone=13800000000&g1_language=zh&consent=granted&consent_by=0&document_ref=F-9";
    // a date that is not one, or already past: the form again, nothing registered
    for bad in ["31%2F12%2F2099", "2001-01-01"] {
        let r = desk
            .form(
                "/app/students/new",
                &format!("{fields}&consent_expires={bad}"),
                None,
            )
            .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text());
        assert!(r.text().contains("id=form-error"), "{}", r.text());
    }
    assert_eq!(s.students().await.unwrap().len(), 3);
    let r = desk
        .form(
            "/app/students/new",
            &format!("{fields}&consent_expires=2099-06-30"),
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let id = r
        .header("location")
        .unwrap()
        .trim_start_matches("/app/students/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    // valid through 2099-06-30 at the school (UTC+8): until 16:00 UTC that day
    let c = s.consent_records(&id).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(
        c[0].expires_at,
        Some(Utc.with_ymd_and_hms(2099, 6, 30, 16, 0, 0).unwrap())
    );
    let p = page(&desk, &format!("/app/students/{id}?lang=en")).await;
    assert!(p.contains("valid until 2099-06-30"), "{p}");
    // the API takes it as a time; a refusal needs none
    let r = desk
        .post(
            "/api/v1/students/registrations",
            json!({"name": "X", "home_campus_id": "north",
                   "guardians": [{"name": "Mum"}],
                   "consent": {"granted": false, "expires_at": "2099-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
}

/// [`guardian_routes_audited`] on its own server, covering this feature's mutating routes.
async fn guardian_routes_are_audited_as_their_staff(db: Db) {
    let sv = server(db, 1 << 20).await;
    let mut cov = std::collections::BTreeSet::new();
    guardian_routes_audited(&sv.store, &mut cov, &sv.addr).await;
    assert_covers_mounted(
        &sv,
        &cov,
        &[
            ("DELETE", "/api/v1/students/{id}/guardians/{guardian}"),
            ("POST", "/app/students/{id}/guardians"),
            ("POST", "/app/students/{id}/guardians/{guardian}/remove"),
        ],
    );
}

/// The guardian routes write audit rows naming the staff member; refusals write none.
pub(super) async fn guardian_routes_audited(
    st: &Store,
    cov: &mut std::collections::BTreeSet<(String, String)>,
    a: &str,
) {
    let desk = Client::login(a, "front_desk").await;
    let id = registered(&desk, "Audit child").await;
    let r = ("POST", "/app/students/{id}/guardians");
    refused(
        st,
        "guardian without a name",
        422,
        desk.form(&format!("/app/students/{id}/guardians"), "g_phone=1", None),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("front_desk", "front_desk"),
        303,
        desk.form(
            &format!("/app/students/{id}/guardians"),
            "g_name=Dad&g_phone=13900000002&g_language=en",
            None,
        ),
    )
    .await;
    let r = ("POST", "/app/students/{id}/guardians/{guardian}/remove");
    audited(
        st,
        cov,
        r,
        ("front_desk", "front_desk"),
        303,
        desk.form(
            &format!("/app/students/{id}/guardians/{id}-g2/remove"),
            "",
            None,
        ),
    )
    .await;
    refused(
        st,
        "the last guardian",
        422,
        desk.form(
            &format!("/app/students/{id}/guardians/{id}-g1/remove"),
            "",
            None,
        ),
    )
    .await;
    let r = ("DELETE", "/api/v1/students/{id}/guardians/{guardian}");
    let added = desk
        .post(
            &format!("/api/v1/students/{id}/guardians"),
            json!({"id": "audit-gran", "name": "Gran"}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text());
    refused(
        st,
        "an unknown guardian",
        404,
        desk.send(
            "DELETE",
            &format!("/api/v1/students/{id}/guardians/nobody"),
            json!({}),
        ),
    )
    .await;
    audited(
        st,
        cov,
        r,
        ("front_desk", "front_desk"),
        200,
        desk.send(
            "DELETE",
            &format!("/api/v1/students/{id}/guardians/audit-gran"),
            json!({}),
        ),
    )
    .await;
}
