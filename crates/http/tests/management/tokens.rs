//! Personal access tokens through the API: created with the secret shown once, listed
//! without it, revoked (and kept), and honoured or refused by the registry accordingly.

use crate::browser::{get_page, post_signed_in_form, sign_in};
use crate::support::{basic, Berth, Credentials, PASSWORD};
use serde_json::json;

#[tokio::test]
async fn a_token_is_shown_once_used_by_the_registry_and_revoked() {
    let berth = Berth::start().await;
    let bob = berth.user("bob").await;
    let created = bob
        .post(
            "/api/v1/access-tokens",
            json!({
                "token_label": "ci",
                "scopes": ["repo:write"],
                "repositories": ["bob/*"],
                "expires_in_days": 30,
            }),
        )
        .await
        .expect(201);
    let secret = created.body["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("berth_pat_"), "{secret}");
    let id = created.body["id"].as_i64().unwrap();
    assert_eq!(created.body["token_label"], "ci");
    assert_eq!(created.body["scopes"], json!(["repo:write"]));
    assert_eq!(created.body["repositories"], json!(["bob/*"]));
    assert_eq!(created.body["is_active"], true);
    assert!(created.body["last_used"].is_null());
    assert!(created.body["expires_at"].is_string());
    assert!(created.body["created_at"].is_string());

    let listed = bob.get("/api/v1/access-tokens").await.expect(200);
    assert_eq!(listed.body["count"], 1);
    let entry = &listed.body["results"][0];
    assert_eq!(entry["id"], id);
    assert!(entry.get("token").is_none(), "the secret is shown once");
    assert!(!listed.text.contains(&secret));
    let one = bob
        .get(&format!("/api/v1/access-tokens/{id}"))
        .await
        .expect(200);
    assert!(one.body.get("token").is_none());

    let ci = berth.with(basic("bob", &secret));
    assert_eq!(ci.push_image("bob/app", "v1").await, 201);
    assert_ne!(
        ci.push_image("bob-elsewhere/app", "v1").await,
        201,
        "limited to bob/*"
    );
    let used = bob
        .get(&format!("/api/v1/access-tokens/{id}"))
        .await
        .expect(200);
    assert!(used.body["last_used"].is_string(), "{}", used.text);

    let revoked = bob
        .patch(
            &format!("/api/v1/access-tokens/{id}"),
            json!({ "is_active": false }),
        )
        .await
        .expect(200);
    assert_eq!(revoked.body["is_active"], false);
    assert!(revoked.body["revoked_at"].is_string());
    assert_eq!(ci.push_image("bob/app", "v2").await, 401);
    assert_eq!(ci.pull_manifest("bob/app", "v1").await, 401);
    bob.patch(
        &format!("/api/v1/access-tokens/{id}"),
        json!({ "is_active": true }),
    )
    .await
    .expect_error(400, "BAD_REQUEST");
}

#[tokio::test]
async fn deleting_a_token_revokes_it_and_keeps_it_listed() {
    let berth = Berth::start().await;
    let bob = berth.user("bob").await;
    let created = bob
        .post(
            "/api/v1/access-tokens",
            json!({ "token_label": "laptop", "scopes": ["repo:read"] }),
        )
        .await
        .expect(201);
    let id = created.body["id"].as_i64().unwrap();
    let secret = created.body["token"].as_str().unwrap().to_owned();
    assert!(created.body["expires_at"].is_null());
    berth
        .with(basic("bob", &secret))
        .get("/api/v1/users/bob")
        .await
        .expect(200);

    bob.delete(&format!("/api/v1/access-tokens/{id}"))
        .await
        .expect(204);
    berth
        .with(basic("bob", &secret))
        .get("/api/v1/users/bob")
        .await
        .expect_error(401, "UNAUTHORIZED");
    let kept = bob
        .get(&format!("/api/v1/access-tokens/{id}"))
        .await
        .expect(200);
    assert_eq!(kept.body["is_active"], false);
    // Deleting again changes nothing.
    bob.delete(&format!("/api/v1/access-tokens/{id}"))
        .await
        .expect(204);
}

#[tokio::test]
async fn tokens_are_their_owners_business() {
    let berth = Berth::start().await;
    let bob = berth.user("bob").await;
    let carol = berth.user("carol").await;
    let id = bob
        .post(
            "/api/v1/access-tokens",
            json!({ "token_label": "x", "scopes": ["repo:read"] }),
        )
        .await
        .expect(201)
        .body["id"]
        .as_i64()
        .unwrap();

    // Someone else's token is not there for carol, whether or not it exists.
    let theirs = carol
        .get(&format!("/api/v1/access-tokens/{id}"))
        .await
        .expect_error(404, "NOT_FOUND");
    let missing = carol
        .get("/api/v1/access-tokens/999999")
        .await
        .expect_error(404, "NOT_FOUND");
    assert_eq!(
        theirs.message().replace(&id.to_string(), "N"),
        missing.message().replace("999999", "N")
    );
    carol
        .delete(&format!("/api/v1/access-tokens/{id}"))
        .await
        .expect_error(404, "NOT_FOUND");
    carol
        .get("/api/v1/access-tokens?username=bob")
        .await
        .expect_error(403, "DENIED");
    let listed = berth
        .admin()
        .await
        .get("/api/v1/access-tokens?username=bob")
        .await
        .expect(200);
    assert_eq!(listed.body["results"][0]["id"], id);
    berth
        .anonymous()
        .get("/api/v1/access-tokens")
        .await
        .expect_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn token_requests_are_checked() {
    let berth = Berth::start().await;
    let bob = berth.user("bob").await;
    for body in [
        json!({ "token_label": "x", "scopes": ["repo:everything"] }),
        json!({ "token_label": "x", "scopes": ["repo:read", "repo:write"] }),
        json!({ "token_label": "x", "scopes": [] }),
        json!({ "token_label": "", "scopes": ["repo:read"] }),
        json!({ "token_label": "x", "scopes": ["repo:read"], "expires_in_days": 0 }),
        json!({ "token_label": "x", "scopes": ["repo:read"], "repositories": ["Bad Name"] }),
        json!({ "token_label": "x", "scopes": ["repo:read"], "expires_in_days": -1 }),
        json!({ "scopes": ["repo:read"] }),
    ] {
        let reply = bob.post("/api/v1/access-tokens", body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
    }
    assert_eq!(
        bob.get("/api/v1/access-tokens").await.expect(200).body["count"],
        0
    );
    // Signed in with a token, one cannot make tokens.
    let secret = bob
        .new_access_token(json!({ "token_label": "x", "scopes": ["repo:admin"] }))
        .await;
    berth
        .with(Credentials::Basic("bob".into(), secret))
        .post(
            "/api/v1/access-tokens",
            json!({ "token_label": "y", "scopes": ["repo:read"] }),
        )
        .await
        .expect_error(403, "DENIED");
}

/// The web UI's token form keeps the label and expiry rules the API keeps: they are the
/// management service's, so a label too long or an expiry of 0 days is refused here too.
#[tokio::test]
async fn the_web_ui_refuses_the_tokens_the_api_refuses() {
    let berth = Berth::start().await;
    let bob = berth.user("bob").await;
    let session = sign_in(&berth, "bob", PASSWORD).await;
    let too_long = "x".repeat(101);
    for (label, expires, message) in [
        (
            too_long.as_str(),
            "never",
            "token label needs 1 to 100 characters",
        ),
        ("ci", "0", "token expires after at least 1 day"),
    ] {
        let fields = [
            ("label", label),
            ("scope", "repo:read"),
            ("expires", expires),
        ];
        let answer =
            post_signed_in_form(&berth, &session, "/settings", "/settings/tokens", &fields)
                .await
                .expect(303);
        assert_eq!(answer.location(), "/settings#tokens");
        let cookies = format!("{session}; {}", answer.cookies());
        let page = get_page(&berth, "/settings", &cookies).await.expect(200);
        assert!(
            page.text.contains(message),
            "{label:?} {expires}: {}",
            page.text
        );
    }
    let listed = bob.get("/api/v1/access-tokens").await.expect(200);
    assert_eq!(listed.body["count"], 0, "nothing was created");
}
