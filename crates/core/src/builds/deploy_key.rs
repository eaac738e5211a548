//! Deploy keys: an Ed25519 key pair Berth generates for a build source, written in
//! OpenSSH's formats (the public line a git host takes, the private file `ssh -i` reads).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::SigningKey;

const KEY_TYPE: &str = "ssh-ed25519";

/// A generated key: the public line shown once to the user, the private file sealed.
#[derive(Debug)]
pub struct DeployKey {
    /// `ssh-ed25519 AAAA... comment`.
    pub public: String,
    /// The `-----BEGIN OPENSSH PRIVATE KEY-----` file.
    pub private: String,
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn public_blob(public: &[u8; 32]) -> Vec<u8> {
    let mut blob = Vec::new();
    put_string(&mut blob, KEY_TYPE.as_bytes());
    put_string(&mut blob, public);
    blob
}

/// A fresh key pair, commented `comment` (the repository's name).
pub fn generate(comment: &str) -> DeployKey {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).expect("the system's random source failed");
    let signing = SigningKey::from_bytes(&seed);
    let public = signing.verifying_key().to_bytes();
    let blob = public_blob(&public);

    // openssh-key-v1 (PROTOCOL.key in OpenSSH): unencrypted, one key.
    let mut check = [0u8; 4];
    getrandom::getrandom(&mut check).expect("the system's random source failed");
    let mut private = Vec::new();
    private.extend_from_slice(&check);
    private.extend_from_slice(&check);
    put_string(&mut private, KEY_TYPE.as_bytes());
    put_string(&mut private, &public);
    let mut secret = seed.to_vec();
    secret.extend_from_slice(&public);
    put_string(&mut private, &secret);
    put_string(&mut private, comment.as_bytes());
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut file = b"openssh-key-v1\0".to_vec();
    put_string(&mut file, b"none");
    put_string(&mut file, b"none");
    put_string(&mut file, b"");
    file.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut file, &blob);
    put_string(&mut file, &private);
    let encoded = STANDARD.encode(&file);
    let mut pem = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for chunk in encoded.as_bytes().chunks(70) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    DeployKey {
        public: format!("{KEY_TYPE} {} {comment}", STANDARD.encode(&blob)),
        private: pem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_keygen_reads_the_private_key_and_derives_the_same_public_key() {
        let key = generate("berth-build acme/app");
        assert!(key.public.starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"));
        let Ok(status) = std::process::Command::new("ssh-keygen").arg("-?").output() else {
            eprintln!("NOTICE: ssh-keygen is not installed; only the format's shape was checked");
            return;
        };
        drop(status);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, &key.private).unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
        std::fs::set_permissions(&path, perms).unwrap();
        let out = std::process::Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let derived = String::from_utf8(out.stdout).unwrap();
        let mut want = key.public.split(' ');
        let mut got = derived.split_whitespace();
        assert_eq!(got.next(), want.next());
        assert_eq!(got.next(), want.next());
    }
}
