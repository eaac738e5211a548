//! Organizations, teams, members, team grants and organization tokens through the API, and
//! what they let registry clients do.

use crate::support::{basic, Berth, PASSWORD};
use serde_json::json;

fn usernames(reply: &crate::support::Reply) -> Vec<String> {
    reply.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["username"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_team_grant_lets_members_push_until_they_leave() {
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    let bob = berth.user("bob").await;
    let bob_registry = berth.with(basic("bob", PASSWORD));

    let org = alice
        .post("/api/v1/orgs", json!({ "orgname": "acme" }))
        .await
        .expect(201);
    assert_eq!(org.body["orgname"], "acme");
    assert_eq!(org.body["type"], "Organization");
    let mine = alice.get("/api/v1/orgs").await.expect(200);
    assert_eq!(mine.body["results"][0]["orgname"], "acme");
    assert_eq!(bob.get("/api/v1/orgs").await.expect(200).body["count"], 0);
    bob.get("/api/v1/orgs/acme").await.expect(200);

    let repo = alice
        .post(
            "/api/v1/repositories",
            json!({ "namespace": "acme", "name": "app" }),
        )
        .await
        .expect(201);
    assert_eq!(
        repo.body["is_private"], true,
        "organizations default to private"
    );
    let group = alice
        .post(
            "/api/v1/orgs/acme/groups",
            json!({ "name": "devs", "description": "developers" }),
        )
        .await
        .expect(201);
    assert_eq!(group.body["name"], "devs");
    assert_eq!(group.body["description"], "developers");
    assert_eq!(group.body["member_count"], 0);
    let groups = alice.get("/api/v1/orgs/acme/groups").await.expect(200);
    let names: Vec<&str> = groups.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["devs", "owners"]);

    assert_ne!(bob_registry.push_image("acme/app", "v1").await, 201);
    bob.post("/api/v1/orgs/acme/groups", json!({ "name": "mine" }))
        .await
        .expect_error(403, "DENIED");

    alice
        .post(
            "/api/v1/orgs/acme/groups/devs/members",
            json!({ "member": "bob" }),
        )
        .await
        .expect(201);
    alice
        .post(
            "/api/v1/orgs/acme/groups/devs/members",
            json!({ "member": "bob" }),
        )
        .await
        .expect(200);
    let members = alice
        .get("/api/v1/orgs/acme/groups/devs/members")
        .await
        .expect(200);
    assert_eq!(usernames(&members), ["bob"]);
    let devs = alice.get("/api/v1/orgs/acme/groups/devs").await.expect(200);
    assert_eq!(devs.body["member_count"], 1);
    // Membership alone grants nothing on the repository.
    assert_ne!(bob_registry.push_image("acme/app", "v1").await, 201);

    alice
        .post(
            "/api/v1/repositories/acme/app/-/groups",
            json!({ "group_name": "devs", "permission": "write" }),
        )
        .await
        .expect(201);
    let grants = alice
        .get("/api/v1/repositories/acme/app/-/groups")
        .await
        .expect(200);
    assert_eq!(
        grants.body["results"],
        json!([{ "group_name": "devs", "permission": "write" }])
    );
    assert_eq!(bob_registry.push_image("acme/app", "v1").await, 201);
    let seen = bob.get("/api/v1/repositories/acme/app").await.expect(200);
    assert_eq!(
        seen.body["permissions"],
        json!({ "read": true, "write": true, "admin": false })
    );
    // Write is not admin: the settings stay the owners'.
    bob.get("/api/v1/repositories/acme/app/-/groups")
        .await
        .expect_error(403, "DENIED");

    alice
        .delete("/api/v1/orgs/acme/groups/devs/members/bob")
        .await
        .expect(204);
    assert_ne!(bob_registry.push_image("acme/app", "v2").await, 201);
    assert_ne!(bob_registry.pull_manifest("acme/app", "v1").await, 200);
    bob.get("/api/v1/repositories/acme/app")
        .await
        .expect_error(404, "NAME_UNKNOWN");

    alice
        .delete("/api/v1/repositories/acme/app/-/groups/devs")
        .await
        .expect(204);
    let grants = alice
        .get("/api/v1/repositories/acme/app/-/groups")
        .await
        .expect(200);
    assert_eq!(grants.body["count"], 0);
    alice
        .delete("/api/v1/orgs/acme/groups/devs")
        .await
        .expect(204);
    alice
        .get("/api/v1/orgs/acme/groups/devs")
        .await
        .expect_error(404, "NOT_FOUND");
    alice
        .delete("/api/v1/orgs/acme/groups/owners")
        .await
        .expect_error(400, "BAD_REQUEST");
}

#[tokio::test]
async fn grants_are_checked() {
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    alice
        .post("/api/v1/orgs", json!({ "orgname": "acme" }))
        .await
        .expect(201);
    alice
        .post("/api/v1/orgs", json!({ "orgname": "acme" }))
        .await
        .expect_error(409, "CONFLICT");
    alice
        .post("/api/v1/orgs", json!({ "orgname": "alice" }))
        .await
        .expect_error(409, "CONFLICT");
    alice
        .post("/api/v1/orgs/acme/groups", json!({ "name": "devs" }))
        .await
        .expect(201);
    alice
        .post(
            "/api/v1/repositories",
            json!({ "namespace": "acme", "name": "app" }),
        )
        .await
        .expect(201);
    alice
        .post(
            "/api/v1/repositories/acme/app/-/groups",
            json!({ "group_name": "devs", "permission": "owner" }),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    alice
        .post(
            "/api/v1/repositories/acme/app/-/groups",
            json!({ "group_name": "nobody", "permission": "read" }),
        )
        .await
        .expect_error(404, "NOT_FOUND");
    alice
        .post(
            "/api/v1/orgs/acme/groups/devs/members",
            json!({ "member": "ghost" }),
        )
        .await
        .expect_error(404, "NOT_FOUND");

    // Personal repositories take collaborators, not teams.
    alice
        .post(
            "/api/v1/repositories",
            json!({ "namespace": "alice", "name": "tool" }),
        )
        .await
        .expect(201);
    let personal = alice
        .post(
            "/api/v1/repositories/alice/tool/-/groups",
            json!({ "group_name": "devs", "permission": "read" }),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(
        personal.message().contains("collaborators"),
        "{}",
        personal.text
    );
}

#[tokio::test]
async fn organization_tokens_act_for_the_organization() {
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    let bob = berth.user("bob").await;
    alice
        .post("/api/v1/orgs", json!({ "orgname": "acme" }))
        .await
        .expect(201);
    assert_eq!(
        berth
            .with(basic("alice", PASSWORD))
            .push_image("acme/app", "v1")
            .await,
        201
    );

    let created = alice
        .post(
            "/api/v1/orgs/acme/access-tokens",
            json!({ "token_label": "deploy", "scopes": ["repo:read"] }),
        )
        .await
        .expect(201);
    let secret = created.body["token"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_i64().unwrap();
    let listed = alice
        .get("/api/v1/orgs/acme/access-tokens")
        .await
        .expect(200);
    assert_eq!(listed.body["results"][0]["token_label"], "deploy");
    assert!(listed.body["results"][0].get("token").is_none());
    bob.get("/api/v1/orgs/acme/access-tokens")
        .await
        .expect_error(403, "DENIED");

    let deploy = berth.with(basic("acme", &secret));
    assert_eq!(deploy.pull_manifest("acme/app", "v1").await, 200);
    assert_ne!(deploy.push_image("acme/app", "v2").await, 201, "read only");

    alice
        .delete(&format!("/api/v1/orgs/acme/access-tokens/{id}"))
        .await
        .expect(204);
    assert_eq!(deploy.pull_manifest("acme/app", "v1").await, 401);
    let kept = alice
        .get(&format!("/api/v1/orgs/acme/access-tokens/{id}"))
        .await
        .expect(200);
    assert_eq!(kept.body["is_active"], false);
}
