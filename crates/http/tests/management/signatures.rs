//! Signatures and pull policies end to end: cosign signatures in cosign's own layout (the
//! simple-signing payload layer with its `dev.cosignproject.cosign/signature` annotation, under
//! the `sha256-<hex>.sig` tag or as an OCI 1.1 referrer), signed here with ring from key files
//! made by `openssl genpkey` (the key types `cosign generate-key-pair` and `cosign
//! import-key-pair` use); verified only against trusted keys, for every key type; tampered
//! payloads, wrong keys and broken encodings never verify; removing a key changes the state;
//! pull policies refuse `GET`s with a message naming the policy and the reason.

use crate::support::{basic, sha256, Berth, Session, ADMIN_PASSWORD, OCI_MANIFEST, PASSWORD};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, RSA_PKCS1_SHA256,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const COSIGN_SIG_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/cosign/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A private key from the fixtures, signing as cosign does for its type.
enum Signer {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl Signer {
    fn load(name: &str) -> Signer {
        let der = pem::parse(fixture(&format!("{name}.key")))
            .expect("PEM")
            .into_contents();
        let rng = SystemRandom::new();
        if let Ok(key) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der, &rng) {
            return Signer::Ecdsa(key);
        }
        if let Ok(key) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
            return Signer::Ed25519(key);
        }
        Signer::Rsa(RsaKeyPair::from_pkcs8(&der).expect("an ECDSA, Ed25519 or RSA key"))
    }

    fn sign(&self, payload: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Signer::Ecdsa(key) => key.sign(&rng, payload).expect("sign").as_ref().to_vec(),
            Signer::Ed25519(key) => key.sign(payload).as_ref().to_vec(),
            Signer::Rsa(key) => {
                let mut signature = vec![0; key.public().modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, payload, &mut signature)
                    .expect("sign");
                signature
            }
        }
    }
}

/// cosign's simple-signing payload for `digest` of `repo`.
fn payload(repo: &str, digest: &str) -> Vec<u8> {
    json!({
        "critical": {
            "identity": { "docker-reference": format!("127.0.0.1/{repo}") },
            "image": { "docker-manifest-digest": digest },
            "type": "cosign container image signature",
        },
        "optional": null,
    })
    .to_string()
    .into_bytes()
}

/// Where a signature goes.
#[derive(Clone, Copy)]
enum Form {
    /// `sha256-<hex>.sig`, cosign's default before v3.
    Tag,
    /// An OCI 1.1 referrer (`--registry-referrers-mode=oci-1-1`).
    Referrer,
}

/// Pushes a cosign signature manifest whose one layer is `payload` with `signature` (base64
/// text, as the annotation holds it), signing `subject` (`{digest, size}` of the image).
async fn push_signature(
    registry: &Session<'_>,
    repo: &str,
    subject: (&str, usize),
    payload: &[u8],
    signature: &str,
    form: Form,
) -> String {
    let layer = registry.push_blob(repo, SIMPLE_SIGNING, payload).await;
    let mut layer = layer;
    layer["annotations"] = json!({ "dev.cosignproject.cosign/signature": signature });
    match form {
        Form::Tag => {
            let config = json!({
                "architecture": "", "created": "0001-01-01T00:00:00Z",
                "history": [{ "created": "0001-01-01T00:00:00Z" }], "os": "",
                "rootfs": { "type": "layers", "diff_ids": [layer["digest"]] }, "config": {},
            })
            .to_string();
            let config = registry.push_blob(repo, CONFIG, config.as_bytes()).await;
            let manifest = json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer] });
            let tag = format!("{}.sig", subject.0.replace(':', "-"));
            registry
                .push_manifest(repo, &tag, OCI_MANIFEST, &manifest)
                .await
        }
        Form::Referrer => {
            let config = registry
                .push_blob(repo, "application/vnd.oci.empty.v1+json", b"{}")
                .await;
            let manifest = json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": COSIGN_SIG_ARTIFACT,
                "config": config, "layers": [layer],
                "subject": { "mediaType": OCI_MANIFEST, "digest": subject.0, "size": subject.1 },
            });
            let body = manifest.to_string();
            registry
                .push_manifest(repo, &sha256(body.as_bytes()), OCI_MANIFEST, &manifest)
                .await
        }
    }
}

