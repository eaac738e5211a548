//! Repositories and namespaces through the API: creating, visibility, collaborators,
//! deleting, listing, and private repositories that look exactly like missing ones.

use crate::support::{basic, Berth, Reply, PASSWORD};
use serde_json::json;

#[tokio::test]
async fn collaborators_get_what_they_are_given() {
    let berth = Berth::start().await;
    let carol = berth.user("carol").await;
    berth.user("dave").await;
    let dave = berth.with(basic("dave", PASSWORD));
    assert_eq!(
        berth
            .with(basic("carol", PASSWORD))
            .push_image("carol/tool", "v1")
            .await,
        201
    );
    assert_ne!(dave.pull_manifest("carol/tool", "v1").await, 200);

    let added = carol
        .post(
            "/api/v1/repositories/carol/tool/-/collaborators",
            json!({ "user": "dave", "permission": "read" }),
        )
        .await
        .expect(201);
    assert_eq!(added.body, json!({ "user": "dave", "permission": "read" }));
    let listed = carol
        .get("/api/v1/repositories/carol/tool/-/collaborators")
        .await
        .expect(200);
    assert_eq!(
        listed.body["results"],
        json!([{ "user": "dave", "permission": "read" }])
    );
    assert_eq!(dave.pull_manifest("carol/tool", "v1").await, 200);
    assert_ne!(dave.push_image("carol/tool", "v2").await, 201, "read only");

    carol
        .post(
            "/api/v1/repositories/carol/tool/-/collaborators",
            json!({ "user": "dave", "permission": "write" }),
        )
        .await
        .expect(201);
    assert_eq!(dave.push_image("carol/tool", "v2").await, 201);

    carol
        .delete("/api/v1/repositories/carol/tool/-/collaborators/dave")
        .await
        .expect(204);
    assert_ne!(dave.pull_manifest("carol/tool", "v1").await, 200);
    let listed = carol
        .get("/api/v1/repositories/carol/tool/-/collaborators")
        .await
        .expect(200);
    assert_eq!(listed.body["count"], 0);
    carol
        .post(
            "/api/v1/repositories/carol/tool/-/collaborators",
            json!({ "user": "carol", "permission": "read" }),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
}

#[tokio::test]
async fn visibility_decides_anonymous_pulls() {
    let berth = Berth::start().await;
    let carol = berth.user("carol").await;
    let anonymous = berth.anonymous();
    assert_eq!(
        berth
            .with(basic("carol", PASSWORD))
            .push_image("carol/site", "latest")
            .await,
        201
    );
    assert_eq!(anonymous.pull_manifest("carol/site", "latest").await, 401);

    let public = carol
        .patch(
            "/api/v1/repositories/carol/site",
            json!({ "is_private": false }),
        )
        .await
        .expect(200);
    assert_eq!(public.body["is_private"], false);
    assert_eq!(anonymous.pull_manifest("carol/site", "latest").await, 200);
    let seen = anonymous
        .get("/api/v1/repositories/carol/site")
        .await
        .expect(200);
    assert_eq!(
        seen.body["permissions"],
        json!({ "read": true, "write": false, "admin": false })
    );
    anonymous
        .patch(
            "/api/v1/repositories/carol/site",
            json!({ "is_private": true }),
        )
        .await
        .expect_error(401, "UNAUTHORIZED");

    carol
        .patch(
            "/api/v1/repositories/carol/site",
            json!({ "is_private": true }),
        )
        .await
        .expect(200);
    assert_eq!(anonymous.pull_manifest("carol/site", "latest").await, 401);
}

#[tokio::test]
async fn repositories_are_created_read_listed_and_deleted() {
    let berth = Berth::start().await;
    let carol = berth.user("carol").await;
    let dave = berth.user("dave").await;

    let created = carol
        .post(
            "/api/v1/repositories",
            json!({ "namespace": "carol", "name": "app/api", "is_private": false }),
        )
        .await
        .expect(201);
    assert_eq!(created.body["name"], "app/api");
    assert_eq!(created.body["namespace"], "carol");
    assert_eq!(created.body["full_name"], "carol/app/api");
    assert_eq!(created.body["is_private"], false);
    assert!(created.body["date_registered"].is_string());
    carol
        .post(
            "/api/v1/repositories",
            json!({ "namespace": "carol", "name": "secret" }),
        )
        .await
        .expect(201);
    carol
        .post(
            "/api/v1/repositories",
            json!({ "namespace": "carol", "name": "secret" }),
        )
        .await
        .expect_error(409, "CONFLICT");
    dave.post(
        "/api/v1/repositories",
        json!({ "namespace": "carol", "name": "mine" }),
    )
    .await
    .expect_error(403, "DENIED");
    carol
        .post(
            "/api/v1/repositories",
            json!({ "namespace": "carol", "name": "Bad" }),
        )
        .await
        .expect_error(400, "NAME_INVALID");

    let shown = carol
        .get("/api/v1/repositories/carol/app/api")
        .await
        .expect(200);
    assert_eq!(
        shown.body["permissions"],
        json!({ "read": true, "write": true, "admin": true })
    );

    let names = |reply: Reply| -> Vec<String> {
        reply.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["full_name"].as_str().unwrap().to_owned())
            .collect()
    };
    let own = carol
        .get("/api/v1/namespaces/carol/repositories")
        .await
        .expect(200);
    assert_eq!(names(own), ["carol/app/api", "carol/secret"]);
    let outside = berth
        .anonymous()
        .get("/api/v1/namespaces/carol/repositories")
        .await
        .expect(200);
    assert_eq!(outside.body["count"], 1);
    assert_eq!(outside.body["results"][0]["name"], "app/api");
    berth
        .anonymous()
        .get("/api/v1/namespaces/nobody/repositories")
        .await
        .expect_error(404, "NOT_FOUND");

    carol
        .delete("/api/v1/repositories/carol/app/api")
        .await
        .expect(204);
    carol
        .get("/api/v1/repositories/carol/app/api")
        .await
        .expect_error(404, "NAME_UNKNOWN");
    carol
        .delete("/api/v1/repositories/carol/app/api")
        .await
        .expect_error(404, "NAME_UNKNOWN");
}

