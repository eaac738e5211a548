//! The audit log through the API: what was done, by whom, to what, from where.

use crate::support::{Berth, Reply};
use serde_json::{json, Value};

fn entries(reply: &Reply) -> &Vec<Value> {
    reply.body["logs"].as_array().expect("logs")
}

#[tokio::test]
async fn management_actions_are_logged_with_actor_and_address() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let bob = berth.user("bob").await;
    let token = bob
        .post(
            "/api/v1/access-tokens",
            json!({ "token_label": "ci", "scopes": ["repo:read"] }),
        )
        .await
        .expect(201);
    let id = token.body["id"].as_i64().unwrap();
    bob.delete(&format!("/api/v1/access-tokens/{id}"))
        .await
        .expect(204);
    bob.post(
        "/api/v1/repositories",
        json!({ "namespace": "bob", "name": "app" }),
    )
    .await
    .expect(201);
    bob.patch(
        "/api/v1/repositories/bob/app",
        json!({ "is_private": false }),
    )
    .await
    .expect(200);
    bob.delete("/api/v1/repositories/bob/app").await.expect(204);

    let logs = admin.get("/api/v1/auditlogs?account=bob").await.expect(200);
    let mut seen: Vec<(String, String, String)> = entries(&logs)
        .iter()
        .map(|e| {
            (
                e["account"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.reverse();
    let expected = [
        ("admin", "user.create", "bob"),
        ("bob", "login", "bob"),
        ("bob", "token.create", "bob"),
        ("bob", "token.revoke", "bob"),
        ("bob", "repository.create", "bob/app"),
        ("bob", "repository.visibility", "bob/app"),
        ("bob", "repository.delete", "bob/app"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(seen, expected);

    for entry in entries(&logs) {
        assert_eq!(entry["address"], "127.0.0.1", "{entry}");
        assert!(entry["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(entry["id"].is_i64());
    }
    let visibility = entries(&logs)
        .iter()
        .find(|e| e["action"] == "repository.visibility")
        .unwrap();
    assert_eq!(visibility["data"], json!({ "private": false }));
    let created = entries(&logs)
        .iter()
        .find(|e| e["action"] == "token.create")
        .unwrap();
    assert_eq!(created["data"]["label"], "ci");
    assert!(!created.to_string().contains("berth_pat_"), "no secrets");
}

#[tokio::test]
async fn the_log_pages_back_and_is_for_site_admins_only() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let bob = berth.user("bob").await;
    bob.get("/api/v1/auditlogs")
        .await
        .expect_error(403, "DENIED");
    berth
        .anonymous()
        .get("/api/v1/auditlogs")
        .await
        .expect_error(401, "UNAUTHORIZED");

    let newest = admin.get("/api/v1/auditlogs?limit=1").await.expect(200);
    assert_eq!(entries(&newest).len(), 1);
    let id = entries(&newest)[0]["id"].as_i64().unwrap();
    let older = admin
        .get(&format!("/api/v1/auditlogs?before={id}"))
        .await
        .expect(200);
    assert!(!entries(&older).is_empty());
    assert!(entries(&older)
        .iter()
        .all(|e| e["id"].as_i64().unwrap() < id));
    admin
        .get("/api/v1/auditlogs?limit=lots")
        .await
        .expect_error(400, "BAD_REQUEST");
}

#[tokio::test]
async fn failed_sign_ins_are_stored_cut_and_repeats_counted_in_one_entry() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let long_name = "x".repeat(60_000);
    for _ in 0..3 {
        berth.login(&long_name, "wrong", None).await.expect(401);
    }
    berth.login("mallory", "wrong", None).await.expect(401);

    let logs = admin.get("/api/v1/auditlogs").await.expect(200);
    let failures: Vec<&Value> = entries(&logs)
        .iter()
        .filter(|e| e["action"] == "login.failure")
        .collect();
    let sizes: Vec<usize> = failures.iter().map(|e| e.to_string().len()).collect();
    assert_eq!(failures.len(), 2, "entry sizes {sizes:?}");
    let (mallory, long) = (failures[0], failures[1]);
    assert_eq!(mallory["name"], "mallory");
    assert_eq!(mallory["count"], 1);
    assert_eq!(long["count"], 3, "identical failures are one entry");
    assert!(long["last_timestamp"].as_str().unwrap() >= long["timestamp"].as_str().unwrap());
    // Names are cut at the longest a legal one can be; the entry stays small.
    let actor = long["account"].as_str().unwrap();
    let target = long["name"].as_str().unwrap();
    assert!(
        actor.len() <= 43 && target.len() <= 384,
        "{} {}",
        actor.len(),
        target.len()
    );
    assert!(long_name.starts_with(actor));
    assert!(long.to_string().len() < 1024, "{}", long.to_string().len());
}