/// Pushes a small image as `repo:tag`; its digest and manifest size.
async fn push_image(registry: &Session<'_>, repo: &str, tag: &str) -> (String, usize) {
    let config = registry
        .push_blob(
            repo,
            CONFIG,
            format!(r#"{{"os":"linux","architecture":"amd64","seed":"{repo}:{tag}"}}"#).as_bytes(),
        )
        .await;
    let layer = registry
        .push_blob(repo, LAYER, format!("layer {repo}:{tag}").as_bytes())
        .await;
    let manifest = json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer] });
    let digest = registry
        .push_manifest(repo, tag, OCI_MANIFEST, &manifest)
        .await;
    (digest, manifest.to_string().len())
}

/// Signs `image` with the fixture key `key` in `form`.
async fn sign(
    registry: &Session<'_>,
    repo: &str,
    image: &(String, usize),
    key: &str,
    form: Form,
) -> String {
    let payload = payload(repo, &image.0);
    let signature = STANDARD.encode(Signer::load(key).sign(&payload));
    push_signature(
        registry,
        repo,
        (&image.0, image.1),
        &payload,
        &signature,
        form,
    )
    .await
}

/// The tag's `signature` as the tags API shows it, once it is `state` (the verification runs
/// as a job after the push): polled with a generous deadline.
async fn signature_becomes(session: &Session<'_>, repo: &str, tag: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tags = session
            .get(&format!("/api/v1/repositories/{repo}/-/tags?page_size=100"))
            .await
            .expect(200);
        let entry = tags.body["results"]
            .as_array()
            .expect("results")
            .iter()
            .find(|t| t["name"] == tag)
            .cloned()
            .unwrap_or_else(|| panic!("no tag {tag}"));
        if entry["signature"]["state"] == state {
            return entry["signature"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "{repo}:{tag} never became {state}: {}",
            entry["signature"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn trust(admin: &Session<'_>, path: &str, name: &str, key: &str) -> Value {
    admin
        .post(
            &format!("{path}/trusted-keys"),
            json!({ "name": name, "public_key": fixture(&format!("{key}.pub")) }),
        )
        .await
        .expect(201)
        .body
}

#[tokio::test]
async fn a_cosign_signature_is_verified_only_by_a_trusted_key_and_removing_the_key_unverifies_it() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let registry = berth.with(basic("admin", ADMIN_PASSWORD));
    let repo = "admin/app";
    let image = push_image(&registry, repo, "v1").await;
    let unsigned = push_image(&registry, repo, "v2").await;
    assert_eq!(
        signature_becomes(&admin, repo, "v2", "unsigned").await,
        json!({ "state": "unsigned", "keys": [] })
    );
    let _ = unsigned;

    sign(&registry, repo, &image, "release", Form::Tag).await;
    // Signed, but nothing is trusted yet.
    signature_becomes(&admin, repo, "v1", "signed").await;

    let key = trust(&admin, "/api/v1/namespaces/admin", "release", "release").await;
    assert_eq!(key["algorithm"], "ecdsa-p256");
    assert!(key["fingerprint"].as_str().unwrap().starts_with("sha256:"));
    let verified = signature_becomes(&admin, repo, "v1", "verified").await;
    assert_eq!(verified["keys"], json!(["release"]));

    // A second trusted key that signed nothing changes nothing.
    trust(
        &admin,
        &format!("/api/v1/repositories/{repo}/-"),
        "other",
        "other",
    )
    .await;
    let listed = admin
        .get(&format!("/api/v1/repositories/{repo}/-/trusted-keys"))
        .await
        .expect(200);
    assert_eq!(listed.body["keys"][0]["name"], "other");
    assert_eq!(
        signature_becomes(&admin, repo, "v1", "verified").await["keys"],
        json!(["release"])
    );

    // Rotation: the old key goes, the image is signed but no longer verified.
    admin
        .delete("/api/v1/namespaces/admin/trusted-keys/release")
        .await
        .expect(204);
    signature_becomes(&admin, repo, "v1", "signed").await;
    admin
        .delete("/api/v1/namespaces/admin/trusted-keys/release")
        .await
        .expect_error(404, "NOT_FOUND");
    // … and the image signed again with the key that replaced it is verified by that one.
    sign(&registry, repo, &image, "other", Form::Referrer).await;
    assert_eq!(
        signature_becomes(&admin, repo, "v1", "verified").await["keys"],
        json!(["other"])
    );
}

#[tokio::test]
async fn every_key_type_verifies_in_both_cosign_forms() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let registry = berth.with(basic("admin", ADMIN_PASSWORD));
    let repo = "admin/keys";
    for (key, form, tag) in [
        ("release", Form::Referrer, "ecdsa"),
        ("ed25519", Form::Tag, "ed"),
        ("ed25519", Form::Referrer, "ed-ref"),
        ("rsa", Form::Tag, "rsa"),
    ] {
        let image = push_image(&registry, repo, tag).await;
        sign(&registry, repo, &image, key, form).await;
    }
    trust(
        &admin,
        &format!("/api/v1/repositories/{repo}/-"),
        "ec",
        "release",
    )
    .await;
    let ed = trust(
        &admin,
        &format!("/api/v1/repositories/{repo}/-"),
        "ed",
        "ed25519",
    )
    .await;
    assert_eq!(ed["algorithm"], "ed25519");
    let rsa = trust(
        &admin,
        &format!("/api/v1/repositories/{repo}/-"),
        "rsa",
        "rsa",
    )
    .await;
    assert_eq!(rsa["algorithm"], "rsa");
    for (tag, key) in [
        ("ecdsa", "ec"),
        ("ed", "ed"),
        ("ed-ref", "ed"),
        ("rsa", "rsa"),
    ] {
        let signature = signature_becomes(&admin, repo, tag, "verified").await;
        assert_eq!(signature["keys"], json!([key]), "{tag}");
    }
}

#[tokio::test]
async fn tampered_payloads_wrong_keys_and_broken_encodings_never_verify() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let registry = berth.with(basic("admin", ADMIN_PASSWORD));
    let repo = "admin/tamper";
    trust(&admin, "/api/v1/namespaces/admin", "release", "release").await;
    let signer = Signer::load("release");

    // A payload changed after it was signed.
    let tampered = push_image(&registry, repo, "tampered").await;
    let signed_payload = payload(repo, &tampered.0);
    let signature = STANDARD.encode(signer.sign(&signed_payload));
    let mut altered = signed_payload.clone();
    altered.extend_from_slice(b" ");
    push_signature(
        &registry,
        repo,
        (&tampered.0, tampered.1),
        &altered,
        &signature,
        Form::Tag,
    )
    .await;

    // A valid signature by the trusted key, over a payload naming another image.
    let elsewhere = push_image(&registry, repo, "elsewhere").await;
    let other_payload = payload(repo, &tampered.0);
    let signature = STANDARD.encode(signer.sign(&other_payload));
    push_signature(
        &registry,
        repo,
        (&elsewhere.0, elsewhere.1),
        &other_payload,
        &signature,
        Form::Referrer,
    )
    .await;

    // Signed with a key nobody trusts.
    let wrong = push_image(&registry, repo, "wrong-key").await;
    sign(&registry, repo, &wrong, "other", Form::Tag).await;

    // Signatures and payloads that are not what they claim to be.
    let garbled = push_image(&registry, repo, "garbled").await;
    push_signature(
        &registry,
        repo,
        (&garbled.0, garbled.1),
        b"\xff\xfe not json at all",
        "!!! not base64 !!!",
        Form::Tag,
    )
    .await;
    let bad_base64 = push_image(&registry, repo, "bad-base64").await;
    push_signature(
        &registry,
        repo,
        (&bad_base64.0, bad_base64.1),
        &payload(repo, &bad_base64.0),
        "%%%%",
        Form::Referrer,
    )
    .await;

    for tag in [
        "tampered",
        "elsewhere",
        "wrong-key",
        "garbled",
        "bad-base64",
    ] {
        let signature = signature_becomes(&admin, repo, tag, "signed").await;
        assert_eq!(signature["keys"], json!([]), "{tag}");
    }
    // The signature that was valid for `tampered`'s digest still does not verify it: its
    // own payload was altered.
    signature_becomes(&admin, repo, "tampered", "signed").await;
}

#[tokio::test]
async fn keys_that_are_not_keys_are_refused_by_name_and_only_admins_manage_trust() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let alice = berth.user("alice").await;
    let bob = berth.user("bob").await;
    let path = "/api/v1/namespaces/alice/trusted-keys";
    for (text, expected) in [
        ("hello".to_owned(), "not a PEM public key"),
        (fixture("release.key"), "private key"),
        (
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".to_owned(),
            "SubjectPublicKeyInfo",
        ),
        ("x".repeat(20_000), "bytes"),
    ] {
        let refused = alice
            .post(path, json!({ "name": "k", "public_key": text }))
            .await
            .expect_error(400, "BAD_REQUEST");
        assert!(
            refused.message().contains(expected),
            "{}",
            refused.message()
        );
    }
    alice
        .post(
            path,
            json!({ "name": "bad name!", "public_key": fixture("release.pub") }),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    alice
        .post(
            path,
            json!({ "name": "release", "public_key": fixture("release.pub") }),
        )
        .await
        .expect(201);
    alice
        .post(
            path,
            json!({ "name": "release", "public_key": fixture("other.pub") }),
        )
        .await
        .expect_error(409, "CONFLICT");
    let refused = bob
        .post(
            path,
            json!({ "name": "mine", "public_key": fixture("other.pub") }),
        )
        .await;
    assert!(
        matches!(refused.status, 401 | 403 | 404),
        "{}",
        refused.status
    );
    bob.get(path).await;
    let listed = admin.get(path).await.expect(200);
    assert_eq!(listed.body["keys"].as_array().unwrap().len(), 1);
    let audit = admin
        .get("/api/v1/auditlogs?action=trust.add")
        .await
        .expect(200);
    assert!(audit.text.contains("trust.add"), "{}", audit.text);
}

#[tokio::test]
async fn a_signature_policy_refuses_unverified_pulls_by_name_and_lets_signatures_and_admins_through(
) {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let alice = berth.user("alice").await;
    let registry = berth.with(basic("alice", PASSWORD));
    let repo = "alice/app";
    let signed = push_image(&registry, repo, "signed").await;
    push_image(&registry, repo, "unsigned").await;
    let signature = sign(&registry, repo, &signed, "release", Form::Tag).await;
    trust(&alice, "/api/v1/namespaces/alice", "release", "release").await;
    signature_becomes(&alice, repo, "signed", "verified").await;

    let policy = alice
        .put(
            "/api/v1/namespaces/alice/pull-policy",
            json!({ "require_signature": true }),
        )
        .await
        .expect(200);
    assert_eq!(policy.body["description"], "verified signatures only");

    let refused = registry.pull_manifest_reply(repo, "unsigned").await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(refused.body["errors"][0]["code"], "DENIED");
    let message = refused.body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("namespace alice's pull policy \"verified signatures only\""),
        "{message}"
    );
    assert!(message.contains("has no signature"), "{message}");
    // A HEAD only tells the digest, which a signer needs.
    assert_eq!(registry.head_manifest(repo, "unsigned").await, 200);
    // The verified image, and the signature itself, pull.
    assert_eq!(
        registry.pull_manifest_reply(repo, "signed").await.status,
        200
    );
    assert_eq!(
        registry.pull_manifest_reply(repo, &signed.0).await.status,
        200
    );
    let sig_tag = format!("{}.sig", signed.0.replace(':', "-"));
    assert_eq!(
        registry.pull_manifest_reply(repo, &sig_tag).await.status,
        200
    );
    assert_eq!(
        registry.pull_manifest_reply(repo, &signature).await.status,
        200
    );
    // Site admins are exempt (replication, repairs).
    let site_admin = berth.with(basic("admin", ADMIN_PASSWORD));
    assert_eq!(
        site_admin
            .pull_manifest_reply(repo, "unsigned")
            .await
            .status,
        200
    );

    // Signed by an untrusted key: refused with that reason.
    let other = push_image(&registry, repo, "other").await;
    sign(&registry, repo, &other, "other", Form::Referrer).await;
    signature_becomes(&alice, repo, "other", "signed").await;
    let refused = registry.pull_manifest_reply(repo, "other").await;
    assert_eq!(refused.status, 403);
    assert!(
        refused.text.contains("no signature verifies"),
        "{}",
        refused.text
    );

    // Cleared, everything pulls again.
    alice
        .delete("/api/v1/namespaces/alice/pull-policy")
        .await
        .expect(204);
    assert_eq!(
        registry.pull_manifest_reply(repo, "unsigned").await.status,
        200
    );
    let _ = admin;
}

