//! cosign signatures made by a maintained cosign implementation, the `sigstore` crate
//! (sigstore-rs), and pushed by its own registry client to a real Berth over plain HTTP on
//! loopback, as `cosign sign --key cosign.key IMAGE` does: keys generated and written as
//! `cosign generate-key-pair` writes them (a password-encrypted `cosign.key`, a PEM
//! `cosign.pub`), the signature manifest under the `sha256-<hex>.sig` tag. Berth's verdict on
//! each tag is read from the API: verified with the trusted key's name, signed but unverified
//! (with a reason) for a wrong key or a tampered payload, unverified again once the key is
//! removed (rotation); the crate's own verifier (`cosign verify --key`) agrees with Berth.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use berth_core::identity::Identity;
use berth_meta::SqliteMeta;
use berth_testkit::images::{Pusher, SmallImage};
use berth_testkit::Served;
use reqwest::Client;
use serde_json::{json, Value};
use sigstore::cosign::constraint::PrivateKeySigner;
use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{verify_constraints, ClientBuilder, Constraint, CosignCapabilities};
use sigstore::cosign::{Client as CosignClient, SignatureLayer};
use sigstore::crypto::SigningScheme;
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use zeroize::Zeroizing;

const ADMIN_PASSWORD: &str = "admin-password-1";
/// What `cosign generate-key-pair` asks for (`COSIGN_PASSWORD`) to encrypt `cosign.key`.
const KEY_PASSWORD: &str = "cosign key password";
const REPO: &str = "admin/app";

/// A Berth served in-process exactly as `berth serve` wires it, with its site admin signed in
/// to the API.
struct Berth {
    served: Served,
    http: Client,
    api_token: String,
    _dir: TempDir,
}

impl Berth {
    async fn start() -> Berth {
        let dir = berth_testkit::data_dir();
        // The first admin exists before the server starts, as `berth serve` makes it.
        let meta = Arc::new(
            SqliteMeta::open(&dir.path().join("berth.db"))
                .await
                .expect("database"),
        );
        Identity::new(meta.clone())
            .first_start_admin(Some(ADMIN_PASSWORD.to_owned()))
            .await
            .expect("first admin");
        meta.close().await;
        let served = berth_testkit::serve(dir.path(), berth_testkit::Options::default()).await;
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let login: Value = http
            .post(format!("{}/api/v1/users/login", served.url()))
            .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login JSON");
        let api_token = login["token"].as_str().expect("token").to_owned();
        Berth {
            served,
            http,
            api_token,
            _dir: dir,
        }
    }

