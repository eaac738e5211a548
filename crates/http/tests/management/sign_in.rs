//! Signing in to the API: passwords, two-factor codes, and keeping API tokens and registry
//! bearer tokens apart.

use crate::support::{basic, Berth, Credentials, ADMIN_PASSWORD, PASSWORD};
use berth_core::clock::Clock as _;
use berth_core::identity::totp::totp_code;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_password_sign_in_gives_a_token_for_the_api() {
    let berth = Berth::start().await;
    let reply = berth.login("admin", ADMIN_PASSWORD, None).await.expect(200);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let token = reply.body["token"].as_str().expect("token").to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    let me = berth
        .with(Credentials::Bearer(token))
        .get("/api/v1/users/admin")
        .await
        .expect(200);
    assert_eq!(me.body["username"], "admin");
    assert_eq!(me.body["is_admin"], true);
    assert_eq!(me.body["has_2fa"], false);
    assert_eq!(me.body["type"], "User");
    let joined = me.body["date_joined"].as_str().unwrap();
    assert!(
        joined.len() == 20 && joined.ends_with('Z') && joined.as_bytes()[10] == b'T',
        "RFC 3339: {joined}"
    );

    let refused = berth
        .login("admin", "not the password", None)
        .await
        .expect_error(401, "UNAUTHORIZED");
    assert!(refused.body.get("token").is_none());
    let unknown = berth
        .login("nobody", "not the password", None)
        .await
        .expect_error(401, "UNAUTHORIZED");
    assert_eq!(
        unknown.message(),
        refused.message(),
        "a missing account is not revealed"
    );
}