#[tokio::test]
async fn a_severity_policy_reads_the_scanner_summaries() {
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    let registry = berth.with(basic("alice", PASSWORD));
    let repo = "alice/scanned";
    let clean = push_image(&registry, repo, "clean").await;
    let vulnerable = push_image(&registry, repo, "vulnerable").await;
    push_image(&registry, repo, "unscanned").await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", berth.database_path().display()))
        .await
        .expect("database");
    for (digest, critical, high, medium) in [(&clean.0, 0, 0, 4), (&vulnerable.0, 1, 2, 0)] {
        sqlx::query(
            "INSERT INTO vulnerability_summaries \
             (digest, critical, high, medium, low, unknown, scanned_at) VALUES (?, ?, ?, ?, 0, 0, 1)",
        )
        .bind(digest)
        .bind(critical)
        .bind(high)
        .bind(medium)
        .execute(&pool)
        .await
        .expect("summary");
    }
    pool.close().await;

    alice
        .put(
            &format!("/api/v1/repositories/{repo}/-/pull-policy"),
            json!({ "block_severity": "high" }),
        )
        .await
        .expect(200);
    assert_eq!(
        registry.pull_manifest_reply(repo, "clean").await.status,
        200
    );
    let refused = registry.pull_manifest_reply(repo, "vulnerable").await;
    assert_eq!(refused.status, 403);
    assert!(
        refused.text.contains("block severity high or higher"),
        "{}",
        refused.text
    );
    assert!(refused.text.contains("3 finding(s)"), "{}", refused.text);
    let refused = registry.pull_manifest_reply(repo, "unscanned").await;
    assert_eq!(refused.status, 403);
    assert!(
        refused.text.contains("not been scanned yet"),
        "{}",
        refused.text
    );

    let lenient = alice
        .put(
            &format!("/api/v1/repositories/{repo}/-/pull-policy"),
            json!({ "block_severity": "critical", "allow_unscanned": true }),
        )
        .await
        .expect(200);
    assert_eq!(lenient.body["allow_unscanned"], true);
    assert_eq!(
        registry.pull_manifest_reply(repo, "unscanned").await.status,
        200
    );
    assert_eq!(
        registry
            .pull_manifest_reply(repo, "vulnerable")
            .await
            .status,
        403
    );
    alice
        .put(
            &format!("/api/v1/repositories/{repo}/-/pull-policy"),
            json!({ "block_severity": "severe" }),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    alice
        .put(
            &format!("/api/v1/repositories/{repo}/-/pull-policy"),
            json!({}),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
}

#[tokio::test]
async fn the_web_ui_manages_keys_and_the_pull_policy_and_shows_each_tags_state() {
    use crate::browser::{get_page, post_signed_in_form, sign_in};
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    let registry = berth.with(basic("alice", PASSWORD));
    let repo = "alice/app";
    let image = push_image(&registry, repo, "v1").await;
    push_image(&registry, repo, "plain").await;
    sign(&registry, repo, &image, "release", Form::Tag).await;
    let cookies = sign_in(&berth, "alice", PASSWORD).await;
    let page = "/r/alice/app/-/settings/lifecycle";

    let refused = post_signed_in_form(
        &berth,
        &cookies,
        page,
        &format!("{page}/trust-add"),
        &[("name", "release"), ("public_key", "not a key")],
    )
    .await
    .expect(303);
    let shown = get_page(&berth, page, &refused.cookies_with(&cookies))
        .await
        .expect(200);
    assert!(
        shown.text.contains("not a PEM public key"),
        "{}",
        shown.text
    );

    let release = fixture("release.pub");
    post_signed_in_form(
        &berth,
        &cookies,
        page,
        &format!("{page}/trust-add"),
        &[("name", "release"), ("public_key", &release)],
    )
    .await
    .expect(303);
    post_signed_in_form(
        &berth,
        &cookies,
        page,
        &format!("{page}/pull-policy"),
        &[("require_signature", "1"), ("block_severity", "")],
    )
    .await
    .expect(303);
    let shown = get_page(&berth, page, &cookies).await.expect(200);
    assert!(shown.text.contains("ecdsa-p256"), "{}", shown.text);
    assert!(
        shown
            .text
            .contains("In force: <strong>verified signatures only</strong>"),
        "{}",
        shown.text
    );
    let api = alice
        .get(&format!("/api/v1/repositories/{repo}/-/pull-policy"))
        .await
        .expect(200);
    assert_eq!(api.body["require_signature"], true);

    signature_becomes(&alice, repo, "v1", "verified").await;
    let tags = get_page(&berth, &format!("/r/{repo}/-/tags"), &cookies)
        .await
        .expect(200);
    assert!(
        tags.text
            .contains("Verified</span> <span class=\"signature-keys\">by release"),
        "{}",
        tags.text
    );
    assert!(tags.text.contains("Unsigned"), "{}", tags.text);
    let tag_page = get_page(&berth, &format!("/r/{repo}/-/tags/v1"), &cookies)
        .await
        .expect(200);
    assert!(
        tag_page.text.contains("id=\"signature-state\""),
        "{}",
        tag_page.text
    );
    assert!(tag_page.text.contains("by release"), "{}", tag_page.text);
}

const SIGSTORE_BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const NOTATION_SIGNATURE: &str = "application/vnd.cncf.notary.signature";

/// Pushes a small image as `repo:tag`; its digest and manifest bytes (what a Sigstore message
/// signature signs).
async fn push_image_bytes(registry: &Session<'_>, repo: &str, tag: &str) -> (String, Vec<u8>) {
    let config = registry
        .push_blob(
            repo,
            CONFIG,
            format!(r#"{{"os":"linux","architecture":"amd64","seed":"{repo}:{tag}"}}"#).as_bytes(),
        )
        .await;
    let layer = registry
        .push_blob(repo, LAYER, format!("layer {repo}:{tag}").as_bytes())
        .await;
    let manifest = json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer] });
    let digest = registry
        .push_manifest(repo, tag, OCI_MANIFEST, &manifest)
        .await;
    (digest, manifest.to_string().into_bytes())
}

