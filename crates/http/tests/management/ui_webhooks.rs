//! The web UI's webhook forms over HTTP: what the `Webhooks` service refuses (a bad URL, an
//! unknown event kind or format, a reserved header, the 26th webhook of a target) comes back
//! as the form's error notice naming it, and nothing is created; the secret is on the
//! creation answer only; a puller cannot reach a repository's webhooks, a member who is not
//! an owner an organization's, a user the site's.

use crate::browser::{get_page, post_signed_in_form, sign_in};
use crate::support::{basic, Berth, Session, PASSWORD};
use serde_json::json;

const LIST: &str = "/r/alice/app/-/settings/webhooks";
const API_LIST: &str = "/api/v1/repositories/alice/app/-/webhooks";

/// Submits the creation form as alice's browser and reads the page it leads to, with the
/// notice the redirect carries.
async fn submit(berth: &Berth, cookies: &str, fields: &[(&str, &str)]) -> String {
    let answer = post_signed_in_form(berth, cookies, LIST, LIST, fields).await;
    if answer.status == 201 {
        return answer.text;
    }
    let answer = answer.expect(303);
    assert_eq!(answer.location(), format!("{LIST}#new-webhook"));
    let with_notice = format!("{cookies}; {}", answer.cookies());
    get_page(berth, LIST, &with_notice).await.expect(200).text
}

/// `alice/app`, public, so that refusals below are about its settings, not its visibility.
async fn public_repository(alice: &Session<'_>) {
    alice
        .post(
            "/api/v1/repositories",
            json!({ "namespace": "alice", "name": "app", "is_private": false }),
        )
        .await
        .expect(201);
}

#[tokio::test]
async fn refusals_are_named_in_the_notice_and_create_nothing() {
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    public_repository(&alice).await;
    assert_eq!(
        berth
            .with(basic("alice", PASSWORD))
            .push_image("alice/app", "1")
            .await,
        201
    );
    let cookies = sign_in(&berth, "alice", PASSWORD).await;
    for (fields, says) in [
        (
            vec![("url", "ftp://files.example/x"), ("events", "push")],
            "Not created: webhooks are sent over http or https",
        ),
        (
            vec![("url", "http://h/x"), ("events", "pull")],
            "Not created: unknown event kind &quot;pull&quot;",
        ),
        (
            vec![("url", "http://h/x"), ("events", "push"), ("format", "xml")],
            "Not created: unknown payload format &quot;xml&quot;",
        ),
        (
            vec![
                ("url", "http://h/x"),
                ("events", "push"),
                ("tags", "v* a/b"),
            ],
            "Not created: invalid tag pattern &quot;a/b&quot;",
        ),
        (
            vec![
                ("url", "http://h/x"),
                ("events", "push"),
                ("header_name", "webhook-id"),
                ("header_value", "x"),
            ],
            "Not created: the header webhook-id is set by Berth",
        ),
        (vec![("url", "http://h/x")], "Choose at least one event"),
    ] {
        let page = submit(&berth, &cookies, &fields).await;
        assert!(
            page.contains("notice error") && page.contains(says),
            "{fields:?} should say {says:?}:\n{page}"
        );
        assert!(page.contains("No webhooks yet."), "{page}");
    }
    assert_eq!(alice.get(API_LIST).await.expect(200).body["count"], 0);

    // The form creates one, with its secret on this answer only.
    let page = submit(
        &berth,
        &cookies,
        &[
            ("name", "deploy"),
            ("url", "http://h/deploy"),
            ("events", "push"),
        ],
    )
    .await;
    let start = page.find("whsec_").expect("the secret on the answer");
    let secret: String = page[start..]
        .chars()
        .take_while(|c| !matches!(c, '<' | '"'))
        .collect();
    let listed = get_page(&berth, LIST, &cookies).await.expect(200).text;
    assert!(listed.contains("http://h/deploy"), "{listed}");
    assert!(!listed.contains(&secret), "a secret is shown once");
    assert_eq!(alice.get(API_LIST).await.expect(200).body["count"], 1);

    // The 26th of a target is refused by the form as by the API.
    for n in 1..25 {
        alice
            .post(API_LIST, json!({ "hook_url": format!("http://h/{n}") }))
            .await
            .expect(201);
    }
    let page = submit(
        &berth,
        &cookies,
        &[("url", "http://h/26"), ("events", "push")],
    )
    .await;
    assert!(
        page.contains("Not created: alice/app has 25 webhooks already, the most it may have."),
        "{page}"
    );
    assert_eq!(alice.get(API_LIST).await.expect(200).body["count"], 25);
}