#[tokio::test]
async fn a_private_repository_answers_outsiders_like_a_missing_one() {
    let berth = Berth::start().await;
    let carol = berth.user("carol").await;
    let dave = berth.user("dave").await;
    carol
        .post(
            "/api/v1/repositories",
            json!({ "namespace": "carol", "name": "secret" }),
        )
        .await
        .expect(201);

    let anonymous = berth.anonymous();
    for outsider in [&dave, &anonymous] {
        for path in ["", "/-/groups", "/-/collaborators"] {
            let private = outsider
                .get(&format!("/api/v1/repositories/carol/secret{path}"))
                .await;
            let missing = outsider
                .get(&format!("/api/v1/repositories/carol/missing{path}"))
                .await;
            assert_same_refusal(private, missing, "carol/secret", "carol/missing");
        }
        let private = outsider
            .patch(
                "/api/v1/repositories/carol/secret",
                json!({ "is_private": false }),
            )
            .await;
        let missing = outsider
            .patch(
                "/api/v1/repositories/carol/missing",
                json!({ "is_private": false }),
            )
            .await;
        assert_same_refusal(private, missing, "carol/secret", "carol/missing");
        let private = outsider.delete("/api/v1/repositories/carol/secret").await;
        let missing = outsider.delete("/api/v1/repositories/carol/missing").await;
        assert_same_refusal(private, missing, "carol/secret", "carol/missing");
    }
    carol
        .get("/api/v1/repositories/carol/secret")
        .await
        .expect(200);
}

/// Both answers are the same but for the repository name they echo.
fn assert_same_refusal(private: Reply, missing: Reply, private_name: &str, missing_name: &str) {
    assert_eq!(private.status, 404, "{}", private.text);
    assert_eq!(private.status, missing.status);
    assert_eq!(
        private.text.replace(private_name, "NAME"),
        missing.text.replace(missing_name, "NAME")
    );
    let headers = |reply: &Reply| {
        let mut names: Vec<String> = reply
            .headers
            .iter()
            .filter(|(name, _)| {
                !["date", "content-length", "x-request-id"].contains(&name.as_str())
            })
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
            .collect();
        names.sort();
        names
    };
    assert_eq!(headers(&private), headers(&missing));
}

#[tokio::test]
async fn namespaces_show_and_change_their_default_visibility() {
    let berth = Berth::start().await;
    let carol = berth.user("carol").await;
    let dave = berth.user("dave").await;
    let shown = carol.get("/api/v1/namespaces/carol").await.expect(200);
    assert_eq!(
        shown.body,
        json!({ "name": "carol", "kind": "user", "default_private": true })
    );
    dave.get("/api/v1/namespaces/carol")
        .await
        .expect_error(403, "DENIED");
    dave.patch(
        "/api/v1/namespaces/carol",
        json!({ "default_private": false }),
    )
    .await
    .expect_error(403, "DENIED");

    let changed = carol
        .patch(
            "/api/v1/namespaces/carol",
            json!({ "default_private": false }),
        )
        .await
        .expect(200);
    assert_eq!(changed.body["default_private"], false);
    // A push now creates a public repository.
    assert_eq!(
        berth
            .with(basic("carol", PASSWORD))
            .push_image("carol/open", "v1")
            .await,
        201
    );
    assert_eq!(
        berth.anonymous().pull_manifest("carol/open", "v1").await,
        200
    );

    carol
        .post("/api/v1/orgs", json!({ "orgname": "acme" }))
        .await
        .expect(201);
    let org = carol.get("/api/v1/namespaces/acme").await.expect(200);
    assert_eq!(org.body["kind"], "organization");
}

#[tokio::test]
async fn a_bare_name_is_an_official_image() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    admin
        .post(
            "/api/v1/repositories",
            json!({ "namespace": "library", "name": "nginx", "is_private": false }),
        )
        .await
        .expect(201);
    let shown = admin.get("/api/v1/repositories/nginx").await.expect(200);
    assert_eq!(shown.body["full_name"], "library/nginx");
    let anonymous = berth
        .anonymous()
        .get("/api/v1/repositories/library/nginx")
        .await
        .expect(200);
    assert_eq!(anonymous.body["name"], "nginx");
}