/// Pushes `envelope` as the one layer (of `layer_type`) of a referrer of `image` with
/// `artifact_type`, as cosign v3 (bundles) and notation (signatures) push them.
async fn push_envelope_referrer(
    registry: &Session<'_>,
    repo: &str,
    image: &(String, Vec<u8>),
    artifact_type: &str,
    layer_type: &str,
    envelope: &[u8],
    annotations: Value,
) -> String {
    let config = registry
        .push_blob(repo, "application/vnd.oci.empty.v1+json", b"{}")
        .await;
    let layer = registry.push_blob(repo, layer_type, envelope).await;
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": config, "layers": [layer],
        "subject": { "mediaType": OCI_MANIFEST, "digest": image.0, "size": image.1.len() },
        "annotations": annotations,
    });
    let body = manifest.to_string();
    registry
        .push_manifest(repo, &sha256(body.as_bytes()), OCI_MANIFEST, &manifest)
        .await
}

/// The in-toto statement `cosign sign` (v3) puts in its DSSE bundle for `digest`.
fn cosign_statement(repo: &str, digest: &str) -> Vec<u8> {
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{ "name": format!("127.0.0.1/{repo}"), "digest": { "sha256": digest.trim_start_matches("sha256:") } }],
        "predicateType": "https://sigstore.dev/cosign/sign/v1",
        "predicate": {},
    })
    .to_string()
    .into_bytes()
}

