//! The transparent mirror (docker's `registry-mirrors` through `mirror_default`, containerd's
//! `?ns=`), and upstreams that need credentials: htpasswd (Basic) and Docker token auth.

use crate::support::*;
use berth_core::identity::hash_password;
use berth_core::ports::{Accounts as _, NewUser};
use berth_core::time::now_unix;
use berth_testkit::images::SmallImage;
use berth_testkit::{data_dir, serve, Options};
use std::time::Duration;

async fn manifest_status(url: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(url)
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let digest = response
        .headers()
        .get("docker-content-digest")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, digest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprefixed_pulls_go_through_the_default_mirror_or_the_one_ns_names() {
    if !have_distribution() {
        return;
    }
    let hub = Distribution::start(None).await;
    let other = Distribution::start(None).await;
    let from_hub = seed(
        &client_for(&hub.url, None),
        "team/app",
        "v1",
        &SmallImage::linux(1, "hub"),
    )
    .await;
    let from_other = seed(
        &client_for(&other.url, None),
        "team/app",
        "v1",
        &SmallImage::linux(2, "other"),
    )
    .await;
    let dir = data_dir();
    let mut options = Options {
        mirrors: vec![
            mirror("hub", &hub.url, Duration::from_secs(3600)),
            mirror("other", &other.url, Duration::from_secs(3600)),
        ],
        ..Options::default()
    };
    options.settings.mirror_default = Some("hub".to_owned());
    let berth = serve(dir.path(), options).await;

    // docker's registry-mirrors: the Hub path, unchanged.
    let (status, digest) =
        manifest_status(&format!("{}/v2/team/app/manifests/v1", berth.url())).await;
    assert_eq!((status, digest), (200, from_hub.to_string()));
    // Cached under the mirror's prefix, where it can be pulled by that name as well.
    let (status, digest) =
        manifest_status(&format!("{}/v2/hub/team/app/manifests/v1", berth.url())).await;
    assert_eq!((status, digest), (200, from_hub.to_string()));

    // containerd's ns= picks the mirror whose upstream host it names.
    let ns = other.url.trim_start_matches("http://");
    let (status, digest) =
        manifest_status(&format!("{}/v2/team/app/manifests/v1?ns={ns}", berth.url())).await;
    assert_eq!((status, digest), (200, from_other.to_string()));

    // A name the upstream does not have: its 404, mapped.
    let (status, _) = manifest_status(&format!("{}/v2/team/none/manifests/v1", berth.url())).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_htpasswd_upstream_is_reached_with_the_mirrors_credentials() {
    if !have_distribution() {
        return;
    }
    let Some(line) = htpasswd_line("mirror", "upstream-secret") else {
        return;
    };
    let upstream = Distribution::start(Some(&line)).await;
    let image = SmallImage::linux("basic", "auth");
    let digest = seed(
        &client_for(&upstream.url, Some(("mirror", "upstream-secret"))),
        "team/app",
        "v1",
        &image,
    )
    .await;
    let dir = data_dir();
    let mut with_credentials = mirror("up", &upstream.url, Duration::from_secs(3600));
    with_credentials.username = Some("mirror".to_owned());
    with_credentials.password = Some("upstream-secret".to_owned());
    let without = mirror("anon", &upstream.url, Duration::from_secs(3600));
    let berth = serve(
        dir.path(),
        Options {
            mirrors: vec![with_credentials, without],
            ..Options::default()
        },
    )
    .await;
    let (status, got) =
        manifest_status(&format!("{}/v2/up/team/app/manifests/v1", berth.url())).await;
    assert_eq!((status, got), (200, digest.to_string()));
    let layer = berth_oci::Digest::sha256_of(&image.layer);
    let blob = reqwest::get(format!("{}/v2/up/team/app/blobs/{layer}", berth.url()))
        .await
        .unwrap();
    assert_eq!(blob.bytes().await.unwrap().as_ref(), image.layer.as_slice());
    // Without credentials the upstream refuses, and so does the mirror (no cache to serve).
    let (status, _) =
        manifest_status(&format!("{}/v2/anon/team/app/manifests/v1", berth.url())).await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_auth_upstream_is_reached_through_its_realm() {
    // A second Berth: `/token` with realm, service and scope, as Docker Hub and GHCR answer.
    let upstream_dir = data_dir();
    let upstream = serve(upstream_dir.path(), Options::default()).await;
    upstream
        .meta
        .create_user(&NewUser {
            name: "alice".to_owned(),
            password_hash: hash_password("alice-password-1").unwrap(),
            is_admin: false,
            now: now_unix(),
        })
        .await
        .unwrap();
    let image = SmallImage::linux("token", "auth");
    let digest = seed(
        &client_for(&upstream.url(), Some(("alice", "alice-password-1"))),
        "alice/private",
        "v1",
        &image,
    )
    .await;
    let dir = data_dir();
    let mut config = mirror("up", &upstream.url(), Duration::from_secs(3600));
    config.username = Some("alice".to_owned());
    config.password = Some("alice-password-1".to_owned());
    let berth = serve(
        dir.path(),
        Options {
            mirrors: vec![config],
            ..Options::default()
        },
    )
    .await;
    let (status, got) =
        manifest_status(&format!("{}/v2/up/alice/private/manifests/v1", berth.url())).await;
    assert_eq!((status, got), (200, digest.to_string()));
    let config_digest = berth_oci::Digest::sha256_of(&image.config);
    let blob = reqwest::get(format!(
        "{}/v2/up/alice/private/blobs/{config_digest}",
        berth.url()
    ))
    .await
    .unwrap();
    assert_eq!(
        blob.bytes().await.unwrap().as_ref(),
        image.config.as_slice()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_mirror_refuses_anonymous_pulls() {
    let dir = data_dir();
    // Nothing listens on the upstream: a caller let through reaches it and gets 502.
    let mut config = mirror("private", "http://127.0.0.1:9", Duration::from_secs(3600));
    config.access = berth_core::mirror::MirrorAccess::SignedIn;
    let berth = serve(
        dir.path(),
        Options {
            mirrors: vec![config],
            ..Options::default()
        },
    )
    .await;
    berth
        .meta
        .create_user(&NewUser {
            name: "bob".to_owned(),
            password_hash: hash_password("bob-password-1").unwrap(),
            is_admin: false,
            now: now_unix(),
        })
        .await
        .unwrap();
    let url = format!("{}/v2/private/team/app/manifests/v1", berth.url());
    let anonymous = reqwest::get(&url).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let signed_in = reqwest::Client::new()
        .get(&url)
        .basic_auth("bob", Some("bob-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        signed_in.status(),
        502,
        "let through to the (unreachable) upstream"
    );
    // Even a signed-in caller cannot push into a mirror.
    let push = reqwest::Client::new()
        .post(format!(
            "{}/v2/private/team/app/blobs/uploads/",
            berth.url()
        ))
        .basic_auth("bob", Some("bob-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), 403);
}
