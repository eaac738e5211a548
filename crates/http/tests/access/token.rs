//! The Docker token service as clients use it: the challenge on `/v2/`, `GET /token` and the
//! OAuth2 `POST /token`, what the tokens grant, refresh tokens, forged and expired bearers,
//! Basic credentials on `/v2/` and two-factor accounts (throttled guessing: `throttle.rs`).

use crate::support::{accept_manifests, access_of, jwt_claims, Creds, Server, Snapshot, PASSWORD};
use crate::world::{
    Pat, World, ACME_PUBLIC, ACME_SECRET, ALICE_HIDDEN, ALICE_PUBLIC, ALICE_SECRET,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use berth_core::auth::jwt::{Claims, ResourceAccess, TokenSigner};
use berth_core::auth::AuthSettings;
use berth_core::ports::{Accounts as _, SigningKeys as _};
use berth_core::time::{now_unix, rfc3339};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

fn actions(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|a| a.to_string()).collect())
}

/// The status and JSON body of a response.
async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(json!({ "raw": text })),
    )
}

fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["code"].as_str()
}

/// Asserts the standard claims of a token the server just issued and returns them.
fn assert_fresh_claims(token: &str, sub: &str, ttl: i64) -> Value {
    let claims = jwt_claims(token);
    let now = now_unix();
    assert_eq!(claims["iss"], "berth", "{claims}");
    assert_eq!(claims["sub"], sub, "{claims}");
    assert_eq!(claims["aud"], "berth", "{claims}");
    let iat = claims["iat"].as_i64().expect("iat");
    assert!(
        (now - 5..=now + 1).contains(&iat),
        "iat {iat} is not now ({now})"
    );
    assert_eq!(claims["exp"].as_i64(), Some(iat + ttl), "{claims}");
    assert!(claims["nbf"].as_i64().expect("nbf") <= iat, "{claims}");
    assert!(
        claims["jti"].as_str().is_some_and(|j| j.len() >= 16),
        "{claims}"
    );
    claims
}

/// Asserts a Docker `GET /token` answer and returns its claims.
fn assert_docker_answer(body: &Value, sub: &str) -> Value {
    let token = body["token"].as_str().expect("token");
    assert_eq!(body["access_token"], token, "access_token repeats token");
    assert_eq!(body["expires_in"], 300);
    let claims = assert_fresh_claims(token, sub, 300);
    assert_eq!(
        body["issued_at"],
        rfc3339(claims["iat"].as_i64().expect("iat")),
        "issued_at is the token's iat in RFC 3339"
    );
    claims
}

/// A refused registry request: 401, `UNAUTHORIZED`, and exactly `challenge`.
async fn assert_challenged(resp: reqwest::Response, challenge: &str) {
    let answer = Snapshot::of(resp).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    if !answer.body.is_empty() {
        assert_eq!(
            answer.error_code().as_deref(),
            Some("UNAUTHORIZED"),
            "{answer:?}"
        );
    }
    assert_eq!(
        answer.header("www-authenticate"),
        Some(challenge),
        "{answer:?}"
    );
}

#[tokio::test]
async fn refused_requests_send_clients_to_the_token_service() {
    let world = World::build().await;
    let server = &world.server;
    let anonymous = Creds::Anonymous;

    let base_challenge = format!(
        "Bearer realm=\"http://127.0.0.1:{}/token\",service=\"berth\"",
        server.addr.port()
    );
    assert_eq!(base_challenge, server.challenge(None, false));
    assert_challenged(server.get(&anonymous, "/v2/").await, &base_challenge).await;
    assert_challenged(
        server
            .send(server.request(&anonymous, Method::HEAD, "/v2/"))
            .await,
        &base_challenge,
    )
    .await;

    let cases = [
        (
            Method::GET,
            format!("/v2/{ALICE_SECRET}/manifests/v1"),
            "repository:alice/secret:pull",
        ),
        (
            Method::GET,
            format!("/v2/{ALICE_SECRET}/tags/list"),
            "repository:alice/secret:pull",
        ),
        (
            Method::POST,
            format!("/v2/{ALICE_PUBLIC}/blobs/uploads/"),
            "repository:alice/public:pull,push",
        ),
        (
            Method::DELETE,
            format!("/v2/{ALICE_PUBLIC}/manifests/v1"),
            "repository:alice/public:delete",
        ),
    ];
    for (method, path, scope) in cases {
        let expected = format!(
            "Bearer realm=\"http://127.0.0.1:{}/token\",service=\"berth\",scope=\"{scope}\"",
            server.addr.port()
        );
        let resp = server.send(server.request(&anonymous, method, &path)).await;
        assert_challenged(resp, &expected).await;
    }
    // The realm follows the Host the client used.
    let resp = server
        .send(
            server
                .request(&anonymous, Method::GET, "/v2/")
                .header("host", "registry.example.com:5000"),
        )
        .await;
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"http://registry.example.com:5000/token\",service=\"berth\""
    );
}