/// A Sigstore bundle (v0.3) holding a DSSE envelope of `statement` signed by `signer`;
/// `material` is its verificationMaterial.
fn dsse_bundle(statement: &[u8], signer: &Signer, material: Value) -> Vec<u8> {
    let payload_type = "application/vnd.in-toto+json";
    let mut pae = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        statement.len()
    )
    .into_bytes();
    pae.extend_from_slice(statement);
    json!({
        "mediaType": SIGSTORE_BUNDLE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": STANDARD.encode(statement),
            "payloadType": payload_type,
            "signatures": [{ "sig": STANDARD.encode(signer.sign(&pae)), "keyid": "" }],
        },
    })
    .to_string()
    .into_bytes()
}

fn bundle_annotations() -> Value {
    json!({
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1",
    })
}

/// A notation JWS envelope over `digest` (of `size`), signed with `alg` by `sign`.
fn notation_jws(digest: &str, size: usize, alg: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let protected = URL_SAFE_NO_PAD.encode(
        json!({
            "alg": alg,
            "crit": ["io.cncf.notary.signingScheme"],
            "cty": "application/vnd.cncf.notary.payload.v1+json",
            "io.cncf.notary.signingScheme": "notary.x509",
            "io.cncf.notary.signingTime": "2026-12-07T12:00:00Z",
        })
        .to_string(),
    );
    let payload = URL_SAFE_NO_PAD.encode(
        json!({ "targetArtifact": { "mediaType": OCI_MANIFEST, "digest": digest, "size": size } })
            .to_string(),
    );
    let signature = sign(format!("{protected}.{payload}").as_bytes());
    json!({
        "payload": payload,
        "protected": protected,
        "header": { "x5c": [], "io.cncf.notary.signingAgent": "berth-test" },
        "signature": URL_SAFE_NO_PAD.encode(signature),
    })
    .to_string()
    .into_bytes()
}

