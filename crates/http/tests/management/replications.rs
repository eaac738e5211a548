//! `/api/v1/replications` end to end, every answer checked against the OpenAPI document:
//! site admins only, bad rules refused with what is wrong, the password never shown, a run
//! queued or waited for, its failed items and reasons in the history.

use crate::support::Berth;
use serde_json::json;

#[tokio::test]
async fn site_admins_manage_rules_and_see_each_run_with_its_reasons() {
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    assert_eq!(alice.push_image("alice/app", "v1").await, 201);
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