#[tokio::test]
async fn anonymous_tokens_grant_public_pulls_only() {
    let world = World::build().await;
    let server = &world.server;
    let scopes = [
        "repository:alice/public:pull,push,delete",
        "repository:alice/secret:pull",
        "repository:alice/absent:pull",
    ];
    let (status, body) = json_of(server.get_token(&Creds::Anonymous, &scopes, true).await).await;
    assert_eq!(status, 200, "{body}");
    let claims = assert_docker_answer(&body, "");
    assert_eq!(
        claims["access"],
        json!([{"type": "repository", "name": "alice/public", "actions": ["pull"]}]),
        "asking for more than allowed is not an error; private and missing look alike"
    );
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token for nobody: {body}"
    );

    // Every token is its own.
    let (_, again) = json_of(server.get_token(&Creds::Anonymous, &scopes, false).await).await;
    assert_ne!(
        jwt_claims(again["token"].as_str().unwrap())["jti"],
        claims["jti"]
    );

    // With no scope at all: a token that grants nothing.
    let (status, body) = json_of(server.get_token(&Creds::Anonymous, &[], false).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(assert_docker_answer(&body, "")["access"], json!([]));
}

#[tokio::test]
async fn tokens_grant_the_intersection_of_what_was_asked_and_what_is_allowed() {
    let world = World::build().await;
    let server = &world.server;

    // rita reads acme's repositories through her team; she may not push or delete.
    let rita = Creds::basic("rita", PASSWORD);
    let scopes = [
        "repository:acme/public:pull,push,delete",
        "repository:acme/secret:pull,push",
        "repository:alice/secret:pull",
        "registry:catalog:*",
    ];
    let (status, body) = json_of(server.get_token(&rita, &scopes, false).await).await;
    assert_eq!(status, 200, "{body}");
    let claims = assert_docker_answer(&body, "rita");
    let access = access_of(&claims);
    assert_eq!(
        access.get("repository:acme/public").cloned(),
        actions(&["pull"])
    );
    assert_eq!(
        access.get("repository:acme/secret").cloned(),
        actions(&["pull"])
    );
    assert_eq!(
        access.get("repository:alice/secret"),
        None,
        "someone else's private"
    );
    assert_eq!(access.get("registry:catalog").cloned(), actions(&["*"]));
    assert_eq!(access.len(), 3, "{claims}");

    // An access token signs in like a password and narrows what is granted.
    let (status, body) = json_of(
        server
            .get_token(
                &world.pat(Pat::Read),
                &[
                    "repository:alice/secret:pull,push,delete",
                    "repository:alice/public:push",
                ],
                false,
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let claims = assert_docker_answer(&body, "alice");
    assert_eq!(
        claims["access"],
        json!([{"type": "repository", "name": "alice/secret", "actions": ["pull"]}])
    );
    let (status, body) = json_of(
        server
            .get_token(
                &world.pat(Pat::LimitedToHidden),
                &[
                    "repository:alice/hidden:pull,push,delete",
                    "repository:alice/public:pull",
                ],
                false,
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Outside its repositories the limited token still pulls what is public.
    assert_eq!(
        assert_docker_answer(&body, "alice")["access"],
        json!([
            {"type": "repository", "name": ALICE_HIDDEN, "actions": ["pull", "push", "delete"]},
            {"type": "repository", "name": "alice/public", "actions": ["pull"]}
        ])
    );

    // The organization token acts for acme.
    let (status, body) = json_of(
        server
            .get_token(
                &world.pat(Pat::Acme),
                &[
                    "repository:acme/secret:pull,push,delete",
                    "repository:alice/secret:pull",
                ],
                false,
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let claims = jwt_claims(body["token"].as_str().unwrap());
    assert_eq!(
        claims["access"],
        json!([{"type": "repository", "name": ACME_SECRET, "actions": ["pull", "push", "delete"]}])
    );
}

/// Scopes may also come space-separated in one `scope` parameter (the server splits them);
/// in a query string a space is sent as `+` (as Go's `url.Values` and every form encoder
/// write it) or `%20`, and both must mean the same.
#[tokio::test]
async fn scopes_may_share_one_query_parameter() {
    let world = World::build().await;
    let server = &world.server;
    let walt = Creds::basic("walt", PASSWORD);
    let both = "repository:acme/secret:pull,push,delete repository:acme/public:push";
    for query in [both.replace(' ', "%20"), both.replace(' ', "+")] {
        let resp = server
            .send(server.request(
                &walt,
                Method::GET,
                &format!("/token?service=berth&scope={query}"),
            ))
            .await;
        let (status, body) = json_of(resp).await;
        assert_eq!(status, 200, "{body}");
        let access = access_of(&assert_docker_answer(&body, "walt"));
        assert_eq!(
            access.get("repository:acme/secret").cloned(),
            actions(&["pull", "push"]),
            "scope={query}"
        );
        assert_eq!(
            access.get("repository:acme/public").cloned(),
            actions(&["push"]),
            "scope={query}"
        );
    }
}

#[tokio::test]
async fn scope_floods_are_merged_or_refused_never_signed() {
    let world = World::build().await;
    let server = &world.server;
    let anonymous = Creds::Anonymous;
    let scope = format!("repository:{ALICE_PUBLIC}:pull");
    let token_query = |scopes: &[String]| {
        let mut query = "/token?service=berth".to_owned();
        for scope in scopes {
            query.push_str("&scope=");
            query.push_str(scope);
        }
        query
    };

    // Repeats, and the same repository asked for twice, make one grant each.
    let repeated: Vec<String> = std::iter::repeat_n(scope.clone(), 20)
        .chain([format!("repository:{ALICE_PUBLIC}:push,pull,pull")])
        .collect();
    let resp = server
        .send(server.request(&anonymous, Method::GET, &token_query(&repeated)))
        .await;
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200, "{body}");
    let claims = jwt_claims(body["token"].as_str().unwrap());
    assert_eq!(
        claims["access"],
        json!([{ "type": "repository", "name": ALICE_PUBLIC, "actions": ["pull"] }])
    );

    // 1,500 copies of one scope (a 55 KB query): refused before anything is signed.
    let flood = vec![scope.clone(); 1500];
    let resp = server
        .send(server.request(&anonymous, Method::GET, &token_query(&flood)))
        .await;
    let (status, body) = json_of(resp).await;
    assert_eq!(
        status,
        400,
        "{}",
        &body.to_string()[..200.min(body.to_string().len())]
    );
    assert_eq!(error_code(&body), Some("UNSUPPORTED"));
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("longer than"),
        "{body}"
    );

    // At most 32 distinct scopes, on GET and on the OAuth2 form alike.
    let distinct = |count: usize| -> Vec<String> {
        (0..count)
            .map(|i| format!("repository:alice/r{i}:pull"))
            .collect()
    };
    let resp = server
        .send(server.request(&anonymous, Method::GET, &token_query(&distinct(32))))
        .await;
    assert_eq!(resp.status(), 200);
    let resp = server
        .send(server.request(&anonymous, Method::GET, &token_query(&distinct(33))))
        .await;
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_code(&body), Some("UNSUPPORTED"));
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 32"),
        "{body}"
    );
    let scopes = distinct(33).join(" ");
    let (status, body) = json_of(
        server
            .post_token(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
                ("scope", &scopes),
            ])
            .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_code(&body), Some("UNSUPPORTED"));
}

#[tokio::test]
async fn bearer_tokens_open_what_they_grant_and_nothing_else() {
    let world = World::build().await;
    let server = &world.server;
    let (bearer, _) = server
        .bearer(
            &Creds::basic("rita", PASSWORD),
            &["repository:acme/secret:pull"],
        )
        .await;

    for path in [
        "/v2/".to_owned(),
        format!("/v2/{ACME_SECRET}/manifests/v1"),
        format!("/v2/{ACME_SECRET}/tags/list"),
    ] {
        let resp = server
            .send(accept_manifests(server.request(
                &bearer,
                Method::GET,
                &path,
            )))
            .await;
        assert_eq!(resp.status(), 200, "GET {path}");
    }
    let resp = server
        .send(accept_manifests(server.request(
            &bearer,
            Method::HEAD,
            &format!("/v2/{ACME_SECRET}/manifests/v1"),
        )))
        .await;
    assert_eq!(resp.status(), 200);

    let refused = [
        (
            Method::POST,
            format!("/v2/{ACME_SECRET}/blobs/uploads/"),
            "repository:acme/secret:pull,push",
        ),
        (
            Method::GET,
            format!("/v2/{ACME_PUBLIC}/tags/list"),
            "repository:acme/public:pull",
        ),
        (Method::GET, "/v2/_catalog".to_owned(), "registry:catalog:*"),
    ];
    for (method, path, scope) in refused {
        let resp = server.send(server.request(&bearer, method, &path)).await;
        assert_challenged(resp, &server.challenge(Some(scope), true)).await;
    }

    // Asking for the catalog opens it.
    let (bearer, _) = server
        .bearer(&Creds::basic("rita", PASSWORD), &["registry:catalog:*"])
        .await;
    let resp = server.get(&bearer, "/v2/_catalog").await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn basic_credentials_work_directly_on_the_registry() {
    let world = World::build().await;
    let server = &world.server;
    let alice = Creds::basic("alice", PASSWORD);
    for creds in [&alice, &world.pat(Pat::Read)] {
        assert_eq!(server.get(creds, "/v2/").await.status(), 200, "{creds:?}");
        let resp = server
            .send(accept_manifests(server.request(
                creds,
                Method::GET,
                &format!("/v2/{ALICE_SECRET}/manifests/v1"),
            )))
            .await;
        assert_eq!(resp.status(), 200, "{creds:?}");
    }
    let wrong = Creds::basic("alice", "not the password");
    assert_challenged(
        server.get(&wrong, "/v2/").await,
        &server.challenge(None, false),
    )
    .await;
    // A token sent under someone else's name does not sign in.
    let (_, secret) = &world.pats[&Pat::Admin];
    assert_challenged(
        server.get(&Creds::basic("bob", secret), "/v2/").await,
        &server.challenge(None, false),
    )
    .await;
}

#[tokio::test]
async fn the_oauth2_password_grant_issues_tokens() {
    let world = World::build().await;
    let server = &world.server;
    // The password holds '+', spaces, '&', '=' and '%': the form must be decoded properly.
    let resp = server
        .post_token(&[
            ("grant_type", "password"),
            ("service", "berth"),
            ("client_id", "berth-tests"),
            ("username", "alice"),
            ("password", PASSWORD),
            (
                "scope",
                "repository:alice/secret:pull,push repository:acme/secret:pull",
            ),
            ("scope", "repository:alice/public:pull"),
            ("access_type", "offline"),
        ])
        .await;
    assert_eq!(
        resp.headers().get("cache-control").map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("access_token");
    let claims = assert_fresh_claims(token, "alice", 300);
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["issued_at"], rfc3339(claims["iat"].as_i64().unwrap()));
    assert_eq!(
        body["scope"], "repository:alice/secret:pull,push repository:alice/public:pull",
        "the granted scopes, without acme/secret"
    );
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    let resp = server
        .send(accept_manifests(server.request(
            &Creds::Bearer(token.to_owned()),
            Method::GET,
            &format!("/v2/{ALICE_SECRET}/manifests/v1"),
        )))
        .await;
    assert_eq!(resp.status(), 200);

    // Without access_type=offline there is no refresh token.
    let (status, body) = json_of(
        server
            .post_token(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
                ("service", "berth"),
            ])
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["scope"], "");

    // The same password sent with '+' left as is means spaces become pluses: refused.
    let literal = format!(
        "grant_type=password&username=alice&password={}",
        PASSWORD
            .replace('%', "%25")
            .replace(' ', "%20")
            .replace('&', "%26")
            .replace('=', "%3D")
    );
    let resp = server
        .send(
            server
                .client
                .post(server.url("/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(literal),
        )
        .await;
    assert_eq!(resp.status(), 401, "a mis-encoded password must not match");
}

#[tokio::test]
async fn wrong_passwords_and_unknown_accounts_are_refused_alike() {
    let world = World::build().await;
    let server = &world.server;
    let mut answers = Vec::new();
    for name in ["alice", "nobody-here"] {
        let resp = server
            .post_token(&[
                ("grant_type", "password"),
                ("username", name),
                ("password", "wrong password"),
            ])
            .await;
        let answer = Snapshot::of(resp).await;
        assert_eq!(answer.status, 401, "{answer:?}");
        assert_eq!(answer.error_code().as_deref(), Some("UNAUTHORIZED"));
        answers.push(answer);

        let resp = server
            .get_token(&Creds::basic(name, "wrong password"), &[], false)
            .await;
        let answer = Snapshot::of(resp).await;
        assert_eq!(answer.status, 401, "{answer:?}");
        answers.push(answer);
    }
    assert_eq!(answers[0], answers[2], "POST: wrong password vs no account");
    assert_eq!(answers[1], answers[3], "GET: wrong password vs no account");
}

#[tokio::test]
async fn unsupported_grants_are_a_bad_request() {
    let world = World::build().await;
    let server = &world.server;
    for grant in ["client_credentials", "authorization_code", ""] {
        let (status, body) = json_of(
            server
                .post_token(&[("grant_type", grant), ("service", "berth")])
                .await,
        )
        .await;
        assert_eq!(status, 400, "grant {grant:?}: {body}");
        assert_eq!(body["error"], "unsupported_grant_type", "{body}");
    }
}

#[tokio::test]
async fn refresh_tokens_sign_in_again_until_their_access_token_is_revoked() {
    let world = World::build().await;
    let server = &world.server;

    // From a password sign-in.
    let (status, body) = json_of(
        server
            .get_token(
                &Creds::basic("walt", PASSWORD),
                &["repository:acme/secret:pull"],
                true,
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let from_password = body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();
    let (status, body) = json_of(
        server
            .post_token(&[
                ("grant_type", "refresh_token"),
                ("service", "berth"),
                ("client_id", "berth-tests"),
                ("refresh_token", &from_password),
                ("scope", "repository:acme/secret:pull,push,delete"),
            ])
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "repository:acme/secret:pull,push");
    assert_fresh_claims(body["access_token"].as_str().unwrap(), "walt", 300);

    // From an access token: the token's limits stay, and revoking it ends the refresh.
    let (token_id, secret) = server
        .token(world.users["alice"], None, "repo:read", &[], None)
        .await;
    let (status, body) = json_of(
        server
            .get_token(&Creds::basic("alice", &secret), &[], true)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let from_token = body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();
    let refresh = |refresh_token: String| async move {
        json_of(
            server
                .post_token(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &refresh_token),
                    ("scope", "repository:alice/secret:pull,push"),
                ])
                .await,
        )
        .await
    };
    let (status, body) = refresh(from_token.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["scope"], "repository:alice/secret:pull",
        "a read token's refresh"
    );
    assert_fresh_claims(body["access_token"].as_str().unwrap(), "alice", 300);

    server.revoke(token_id).await;
    let (status, body) = refresh(from_token).await;
    assert_eq!(status, 401, "refresh after its token was revoked: {body}");
    assert_eq!(error_code(&body), Some("UNAUTHORIZED"));

    // The password's refresh token is unaffected; a made-up one is refused.
    let (status, _) = refresh(from_password).await;
    assert_eq!(status, 200);
    let (status, _) = refresh("berth_rt_0123456789abcdef".to_owned()).await;
    assert_eq!(status, 401);
}

/// Claims for `sub` granting `pull` on `repo`, valid now unless adjusted.
fn claims_for(sub: &str, repo: &str) -> Claims {
    let now = now_unix();
    Claims {
        iss: "berth".into(),
        sub: sub.into(),
        aud: "berth".into(),
        exp: now + 300,
        nbf: now,
        iat: now,
        jti: format!("forged-{now}"),
        access: vec![ResourceAccess {
            kind: "repository".into(),
            name: repo.into(),
            actions: vec!["pull".into()],
        }],
        tid: None,
        uid: None,
        gen: None,
    }
}

#[tokio::test]
async fn tampered_foreign_and_expired_bearers_are_refused() {
    let world = World::build().await;
    let server = &world.server;
    let path = format!("/v2/{ALICE_SECRET}/manifests/v1");
    let challenge = server.challenge(Some("repository:alice/secret:pull"), false);
    let pull = |token: String| {
        server.send(accept_manifests(server.request(
            &Creds::Bearer(token),
            Method::GET,
            &path,
        )))
    };

    // Control: claims signed with the server's own key are honoured, so the refusals below
    // are about what was changed, not about how the tokens were made.
    let secret = server
        .meta
        .signing_key_or_insert(&[0u8; 32], now_unix())
        .await
        .expect("signing key");
    let ours = TokenSigner::from_secret(&secret).expect("key");
    assert_eq!(
        pull(ours.sign(&claims_for("alice", ALICE_SECRET)).unwrap())
            .await
            .status(),
        200
    );

    let expired = Claims {
        exp: now_unix() - 10,
        iat: now_unix() - 310,
        nbf: now_unix() - 310,
        ..claims_for("alice", ALICE_SECRET)
    };
    let not_yet = Claims {
        nbf: now_unix() + 3600,
        ..claims_for("alice", ALICE_SECRET)
    };
    let other_audience = Claims {
        aud: "another-registry".into(),
        ..claims_for("alice", ALICE_SECRET)
    };
    let stranger = TokenSigner::generate().expect("key");

    // A real token for a public repository, with alice/secret written into its claims.
    let (Creds::Bearer(real), _) = server
        .bearer(&Creds::Anonymous, &["repository:alice/public:pull"])
        .await
    else {
        unreachable!()
    };
    let parts: Vec<&str> = real.split('.').collect();
    let mut widened = jwt_claims(&real);
    widened["access"] = json!([{"type": "repository", "name": ALICE_SECRET, "actions": ["pull"]}]);
    let widened = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(widened.to_string()),
        parts[2]
    );
    let mut flipped: Vec<u8> = parts[1].as_bytes().to_vec();
    let middle = flipped.len() / 2;
    flipped[middle] = if flipped[middle] == b'A' { b'B' } else { b'A' };
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        String::from_utf8(flipped).unwrap(),
        parts[2]
    );

    let forged = [
        ("payload widened", widened),
        ("payload character flipped", flipped),
        (
            "signed by another key",
            stranger.sign(&claims_for("alice", ALICE_SECRET)).unwrap(),
        ),
        ("expired", ours.sign(&expired).unwrap()),
        ("not yet valid", ours.sign(&not_yet).unwrap()),
        ("for another service", ours.sign(&other_audience).unwrap()),
        ("not a JWT", "not-a-token".to_owned()),
    ];
    for (what, token) in forged {
        let resp = pull(token).await;
        let answer = Snapshot::of(resp).await;
        assert_eq!(answer.status, 401, "{what}: {answer:?}");
        assert_eq!(
            answer.error_code().as_deref(),
            Some("UNAUTHORIZED"),
            "{what}"
        );
        assert_eq!(
            answer.header("www-authenticate"),
            Some(challenge.as_str()),
            "{what}"
        );
    }
}

#[tokio::test]
async fn bearer_tokens_stop_working_when_they_expire() {
    // At the start of a second: tokens carry whole seconds, so the token issued now expires
    // at the start of the next one.
    let clock = berth_core::clock::ManualClock::at(now_unix() * 1000);
    let server = Server::start_on_clock(
        AuthSettings {
            token_ttl: Duration::from_secs(1),
            ..AuthSettings::default()
        },
        Some(clock.clone()),
    )
    .await;
    server.user("admin", true).await;
    let admin = Creds::basic("admin", PASSWORD);
    server.push_image(&admin, "admin/app", "v1", 1).await;

    let (status, body) = json_of(
        server
            .get_token(&admin, &["repository:admin/app:pull"], false)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 1);
    let token = body["token"].as_str().unwrap().to_owned();
    assert_fresh_claims(&token, "admin", 1);
    let bearer = Creds::Bearer(token);
    let path = "/v2/admin/app/manifests/v1";
    let pull = || server.send(accept_manifests(server.request(&bearer, Method::GET, path)));
    assert_eq!(pull().await.status(), 200, "fresh");
    clock.advance(Duration::from_millis(999));
    assert_eq!(pull().await.status(), 200, "still fresh");
    clock.advance(Duration::from_millis(1));
    assert_challenged(
        pull().await,
        &server.challenge(Some("repository:admin/app:pull"), false),
    )
    .await;
}

#[tokio::test]
async fn accounts_with_two_factor_sign_in_with_access_tokens_only() {
    let world = World::build().await;
    let server = &world.server;
    let alice = Creds::basic("alice", PASSWORD);
    let scope = ["repository:alice/secret:pull"];
    assert_eq!(server.get_token(&alice, &scope, false).await.status(), 200);

    assert!(server
        .meta
        .set_totp("alice", Some("JBSWY3DPEHPK3PXP"), true)
        .await
        .expect("two-factor on"));

    let (status, body) = json_of(server.get_token(&alice, &scope, false).await).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_code(&body), Some("UNAUTHORIZED"));
    let (status, _) = json_of(
        server
            .post_token(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ])
            .await,
    )
    .await;
    assert_eq!(status, 401);
    assert_challenged(
        server.get(&alice, "/v2/").await,
        &server.challenge(None, false),
    )
    .await;

    // Her access token still works, for the token service and directly.
    let pat = world.pat(Pat::Read);
    let (bearer, claims) = server.bearer(&pat, &scope).await;
    assert_eq!(
        access_of(&claims).get("repository:alice/secret").cloned(),
        actions(&["pull"])
    );
    let path = format!("/v2/{ALICE_SECRET}/manifests/v1");
    for creds in [&bearer, &pat] {
        let resp = server
            .send(accept_manifests(server.request(creds, Method::GET, &path)))
            .await;
        assert_eq!(resp.status(), 200, "{creds:?}");
    }
}