#[tokio::test]
async fn basic_credentials_work_on_the_api_and_no_credentials_are_asked_for() {
    let berth = Berth::start().await;
    berth
        .with(basic("admin", ADMIN_PASSWORD))
        .get("/api/v1/users")
        .await
        .expect(200);
    let anonymous = berth
        .anonymous()
        .get("/api/v1/users")
        .await
        .expect_error(401, "UNAUTHORIZED");
    let challenge = anonymous.header("www-authenticate").expect("a challenge");
    assert!(
        challenge.starts_with("Bearer realm=") && challenge.contains("/api/v1/users/login"),
        "{challenge}"
    );
    berth
        .with(basic("admin", "wrong password"))
        .get("/api/v1/users")
        .await
        .expect_error(401, "UNAUTHORIZED");
    berth
        .with(Credentials::Bearer("not.a.token".into()))
        .get("/api/v1/users")
        .await
        .expect_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn with_two_factor_on_the_password_alone_no_longer_signs_in() {
    let berth = Berth::start_with_manual_clock().await;
    let alice = berth.user("alice").await;

    let setup = alice
        .post("/api/v1/users/alice/2fa", json!({}))
        .await
        .expect(200);
    let secret = setup.body["secret"].as_str().unwrap().to_owned();
    let url = setup.body["otpauth_url"].as_str().unwrap();
    assert!(url.starts_with("otpauth://totp/Berth:alice?"), "{url}");
    assert!(url.contains(&secret));

    alice
        .post(
            "/api/v1/users/alice/2fa/confirm",
            json!({ "code": "000000x" }),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    // Each code works once: turning it on, signing in and turning it off take the codes of
    // three steps, the current one and those either side of it.
    let now = berth.clock().now_unix();
    let [previous, current, next] =
        [-30, 0, 30].map(|offset| totp_code(&secret, now + offset, 6).unwrap());
    let confirmed = alice
        .post(
            "/api/v1/users/alice/2fa/confirm",
            json!({ "code": previous }),
        )
        .await
        .expect(200);
    assert_eq!(confirmed.body["has_2fa"], true);

    let refused = berth
        .login("alice", PASSWORD, None)
        .await
        .expect_error(401, "UNAUTHORIZED");
    assert!(refused.message().contains("two-factor"), "{}", refused.text);
    // Basic credentials cannot carry a code: refused as for registry clients.
    berth
        .with(basic("alice", PASSWORD))
        .get("/api/v1/users/alice")
        .await
        .expect_error(401, "UNAUTHORIZED");
    assert_ne!(
        berth
            .with(basic("alice", PASSWORD))
            .push_image("alice/app", "v1")
            .await,
        201
    );

    let signed_in = berth
        .login("alice", PASSWORD, Some(&current))
        .await
        .expect(200);
    let token = signed_in.body["token"].as_str().unwrap().to_owned();
    let alice = berth.with(Credentials::Bearer(token));
    alice.get("/api/v1/users/alice").await.expect(200);

    // Turning it off takes a current code from the user.
    let off = berth
        .send(
            Method::DELETE,
            "/api/v1/users/alice/2fa",
            &alice.credentials,
            Some(json!({ "code": "123" })),
        )
        .await;
    off.expect_error(400, "BAD_REQUEST");
    berth
        .send(
            Method::DELETE,
            "/api/v1/users/alice/2fa",
            &alice.credentials,
            Some(json!({ "code": next })),
        )
        .await
        .expect(204);
    berth.login("alice", PASSWORD, None).await.expect(200);
}

#[tokio::test]
async fn a_two_factor_code_signs_in_once() {
    let berth = Berth::start_with_manual_clock().await;
    let alice = berth.user("alice").await;
    let secret = alice
        .post("/api/v1/users/alice/2fa", json!({}))
        .await
        .expect(200)
        .body["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = berth.clock().now_unix();
    let [previous, current, next] =
        [-30, 0, 30].map(|offset| totp_code(&secret, now + offset, 6).unwrap());
    alice
        .post(
            "/api/v1/users/alice/2fa/confirm",
            json!({ "code": previous }),
        )
        .await
        .expect(200);

    let signed_in = berth
        .login("alice", PASSWORD, Some(&current))
        .await
        .expect(200);
    assert!(signed_in.body["token"].is_string());
    // The same code again, as someone who saw it would send it: refused like a wrong one.
    let replayed = berth
        .login("alice", PASSWORD, Some(&current))
        .await
        .expect_error(401, "UNAUTHORIZED");
    assert!(replayed.body.get("token").is_none());
    assert_eq!(
        replayed.message(),
        berth
            .login("alice", "not the password", None)
            .await
            .expect_error(401, "UNAUTHORIZED")
            .message(),
        "nothing says the code was right once"
    );
    // The code that turned two-factor on cannot sign in either.
    berth
        .login("alice", PASSWORD, Some(&previous))
        .await
        .expect_error(401, "UNAUTHORIZED");

    // Once a newer code is used, an older one still inside the window is refused.
    berth
        .login("alice", PASSWORD, Some(&next))
        .await
        .expect(200);
    berth
        .login("alice", PASSWORD, Some(&current))
        .await
        .expect_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn api_tokens_and_registry_tokens_are_not_interchangeable() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let registry_token = berth
        .with(basic("admin", ADMIN_PASSWORD))
        .get("/token?service=berth&scope=repository:admin/app:pull")
        .await
        .expect(200)
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Each works where it belongs.
    admin.get("/api/v1/users").await.expect(200);
    let registry = berth.with(Credentials::Bearer(registry_token.clone()));
    assert_eq!(registry.get("/v2/").await.status, 200);

    // And nowhere else.
    registry
        .get("/api/v1/users")
        .await
        .expect_error(401, "UNAUTHORIZED");
    let on_registry = admin.get("/v2/").await;
    assert_eq!(on_registry.status, 401, "{}", on_registry.text);
    assert_eq!(admin.pull_manifest("admin/app", "latest").await, 401);
}

#[tokio::test]
async fn an_api_token_follows_its_account() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let bob = berth.user("bob").await;
    bob.get("/api/v1/users").await.expect_error(403, "DENIED");

    admin
        .patch("/api/v1/users/bob", json!({ "is_admin": true }))
        .await
        .expect(200);
    // The same token, issued before the change: the account is read on every request.
    bob.get("/api/v1/users").await.expect(200);
    admin
        .patch("/api/v1/users/bob", json!({ "is_admin": false }))
        .await
        .expect(200);
    bob.get("/api/v1/users").await.expect_error(403, "DENIED");
}

#[tokio::test]
async fn an_access_token_signs_in_with_its_own_limits() {
    let berth = Berth::start().await;
    let bob = berth.user("bob").await;
    let created = bob
        .post(
            "/api/v1/access-tokens",
            json!({ "token_label": "ci", "scopes": ["repo:read"] }),
        )
        .await
        .expect(201);
    let secret = created.body["token"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_i64().unwrap();

    let via_login = berth.login("bob", &secret, None).await.expect(200);
    let tokened = berth.with(Credentials::Bearer(
        via_login.body["token"].as_str().unwrap().to_owned(),
    ));
    tokened.get("/api/v1/users/bob").await.expect(200);
    // A token cannot mint more credentials, however it signed in.
    tokened
        .post(
            "/api/v1/access-tokens",
            json!({ "token_label": "more", "scopes": ["repo:admin"] }),
        )
        .await
        .expect_error(403, "DENIED");

    bob.delete(&format!("/api/v1/access-tokens/{id}"))
        .await
        .expect(204);
    // The API token from it ends with it.
    tokened
        .get("/api/v1/users/bob")
        .await
        .expect_error(401, "UNAUTHORIZED");
}
