//! Self-service sign-up in the web UI: a missing page with no links to it while it is off;
//! when on, a form that makes an account, signs it in and refuses with reasons.

use crate::browser::{browser, get_page, post_form, post_form_from};
use crate::support::{basic, Berth};
use reqwest::header::RETRY_AFTER;
use serde_json::json;

const NEW_PASSWORD: &str = "a long new password";

/// The sign-up form's fields.
fn signup<'a>(username: &'a str, password: &'a str, confirm: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("username", username),
        ("password", password),
        ("password_confirm", confirm),
    ]
}

async fn account_exists(berth: &Berth, name: &str) -> bool {
    let reply = berth
        .admin()
        .await
        .get(&format!("/api/v1/users/{name}"))
        .await;
    match reply.status {
        200 => true,
        404 => false,
        other => panic!("GET /api/v1/users/{name}: {other}: {}", reply.text),
    }
}

#[tokio::test]
async fn sign_up_is_a_missing_page_while_it_is_off() {
    let berth = Berth::start().await;
    let form = get_page(&berth, "/signup", "").await.expect(404);
    assert!(form.text.contains("Page not found"), "{}", form.text);
    let submitted = post_form(
        &berth,
        "/signup",
        &signup("newcomer", NEW_PASSWORD, NEW_PASSWORD),
    )
    .await
    .expect(404);
    assert!(submitted.set_cookie("berth_session").is_none());
    assert!(!account_exists(&berth, "newcomer").await);
    berth
        .login("newcomer", NEW_PASSWORD, None)
        .await
        .expect(401);

    for path in ["/login", "/"] {
        let page = get_page(&berth, path, "").await.expect(200);
        assert!(
            !page.text.contains("/signup") && !page.text.contains("Sign up"),
            "{path} offers a sign-up that is off:\n{}",
            page.text
        );
        assert!(page.text.contains("href=\"/login\""), "{path}");
    }
}