#[tokio::test]
async fn a_token_the_registry_would_refuse_is_never_issued() {
    // Only a huge issuer name makes a token this long; what matters is that the service
    // checks what it signs against what the verifier accepts.
    let server = Server::start_with(AuthSettings {
        issuer: "i".repeat(70_000),
        ..AuthSettings::default()
    })
    .await;
    let (status, body) = json_of(server.get_token(&Creds::Anonymous, &[], false).await).await;
    assert_eq!(status, 400, "{}", body.to_string().len());
    assert_eq!(error_code(&body), Some("UNSUPPORTED"));
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("more than the 65536"));
}

/// A registry bearer issued to an access token keeps working from memory, and ends at the
/// very next request once the token is revoked (the revoke moves the credentials epoch the
/// remembered answer depends on), not when the bearer runs out.
#[tokio::test]
async fn a_bearer_of_a_revoked_access_token_stops_at_the_next_request() {
    let world = World::build().await;
    let server = &world.server;
    let owner = server.user("bearer-revoke", true).await;
    let (token_id, secret) = server.token(owner, None, "repo:admin", &[], None).await;
    let scope = format!("repository:{ALICE_SECRET}:pull");
    let (bearer, _) = server
        .bearer(&Creds::basic("bearer-revoke", &secret), &[scope.as_str()])
        .await;
    let pull = || {
        server.send(accept_manifests(server.request(
            &bearer,
            Method::GET,
            &format!("/v2/{ALICE_SECRET}/manifests/v1"),
        )))
    };
    for _ in 0..3 {
        assert_eq!(pull().await.status(), 200, "the bearer pulls");
    }
    server.revoke(token_id).await;
    assert_eq!(
        pull().await.status(),
        401,
        "refused once its token is revoked"
    );
}
