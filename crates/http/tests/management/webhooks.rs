//! Webhooks end to end: created through the API, fired by pushes and deletes over `/v2/`,
//! delivered by the server's own jobs runner to a real receiver on loopback that checks the
//! Standard Webhooks signature; bad input refused; pings, history and redelivery.

use crate::support::{basic, Berth, Reply, Session, PASSWORD};
use berth_testkit::receiver::{Received, Receiver};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The webhook's delivery history once it holds `n` attempts: an attempt is recorded just
/// after the receiver answered, so it may show a moment after the delivery arrived.
async fn history(owner: &Session<'_>, id: &str, n: usize) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let history = owner
            .get(&format!("/api/v1/webhooks/{id}/deliveries"))
            .await
            .expect(200);
        let count = history.body["results"].as_array().map_or(0, Vec::len);
        if count >= n {
            return history;
        }
        assert!(
            Instant::now() < deadline,
            "{count} attempts recorded, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_push_is_delivered_signed_in_docker_hubs_format_with_the_digest() {
    let berth = Berth::start().await;
    let receiver = Receiver::start().await;
    let alice = berth.user("alice").await;
    assert_eq!(
        berth
            .with(basic("alice", PASSWORD))
            .push_image("alice/app", "1.0")
            .await,
        201
    );
    let created = alice
        .post(
            "/api/v1/repositories/alice/app/-/webhooks",
            json!({ "name": "deploy", "hook_url": receiver.url }),
        )
        .await
        .expect(201);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{}", created.text);
    assert_eq!(created.body["events"], json!(["push"]));
    assert_eq!(created.body["format"], "dockerhub");
    let id = created.body["id"].as_str().unwrap().to_owned();
    // The secret is shown once.
    let listed = alice
        .get("/api/v1/repositories/alice/app/-/webhooks")
        .await
        .expect(200);
    assert_eq!(listed.body["count"], 1);
    assert!(!listed.text.contains(&secret));
    assert!(!alice
        .get(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(200)
        .text
        .contains(&secret));

    assert_eq!(
        berth
            .with(basic("alice", PASSWORD))
            .push_image("alice/app", "2.0")
            .await,
        201
    );
    let got = receiver.wait_for(1).await;
    let delivery = &got[0];
    assert!(delivery.signed_with(&secret), "signature must verify");
    assert!(!delivery.signed_with("whsec_c2VjcmV0"));
    assert!(delivery.header("webhook-id").starts_with("msg_"));
    assert_eq!(delivery.header("content-type"), "application/json");
    let body = delivery.json();
    assert_eq!(body["push_data"]["tag"], "2.0");
    assert_eq!(body["push_data"]["pusher"], "alice");
    assert_eq!(body["repository"]["repo_name"], "alice/app");
    assert_eq!(body["repository"]["is_private"], true);
    let digest = body["push_data"]["digest"].as_str().unwrap();
    let pulled = berth
        .with(basic("alice", PASSWORD))
        .head_manifest("alice/app", digest)
        .await;
    assert_eq!(
        pulled, 200,
        "the digest in the payload is the pushed manifest"
    );
    assert_eq!(
        body["push_data"]["media_type"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(body["push_data"]["platforms"], json!(["linux/amd64"]));

    let history = history(&alice, &id, 1).await;
    let attempt = &history.body["results"][0];
    assert_eq!(attempt["status"], 200);
    assert_eq!(attempt["event"], "manifest.pushed");
    assert_eq!(attempt["response"], "thanks");
    assert_eq!(attempt["delivery_id"], delivery.header("webhook-id"));
}

#[tokio::test]
async fn filters_formats_and_scopes_choose_what_is_sent() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let alice = berth.user("alice").await;
    let releases = Receiver::start().await;
    let cloud = Receiver::start().await;
    let site = Receiver::start().await;
    alice
        .post(
            "/api/v1/namespaces/alice/webhooks",
            json!({ "hook_url": releases.url, "tags": ["v*"], "events": ["push", "tag_delete"] }),
        )
        .await
        .expect(201);
    alice
        .post(
            "/api/v1/namespaces/alice/webhooks",
            json!({ "hook_url": cloud.url, "format": "cloudevents", "events": ["repository"] }),
        )
        .await
        .expect(201);
    admin
        .post("/api/v1/webhooks", json!({ "hook_url": site.url }))
        .await
        .expect(201);
    // Only site admins make site-wide webhooks.
    alice
        .post("/api/v1/webhooks", json!({ "hook_url": site.url }))
        .await
        .expect(403);

    assert_eq!(
        berth
            .with(basic("alice", PASSWORD))
            .push_image("alice/api", "latest")
            .await,
        201
    );
    assert_eq!(
        berth
            .with(basic("alice", PASSWORD))
            .push_image("alice/api", "v1")
            .await,
        201
    );
    let got = releases.wait_for(1).await;
    assert_eq!(got[0].json()["push_data"]["tag"], "v1");
    let created = cloud.wait_for(1).await;
    assert_eq!(
        created[0].header("content-type"),
        "application/cloudevents+json"
    );
    let event = created[0].json();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "io.berth.repository.created");
    assert_eq!(event["data"]["repository"], "alice/api");
    let everything = site.wait_for(2).await;
    // Deliveries run as jobs side by side, so two pushes' arrive in either order.
    let mut tags: Vec<String> = everything
        .iter()
        .filter_map(|r| r.json()["push_data"]["tag"].as_str().map(str::to_owned))
        .collect();
    tags.sort();
    assert_eq!(tags, ["latest", "v1"]);

    let deleted = berth
        .with(basic("alice", PASSWORD))
        .delete_tag("alice/api", "v1")
        .await;
    assert_eq!(deleted, 202);
    let got = releases.wait_for(2).await;
    let body = got[1].json();
    assert_eq!(body["event"], "tag.deleted");
    assert_eq!(body["event_data"]["tag"], "v1");
    assert_eq!(body["event_data"]["actor"], "alice");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(releases.count(), 2, "latest matches no filter");
}

#[tokio::test]
async fn bad_webhooks_are_refused_and_change_nothing() {
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    let bob = berth.user("bob").await;
    assert_eq!(
        berth
            .with(basic("alice", PASSWORD))
            .push_image("alice/app", "1")
            .await,
        201
    );
    let path = "/api/v1/repositories/alice/app/-/webhooks";
    for (body, says) in [
        (
            json!({ "hook_url": "ftp://example.com/x" }),
            "http or https",
        ),
        (json!({ "hook_url": "no url" }), "is not a URL"),
        (
            json!({ "hook_url": "http://h/x", "events": ["pull"] }),
            "unknown event kind",
        ),
        (
            json!({ "hook_url": "http://h/x", "format": "xml" }),
            "unknown payload format",
        ),
        (
            json!({ "hook_url": "http://h/x", "tags": ["a/b"] }),
            "invalid tag pattern",
        ),
        (json!({ "hook_url": "http://u:p@h/x" }), "credentials"),
        (
            json!({ "hook_url": "http://h/x", "custom_header": { "name": "webhook-id", "value": "x" } }),
            "set by Berth",
        ),
    ] {
        let reply = alice
            .post(path, body.clone())
            .await
            .expect_error(400, "BAD_REQUEST");
        assert!(reply.message().contains(says), "{body}: {}", reply.text);
    }
    // Someone else's repository looks missing; a missing one too.
    bob.post(path, json!({ "hook_url": "http://h/x" }))
        .await
        .expect(404);
    alice
        .post(
            "/api/v1/repositories/alice/none/-/webhooks",
            json!({ "hook_url": "http://h/x" }),
        )
        .await
        .expect(404);
    assert_eq!(alice.get(path).await.expect(200).body["count"], 0);
    // At most 25 per target.
    for n in 0..25 {
        alice
            .post(path, json!({ "hook_url": format!("http://h/{n}") }))
            .await
            .expect(201);
    }
    let reply = alice
        .post(path, json!({ "hook_url": "http://h/26" }))
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(reply.message().contains("25 webhooks"), "{}", reply.text);
    assert_eq!(alice.get(path).await.expect(200).body["count"], 25);
}

#[tokio::test]
async fn pings_redeliveries_and_410_are_handled_and_recorded() {
    let berth = Berth::start().await;
    let receiver = Receiver::start().await;
    let alice = berth.user("alice").await;
    assert_eq!(
        berth
            .with(basic("alice", PASSWORD))
            .push_image("alice/app", "1")
            .await,
        201
    );
    let created = alice
        .post(
            "/api/v1/repositories/alice/app/-/webhooks",
            json!({ "hook_url": receiver.url, "custom_header": { "name": "Authorization", "value": "Bearer hunter2" } }),
        )
        .await
        .expect(201);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["custom_header"], "authorization");
    assert!(!created.text.contains("hunter2"));
    let ping = alice
        .post(&format!("/api/v1/webhooks/{id}/ping"), json!({}))
        .await
        .expect(202);
    let delivery = ping.body["delivery_id"].as_str().unwrap().to_owned();
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].json()["event"], "ping");
    assert_eq!(got[0].header("authorization"), "Bearer hunter2");
    assert_eq!(got[0].header("webhook-id"), delivery);

    alice
        .post(
            &format!("/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver"),
            json!({}),
        )
        .await
        .expect(202);
    let got = receiver.wait_for(2).await;
    assert_eq!(
        got[1].header("webhook-id"),
        delivery,
        "a redelivery keeps its id"
    );
    assert_eq!(got[1].body, got[0].body, "and its body");
    alice
        .post(
            &format!("/api/v1/webhooks/{id}/deliveries/msg_nope/redeliver"),
            json!({}),
        )
        .await
        .expect(404);

    receiver.answer(410);
    alice
        .post(&format!("/api/v1/webhooks/{id}/ping"), json!({}))
        .await
        .expect(202);
    receiver.wait_for(3).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hook = alice
            .get(&format!("/api/v1/webhooks/{id}"))
            .await
            .expect(200);
        if hook.body["active"] == false {
            assert!(hook.body["disabled_reason"]
                .as_str()
                .unwrap()
                .contains("410"));
            break;
        }
        assert!(Instant::now() < deadline, "410 must disable the webhook");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A disabled webhook gets nothing; turned back on, it does.
    assert_eq!(
        berth
            .with(basic("alice", PASSWORD))
            .push_image("alice/app", "2")
            .await,
        201
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 3);
    receiver.answer(200);
    alice
        .patch(&format!("/api/v1/webhooks/{id}"), json!({ "active": true }))
        .await
        .expect(200);
    assert_eq!(
        berth
            .with(basic("alice", PASSWORD))
            .push_image("alice/app", "3")
            .await,
        201
    );
    let got = receiver.wait_for(4).await;
    assert_eq!(got[3].json()["push_data"]["tag"], "3");

    let history = history(&alice, &id, 4).await;
    let statuses: Vec<&Value> = history.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!(200), &json!(410), &json!(200), &json!(200)]
    );
    alice
        .delete(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(204);
    alice
        .get(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(404);
}

#[tokio::test]
async fn the_event_stream_shows_each_caller_what_it_may_see() {
    let berth = Berth::start().await;
    berth.user("alice").await;
    let bob = berth.user("bob").await;
    assert_eq!(
        berth
            .with(basic("alice", PASSWORD))
            .push_image("alice/secret", "1")
            .await,
        201
    );
    assert_eq!(
        berth
            .with(basic("bob", PASSWORD))
            .push_image("bob/app", "1")
            .await,
        201
    );
    let seen = bob.get("/api/v1/events").await.expect(200);
    let repos: Vec<&str> = seen.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["repository"].as_str())
        .collect();
    assert!(repos.iter().all(|r| *r == "bob/app"), "{}", seen.text);
    let kinds: Vec<&str> = seen.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(kinds, ["repository.created", "manifest.pushed"]);
    let cursor = seen.body["next_cursor"].as_str().unwrap().to_owned();
    let pushed = &seen.body["events"][1];
    assert_eq!(pushed["actor"], "bob");
    assert_eq!(pushed["data"]["tags"], json!(["1"]));
    let later = bob
        .get(&format!("/api/v1/events?since={cursor}"))
        .await
        .expect(200);
    assert_eq!(later.body["events"], json!([]));
    assert_eq!(later.body["next_cursor"], cursor.as_str());
    bob.get("/api/v1/events?since=abc").await.expect(400);
    bob.get("/api/v1/events?limit=0").await.expect(400);
    let all = berth.admin().await.get("/api/v1/events").await.expect(200);
    assert_eq!(all.body["events"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn repository_settings_changes_are_events_and_fire_repository_webhooks() {
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    berth.user("bob").await;
    let receiver = Receiver::start().await;
    alice
        .post(
            "/api/v1/namespaces/alice/webhooks",
            json!({ "hook_url": receiver.url, "events": ["repository"] }),
        )
        .await
        .expect(201);
    alice
        .post(
            "/api/v1/repositories",
            json!({ "namespace": "alice", "name": "site", "is_private": true }),
        )
        .await
        .expect(201);
    alice
        .patch(
            "/api/v1/repositories/alice/site",
            json!({ "is_private": false }),
        )
        .await
        .expect(200);
    // Setting what is already set changes nothing and says nothing.
    alice
        .patch(
            "/api/v1/repositories/alice/site",
            json!({ "is_private": false }),
        )
        .await
        .expect(200);
    alice
        .post(
            "/api/v1/repositories/alice/site/-/collaborators",
            json!({ "user": "bob", "permission": "write" }),
        )
        .await
        .expect(201);
    alice
        .delete("/api/v1/repositories/alice/site")
        .await
        .expect(204);

    // Deliveries run side by side, so they may arrive in any order.
    let got = receiver.wait_for(3).await;
    let by_kind = |kind: &str| {
        got.iter()
            .map(Received::json)
            .find(|body| body["event"] == kind)
            .unwrap_or_else(|| panic!("no {kind} delivery in {got:?}"))
    };
    assert_eq!(
        by_kind("repository.created")["repository"]["repo_name"],
        "alice/site"
    );
    assert_eq!(
        by_kind("repository.visibility_changed")["event_data"]["is_private"],
        false
    );
    assert_eq!(
        by_kind("repository.deleted")["event_data"]["actor"],
        "alice"
    );

    let events = berth.admin().await.get("/api/v1/events").await.expect(200);
    let access: Vec<&Value> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "access.changed")
        .collect();
    assert_eq!(access.len(), 1, "{}", events.text);
    assert_eq!(access[0]["data"]["action"], "collaborator.set");
    assert_eq!(access[0]["data"]["subject"], "bob");
    assert_eq!(access[0]["data"]["permission"], "write");
    assert_eq!(access[0]["actor"], "alice");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.count(),
        3,
        "access changes are not repository events"
    );
}

#[tokio::test]
async fn joining_and_leaving_a_team_are_access_changes_of_its_repositories() {
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    berth.user("bob").await;
    alice
        .post("/api/v1/orgs", json!({ "orgname": "acme" }))
        .await
        .expect(201);
    alice
        .post("/api/v1/orgs/acme/groups", json!({ "name": "devs" }))
        .await
        .expect(201);
    alice
        .post(
            "/api/v1/repositories",
            json!({ "namespace": "acme", "name": "api", "is_private": true }),
        )
        .await
        .expect(201);
    alice
        .post(
            "/api/v1/repositories/acme/api/-/groups",
            json!({ "group_name": "devs", "permission": "write" }),
        )
        .await
        .expect(201);
    alice
        .post(
            "/api/v1/orgs/acme/groups/devs/members",
            json!({ "member": "bob" }),
        )
        .await
        .expect(201);
    alice
        .delete("/api/v1/orgs/acme/groups/devs/members/bob")
        .await
        .expect(204);

    let events = berth.admin().await.get("/api/v1/events").await.expect(200);
    let access: Vec<&Value> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "access.changed")
        .collect();
    let actions: Vec<&Value> = access.iter().map(|e| &e["data"]["action"]).collect();
    assert_eq!(
        actions,
        [
            &json!("team.grant"),
            &json!("team.member.add"),
            &json!("team.member.remove")
        ],
        "{}",
        events.text
    );
    let joined = access[1];
    assert_eq!(joined["repository"], "acme/api");
    assert_eq!(joined["actor"], "alice");
    assert_eq!(
        joined["data"],
        json!({ "action": "team.member.add", "subject": "bob", "team": "devs", "permission": "write" })
    );
    assert_eq!(
        access[2]["data"],
        json!({ "action": "team.member.remove", "subject": "bob", "team": "devs" })
    );
}