    /// `host:port`, as image references name the registry.
    fn registry(&self) -> String {
        self.served.addr.to_string()
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.served.url()))
            .bearer_auth(&self.api_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("API request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("API answer");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Pushes a small image as `REPO:tag` with the admin's password; its digest.
    async fn push_image(&self, tag: &str) -> String {
        let image = SmallImage::linux(tag, "sigstore");
        let base = self.served.url();
        let basic = format!(
            "Basic {}",
            STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"))
        );
        let status = Pusher::new(&self.http, &base)
            .authorized(Some(basic))
            .push_image(REPO, tag, &image)
            .await;
        assert_eq!(status, 201, "pushing {REPO}:{tag}");
        image.digest()
    }

    /// Trusts `key` as `name` for the admin namespace (`berth trust add admin --name NAME
    /// --key cosign.pub`).
    async fn trust(&self, name: &str, key: &CosignKeyPair) {
        let (status, body) = self
            .api(
                reqwest::Method::POST,
                "/api/v1/namespaces/admin/trusted-keys",
                Some(json!({ "name": name, "public_key": key.public_pem })),
            )
            .await;
        assert_eq!(status, 201, "trusting {name}: {body}");
    }

    async fn distrust(&self, name: &str) {
        let (status, body) = self
            .api(
                reqwest::Method::DELETE,
                &format!("/api/v1/namespaces/admin/trusted-keys/{name}"),
                None,
            )
            .await;
        assert_eq!(status, 204, "removing {name}: {body}");
    }

    /// The tag's `signature` in the tags API once it is `state` (verification runs as a job
    /// after each push or trust change): polled with a generous deadline.
    async fn signature_becomes(&self, tag: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, tags) = self
                .api(
                    reqwest::Method::GET,
                    &format!("/api/v1/repositories/{REPO}/-/tags?page_size=100"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{tags}");
            let signature = tags["results"]
                .as_array()
                .expect("results")
                .iter()
                .find(|t| t["name"] == tag)
                .unwrap_or_else(|| panic!("no tag {tag} in {tags}"))["signature"]
                .clone();
            if signature["state"] == state {
                return signature;
            }
            assert!(
                Instant::now() < deadline,
                "{REPO}:{tag} never became {state}: {signature}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A reference to `REPO:tag` on this Berth.
    fn image(&self, tag: &str) -> OciReference {
        format!("{}/{REPO}:{tag}", self.registry())
            .parse()
            .expect("image reference")
    }
}

/// A key pair as `cosign generate-key-pair` leaves it: `cosign.key` (the private key
/// encrypted with the password, `ENCRYPTED SIGSTORE PRIVATE KEY`) and `cosign.pub`.
struct CosignKeyPair {
    scheme: SigningScheme,
    private_pem: Zeroizing<String>,
    public_pem: String,
}

impl CosignKeyPair {
    fn generate(scheme: SigningScheme) -> CosignKeyPair {
        let key_pair = scheme
            .create_signer()
            .expect("new key")
            .to_sigstore_keypair()
            .expect("key pair");
        let private_pem = key_pair
            .private_key_to_encrypted_pem(KEY_PASSWORD.as_bytes())
            .expect("cosign.key");
        assert!(private_pem.contains("ENCRYPTED SIGSTORE PRIVATE KEY"));
        CosignKeyPair {
            scheme,
            private_pem,
            public_pem: key_pair.public_key_to_pem().expect("cosign.pub"),
        }
    }

    /// The signer `cosign sign --key cosign.key` makes: the key file decrypted with its
    /// password.
    fn signer(&self) -> PrivateKeySigner {
        PrivateKeySigner::new_with_raw(
            Zeroizing::new(self.private_pem.as_bytes().to_vec()),
            Zeroizing::new(KEY_PASSWORD.as_bytes().to_vec()),
            &self.scheme,
        )
        .expect("cosign.key decrypts")
    }
}

/// The crate's cosign client for a plain-HTTP registry, and the admin's credentials.
fn cosign_client() -> (CosignClient, Auth) {
    let config = ClientConfig {
        protocol: ClientProtocol::Http,
        ..ClientConfig::default()
    };
    let client = ClientBuilder::default()
        .with_oci_client_config(config)
        .build()
        .expect("cosign client");
    (client, Auth::Basic("admin".into(), ADMIN_PASSWORD.into()))
}

/// `cosign sign --key`: resolves `image` to its digest and signature tag, signs the
/// simple-signing payload naming that digest, lets `tamper` change the layer after signing
/// (a test's attack; `|_| {}` for none) and pushes the signature manifest with the crate's
/// client. The image's digest.
async fn cosign_sign(
    image: &OciReference,
    key: &CosignKeyPair,
    tamper: impl FnOnce(&mut SignatureLayer),
) -> String {
    let (mut client, auth) = cosign_client();
    let (signature_image, digest) = client
        .triangulate(image, &auth)
        .await
        .expect("resolve the image");
    assert_eq!(
        signature_image.tag(),
        Some(format!("{}.sig", digest.replace(':', "-")).as_str()),
        "cosign's tag scheme"
    );
    let mut layer = SignatureLayer::new_unsigned(image, &digest).expect("payload");
    assert!(
        key.signer().add_constraint(&mut layer).expect("sign"),
        "signed"
    );
    tamper(&mut layer);
    client
        .push_signature(None, &auth, &signature_image, vec![layer])
        .await
        .expect("push the signature");
    digest
}

/// `cosign verify --key cosign.pub image` run by the crate against what Berth serves: whether
/// a signature on `image` checks against `key`.
async fn cosign_verify(image: &OciReference, key: &CosignKeyPair) -> bool {
    let (mut client, auth) = cosign_client();
    let layers = client
        .trusted_signature_layers(&auth, image)
        .await
        .expect("read the signatures");
    let verifier = PublicKeyVerifier::new(key.public_pem.as_bytes(), &key.scheme).expect("key");
    let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
    verify_constraints(&layers, constraints.iter()).is_ok()
}

#[tokio::test]
async fn a_signature_pushed_by_cosign_code_is_verified_by_the_trusted_key_until_it_is_rotated_out(
) {
    let berth = Berth::start().await;
    let digest = berth.push_image("v1").await;
    let release = CosignKeyPair::generate(SigningScheme::ECDSA_P256_SHA256_ASN1);

    let signed = cosign_sign(&berth.image("v1"), &release, |_| {}).await;
    assert_eq!(signed, digest);
    // Signed, but no key is trusted yet.
    let signature = berth.signature_becomes("v1", "signed").await;
    assert_eq!(signature["keys"], json!([]));

    berth.trust("release", &release).await;
    let signature = berth.signature_becomes("v1", "verified").await;
    assert_eq!(signature["keys"], json!(["release"]));
    // The signature Berth stored and serves is intact: cosign's verifier accepts it.
    assert!(cosign_verify(&berth.image("v1"), &release).await);

    // Rotation: a new key is trusted and the old one removed; the image signed only by the
    // old key is no longer verified, and is again once signed with the new one.
    let next = CosignKeyPair::generate(SigningScheme::ECDSA_P256_SHA256_ASN1);
    berth.trust("next", &next).await;
    assert_eq!(
        berth.signature_becomes("v1", "verified").await["keys"],
        json!(["release"])
    );
    berth.distrust("release").await;
    let signature = berth.signature_becomes("v1", "signed").await;
    assert_eq!(signature["keys"], json!([]));
    assert!(
        signature["reasons"].to_string().contains("no trusted key"),
        "{signature}"
    );
    cosign_sign(&berth.image("v1"), &next, |_| {}).await;
    assert_eq!(
        berth.signature_becomes("v1", "verified").await["keys"],
        json!(["next"])
    );
    assert!(cosign_verify(&berth.image("v1"), &next).await);
}

#[tokio::test]
async fn a_wrong_key_and_tampered_payloads_leave_the_image_signed_but_unverified_with_a_reason() {
    let berth = Berth::start().await;
    let release = CosignKeyPair::generate(SigningScheme::ECDSA_P256_SHA256_ASN1);
    berth.trust("release", &release).await;

    // Signed with a key nobody trusts.
    berth.push_image("wrong-key").await;
    let stranger = CosignKeyPair::generate(SigningScheme::ECDSA_P256_SHA256_ASN1);
    cosign_sign(&berth.image("wrong-key"), &stranger, |_| {}).await;

    // Signed with the trusted key, then the payload changed before the push: its digest
    // still names the image, but the signature is over other bytes.
    berth.push_image("tampered").await;
    cosign_sign(&berth.image("tampered"), &release, |layer| {
        layer.simple_signing.critical.identity.docker_reference = "evil.example/app".into();
    })
    .await;

    // A valid signature by the trusted key, for another image's digest, pushed as this
    // image's signature.
    berth.push_image("elsewhere").await;
    let other = berth.push_image("other").await;
    cosign_sign(&berth.image("elsewhere"), &release, |layer| {
        let mut forged =
            SignatureLayer::new_unsigned(&berth.image("other"), &other).expect("payload");
        assert!(release.signer().add_constraint(&mut forged).expect("sign"));
        *layer = forged;
    })
    .await;

    for (tag, reason) in [
        ("wrong-key", "checks against no trusted key"),
        ("tampered", "checks against no trusted key"),
        ("elsewhere", &format!("signs {other}, not ")[..]),
    ] {
        let signature = berth.signature_becomes(tag, "signed").await;
        assert_eq!(signature["keys"], json!([]), "{tag}");
        assert!(
            signature["reasons"].to_string().contains(reason),
            "{tag}: {signature}"
        );
    }
    // cosign's own verifier agrees with Berth on each.
    assert!(!cosign_verify(&berth.image("wrong-key"), &release).await);
    assert!(cosign_verify(&berth.image("wrong-key"), &stranger).await);
    assert!(!cosign_verify(&berth.image("tampered"), &release).await);
    assert!(!cosign_verify(&berth.image("elsewhere"), &release).await);
}

#[tokio::test]
async fn signatures_by_every_key_type_cosign_can_hold_are_verified_by_name() {
    let berth = Berth::start().await;
    let keys = [
        ("ecdsa", SigningScheme::ECDSA_P256_SHA256_ASN1),
        ("ed25519", SigningScheme::ED25519),
        ("rsa", SigningScheme::RSA_PKCS1_SHA256(2048)),
    ];
    for (name, scheme) in keys {
        let key = CosignKeyPair::generate(scheme);
        berth.trust(name, &key).await;
        berth.push_image(name).await;
        cosign_sign(&berth.image(name), &key, |_| {}).await;
        assert_eq!(
            berth.signature_becomes(name, "verified").await["keys"],
            json!([name]),
            "{name}"
        );
    }
}
