//! Sign-ins end when they should, as a user sees it over HTTP: signing out in the browser,
//! registry tokens after a password change, refresh tokens running out, accounts disabled,
//! enabled and deleted (API and admin UI), and two-factor recovery codes.

use crate::browser::{get_page, post_form, post_signed_in_form, sign_in};
use crate::support::{basic, Berth, ADMIN_PASSWORD, PASSWORD};
use berth_core::clock::Clock as _;
use berth_core::identity::totp::totp_code;
use serde_json::{json, Value};
use std::time::Duration;

/// `GET /token` with Basic credentials: a registry bearer token.
async fn registry_token(berth: &Berth, name: &str, secret: &str) -> String {
    let answer = reqwest::Client::new()
        .get(berth.url("/token?service=berth&scope=repository:bob/app:pull"))
        .basic_auth(name, Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// `POST /token` with `fields`: the status and the answer.
async fn oauth(berth: &Berth, fields: &[(&str, &str)]) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .post(berth.url("/token"))
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// A refresh token from the OAuth2 password grant.
async fn refresh_token(berth: &Berth, name: &str, secret: &str) -> String {
    let (status, body) = oauth(
        berth,
        &[
            ("grant_type", "password"),
            ("username", name),
            ("password", secret),
            ("service", "berth"),
            ("client_id", "tests"),
            ("access_type", "offline"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["refresh_token"].as_str().unwrap().to_owned()
}

async fn refresh(berth: &Berth, token: &str) -> u16 {
    let fields = [
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("service", "berth"),
        ("client_id", "tests"),
    ];
    oauth(berth, &fields).await.0
}

/// The status of `GET /v2/` with a bearer token.
async fn registry_with(berth: &Berth, token: &str) -> u16 {
    reqwest::Client::new()
        .get(berth.url("/v2/"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn signing_out_ends_the_session_even_for_a_copy_of_the_cookie() {
    let berth = Berth::start().await;
    berth.user("bob").await;
    let browser = sign_in(&berth, "bob", PASSWORD).await;
    let other = sign_in(&berth, "bob", PASSWORD).await;
    let page = get_page(&berth, "/settings", &browser).await.expect(200);
    assert!(page.text.contains("Signed in as <strong>bob</strong>"));

    let out = post_signed_in_form(&berth, &browser, "/logout", "/logout", &[])
        .await
        .expect(303);
    let cleared = out.set_cookie("berth_session").expect("cookie cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    // Someone who kept the old cookie (a copy, a browser that ignored the clearing) is
    // signed out: sent to sign in.
    let replayed = get_page(&berth, "/settings", &browser).await.expect(303);
    assert_eq!(replayed.location(), "/login?next=%2Fsettings");
    // Bob's other browser is still signed in.
    get_page(&berth, "/settings", &other).await.expect(200);
}

#[tokio::test]
async fn a_password_change_ends_registry_tokens_and_refresh_tokens_at_once() {
    let berth = Berth::start_with_manual_clock().await;
    let bob = berth.user("bob").await;
    let bearer = registry_token(&berth, "bob", PASSWORD).await;
    let refresh_before = refresh_token(&berth, "bob", PASSWORD).await;
    assert_eq!(registry_with(&berth, &bearer).await, 200);
    assert_eq!(refresh(&berth, &refresh_before).await, 200);

    bob.patch("/api/v1/users/bob", json!({ "password": "a new password" }))
        .await
        .expect(200);
    assert_eq!(registry_with(&berth, &bearer).await, 401);
    assert_eq!(refresh(&berth, &refresh_before).await, 401);
    let bearer = registry_token(&berth, "bob", "a new password").await;
    assert_eq!(registry_with(&berth, &bearer).await, 200);
}

#[tokio::test]
async fn refresh_tokens_expire_after_ninety_days_by_default() {
    let berth = Berth::start_with_manual_clock().await;
    berth.user("bob").await;
    let token = refresh_token(&berth, "bob", PASSWORD).await;
    berth.clock().advance(Duration::from_secs(89 * 86400));
    assert_eq!(refresh(&berth, &token).await, 200);
    berth.clock().advance(Duration::from_secs(86400));
    assert_eq!(refresh(&berth, &token).await, 401);
}

#[tokio::test]
async fn a_disabled_account_is_signed_out_everywhere_at_its_next_request() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let bob = berth.user("bob").await;
    let secret = bob
        .new_access_token(json!({ "token_label": "ci", "scopes": ["repo:write"] }))
        .await;
    let browser = sign_in(&berth, "bob", PASSWORD).await;
    let bearer = registry_token(&berth, "bob", PASSWORD).await;
    let token_bearer = registry_token(&berth, "bob", &secret).await;
    let refresh_before = refresh_token(&berth, "bob", PASSWORD).await;
    let remembered = berth.with(basic("bob", PASSWORD));
    let tokened = berth.with(basic("bob", &secret));
    remembered.get("/api/v1/users/bob").await.expect(200);
    tokened.get("/api/v1/users/bob").await.expect(200);

    let disabled = admin
        .patch("/api/v1/users/bob", json!({ "disabled": true }))
        .await
        .expect(200);
    assert_eq!(disabled.body["disabled"], true);

    bob.get("/api/v1/users/bob")
        .await
        .expect_error(401, "UNAUTHORIZED");
    remembered
        .get("/api/v1/users/bob")
        .await
        .expect_error(401, "UNAUTHORIZED");
    tokened
        .get("/api/v1/users/bob")
        .await
        .expect_error(401, "UNAUTHORIZED");
    berth
        .login("bob", PASSWORD, None)
        .await
        .expect_error(401, "UNAUTHORIZED");
    assert_eq!(registry_with(&berth, &bearer).await, 401);
    assert_eq!(registry_with(&berth, &token_bearer).await, 401);
    assert_eq!(refresh(&berth, &refresh_before).await, 401);
    get_page(&berth, "/settings", &browser).await.expect(303);
    let refused = post_form(
        &berth,
        "/login",
        &[("username", "bob"), ("password", PASSWORD)],
    )
    .await
    .expect(400);
    assert!(refused.text.contains("Incorrect username or password."));

    // Site admins see it; bob cannot undo it; enabling brings the password back.
    let listed = admin.get("/api/v1/users").await.expect(200);
    let row = listed.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "bob")
        .unwrap()
        .clone();
    assert_eq!(row["disabled"], true);
    admin
        .patch("/api/v1/users/bob", json!({ "disabled": false }))
        .await
        .expect(200);
    remembered.get("/api/v1/users/bob").await.expect(200);
    tokened.get("/api/v1/users/bob").await.expect(200);
    assert_eq!(
        registry_with(&berth, &bearer).await,
        401,
        "not brought back"
    );
    let bob = berth.session("bob", PASSWORD).await;
    bob.patch("/api/v1/users/bob", json!({ "disabled": true }))
        .await
        .expect_error(403, "DENIED");
    let audit = admin
        .get("/api/v1/auditlogs?account=bob&limit=100")
        .await
        .expect(200);
    let actions: Vec<&str> = audit.body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry["action"].as_str())
        .collect();
    assert!(actions.contains(&"user.disable"), "{}", audit.text);
    assert!(actions.contains(&"user.enable"), "{}", audit.text);
}

#[tokio::test]
async fn site_admins_disable_enable_and_delete_accounts_in_the_admin_pages() {
    let berth = Berth::start().await;
    let bob = berth.user("bob").await;
    let bobs_browser = sign_in(&berth, "bob", PASSWORD).await;
    let admin = sign_in(&berth, "admin", ADMIN_PASSWORD).await;
    let page = get_page(&berth, "/admin/users", &admin).await.expect(200);
    assert!(page.text.contains("Disable bob"), "{}", page.text);

    let fields = [("status", "disable")];
    let done = post_signed_in_form(
        &berth,
        &admin,
        "/admin/users",
        "/admin/users/bob/status",
        &fields,
    )
    .await
    .expect(303);
    let page = get_page(&berth, "/admin/users", &done.cookies_with(&admin))
        .await
        .expect(200);
    assert!(page.text.contains("bob is disabled"), "{}", page.text);
    assert!(page.text.contains("Enable bob"), "{}", page.text);
    get_page(&berth, "/settings", &bobs_browser)
        .await
        .expect(303);
    bob.get("/api/v1/users/bob")
        .await
        .expect_error(401, "UNAUTHORIZED");

    let fields = [("status", "enable")];
    post_signed_in_form(
        &berth,
        &admin,
        "/admin/users",
        "/admin/users/bob/status",
        &fields,
    )
    .await
    .expect(303);
    let pusher = berth.with(basic("bob", PASSWORD));
    assert_eq!(pusher.push_image("bob/app", "v1").await, 201);

    // Deleting asks for the name again, and keeps an account that owns repositories
    // unless they go too.
    let wrong = [("confirm", "bo")];
    let refused = post_signed_in_form(
        &berth,
        &admin,
        "/admin/users",
        "/admin/users/bob/delete",
        &wrong,
    )
    .await
    .expect(303);
    let page = get_page(&berth, "/admin/users", &refused.cookies_with(&admin))
        .await
        .expect(200);
    assert!(page.text.contains("Type bob to confirm"), "{}", page.text);
    let keep = [("confirm", "bob")];
    let refused = post_signed_in_form(
        &berth,
        &admin,
        "/admin/users",
        "/admin/users/bob/delete",
        &keep,
    )
    .await
    .expect(303);
    let page = get_page(&berth, "/admin/users", &refused.cookies_with(&admin))
        .await
        .expect(200);
    assert!(page.text.contains("bob/app"), "{}", page.text);
    let with_repositories = [("confirm", "bob"), ("force", "on")];
    let deleted = post_signed_in_form(
        &berth,
        &admin,
        "/admin/users",
        "/admin/users/bob/delete",
        &with_repositories,
    )
    .await
    .expect(303);
    let page = get_page(&berth, "/admin/users", &deleted.cookies_with(&admin))
        .await
        .expect(200);
    assert!(page.text.contains("User bob deleted"), "{}", page.text);
    assert!(!page.text.contains("Disable bob"), "{}", page.text);
    berth
        .admin()
        .await
        .get("/api/v1/repositories/bob/app")
        .await
        .expect(404);
}

#[tokio::test]
async fn deleting_an_account_through_the_api_follows_the_rule_for_its_namespace() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let bob = berth.user("bob").await;
    let pusher = berth.with(basic("bob", PASSWORD));
    assert_eq!(pusher.push_image("bob/app", "v1").await, 201);
    bob.post("/api/v1/orgs", json!({ "orgname": "acme" }))
        .await
        .expect(201);

    bob.delete("/api/v1/users/admin")
        .await
        .expect_error(403, "DENIED");
    let last_owner = admin
        .delete("/api/v1/users/bob?force=true")
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(last_owner.message().contains("acme"), "{}", last_owner.text);
    berth.user("carol").await;
    bob.post(
        "/api/v1/orgs/acme/groups/owners/members",
        json!({ "member": "carol" }),
    )
    .await
    .expect(201);
    let owns = admin
        .delete("/api/v1/users/bob")
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(owns.message().contains("bob/app"), "{}", owns.text);
    admin
        .delete("/api/v1/users/bob?force=maybe")
        .await
        .expect_error(400, "BAD_REQUEST");

    admin
        .delete("/api/v1/users/bob?force=true")
        .await
        .expect(204);
    admin.get("/api/v1/users/bob").await.expect(404);
    admin.get("/api/v1/repositories/bob/app").await.expect(404);
    bob.get("/api/v1/users/bob")
        .await
        .expect_error(401, "UNAUTHORIZED");
    admin.delete("/api/v1/users/bob").await.expect(404);

    // The name is free again, and the new account inherits nothing.
    let bob = berth.user("bob").await;
    let listed = bob
        .get("/api/v1/namespaces/bob/repositories")
        .await
        .expect(200);
    assert_eq!(listed.body["count"], 0, "{}", listed.text);
}

#[tokio::test]
async fn recovery_codes_are_shown_once_and_sign_in_once_each() {
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
    let code = totp_code(&secret, berth.clock().now_unix(), 6).unwrap();
    let confirmed = alice
        .post("/api/v1/users/alice/2fa/confirm", json!({ "code": code }))
        .await
        .expect(200);
    assert_eq!(confirmed.body["has_2fa"], true);
    let codes: Vec<String> = confirmed.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);

    // In the API sign-in, in place of the app's code: once.
    berth
        .login("alice", PASSWORD, Some(&codes[0]))
        .await
        .expect(200);
    berth
        .login("alice", PASSWORD, Some(&codes[0]))
        .await
        .expect_error(401, "UNAUTHORIZED");

    // In the browser's second step.
    let step = post_form(
        &berth,
        "/login",
        &[("username", "alice"), ("password", PASSWORD)],
    )
    .await
    .expect(200);
    assert!(step.text.contains("recovery codes"), "{}", step.text);
    let fields = [
        ("username", "alice"),
        ("password", PASSWORD),
        ("otp", codes[1].as_str()),
    ];
    let signed_in = post_form(&berth, "/login", &fields).await.expect(303);
    let browser = signed_in.cookies();
    let page = get_page(&berth, "/settings", &browser).await.expect(200);
    assert!(
        page.text.contains("Recovery codes left: 8 of 10."),
        "{}",
        page.text
    );
    post_form(&berth, "/login", &fields).await.expect(400);

    // A new set from the settings page voids the old one and is shown once.
    let fresh = post_signed_in_form(
        &berth,
        &browser,
        "/settings",
        "/settings/two-factor/recovery-codes",
        &[],
    )
    .await
    .expect(200);
    let shown: Vec<&str> = fresh
        .text
        .split("<li><code>")
        .skip(1)
        .filter_map(|rest| rest.split("</code>").next())
        .collect();
    assert_eq!(shown.len(), 10, "{}", fresh.text);
    let again = get_page(&berth, "/settings", &browser).await.expect(200);
    assert!(!again.text.contains(shown[0]), "shown once");
    berth
        .login("alice", PASSWORD, Some(&codes[2]))
        .await
        .expect_error(401, "UNAUTHORIZED");
    berth
        .login("alice", PASSWORD, Some(shown[0]))
        .await
        .expect(200);

    // And through the API: the count, then a new set.
    let api = berth.session_with_code("alice", shown[1]).await;
    let counts = api
        .get("/api/v1/users/alice/2fa/recovery-codes")
        .await
        .expect(200);
    assert_eq!(
        (
            counts.body["unused"].as_u64(),
            counts.body["total"].as_u64()
        ),
        (Some(8), Some(10))
    );
    let regenerated = api
        .post("/api/v1/users/alice/2fa/recovery-codes", json!({}))
        .await
        .expect(200);
    assert_eq!(
        regenerated.body["recovery_codes"].as_array().unwrap().len(),
        10
    );
    berth
        .login("alice", PASSWORD, Some(shown[2]))
        .await
        .expect_error(401, "UNAUTHORIZED");
    berth
        .admin()
        .await
        .post("/api/v1/users/alice/2fa/recovery-codes", json!({}))
        .await
        .expect_error(403, "DENIED");
}
