//! Search: Docker's `/v1/search` as `docker search`/`podman search` read it, the API's search
//! with filters and sort orders, and that nobody ever finds a repository they cannot read.

use crate::support::{basic, Berth, Credentials, Reply, Session, ADMIN_PASSWORD, PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

/// Creates `namespace/name` as the site admin, with a short description.
async fn repository(admin: &Session<'_>, full_name: &str, private: bool, description: &str) {
    let (namespace, name) = full_name.split_once('/').expect("namespace/name");
    admin
        .post(
            "/api/v1/repositories",
            json!({ "namespace": namespace, "name": name, "is_private": private }),
        )
        .await
        .expect(201);
    if !description.is_empty() {
        admin
            .patch(
                &format!("/api/v1/repositories/{full_name}"),
                json!({ "description": description }),
            )
            .await
            .expect(200);
    }
}

/// The `name` of every result, in order.
fn names(reply: &Reply) -> Vec<String> {
    reply.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|result| {
            result["full_name"]
                .as_str()
                .or_else(|| result["name"].as_str())
                .expect("name")
                .to_owned()
        })
        .collect()
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn docker_search_answers_in_docker_hubs_format_with_only_what_the_caller_may_read() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    berth.user("alice").await;
    berth.user("bob").await;
    repository(&admin, "library/nginx", false, "Official build of Nginx.").await;
    repository(&admin, "alice/nginx-proxy", false, "").await;
    repository(&admin, "alice/secret-nginx", true, "").await;
    repository(&admin, "alice/unrelated", false, "").await;

    let anonymous = berth
        .anonymous()
        .get("/v1/search?q=nginx")
        .await
        .expect(200);
    assert_eq!(
        keys(&anonymous.body),
        [
            "num_pages",
            "num_results",
            "page",
            "page_size",
            "query",
            "results"
        ]
    );
    assert_eq!(anonymous.body["query"], "nginx");
    assert_eq!(anonymous.body["page"], 1);
    assert_eq!(anonymous.body["page_size"], 25);
    assert_eq!(anonymous.body["num_results"], 2);
    assert_eq!(anonymous.body["num_pages"], 1);
    // Official images without `library/`, as Docker Hub names them; the exact name first.
    assert_eq!(names(&anonymous), ["nginx", "alice/nginx-proxy"]);
    let official = &anonymous.body["results"][0];
    assert_eq!(
        keys(official),
        [
            "description",
            "is_automated",
            "is_official",
            "name",
            "star_count"
        ]
    );
    assert_eq!(
        *official,
        json!({
            "name": "nginx",
            "description": "Official build of Nginx.",
            "star_count": 0,
            "is_official": true,
            "is_automated": false,
        })
    );
    assert_eq!(anonymous.body["results"][1]["is_official"], false);

    // Pages of `n`.
    let first = berth
        .anonymous()
        .get("/v1/search?q=nginx&n=1")
        .await
        .expect(200);
    assert_eq!(
        (
            &first.body["num_pages"],
            &first.body["page_size"],
            names(&first)
        ),
        (&json!(2), &json!(1), vec!["nginx".to_owned()])
    );
    let second = berth
        .anonymous()
        .get("/v1/search?q=nginx&n=1&page=2")
        .await
        .expect(200);
    assert_eq!(second.body["page"], 2);
    assert_eq!(names(&second), ["alice/nginx-proxy"]);

    // Registry credentials: the owner and site admins also find the private repository.
    let as_alice = berth.with(basic("alice", PASSWORD));
    let found = as_alice.get("/v1/search?q=nginx").await.expect(200);
    assert_eq!(found.body["num_results"], 3);
    assert!(names(&found).contains(&"alice/secret-nginx".to_owned()));
    let as_admin = berth.with(basic("admin", ADMIN_PASSWORD));
    assert_eq!(
        as_admin.get("/v1/search?q=nginx").await.expect(200).body["num_results"],
        3
    );
    let as_bob = berth.with(basic("bob", PASSWORD));
    assert_eq!(
        names(&as_bob.get("/v1/search?q=nginx").await.expect(200)),
        ["nginx", "alice/nginx-proxy"]
    );

    // A registry token from /token is as good as the password it was issued for.
    let token = as_alice.get("/token?service=berth").await.expect(200);
    let bearer = format!("Bearer {}", token.body["token"].as_str().expect("token"));
    let found = berth
        .get_with_authorization("/v1/search?q=nginx", &bearer)
        .await
        .expect(200);
    assert_eq!(found.body["num_results"], 3);

    // Wrong credentials are refused, not taken as anonymous.
    berth
        .with(basic("alice", "wrong password"))
        .get("/v1/search?q=nginx")
        .await
        .expect_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn docker_search_names_the_parameter_it_cannot_use() {
    let berth = Berth::start().await;
    let anonymous = berth.anonymous();
    for (query, parameter) in [
        ("n=0", "n"),
        ("n=101", "n"),
        ("n=ten", "n"),
        ("page=0", "page"),
        ("page=last", "page"),
    ] {
        let reply = anonymous
            .get(&format!("/v1/search?q=x&{query}"))
            .await
            .expect_error(400, "BAD_REQUEST");
        assert!(
            reply.message().contains(parameter),
            "{query}: {}",
            reply.message()
        );
    }
    // The `+` of a form-encoded query is a space, as docker and podman send it.
    let reply = anonymous
        .get("/v1/search?q=web+server&n=100")
        .await
        .expect(200);
    assert_eq!(reply.body["query"], "web server");
    assert_eq!(reply.body["page_size"], 100);
    assert_eq!(reply.body["num_results"], 0);
    assert_eq!(reply.body["num_pages"], 0);
    let reply = berth
        .send(
            Method::POST,
            "/v1/search?q=x",
            &Credentials::Anonymous,
            None,
        )
        .await;
    assert_eq!(reply.status, 405);
}

/// Pushes a one-layer image to `repo:v1` as the site admin and pulls it `pulls` times.
async fn pulled(berth: &Berth, repo: &str, pulls: usize) {
    let registry = berth.with(basic("admin", ADMIN_PASSWORD));
    assert_eq!(registry.push_image(repo, "v1").await, 201);
    for _ in 0..pulls {
        assert_eq!(registry.pull_manifest(repo, "v1").await, 200);
    }
}

#[tokio::test]
async fn api_search_filters_sorts_and_pages() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let alice = berth.user("alice").await;
    let bob = berth.user("bob").await;
    admin
        .post("/api/v1/orgs", json!({ "orgname": "acme" }))
        .await
        .expect(201);
    repository(&admin, "library/redis", false, "The in-memory store.").await;
    repository(&admin, "acme/redis-cache", false, "A cache.").await;
    repository(&admin, "alice/redis-tools", false, "").await;
    repository(
        &admin,
        "alice/toolbox",
        false,
        "Scripts that talk to redis.",
    )
    .await;
    repository(&admin, "alice/other", false, "Nothing to find here.").await;
    for session in [&alice, &bob] {
        session
            .berth
            .send(
                Method::PUT,
                "/api/v1/repositories/acme/redis-cache/-/star",
                &session.credentials,
                None,
            )
            .await
            .expect(204);
    }
    alice
        .berth
        .send(
            Method::PUT,
            "/api/v1/repositories/alice/redis-tools/-/star",
            &alice.credentials,
            None,
        )
        .await
        .expect(204);
    pulled(&berth, "alice/toolbox", 3).await;
    pulled(&berth, "library/redis", 1).await;
    berth.flush_pulls().await;

    let anonymous = berth.anonymous();
    // Relevance: the exact name, then names starting with the text, then other words.
    let found = anonymous.get("/api/v1/search?q=redis").await.expect(200);
    assert_eq!(found.body["count"], 4);
    let order = names(&found);
    assert_eq!(order[0], "library/redis");
    assert_eq!(order[3], "alice/toolbox", "{order:?}");
    let first = &found.body["results"][0];
    assert_eq!(
        (&first["name"], &first["namespace"], &first["is_official"]),
        (&json!("redis"), &json!("library"), &json!(true))
    );
    assert_eq!(first["description"], "The in-memory store.");
    assert_eq!(first["pull_count"], 1);
    assert!(first["last_updated"].is_string() && first["last_pulled"].is_string());

    let official = anonymous
        .get("/api/v1/search?q=redis&official=true")
        .await
        .expect(200);
    assert_eq!(names(&official), ["library/redis"]);
    let starred = anonymous
        .get("/api/v1/search?q=redis&min_stars=2")
        .await
        .expect(200);
    assert_eq!(names(&starred), ["acme/redis-cache"]);
    assert_eq!(starred.body["results"][0]["star_count"], 2);
    let in_namespace = anonymous
        .get("/api/v1/search?q=redis&namespace=alice")
        .await
        .expect(200);
    let mut alices = names(&in_namespace);
    alices.sort();
    assert_eq!(alices, ["alice/redis-tools", "alice/toolbox"]);

    let by_stars = anonymous
        .get("/api/v1/search?q=redis&sort=stars")
        .await
        .expect(200);
    assert_eq!(
        names(&by_stars)[..2],
        ["acme/redis-cache", "alice/redis-tools"]
    );
    let by_pulls = anonymous
        .get("/api/v1/search?q=redis&sort=pulls")
        .await
        .expect(200);
    assert_eq!(names(&by_pulls)[..2], ["alice/toolbox", "library/redis"]);
    let by_update = anonymous
        .get("/api/v1/search?q=redis&sort=last_updated")
        .await
        .expect(200);
    assert_eq!(by_update.body["count"], 4);

    // Pages link to their neighbours, keeping the filters.
    let page = anonymous
        .get("/api/v1/search?q=redis&sort=stars&page=2&page_size=1")
        .await
        .expect(200);
    assert_eq!(page.body["count"], 4);
    assert_eq!(names(&page), ["alice/redis-tools"]);
    let next = page.body["next"].as_str().expect("next");
    assert!(
        next.ends_with("/api/v1/search?q=redis&sort=stars&page=3&page_size=1"),
        "{next}"
    );
    assert!(page.body["previous"]
        .as_str()
        .expect("previous")
        .contains("page=1"));
    let beyond = anonymous
        .get("/api/v1/search?q=redis&page=1000000&page_size=100")
        .await
        .expect(200);
    assert_eq!(beyond.body["results"], json!([]));
    assert_eq!(beyond.body["count"], 4);

    for (query, named) in [
        ("sort=downloads", "downloads"),
        ("official=maybe", "official"),
        ("min_stars=-1", "min_stars"),
        ("page_size=101", "page_size"),
    ] {
        let reply = anonymous
            .get(&format!("/api/v1/search?q=redis&{query}"))
            .await
            .expect_error(400, "BAD_REQUEST");
        assert!(
            reply.message().contains(named),
            "{query}: {}",
            reply.message()
        );
    }
}

