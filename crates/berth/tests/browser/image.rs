//! A tiny OCI image written as an image layout on disk, and the real skopeo pushing it, in a
//! private containers environment so nothing is read from or written to the host's.

use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A tar archive holding one file, in the ustar format.
fn tar_with_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let mut put = |at: usize, bytes: &[u8]| header[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, name.as_bytes());
    put(100, b"0000644\0");
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{:011o}\0", content.len()).as_bytes());
    put(136, b"00000000000\0");
    put(148, b"        ");
    put(156, b"0");
    put(257, b"ustar\0");
    put(263, b"00");
    let checksum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(content);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
    // The end of the archive: two empty blocks.
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Writes a blob into the layout and returns its descriptor.
fn put_blob(layout: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let digest = digest(bytes);
    let hex = digest.trim_start_matches("sha256:");
    std::fs::write(layout.join("blobs/sha256").join(hex), bytes).expect("write a blob");
    json!({ "mediaType": media_type, "digest": digest, "size": bytes.len() })
}

/// An OCI image layout in `dir` with one single-layer linux/amd64 image tagged `tag`; the
/// file in it says `greeting`, so different greetings make different images. Returns the
/// manifest's digest.
pub fn write_layout(dir: &Path, tag: &str, greeting: &str) -> String {
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("the layout directory");
    let layer = tar_with_file("hello.txt", format!("{greeting}\n").as_bytes());
    let layer_descriptor = put_blob(dir, OCI_LAYER, &layer);
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Cmd": ["cat", "/hello.txt"] },
        "rootfs": { "type": "layers", "diff_ids": [digest(&layer)] },
    });
    let config_descriptor = put_blob(dir, OCI_CONFIG, config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_descriptor,
        "layers": [layer_descriptor],
    });
    let mut manifest_descriptor = put_blob(dir, OCI_MANIFEST, manifest.to_string().as_bytes());
    let manifest_digest = manifest_descriptor["digest"]
        .as_str()
        .expect("a digest")
        .to_owned();
    manifest_descriptor["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
    let index = json!({ "schemaVersion": 2, "manifests": [manifest_descriptor] });
    std::fs::write(dir.join("index.json"), index.to_string()).expect("write index.json");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("write oci-layout");
    manifest_digest
}

/// skopeo in a containers environment of its own (policy, registries, auth and state
/// under one temporary directory), talking plain HTTP to the registry under test.
pub struct Skopeo {
    program: PathBuf,
    work: tempfile::TempDir,
}

impl Skopeo {
    pub fn new(program: &Path) -> Skopeo {
        let work = tempfile::Builder::new()
            .prefix("berth-skopeo-")
            .tempdir()
            .expect("a work directory");
        let config = work.path().join("home/.config/containers");
        std::fs::create_dir_all(&config).expect("the containers config directory");
        for dir in ["run", "tmp"] {
            std::fs::create_dir_all(work.path().join(dir)).expect("a state directory");
        }
        std::fs::write(
            config.join("policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .expect("write policy.json");
        std::fs::write(
            config.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .expect("write registries.conf");
        std::fs::write(work.path().join("auth.json"), "{}").expect("write auth.json");
        Skopeo {
            program: program.to_owned(),
            work,
        }
    }

    /// A place for image layouts.
    pub fn dir(&self) -> &Path {
        self.work.path()
    }

    /// `skopeo copy oci:{layout}:{tag} docker://{destination}` signed in as `user` with
    /// `secret` (a password or an access token).
    pub fn push(
        &self,
        layout: &Path,
        tag: &str,
        destination: &str,
        user: &str,
        secret: &str,
    ) -> Output {
        let work = self.work.path();
        let config = work.join("home/.config/containers");
        Command::new(&self.program)
            .env("HOME", work.join("home"))
            .env("XDG_CONFIG_HOME", work.join("home/.config"))
            .env("XDG_DATA_HOME", work.join("home/.local/share"))
            .env("XDG_RUNTIME_DIR", work.join("run"))
            .env("TMPDIR", work.join("tmp"))
            .env("CONTAINERS_REGISTRIES_CONF", config.join("registries.conf"))
            .env("REGISTRY_AUTH_FILE", work.join("auth.json"))
            // Keeps root's skopeo out of /var/lib/containers and /run/containers.
            .env("_CONTAINERS_USERNS_CONFIGURED", "1")
            .env("_CONTAINERS_ROOTLESS_UID", "1000")
            .arg("--policy")
            .arg(config.join("policy.json"))
            .arg("copy")
            .arg("--dest-tls-verify=false")
            // skopeo compresses the layout's plain layers, so the manifest it pushes is not
            // the one in the layout: it writes the digest of what it pushed here.
            .arg("--digestfile")
            .arg(work.join("pushed-digest"))
            .arg("--dest-creds")
            .arg(format!("{user}:{secret}"))
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{destination}"))
            .output()
            .expect("run skopeo")
    }

    /// Like [`Skopeo::push`], failing the test unless the push worked; returns the digest
    /// of the manifest the registry received.
    pub fn push_ok(
        &self,
        layout: &Path,
        tag: &str,
        destination: &str,
        user: &str,
        secret: &str,
    ) -> String {
        let output = self.push(layout, tag, destination, user, secret);
        assert!(
            output.status.success(),
            "skopeo push to {destination} as {user} failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::read_to_string(self.work.path().join("pushed-digest"))
            .expect("skopeo writes the pushed digest")
            .trim()
            .to_owned()
    }
}

#[test]
fn tar_headers_carry_a_valid_checksum() {
    let tar = tar_with_file("hello.txt", b"hi\n");
    assert_eq!(tar.len(), 512 + 512 + 1024);
    let mut header = tar[..512].to_vec();
    let stored = String::from_utf8_lossy(&header[148..154]).to_string();
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    assert_eq!(u32::from_str_radix(&stored, 8).unwrap(), sum);
    assert_eq!(&tar[512..515], b"hi\n");
}
