//! Usage and quotas through the API: site admins set quotas, owners read usage, a push past
//! the quota is refused over `/v2/`, and bad sizes and callers are refused.

use crate::support::{basic, Berth, PASSWORD};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn quotas_set_by_site_admins_cap_pushes_and_usage_is_shown_to_owners() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let alice = berth.user("alice").await;
    let bob = berth.user("bob").await;
    let registry = berth.with(basic("alice", PASSWORD));
    let put_quota = |session: &crate::support::Session<'_>, quota: serde_json::Value| {
        let credentials = session.credentials.clone();
        let berth = &berth;
        async move {
            berth
                .send(
                    Method::PUT,
                    "/api/v1/namespaces/alice/quota",
                    &credentials,
                    Some(json!({ "quota": quota })),
                )
                .await
        }
    };
    let set = put_quota(&admin, json!("1KiB")).await.expect(200);
    assert_eq!(set.body, json!({ "bytes": 0, "quota": 1024 }));

    assert_eq!(registry.push_image("alice/app", "v1").await, 201);
    let usage = alice
        .get("/api/v1/namespaces/alice/usage")
        .await
        .expect(200);
    let used = usage.body["bytes"].as_u64().unwrap();
    assert!(used > 0 && used < 1024, "{}", usage.text);
    assert_eq!(usage.body["quota"], 1024);
    let repo = alice
        .get("/api/v1/repositories/alice/app/-/usage")
        .await
        .expect(200);
    assert_eq!(repo.body, json!({ "bytes": used, "quota": 1024 }));

    // Below current usage: allowed, and pushes that add bytes are refused.
    put_quota(&admin, json!(10)).await.expect(200);
    assert_eq!(registry.push_image("alice/app", "v2").await, 403);
    // Lifted.
    put_quota(&admin, json!(null)).await.expect(200);
    assert_eq!(registry.push_image("alice/app", "v2").await, 201);

    // The pages: the namespace's owner sees the storage panel, the repository page its size.
    let cookies = crate::browser::sign_in(&berth, "alice", PASSWORD).await;
    let page = crate::browser::get_page(&berth, "/u/alice", &cookies)
        .await
        .expect(200);
    assert!(page.text.contains("id=\"usage-text\""), "{}", page.text);
    assert!(page.text.contains("no quota"), "{}", page.text);
    let page = crate::browser::get_page(&berth, "/r/alice/app", &cookies)
        .await
        .expect(200);
    assert!(page.text.contains("<span id=\"usage\">"), "{}", page.text);
    let cookies = crate::browser::sign_in(&berth, "bob", PASSWORD).await;
    let page = crate::browser::get_page(&berth, "/u/alice", &cookies)
        .await
        .expect(200);
    assert!(
        !page.text.contains("id=\"usage-text\""),
        "only owners see the storage panel"
    );

    put_quota(&admin, json!("10 parsecs"))
        .await
        .expect_error(400, "BAD_REQUEST");
    put_quota(&bob, json!("1GiB")).await.expect(403);
    put_quota(&alice, json!("1GiB")).await.expect(403);
    bob.get("/api/v1/namespaces/alice/usage")
        .await
        .expect_error(404, "NOT_FOUND");
    let repair = admin
        .post("/api/v1/usage/recompute", json!({}))
        .await
        .expect(200);
    assert_eq!(repair.body, json!({ "corrected": 0 }));
    alice
        .post("/api/v1/usage/recompute", json!({}))
        .await
        .expect(403);
}