#[tokio::test]
async fn a_name_that_starts_with_the_text_ranks_above_one_that_has_it_later() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let alice = berth.user("alice").await;
    let bob = berth.user("bob").await;
    repository(&admin, "alice/my-redis", false, "").await;
    repository(&admin, "alice/redis-tools", false, "").await;
    repository(&admin, "alice/hosted-redis-cache", false, "").await;
    repository(&admin, "alice/redistribute", false, "").await;
    repository(&admin, "library/redis", false, "").await;
    repository(&admin, "alice/toolbox", false, "Talks to redis.").await;
    // The names with the word later on are the popular ones: popularity orders only within
    // a tier, never across.
    for session in [&alice, &bob] {
        for repo in ["alice/my-redis", "alice/hosted-redis-cache"] {
            session
                .berth
                .send(
                    Method::PUT,
                    &format!("/api/v1/repositories/{repo}/-/star"),
                    &session.credentials,
                    None,
                )
                .await
                .expect(204);
        }
    }
    pulled(&berth, "alice/my-redis", 2).await;
    berth.flush_pulls().await;

    let anonymous = berth.anonymous();
    let found = anonymous.get("/api/v1/search?q=redis").await.expect(200);
    let order = names(&found);
    assert_eq!(order.len(), 6, "{order:?}");
    assert_eq!(order[0], "library/redis", "the exact name first: {order:?}");
    let mut starting: Vec<&str> = order[1..3].iter().map(String::as_str).collect();
    starting.sort_unstable();
    assert_eq!(
        starting,
        ["alice/redis-tools", "alice/redistribute"],
        "names starting with the text next: {order:?}"
    );
    assert_eq!(
        order[3..5],
        ["alice/my-redis", "alice/hosted-redis-cache"],
        "then the word later in the name, by popularity: {order:?}"
    );
    assert_eq!(order[5], "alice/toolbox", "the description last: {order:?}");

    // Pages cut across the tiers in the same order.
    let second = anonymous
        .get("/api/v1/search?q=redis&page=2&page_size=2")
        .await
        .expect(200);
    assert_eq!(names(&second), order[2..4]);

    // Several words: after the exact name, one that starts with them ranks above one that
    // has them later, however popular.
    repository(&admin, "alice/my-redis-tools", false, "").await;
    repository(&admin, "alice/redis-tools-extra", false, "").await;
    alice
        .berth
        .send(
            Method::PUT,
            "/api/v1/repositories/alice/my-redis-tools/-/star",
            &alice.credentials,
            None,
        )
        .await
        .expect(204);
    let words = anonymous
        .get("/api/v1/search?q=redis-tools")
        .await
        .expect(200);
    let order = names(&words);
    assert_eq!(
        order[..3],
        [
            "alice/redis-tools",
            "alice/redis-tools-extra",
            "alice/my-redis-tools"
        ],
        "{order:?}"
    );
}

