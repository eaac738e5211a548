//! `/api/v1/replications` end to end, every answer checked against the OpenAPI document:
//! site admins only, bad rules refused with what is wrong, the password never shown, a run
//! queued or waited for, its failed items and reasons in the history.

use crate::support::{basic, Berth, PASSWORD};
use serde_json::json;

#[tokio::test]
async fn site_admins_manage_rules_and_see_each_run_with_its_reasons() {
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    assert_eq!(
        berth
            .with(basic("alice", PASSWORD))
            .push_image("alice/app", "v1")
            .await,
        201
    );
    let rule = json!({
        "name": "nowhere",
        "source": "alice/*",
        "tags": ["v*"],
        // Nothing listens there: the run's item fails with the reason.
        "to": "http://127.0.0.1:9",
        "to_namespace": "copies",
        "username": "bot",
        "password": "s3cret-token",
        "trigger": "push",
    });
    alice
        .post("/api/v1/replications", rule.clone())
        .await
        .expect_error(403, "DENIED");
    alice.get("/api/v1/replications").await.expect(403);

    let admin = berth.admin().await;
    let created = admin
        .post("/api/v1/replications", rule.clone())
        .await
        .expect(201);
    assert_eq!(created.body["has_password"], true);
    assert!(!created.text.contains("s3cret-token"));
    admin
        .post("/api/v1/replications", rule)
        .await
        .expect_error(409, "CONFLICT");
    let bad = admin
        .post(
            "/api/v1/replications",
            json!({"name": "bad", "source": "alice/*", "to": "ftp://example.com"}),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(bad.message().contains("http or https"), "{}", bad.text);
    let bad = admin
        .post(
            "/api/v1/replications",
            json!({"name": "bad", "source": "*", "to": "https://example.com"}),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(
        bad.message().contains("NAMESPACE/REPO_GLOB"),
        "{}",
        bad.text
    );

    let listed = admin.get("/api/v1/replications").await.expect(200);
    assert_eq!(listed.body[0]["name"], "nowhere");
    assert!(!listed.text.contains("s3cret-token"));

    let summary = admin
        .post("/api/v1/replications/nowhere/run", json!({"wait": true}))
        .await
        .expect(200);
    assert_eq!(
        (&summary.body["copied"], &summary.body["failed"]),
        (&json!(0), &json!(1)),
        "{}",
        summary.text
    );
    let history = admin
        .get("/api/v1/replications/nowhere/history")
        .await
        .expect(200);
    assert_eq!(history.body[0]["status"], "failed");
    assert_eq!(
        history.body[0]["items"][0]["item"],
        "alice/app:v1 -> copies/app:v1"
    );
    let reason = history.body[0]["items"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("unreachable"), "{reason}");

    let queued = admin
        .post("/api/v1/replications/nowhere/run", json!({}))
        .await
        .expect(202);
    assert!(queued.body["queued"].is_boolean());
    let off = admin
        .patch("/api/v1/replications/nowhere", json!({"enabled": false}))
        .await
        .expect(200);
    assert_eq!(off.body["enabled"], false);
    admin
        .delete("/api/v1/replications/nowhere")
        .await
        .expect(204);
    admin
        .get("/api/v1/replications/nowhere/history")
        .await
        .expect_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn the_ui_creates_a_rule_runs_it_and_shows_its_history() {
    use crate::browser::{get_page, post_signed_in_form, sign_in};
    use crate::support::ADMIN_PASSWORD;
    let berth = Berth::start().await;
    berth.user("alice").await;
    assert_eq!(
        berth
            .with(basic("alice", PASSWORD))
            .push_image("alice/app", "v1")
            .await,
        201
    );
    // Not for ordinary users.
    let alice = sign_in(&berth, "alice", PASSWORD).await;
    assert_eq!(
        get_page(&berth, "/admin/replication", &alice).await.status,
        403
    );

    let admin = sign_in(&berth, "admin", ADMIN_PASSWORD).await;
    let refused = post_signed_in_form(
        &berth,
        &admin,
        "/admin/replication",
        "/admin/replication",
        &[
            ("name", "x"),
            ("source", "nonsense"),
            ("to", "http://127.0.0.1:9"),
        ],
    )
    .await
    .expect(303);
    let with_notice = format!("{admin}; {}", refused.cookies());
    let page = get_page(&berth, "/admin/replication", &with_notice)
        .await
        .expect(200)
        .text;
    assert!(page.contains("NAMESPACE/REPO_GLOB"), "{page}");

    post_signed_in_form(
        &berth,
        &admin,
        "/admin/replication",
        "/admin/replication",
        &[
            ("name", "nowhere"),
            ("source", "alice/*"),
            ("to", "http://127.0.0.1:9"),
            ("password", "s3cret-token"),
            ("username", "bot"),
            ("trigger", "manual"),
        ],
    )
    .await
    .expect(303);
    let list = get_page(&berth, "/admin/replication", &admin)
        .await
        .expect(200)
        .text;
    assert!(
        list.contains("nowhere") && !list.contains("s3cret-token"),
        "{list}"
    );
    berth
        .admin()
        .await
        .post("/api/v1/replications/nowhere/run", json!({"wait": true}))
        .await
        .expect(200);
    let rule = get_page(&berth, "/admin/replication/nowhere", &admin)
        .await
        .expect(200)
        .text;
    assert!(rule.contains("alice/app:v1 -&gt; alice/app:v1"), "{rule}");
    assert!(rule.contains("unreachable"), "{rule}");
    assert!(rule.contains("bot, with a stored password"), "{rule}");
}

#[tokio::test]
async fn pull_rules_and_bandwidth_limits_are_taken_shown_and_checked() {
    let berth = Berth::start().await;
    berth.user("alice").await;
    let admin = berth.admin().await;
    let created = admin
        .post(
            "/api/v1/replications",
            json!({
                "name": "import",
                "source": "library/*",
                "tags": ["1.*"],
                "from": "http://127.0.0.1:9",
                "to_namespace": "alice",
                "trigger": "0 3 * * *",
                "bandwidth": "50MiB/s",
            }),
        )
        .await
        .expect(201);
    assert_eq!(created.body["direction"], "pull");
    assert_eq!(created.body["from"], "http://127.0.0.1:9");
    assert_eq!(created.body["to"], serde_json::Value::Null);
    assert_eq!(created.body["to_namespace"], "alice");
    assert_eq!(created.body["bandwidth"], "50MiB/s");
    assert_eq!(created.body["bandwidth_limit"], 50 * 1024 * 1024);

    for (body, says) in [
        (
            json!({"name": "b", "source": "library/*", "from": "http://127.0.0.1:9",
                   "to": "http://127.0.0.1:9", "to_namespace": "alice"}),
            "not both",
        ),
        (
            json!({"name": "b", "source": "library/*", "from": "http://127.0.0.1:9"}),
            "to_namespace",
        ),
        (
            json!({"name": "b", "source": "library/*", "from": "http://127.0.0.1:9",
                   "to_namespace": "alice", "trigger": "push"}),
            "push rules only",
        ),
        (
            json!({"name": "b", "source": "alice/*", "to": "http://127.0.0.1:9",
                   "bandwidth": "lots"}),
            "invalid bandwidth",
        ),
    ] {
        let bad = admin
            .post("/api/v1/replications", body)
            .await
            .expect_error(400, "BAD_REQUEST");
        assert!(bad.message().contains(says), "{says}: {}", bad.text);
    }

    // Nothing listens at the origin: the run records the listing's failure.
    let summary = admin
        .post("/api/v1/replications/import/run", json!({"wait": true}))
        .await
        .expect(200);
    assert_eq!(summary.body["failed"], 1, "{}", summary.text);
    let history = admin
        .get("/api/v1/replications/import/history")
        .await
        .expect(200);
    let item = &history.body[0]["items"][0];
    assert_eq!(item["item"], "list the repositories of http://127.0.0.1:9");
    assert!(
        item["reason"].as_str().unwrap().contains("unreachable"),
        "{item}"
    );
}
