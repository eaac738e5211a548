//! cosign signatures made by a maintained cosign implementation, the `sigstore` crate
//! (sigstore-rs), and pushed by its own registry client to the real `berth serve` over plain
//! HTTP on loopback, as `cosign sign --key cosign.key IMAGE` does: keys generated and written
//! as `cosign generate-key-pair` writes them (a password-encrypted `cosign.key`, a PEM
//! `cosign.pub`), the signature manifest under the `sha256-<hex>.sig` tag. Berth's verdict on
//! each tag is read from the API: verified with the trusted key's name, signed but unverified
//! (with a reason) for a wrong key or a tampered payload, unverified again once the key is
//! removed (rotation); the crate's own verifier (`cosign verify --key`) agrees with Berth.
//!
//! The server is the workspace's `target/debug/berth` (or `BERTH_BIN`), which `scripts/test`
//! builds before the tests; without it the tests skip with a loud notice, except under
//! `CI=true`. Compiled only with the crate's feature `sigstore` (`cargo nextest run -p
//! berth-sigstore-tests --features sigstore`), for the build time it costs.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::{Client, Method};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use sigstore::cosign::constraint::PrivateKeySigner;
use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{verify_constraints, ClientBuilder, Constraint, CosignCapabilities};
use sigstore::cosign::{Client as CosignClient, SignatureLayer};
use sigstore::crypto::SigningScheme;
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use zeroize::Zeroizing;

const ADMIN_PASSWORD: &str = "admin-password-1";
/// What `cosign generate-key-pair` asks for (`COSIGN_PASSWORD`) to encrypt `cosign.key`.
const KEY_PASSWORD: &str = "cosign key password";
const REPO: &str = "admin/app";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The `berth` binary: `BERTH_BIN`, or the one built beside this test binary
/// (`target/debug/berth`, which `cargo build` or `scripts/test` makes).
fn berth_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BERTH_BIN") {
        return Some(PathBuf::from(path));
    }
    // target/debug/deps/cosign-<hash> → target/debug/berth
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join("berth");
    candidate.is_file().then_some(candidate)
}

/// A `berth serve` of its own on a free loopback port and a temporary data directory, its
/// site admin signed in to the API; stopped when dropped.
struct Berth {
    child: Child,
    addr: String,
    http: Client,
    api_token: String,
    dir: TempDir,
}

impl Drop for Berth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Berth {
    /// The server, or `None` after a loud notice when there is no `berth` binary (a panic
    /// under `CI=true`). `test` names the caller in the notice.
    async fn start(test: &str) -> Option<Berth> {
        let Some(binary) = berth_binary() else {
            let notice = format!(
                "SKIPPED {test}: no berth binary (run `cargo build -p berth` or set BERTH_BIN)"
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{notice}; CI=true requires it");
            }
            eprintln!("\n!!!!! {notice}\n");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("berth.log")).expect("log file");
        let child = Command::new(&binary)
            .arg("serve")
            .args(["--listen", &addr, "--data-dir"])
            .arg(dir.path().join("data"))
            .env("BERTH_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let mut berth = Berth {
            child,
            addr,
            http,
            api_token: String::new(),
            dir,
        };
        berth.wait_ready().await;
        let login: Value = berth
            .http
            .post(berth.url("/api/v1/users/login"))
            .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login JSON");
        berth.api_token = login["token"].as_str().expect("token").to_owned();
        Some(berth)
    }

    /// Polls `GET /v2/` with a generous deadline (a loaded machine starts slowly).
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("berth exited ({status}):\n{}", self.log());
            }
            if let Ok(response) = self.http.get(self.url("/v2/")).send().await {
                // 401 until signed in: the server answers, it is up.
                if response.status().as_u16() < 500 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "berth never answered:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berth.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn api(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.api_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("API request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("API answer");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `/v2/` with the admin's password, as `docker login` would send it.
    fn registry(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let basic = STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"));
        self.http
            .request(method, self.url(path))
            .header("Authorization", format!("Basic {basic}"))
    }

    async fn push_blob(&self, content: &[u8]) -> Value {
        let digest = sha256(content);
        let response = self
            .registry(
                Method::POST,
                &format!("/v2/{REPO}/blobs/uploads/?digest={digest}"),
            )
            .header("Content-Type", "application/octet-stream")
            .body(content.to_vec())
            .send()
            .await
            .expect("blob upload");
        assert_eq!(response.status().as_u16(), 201, "pushing blob {digest}");
        json!({ "digest": digest, "size": content.len() })
    }

    /// Pushes a small image, unique to `tag`, as `REPO:tag`; its digest.
    async fn push_image(&self, tag: &str) -> String {
        let mut config = self
            .push_blob(
                format!(r#"{{"architecture":"amd64","os":"linux","seed":"{tag}"}}"#).as_bytes(),
            )
            .await;
        config["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
        let mut layer = self.push_blob(format!("layer of {tag}").as_bytes()).await;
        layer["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar");
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer],
        })
        .to_string();
        let response = self
            .registry(Method::PUT, &format!("/v2/{REPO}/manifests/{tag}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(manifest.clone())
            .send()
            .await
            .expect("manifest push");
        assert_eq!(response.status().as_u16(), 201, "pushing {REPO}:{tag}");
        sha256(manifest.as_bytes())
    }

    /// Trusts `key` as `name` for the admin namespace (`berth trust add admin --name NAME
    /// --key cosign.pub` does the same through the same service).
    async fn trust(&self, name: &str, key: &CosignKeyPair) {
        let (status, body) = self
            .api(
                Method::POST,
                "/api/v1/namespaces/admin/trusted-keys",
                Some(json!({ "name": name, "public_key": key.public_pem })),
            )
            .await;
        assert_eq!(status, 201, "trusting {name}: {body}");
    }

    async fn distrust(&self, name: &str) {
        let (status, body) = self
            .api(
                Method::DELETE,
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
                    Method::GET,
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
        format!("{}/{REPO}:{tag}", self.addr)
            .parse()
            .expect("image reference")
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
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
async fn a_signature_pushed_by_cosign_code_is_verified_by_the_trusted_key_until_it_is_rotated_out()
{
    let Some(berth) = Berth::start(
        "a_signature_pushed_by_cosign_code_is_verified_by_the_trusted_key_until_it_is_rotated_out",
    )
    .await
    else {
        return;
    };
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
    let Some(berth) = Berth::start(
        "a_wrong_key_and_tampered_payloads_leave_the_image_signed_but_unverified_with_a_reason",
    )
    .await
    else {
        return;
    };
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
    let Some(berth) = Berth::start("cosign key types").await else {
        return;
    };
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