#[tokio::test]
async fn verified_publishers_are_marked_by_site_admins() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let alice = berth.user("alice").await;
    alice
        .post("/api/v1/orgs", json!({ "orgname": "acme" }))
        .await
        .expect(201);
    repository(&admin, "acme/widget", false, "").await;
    let search = || async {
        berth
            .anonymous()
            .get("/api/v1/search?q=widget")
            .await
            .expect(200)
            .body["results"][0]["is_verified"]
            .clone()
    };
    assert_eq!(search().await, false);

    // Owning the organization is not enough.
    alice
        .patch("/api/v1/orgs/acme", json!({ "is_verified": true }))
        .await
        .expect_error(403, "DENIED");
    berth
        .anonymous()
        .patch("/api/v1/orgs/acme", json!({ "is_verified": true }))
        .await
        .expect_error(401, "UNAUTHORIZED");
    let marked = admin
        .patch("/api/v1/orgs/acme", json!({ "is_verified": true }))
        .await
        .expect(200);
    assert_eq!(marked.body["orgname"], "acme");
    assert_eq!(marked.body["is_verified"], true);
    assert_eq!(search().await, true);
    let shown = berth
        .anonymous()
        .get("/api/v1/repositories/acme/widget")
        .await
        .expect(200);
    assert_eq!(shown.body["is_verified"], true);

    admin
        .patch("/api/v1/orgs/acme", json!({ "is_verified": false }))
        .await
        .expect(200);
    assert_eq!(search().await, false);
    admin
        .patch("/api/v1/orgs/nobody", json!({ "is_verified": true }))
        .await
        .expect_error(404, "NOT_FOUND");
    admin
        .patch("/api/v1/orgs/acme", json!({ "verified": true }))
        .await
        .expect_error(400, "BAD_REQUEST");
}