fn notation_annotations() -> Value {
    json!({ "io.cncf.notary.x509chain.thumbprint#S256": "[\"0000\"]" })
}

/// JWS ES256 (P-256, `r || s`) with a fixture key.
fn es256(key: &str) -> impl Fn(&[u8]) -> Vec<u8> {
    let der = pem::parse(fixture(&format!("{key}.key")))
        .expect("PEM")
        .into_contents();
    move |input: &[u8]| {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &der,
            &rng,
        )
        .expect("a P-256 key");
        key.sign(&rng, input).expect("sign").as_ref().to_vec()
    }
}

/// JWS PS256 (RSA-PSS, SHA-256) with the RSA fixture key.
fn ps256(input: &[u8]) -> Vec<u8> {
    let der = pem::parse(fixture("rsa.key")).expect("PEM").into_contents();
    let key = RsaKeyPair::from_pkcs8(&der).expect("an RSA key");
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PSS_SHA256,
        &SystemRandom::new(),
        input,
        &mut signature,
    )
    .expect("sign");
    signature
}

#[tokio::test]
async fn sigstore_bundles_and_notation_signatures_verify_with_trusted_keys_and_the_rest_stay_signed(
) {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let registry = berth.with(basic("admin", ADMIN_PASSWORD));
    let repo = "admin/envelopes";
    let path = format!("/api/v1/repositories/{repo}/-");
    // cosign v3's default: a DSSE bundle whose statement names the image.
    let dsse = push_image_bytes(&registry, repo, "dsse").await;
    trust(&admin, &path, "release", "release").await;
    trust(&admin, &path, "rsa", "rsa").await;
    let release = Signer::load("release");
    let key_material = json!({ "publicKey": { "hint": "release" }, "tlogEntries": [] });
    let bundle = dsse_bundle(
        &cosign_statement(repo, &dsse.0),
        &release,
        key_material.clone(),
    );
    push_envelope_referrer(
        &registry,
        repo,
        &dsse,
        SIGSTORE_BUNDLE,
        SIGSTORE_BUNDLE,
        &bundle,
        bundle_annotations(),
    )
    .await;

    // A message-signature bundle over the manifest itself, signed with the RSA key.
    let message = push_image_bytes(&registry, repo, "message").await;
    let manifest_sha256 = ring::digest::digest(&ring::digest::SHA256, &message.1);
    let bundle = json!({
        "mediaType": SIGSTORE_BUNDLE,
        "verificationMaterial": { "publicKey": { "hint": "rsa" } },
        "messageSignature": {
            "messageDigest": { "algorithm": "SHA2_256", "digest": STANDARD.encode(manifest_sha256.as_ref()) },
            "signature": STANDARD.encode(Signer::load("rsa").sign(&message.1)),
        },
    })
    .to_string();
    push_envelope_referrer(
        &registry,
        repo,
        &message,
        SIGSTORE_BUNDLE,
        SIGSTORE_BUNDLE,
        bundle.as_bytes(),
        bundle_annotations(),
    )
    .await;

    // Keyless (a Fulcio certificate): signed, not checkable against keys.
    let keyless = push_image_bytes(&registry, repo, "keyless").await;
    let bundle = dsse_bundle(
        &cosign_statement(repo, &keyless.0),
        &release,
        json!({ "certificate": { "rawBytes": STANDARD.encode(b"not checked") } }),
    );
    push_envelope_referrer(
        &registry,
        repo,
        &keyless,
        SIGSTORE_BUNDLE,
        SIGSTORE_BUNDLE,
        &bundle,
        bundle_annotations(),
    )
    .await;

    // A statement about another image, attached to this one.
    let elsewhere = push_image_bytes(&registry, repo, "elsewhere").await;
    let bundle = dsse_bundle(
        &cosign_statement(repo, &dsse.0),
        &release,
        key_material.clone(),
    );
    push_envelope_referrer(
        &registry,
        repo,
        &elsewhere,
        SIGSTORE_BUNDLE,
        SIGSTORE_BUNDLE,
        &bundle,
        bundle_annotations(),
    )
    .await;

    // A bundle whose signature is not base64.
    let garbled = push_image_bytes(&registry, repo, "garbled").await;
    let bundle = String::from_utf8(dsse_bundle(
        &cosign_statement(repo, &garbled.0),
        &release,
        key_material.clone(),
    ))
    .unwrap();
    let sig_start = bundle.find(r#""sig":""#).unwrap() + 7;
    let bundle = format!("{}!!{}", &bundle[..sig_start], &bundle[sig_start..]);
    push_envelope_referrer(
        &registry,
        repo,
        &garbled,
        SIGSTORE_BUNDLE,
        SIGSTORE_BUNDLE,
        bundle.as_bytes(),
        bundle_annotations(),
    )
    .await;

    // Notation JWS: ES256 with the trusted P-256 key, PS256 with the trusted RSA key.
    let jws_es = push_image_bytes(&registry, repo, "jws-es").await;
    let envelope = notation_jws(&jws_es.0, jws_es.1.len(), "ES256", es256("release"));
    push_envelope_referrer(
        &registry,
        repo,
        &jws_es,
        NOTATION_SIGNATURE,
        "application/jose+json",
        &envelope,
        notation_annotations(),
    )
    .await;
    let jws_ps = push_image_bytes(&registry, repo, "jws-ps").await;
    let envelope = notation_jws(&jws_ps.0, jws_ps.1.len(), "PS256", ps256);
    push_envelope_referrer(
        &registry,
        repo,
        &jws_ps,
        NOTATION_SIGNATURE,
        "application/jose+json",
        &envelope,
        notation_annotations(),
    )
    .await;

    // Notation signed by a key nobody trusts, one naming another image, and a COSE one.
    let jws_other = push_image_bytes(&registry, repo, "jws-other").await;
    let envelope = notation_jws(&jws_other.0, jws_other.1.len(), "ES256", es256("other"));
    push_envelope_referrer(
        &registry,
        repo,
        &jws_other,
        NOTATION_SIGNATURE,
        "application/jose+json",
        &envelope,
        notation_annotations(),
    )
    .await;
    let jws_moved = push_image_bytes(&registry, repo, "jws-moved").await;
    let envelope = notation_jws(&jws_es.0, jws_es.1.len(), "ES256", es256("release"));
    push_envelope_referrer(
        &registry,
        repo,
        &jws_moved,
        NOTATION_SIGNATURE,
        "application/jose+json",
        &envelope,
        notation_annotations(),
    )
    .await;
    let cose = push_image_bytes(&registry, repo, "cose").await;
    push_envelope_referrer(
        &registry,
        repo,
        &cose,
        NOTATION_SIGNATURE,
        "application/cose",
        b"\xd2\x84",
        notation_annotations(),
    )
    .await;

    for (tag, key) in [
        ("dsse", "release"),
        ("message", "rsa"),
        ("jws-es", "release"),
        ("jws-ps", "rsa"),
    ] {
        let signature = signature_becomes(&admin, repo, tag, "verified").await;
        assert_eq!(signature["keys"], json!([key]), "{tag}");
    }
    // Signed, unverified, each with the reason it did not verify.
    for (tag, reason) in [
        ("keyless", "keyless bundle"),
        ("elsewhere", "does not name"),
        ("garbled", "not valid base64"),
        ("jws-other", "checks against no trusted key"),
        ("jws-moved", "not sha256:"),
        ("cose", "COSE envelopes are not checked"),
    ] {
        let signature = signature_becomes(&admin, repo, tag, "signed").await;
        assert_eq!(signature["keys"], json!([]), "{tag}");
        let reasons = signature["reasons"].as_array().expect("reasons");
        assert!(
            reasons.iter().any(|r| r.as_str().unwrap().contains(reason)),
            "{tag}: {reasons:?}"
        );
    }

    // Rotation applies to every form: without the RSA key its signatures are signed only.
    admin
        .delete(&format!("{path}/trusted-keys/rsa"))
        .await
        .expect(204);
    signature_becomes(&admin, repo, "message", "signed").await;
    signature_becomes(&admin, repo, "jws-ps", "signed").await;
    signature_becomes(&admin, repo, "jws-es", "verified").await;
}