#[tokio::test]
async fn a_visitor_signs_up_and_is_signed_in_as_an_ordinary_user() {
    let berth = Berth::start_with_signup(true).await;

    // Offered where a signed-out visitor looks: the header and the sign-in page.
    let home = get_page(&berth, "/", "").await.expect(200);
    assert!(
        home.text.contains("<a href=\"/signup\">Sign up</a>"),
        "{}",
        home.text
    );
    let sign_in = get_page(&berth, "/login", "").await.expect(200);
    assert!(
        sign_in
            .text
            .contains("No account? <a href=\"/signup\">Create one</a>"),
        "{}",
        sign_in.text
    );
    let sign_in = get_page(&berth, "/login?next=/search", "").await;
    assert!(sign_in.text.contains("href=\"/signup?next=%2Fsearch\""));

    let form = get_page(&berth, "/signup", "").await.expect(200);
    for expected in [
        "<label for=\"username\">Username</label>",
        "<label for=\"password\">Password</label>",
        "<label for=\"password-confirm\">Confirm password</label>",
        "id=\"username\" name=\"username\" value=\"\" autocomplete=\"username\"",
        "id=\"password\" name=\"password\" autocomplete=\"new-password\"",
        "id=\"password-confirm\" name=\"password_confirm\" autocomplete=\"new-password\"",
        "name=\"next\" value=\"/settings\"",
        "Create account",
    ] {
        assert!(form.text.contains(expected), "{expected}:\n{}", form.text);
    }

    let created = post_form(
        &berth,
        "/signup",
        &signup("newcomer", NEW_PASSWORD, NEW_PASSWORD),
    )
    .await
    .expect(303);
    assert_eq!(created.location(), "/settings");
    let session = created
        .set_cookie("berth_session")
        .expect("signed in at once");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    let settings = get_page(&berth, "/settings", &created.cookies())
        .await
        .expect(200);
    for expected in [
        "Welcome to Berth, newcomer. Your account is ready.",
        "Signed in as <strong>newcomer</strong>",
        "Account settings",
    ] {
        assert!(
            settings.text.contains(expected),
            "{expected}:\n{}",
            settings.text
        );
    }
    let again = get_page(&berth, "/signup", &created.cookies())
        .await
        .expect(303);
    assert_eq!(again.location(), "/settings", "already signed in");

    // The same password works for registry clients and the API; the account is no admin.
    let registry = browser()
        .get(berth.url("/v2/"))
        .basic_auth("newcomer", Some(NEW_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(registry.status(), 200);
    let newcomer = berth.with(basic("newcomer", NEW_PASSWORD));
    assert_eq!(newcomer.push_image("newcomer/app", "1.0").await, 201);
    newcomer
        .get("/api/v1/users")
        .await
        .expect_error(403, "DENIED");
    let admin = berth.admin().await;
    let account = admin.get("/api/v1/users/newcomer").await.expect(200);
    assert_eq!(account.body["is_admin"], false);
    let logs = admin
        .get("/api/v1/auditlogs?account=newcomer")
        .await
        .expect(200);
    let signed_up = logs.body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "account.signup")
        .expect("the sign-up is audited");
    assert_eq!(signed_up["account"], "newcomer");
    assert_eq!(signed_up["address"], "127.0.0.1");

    // `next` leads back to where the visitor was, if it is a page of ours.
    let mut fields = signup("second", NEW_PASSWORD, NEW_PASSWORD);
    fields.push(("next", "/search?q=app"));
    let created = post_form(&berth, "/signup", &fields).await.expect(303);
    assert_eq!(created.location(), "/search?q=app");
    let mut fields = signup("third", NEW_PASSWORD, NEW_PASSWORD);
    fields.push(("next", "//evil.example/"));
    let created = post_form(&berth, "/signup", &fields).await.expect(303);
    assert_eq!(created.location(), "/settings");
}

#[tokio::test]
async fn refused_sign_ups_show_the_form_again_with_the_reason() {
    let berth = Berth::start_with_signup(true).await;
    berth
        .admin()
        .await
        .post("/api/v1/orgs", json!({ "orgname": "acme" }))
        .await
        .expect(201);

    let cases: [(&str, &str, &str, u16, &str); 8] = [
        (
            "newcomer",
            NEW_PASSWORD,
            "another password",
            400,
            "The passwords do not match",
        ),
        (
            "newcomer",
            "short",
            "short",
            400,
            "A password needs at least 8 characters.",
        ),
        (
            "admin",
            NEW_PASSWORD,
            NEW_PASSWORD,
            409,
            "The username admin is taken. Choose another one.",
        ),
        (
            "acme",
            NEW_PASSWORD,
            NEW_PASSWORD,
            409,
            "The username acme is taken.",
        ),
        (
            "library",
            NEW_PASSWORD,
            NEW_PASSWORD,
            409,
            "The username library is taken.",
        ),
        ("cli", NEW_PASSWORD, NEW_PASSWORD, 400, "is reserved"),
        (
            "Big_Name",
            NEW_PASSWORD,
            NEW_PASSWORD,
            400,
            "lowercase letters and digits",
        ),
        ("", NEW_PASSWORD, NEW_PASSWORD, 400, "Choose a username"),
    ];
    for (username, password, confirm, status, message) in cases {
        let page = post_form(&berth, "/signup", &signup(username, password, confirm))
            .await
            .expect(status);
        assert!(
            page.text.contains("id=\"sign-up-error\"") && page.text.contains(message),
            "{username}: {message}:\n{}",
            page.text
        );
        assert!(
            page.text
                .contains(&format!("name=\"username\" value=\"{username}\"")),
            "{username} stays typed in"
        );
        assert!(
            !page.text.contains(&format!("value=\"{password}\"")),
            "passwords are never sent back"
        );
        assert!(page.set_cookie("berth_session").is_none(), "{username}");
    }
    assert!(!account_exists(&berth, "newcomer").await);
    let admin = berth.admin().await;
    assert_eq!(
        admin.get("/api/v1/users").await.expect(200).body["count"],
        1,
        "nothing was created"
    );

    // Typed text is shown as text.
    let page = post_form(
        &berth,
        "/signup",
        &signup("<b>bold</b>", NEW_PASSWORD, NEW_PASSWORD),
    )
    .await
    .expect(400);
    assert!(page.text.contains("value=\"&lt;b&gt;bold&lt;/b&gt;\""));
    assert!(!page.text.contains("<b>bold</b>"));

    // A form posted from another site is refused, like every signed-out form.
    let forged = post_form_from(
        &berth,
        "http://evil.example",
        "/signup",
        &signup("newcomer", NEW_PASSWORD, NEW_PASSWORD),
    )
    .await
    .expect(403);
    assert!(forged.text.contains("Form refused"), "{}", forged.text);
    assert!(!account_exists(&berth, "newcomer").await);
}

#[tokio::test]
async fn one_address_creates_only_a_few_accounts() {
    let berth = Berth::start_with_signup(true).await;
    for n in 0..berth_core::identity::SIGNUPS_PER_ADDRESS {
        let name = format!("member{n}");
        post_form(
            &berth,
            "/signup",
            &signup(&name, NEW_PASSWORD, NEW_PASSWORD),
        )
        .await
        .expect(303);
    }
    let refused = post_form(
        &berth,
        "/signup",
        &signup("scripted", NEW_PASSWORD, NEW_PASSWORD),
    )
    .await
    .expect(429);
    assert!(
        refused.text.contains(
            "Too many accounts were created from your network recently. Try again in 60 minutes."
        ),
        "{}",
        refused.text
    );
    assert!(refused.text.contains("value=\"scripted\""));
    let retry_after: u64 = refused.headers[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&retry_after), "{retry_after}");
    assert!(!account_exists(&berth, "scripted").await);
    // The accounts already made work.
    berth.session("member0", NEW_PASSWORD).await;
}
