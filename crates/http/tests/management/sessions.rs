//! A password change ends what was signed in with the old password — other browsers' web UI
//! sessions, API tokens, remembered Basic credentials — while the browser that made the
//! change stays signed in and sign-ins with an access token go on.

use crate::browser::{get_page, post_signed_in_form, sign_in};
use crate::support::{basic, Berth, Credentials, PASSWORD};
use serde_json::json;

const NEW_PASSWORD: &str = "a brand new password";

#[tokio::test]
async fn a_password_change_signs_out_every_other_session_but_not_the_changers_browser() {
    // The server's clock stands still: every sign-in here happens in the second of the
    // change, which whole-second timestamps once let through.
    let berth = Berth::start_with_manual_clock().await;
    let api = berth.user("bob").await;
    let laptop = sign_in(&berth, "bob", PASSWORD).await;
    let phone = sign_in(&berth, "bob", PASSWORD).await;
    let secret = api
        .new_access_token(json!({ "token_label": "ci", "scopes": ["repo:write"] }))
        .await;
    let via_access_token = berth.login("bob", &secret, None).await.expect(200);
    let tokened = berth.with(Credentials::Bearer(
        via_access_token.body["token"].as_str().unwrap().to_owned(),
    ));
    let remembered = berth.with(basic("bob", PASSWORD));
    for cookies in [&laptop, &phone] {
        let page = get_page(&berth, "/settings", cookies).await.expect(200);
        assert!(page.text.contains("Signed in as <strong>bob</strong>"));
    }
    api.get("/api/v1/users/bob").await.expect(200);
    tokened.get("/api/v1/users/bob").await.expect(200);
    remembered.get("/api/v1/users/bob").await.expect(200);

    let fields = [
        ("current", PASSWORD),
        ("new", NEW_PASSWORD),
        ("repeat", NEW_PASSWORD),
    ];
    let changed = post_signed_in_form(&berth, &laptop, "/settings", "/settings/password", &fields)
        .await
        .expect(303);
    assert_eq!(changed.location(), "/settings#password");
    let session = changed
        .set_cookie("berth_session")
        .expect("the changing browser gets a new session");
    assert!(
        session.contains("HttpOnly") && !session.contains("Max-Age=0"),
        "{session}"
    );

    // The laptop goes on, with the new session, and is told what happened.
    let laptop = changed.cookies();
    let page = get_page(&berth, "/settings", &laptop).await.expect(200);
    assert!(page.text.contains("Signed in as <strong>bob</strong>"));
    assert!(
        page.text.contains("Your password is changed."),
        "{}",
        page.text
    );
    get_page(&berth, "/settings", &laptop).await.expect(200);

    // The phone is signed out at its next page load: sent to sign in, its cookie cleared.
    let page = get_page(&berth, "/settings", &phone).await.expect(303);
    assert_eq!(page.location(), "/login?next=%2Fsettings");
    let cleared = page
        .set_cookie("berth_session")
        .expect("the cookie cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let home = get_page(&berth, "/", &phone).await.expect(200);
    assert!(!home.text.contains("Signed in as"), "{}", home.text);

    // The API token from the old password and the remembered Basic password stop working;
    // the sign-in with an access token goes on.
    api.get("/api/v1/users/bob")
        .await
        .expect_error(401, "UNAUTHORIZED");
    remembered
        .get("/api/v1/users/bob")
        .await
        .expect_error(401, "UNAUTHORIZED");
    tokened.get("/api/v1/users/bob").await.expect(200);
    berth
        .with(basic("bob", NEW_PASSWORD))
        .get("/api/v1/users/bob")
        .await
        .expect(200);
    let phone = sign_in(&berth, "bob", NEW_PASSWORD).await;
    get_page(&berth, "/settings", &phone).await.expect(200);
}

#[tokio::test]
async fn changing_ones_password_through_the_api_ends_the_api_token_that_did_it() {
    let berth = Berth::start_with_manual_clock().await;
    let bob = berth.user("bob").await;
    bob.patch("/api/v1/users/bob", json!({ "password": NEW_PASSWORD }))
        .await
        .expect(200);
    bob.get("/api/v1/users/bob")
        .await
        .expect_error(401, "UNAUTHORIZED");
    berth
        .session("bob", NEW_PASSWORD)
        .await
        .get("/api/v1/users/bob")
        .await
        .expect(200);
}