#[tokio::test]
async fn nobody_finds_a_repository_they_cannot_read() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let alice = berth.user("alice").await;
    let bob = berth.user("bob").await;
    repository(&admin, "alice/hidden-gem", true, "A private gem.").await;
    repository(&admin, "alice/public-gem", false, "A public gem.").await;

    let searches = [
        "/api/v1/search?q=gem",
        "/api/v1/search?q=hidden-gem",
        "/api/v1/search?q=alice/hidden-gem",
        "/api/v1/search?q=private",
        "/api/v1/search?namespace=alice",
        "/api/v1/search?q=gem&sort=stars",
        "/api/v1/search?q=gem&sort=last_updated",
        "/api/v1/search",
    ];
    let sees_hidden = |reply: &Reply| names(reply).contains(&"alice/hidden-gem".to_owned());
    for path in searches {
        for session in [&bob, &berth.anonymous()] {
            let reply = session.get(path).await.expect(200);
            assert!(!sees_hidden(&reply), "{path}: {}", reply.text);
        }
        let reply = alice.get(path).await.expect(200);
        assert!(sees_hidden(&reply), "{path}: {}", reply.text);
    }
    let v1 = berth
        .with(basic("bob", PASSWORD))
        .get("/v1/search?q=hidden-gem")
        .await
        .expect(200);
    assert!(!sees_hidden(&v1), "{}", v1.text);
    assert_eq!(
        v1.body["num_results"], 1,
        "only the public gem: {}",
        v1.text
    );

    // A collaborator finds it; a public-read-only token of its owner does not.
    alice
        .post(
            "/api/v1/repositories/alice/hidden-gem/-/collaborators",
            json!({ "user": "bob", "permission": "read" }),
        )
        .await
        .expect(201);
    assert!(sees_hidden(
        &bob.get("/api/v1/search?q=gem").await.expect(200)
    ));
    let secret = alice
        .new_access_token(json!({ "token_label": "ci", "scopes": ["repo:public_read"] }))
        .await;
    let public_only = berth.with(basic("alice", &secret));
    assert!(!sees_hidden(
        &public_only.get("/api/v1/search?q=gem").await.expect(200)
    ));
    let v1 = public_only.get("/v1/search?q=gem").await.expect(200);
    assert_eq!(v1.body["num_results"], 1);
}
