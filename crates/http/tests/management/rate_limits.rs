//! Pull rate limits end to end: the headers on manifest GET and HEAD and how they count
//! down, the 429 with its message and `Retry-After`, what is free (HEAD, blobs, the
//! platforms of an index just pulled), the tiers, plans set through the API, site admins'
//! exemption, and anonymous clients keyed per address with IPv6 grouped per /64.

use crate::support::{basic, Berth, PASSWORD};
use berth_core::ratelimit::{Rate, Tiers};
use reqwest::Method;
use serde_json::json;

fn rate(raw: &str) -> Option<Rate> {
    Some(Rate::parse(raw).unwrap())
}

/// A server with these tiers, believing loopback's `X-Forwarded-For` so a test can speak
/// for many client addresses.
async fn limited(tiers: Tiers) -> Berth {
    Berth::start_with(|options| {
        options.settings.rate_limit = tiers;
        options.settings.forwarding.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await
}

/// What a manifest request answered: status, the three headers, `Retry-After`, the body.
#[derive(Debug)]
struct Answer {
    status: u16,
    limit: Option<String>,
    remaining: Option<String>,
    source: Option<String>,
    retry_after: Option<String>,
    body: String,
}

async fn request(
    berth: &Berth,
    method: Method,
    path: &str,
    client: Option<&str>,
    credentials: Option<(&str, &str)>,
) -> Answer {
    let mut request = reqwest::Client::new()
        .request(method, berth.url(path))
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
        );
    if let Some(client) = client {
        request = request.header("x-forwarded-for", client);
    }
    if let Some((name, secret)) = credentials {
        request = request.basic_auth(name, Some(secret));
    }
    let response = request.send().await.expect("request");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Answer {
        status: response.status().as_u16(),
        limit: header("ratelimit-limit"),
        remaining: header("ratelimit-remaining"),
        source: header("docker-ratelimit-source"),
        retry_after: header("retry-after"),
        body: response.text().await.unwrap(),
    }
}

async fn pull(berth: &Berth, path: &str, client: Option<&str>) -> Answer {
    request(berth, Method::GET, path, client, None).await
}

async fn head(berth: &Berth, path: &str, client: Option<&str>) -> Answer {
    request(berth, Method::HEAD, path, client, None).await
}

fn remaining(answer: &Answer) -> &str {
    answer.remaining.as_deref().unwrap_or("(no header)")
}

#[tokio::test]
async fn manifest_pulls_count_down_and_stop_with_a_429_that_says_when() {
    let berth = limited(Tiers {
        anonymous: rate("3;w=3600"),
        ..Tiers::default()
    })
    .await;
    let admin = berth.with(basic("admin", crate::support::ADMIN_PASSWORD));
    assert_eq!(admin.push_image("library/app", "v1").await, 201);
    let manifest = "/v2/library/app/manifests/v1";

    let first = pull(&berth, manifest, None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.limit.as_deref(), Some("3;w=3600"));
    assert_eq!(remaining(&first), "2;w=3600");
    assert_eq!(first.source.as_deref(), Some("127.0.0.1"));

    // HEAD carries the headers and counts nothing; neither do blob pulls.
    let checked = head(&berth, manifest, None).await;
    assert_eq!(checked.status, 200);
    assert_eq!(checked.limit.as_deref(), Some("3;w=3600"));
    assert_eq!(remaining(&checked), "2;w=3600");
    let body: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    let layer = body["layers"][0]["digest"].as_str().unwrap();
    for _ in 0..5 {
        let blob = pull(&berth, &format!("/v2/library/app/blobs/{layer}"), None).await;
        assert_eq!(blob.status, 200);
        assert_eq!(blob.limit, None, "blob answers carry no rate-limit headers");
    }
    assert_eq!(remaining(&head(&berth, manifest, None).await), "2;w=3600");

    assert_eq!(remaining(&pull(&berth, manifest, None).await), "1;w=3600");
    assert_eq!(remaining(&pull(&berth, manifest, None).await), "0;w=3600");
    let refused = pull(&berth, manifest, None).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    let error: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(error["errors"][0]["code"], "TOOMANYREQUESTS");
    let message = error["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("pull rate limit of 3;w=3600")
            && message.contains("127.0.0.1")
            && message.contains("next pull is allowed in 1200 s"),
        "{message}"
    );
    // One pull comes back every window / pulls: 20 minutes.
    assert_eq!(refused.retry_after.as_deref(), Some("1200"));
    assert_eq!(refused.limit.as_deref(), Some("3;w=3600"));
    assert_eq!(remaining(&refused), "0;w=3600");
    // A refusal spends nothing, and HEAD still answers.
    let after = head(&berth, manifest, None).await;
    assert_eq!((after.status, remaining(&after)), (200, "0;w=3600"));
    // Another client has its own allowance; a missing manifest is not a pull.
    assert_eq!(
        remaining(&pull(&berth, manifest, Some("192.0.2.9")).await),
        "2;w=3600"
    );
    let missing = pull(&berth, "/v2/library/app/manifests/nope", Some("192.0.2.10")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        remaining(&head(&berth, manifest, Some("192.0.2.10")).await),
        "3;w=3600"
    );

    // `/metrics` counts the decisions by tier: four counted pulls let through (HEADs,
    // blobs and the 404 are not pulls), one refused.
    let metrics = reqwest::Client::new()
        .get(berth.url("/metrics"))
        .basic_auth("admin", Some(crate::support::ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "berth_pull_limit_allowed_total{tier=\"anonymous\"} 4\n",
        "berth_pull_limit_refused_total{tier=\"anonymous\"} 1\n",
        "berth_pull_limit_allowed_total{tier=\"authenticated\"} 0\n",
        "berth_pull_limit_refused_total{tier=\"plan\"} 0\n",
    ] {
        assert!(metrics.contains(line), "{line:?} missing from:\n{metrics}");
    }
}

#[tokio::test]
async fn ipv6_clients_share_an_allowance_per_slash_64() {
    let berth = limited(Tiers {
        anonymous: rate("10;w=600"),
        ..Tiers::default()
    })
    .await;
    let admin = berth.with(basic("admin", crate::support::ADMIN_PASSWORD));
    assert_eq!(admin.push_image("library/app", "v1").await, 201);
    let manifest = "/v2/library/app/manifests/v1";
    let one = pull(&berth, manifest, Some("2001:db8:1:2::1")).await;
    assert_eq!(one.source.as_deref(), Some("2001:db8:1:2::/64"));
    assert_eq!(remaining(&one), "9;w=600");
    let same_net = pull(&berth, manifest, Some("2001:db8:1:2:ffff::7")).await;
    assert_eq!(remaining(&same_net), "8;w=600");
    let other_net = pull(&berth, manifest, Some("2001:db8:1:3::1")).await;
    assert_eq!(other_net.source.as_deref(), Some("2001:db8:1:3::/64"));
    assert_eq!(remaining(&other_net), "9;w=600");
}

#[tokio::test]
async fn the_platforms_of_an_index_just_pulled_are_free() {
    let berth = limited(Tiers {
        anonymous: rate("5;w=3600"),
        ..Tiers::default()
    })
    .await;
    let admin = berth.with(basic("admin", crate::support::ADMIN_PASSWORD));
    let amd = admin
        .push_platform_image("library/multi", None, ("linux", "amd64"), &[b"amd"])
        .await;
    let arm = admin
        .push_platform_image("library/multi", None, ("linux", "arm64"), &[b"arm"])
        .await;
    admin
        .push_index("library/multi", "v1", &[amd.clone(), arm.clone()])
        .await;
    let index = pull(&berth, "/v2/library/multi/manifests/v1", None).await;
    assert_eq!((index.status, remaining(&index)), (200, "4;w=3600"));
    for child in [&amd, &arm, &amd] {
        let path = format!(
            "/v2/library/multi/manifests/{}",
            child["digest"].as_str().unwrap()
        );
        let platform = pull(&berth, &path, None).await;
        assert_eq!((platform.status, remaining(&platform)), (200, "4;w=3600"));
    }
    // The same platform manifest pulled on its own, by a client that did not pay for the
    // index, counts.
    let path = format!(
        "/v2/library/multi/manifests/{}",
        amd["digest"].as_str().unwrap()
    );
    assert_eq!(
        remaining(&pull(&berth, &path, Some("192.0.2.1")).await),
        "4;w=3600"
    );
    assert_eq!(
        remaining(&pull(&berth, &path, Some("192.0.2.1")).await),
        "3;w=3600"
    );
}

#[tokio::test]
async fn tiers_plans_organizations_and_site_admins() {
    let berth = limited(Tiers {
        anonymous: rate("2;w=3600"),
        authenticated: rate("3;w=3600"),
        organization: rate("4;w=3600"),
    })
    .await;
    let admin_session = berth.admin().await;
    let admin = berth.with(basic("admin", crate::support::ADMIN_PASSWORD));
    assert_eq!(admin.push_image("library/app", "v1").await, 201);
    let manifest = "/v2/library/app/manifests/v1";
    berth.user("alice").await;
    let bob = berth.user("bob").await;
    bob.post("/api/v1/orgs", json!({ "orgname": "acme" }))
        .await
        .expect(201);
    let signed_in = |name: &'static str| (name, PASSWORD);

    // Site admins are not counted: no headers at all.
    let by_admin = request(
        &berth,
        Method::GET,
        manifest,
        None,
        Some(("admin", crate::support::ADMIN_PASSWORD)),
    )
    .await;
    assert_eq!((by_admin.status, by_admin.limit), (200, None));

    // A user without organizations: the authenticated tier, keyed on the account.
    let by_alice = request(
        &berth,
        Method::GET,
        manifest,
        None,
        Some(signed_in("alice")),
    )
    .await;
    assert_eq!(by_alice.limit.as_deref(), Some("3;w=3600"));
    assert_eq!(remaining(&by_alice), "2;w=3600");
    assert_eq!(by_alice.source.as_deref(), Some("alice"));

    // A member of one organization: the organization's allowance covers the pull.
    let by_bob = request(&berth, Method::GET, manifest, None, Some(signed_in("bob"))).await;
    assert_eq!(by_bob.limit.as_deref(), Some("4;w=3600"));
    assert_eq!(by_bob.source.as_deref(), Some("acme"));

    // The organization's own token spends the same allowance.
    let secret = bob
        .post(
            "/api/v1/orgs/acme/access-tokens",
            json!({ "token_label": "ci", "scopes": ["repo:read"] }),
        )
        .await
        .expect(201)
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_token = request(&berth, Method::GET, manifest, None, Some(("acme", &secret))).await;
    assert_eq!(by_token.source.as_deref(), Some("acme"));
    assert_eq!(remaining(&by_token), "2;w=3600");

    // Plans, set by a site admin through the API, replace the tier.
    let set = admin_session
        .put(
            "/api/v1/rate-limits/plans/alice",
            json!({ "plan": "unlimited" }),
        )
        .await
        .expect(200);
    assert_eq!(set.body["plan"], "unlimited");
    assert_eq!(set.body["kind"], "user");
    let unlimited = request(
        &berth,
        Method::GET,
        manifest,
        None,
        Some(signed_in("alice")),
    )
    .await;
    assert_eq!((unlimited.status, unlimited.limit), (200, None));
    admin_session
        .put(
            "/api/v1/rate-limits/plans/acme",
            json!({ "plan": "1;w=60" }),
        )
        .await
        .expect(200);
    let by_bob = request(&berth, Method::GET, manifest, None, Some(signed_in("bob"))).await;
    assert_eq!(by_bob.status, 429, "acme had spent 2 of its pulls already");
    assert_eq!(by_bob.limit.as_deref(), Some("1;w=60"));
    assert_eq!(by_bob.source.as_deref(), Some("acme"));
    assert!(by_bob.retry_after.is_some());

    let listed = admin_session.get("/api/v1/rate-limits").await.expect(200);
    assert_eq!(listed.body["tiers"]["anonymous"], "2;w=3600");
    assert_eq!(listed.body["plans"][0]["account"], "acme");
    assert_eq!(listed.body["plans"][0]["kind"], "organization");
    assert_eq!(listed.body["plans"][1]["account"], "alice");

    // Back to the tier.
    admin_session
        .delete("/api/v1/rate-limits/plans/alice")
        .await
        .expect(204);
    admin_session
        .delete("/api/v1/rate-limits/plans/alice")
        .await
        .expect_error(404, "NOT_FOUND");
    let tiered = request(
        &berth,
        Method::GET,
        manifest,
        None,
        Some(signed_in("alice")),
    )
    .await;
    assert_eq!(tiered.limit.as_deref(), Some("3;w=3600"));
}

#[tokio::test]
async fn only_site_admins_manage_plans_and_bad_plans_are_refused() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let alice = berth.user("alice").await;
    alice
        .put(
            "/api/v1/rate-limits/plans/alice",
            json!({ "plan": "unlimited" }),
        )
        .await
        .expect_error(403, "DENIED");
    alice
        .get("/api/v1/rate-limits")
        .await
        .expect_error(403, "DENIED");
    berth
        .anonymous()
        .get("/api/v1/rate-limits")
        .await
        .expect_error(401, "UNAUTHORIZED");
    for bad in ["lots", "0;w=60", "10;w=0", "10 per hour", "10;w=6h"] {
        let refused = admin
            .put("/api/v1/rate-limits/plans/alice", json!({ "plan": bad }))
            .await
            .expect_error(400, "BAD_REQUEST");
        assert!(
            refused.message().starts_with("plan: ") && refused.message().contains("unlimited"),
            "{}",
            refused.message()
        );
    }
    admin
        .put(
            "/api/v1/rate-limits/plans/nobody",
            json!({ "plan": "5;w=60" }),
        )
        .await
        .expect_error(404, "NOT_FOUND");
    admin
        .put(
            "/api/v1/rate-limits/plans/alice",
            json!({ "plans": "5;w=60" }),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    let audit = admin.get("/api/v1/auditlogs").await.expect(200);
    assert!(!audit.text.contains("rate_plan.set"), "nothing was set");
    admin
        .put(
            "/api/v1/rate-limits/plans/alice",
            json!({ "plan": "5;w=60" }),
        )
        .await
        .expect(200);
    let audit = admin.get("/api/v1/auditlogs").await.expect(200);
    assert!(audit.text.contains("rate_plan.set"), "{}", audit.text);
}

#[tokio::test]
async fn site_admins_set_and_remove_plans_in_the_web_ui() {
    use crate::browser::{get_page, post_signed_in_form, sign_in};
    let berth = limited(Tiers {
        anonymous: rate("100;w=21600"),
        ..Tiers::default()
    })
    .await;
    berth.user("alice").await;
    let admin = sign_in(&berth, "admin", crate::support::ADMIN_PASSWORD).await;
    let page = get_page(&berth, "/admin/rate-limits", &admin)
        .await
        .expect(200);
    assert!(
        page.text.contains("100 pulls per 21600 s") && page.text.contains("No plans yet"),
        "{}",
        page.text
    );
    let page_path = "/admin/rate-limits";
    let set = post_signed_in_form(
        &berth,
        &admin,
        page_path,
        page_path,
        &[("account", "alice"), ("plan", "50;w=3600")],
    )
    .await
    .expect(303);
    let shown = get_page(&berth, page_path, &set.cookies_with(&admin))
        .await
        .expect(200);
    assert!(
        shown.text.contains("The plan of alice is 50;w=3600.")
            && shown.text.contains("<td>alice</td>"),
        "{}",
        shown.text
    );
    let bad = post_signed_in_form(
        &berth,
        &admin,
        page_path,
        page_path,
        &[("account", "alice"), ("plan", "lots")],
    )
    .await
    .expect(303);
    let shown = get_page(&berth, page_path, &bad.cookies_with(&admin))
        .await
        .expect(200);
    assert!(
        shown.text.contains("expected PULLS;w=SECONDS"),
        "{}",
        shown.text
    );
    post_signed_in_form(
        &berth,
        &admin,
        page_path,
        "/admin/rate-limits/alice/clear",
        &[],
    )
    .await
    .expect(303);
    let plans = berth
        .admin()
        .await
        .get("/api/v1/rate-limits")
        .await
        .expect(200);
    assert_eq!(plans.body["plans"], json!([]));
    // Everyone else is refused.
    let alice = sign_in(&berth, "alice", PASSWORD).await;
    get_page(&berth, page_path, &alice).await.expect(403);
}