#[tokio::test]
async fn pullers_and_strangers_cannot_reach_a_repositorys_webhooks() {
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    berth.user("bob").await;
    public_repository(&alice).await;
    assert_eq!(
        berth
            .with(basic("alice", PASSWORD))
            .push_image("alice/app", "1")
            .await,
        201
    );
    let made = alice
        .post(
            API_LIST,
            json!({ "hook_url": "http://h/x", "name": "deploy" }),
        )
        .await
        .expect(201);
    let id = made.body["id"].as_str().unwrap().to_owned();

    // Bob gets for the webhooks what he gets for the repository's other settings.
    let bob = sign_in(&berth, "bob", PASSWORD).await;
    let settings = get_page(&berth, "/r/alice/app/-/settings", &bob).await;
    let webhooks = get_page(&berth, LIST, &bob).await;
    assert_eq!(settings.status, 403, "{}", settings.text);
    assert_eq!(webhooks.status, settings.status, "{}", webhooks.text);
    assert!(!webhooks.text.contains("http://h/x"));
    let page = get_page(&berth, &format!("/webhooks/{id}"), &bob).await;
    assert_eq!(page.status, 404, "someone else's webhook does not exist");
    // Bob's forms on it change nothing.
    let settings_page = "/settings";
    for action in ["ping", "disable", "delete"] {
        let answer = post_signed_in_form(
            &berth,
            &bob,
            settings_page,
            &format!("/webhooks/{id}/{action}"),
            &[("confirm", "deploy")],
        )
        .await;
        assert_eq!(answer.status, 404, "{action}: {}", answer.text);
    }
    let view = alice
        .get(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(200);
    assert_eq!(view.body["active"], true);
    let attempts = alice
        .get(&format!("/api/v1/webhooks/{id}/deliveries"))
        .await
        .expect(200);
    assert_eq!(attempts.body["count"], 0, "bob's ping was not sent");

    // Signed out, the page sends the visitor to sign in first.
    let anonymous = get_page(&berth, LIST, "").await.expect(303);
    assert!(
        anonymous.location().starts_with("/login?next="),
        "{}",
        anonymous.location()
    );

    // Alice redelivering a delivery that is not her webhook's finds nothing.
    let alice_browser = sign_in(&berth, "alice", PASSWORD).await;
    let answer = post_signed_in_form(
        &berth,
        &alice_browser,
        &format!("/webhooks/{id}"),
        &format!("/webhooks/{id}/deliveries/dl_missing/redeliver"),
        &[],
    )
    .await;
    assert_eq!(answer.status, 404, "{}", answer.text);
}

#[tokio::test]
async fn organization_owners_and_site_admins_manage_their_own_webhooks() {
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    berth.user("bob").await;
    alice
        .post("/api/v1/orgs", json!({ "orgname": "acme" }))
        .await
        .expect(201);
    alice
        .post("/api/v1/orgs/acme/groups", json!({ "name": "readers" }))
        .await
        .expect(201);
    alice
        .post(
            "/api/v1/orgs/acme/groups/readers/members",
            json!({ "member": "bob" }),
        )
        .await
        .expect(201);

    // An owner creates one on the organization's page; the organization's page links to it.
    let owner = sign_in(&berth, "alice", PASSWORD).await;
    let org_page = get_page(&berth, "/orgs/acme", &owner).await.expect(200);
    assert!(org_page.text.contains("href=\"/orgs/acme/webhooks\""));
    let list = "/orgs/acme/webhooks";
    let made = post_signed_in_form(
        &berth,
        &owner,
        list,
        list,
        &[
            ("url", "http://h/acme"),
            ("events", "push"),
            ("events", "repository"),
        ],
    )
    .await
    .expect(201);
    assert!(made.text.contains("whsec_"), "{}", made.text);
    let hooks = alice
        .get("/api/v1/namespaces/acme/webhooks")
        .await
        .expect(200);
    assert_eq!(hooks.body["count"], 1);
    assert_eq!(
        hooks.body["results"][0]["events"],
        json!(["push", "repository"])
    );

    // A member who is not an owner is refused the page and the form.
    let member = sign_in(&berth, "bob", PASSWORD).await;
    let refused = get_page(&berth, list, &member).await.expect(403);
    assert!(!refused.text.contains("http://h/acme"));
    let forged = post_signed_in_form(
        &berth,
        &member,
        "/settings",
        list,
        &[("url", "http://h/bob"), ("events", "push")],
    )
    .await
    .expect(303);
    let with_notice = format!("{member}; {}", forged.cookies());
    let notice = get_page(&berth, "/settings", &with_notice).await.text;
    assert!(
        notice.contains("You do not have permission to do that."),
        "{notice}"
    );
    assert_eq!(
        alice
            .get("/api/v1/namespaces/acme/webhooks")
            .await
            .expect(200)
            .body["count"],
        1
    );

    // Site-wide webhooks are for site admins only.
    get_page(&berth, "/admin/webhooks", &owner)
        .await
        .expect(403);
    let admin = sign_in(&berth, "admin", crate::support::ADMIN_PASSWORD).await;
    let site = post_signed_in_form(
        &berth,
        &admin,
        "/admin/webhooks",
        "/admin/webhooks",
        &[("url", "http://h/site"), ("events", "push")],
    )
    .await
    .expect(201);
    assert!(site.text.contains("Webhooks of the site"), "{}", site.text);
    assert!(site.text.contains("http://h/site"));
}
