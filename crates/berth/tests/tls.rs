//! `berth serve` over HTTPS: the configured certificate over HTTP/1.1 and HTTP/2, reloads on
//! SIGHUP and on changed files that keep open connections usable, a bad reload that keeps
//! the certificate in use, and one-line startup errors for unusable files.
//!
//! ```text
//! cargo nextest run -p berth --test tls
//! ```

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// A test CA and the server certificates it signs.
struct Authority {
    key: KeyPair,
    cert: rcgen::Certificate,
}

impl Authority {
    fn new() -> Authority {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Berth test CA");
        let cert = params.self_signed(&key).unwrap();
        Authority { key, cert }
    }

    /// A fresh key and certificate for localhost and 127.0.0.1, written as PEM; returns the
    /// certificate's DER to compare with what the server presents.
    fn issue(&self, cert_path: &Path, key_path: &Path) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        std::fs::write(key_path, key.serialize_pem()).unwrap();
        std::fs::write(cert_path, cert.pem()).unwrap();
        cert.der().clone()
    }

    fn client_config(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        let mut config = ClientConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `berth` with none of the caller's settings.
fn berth() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.env_clear().stdin(Stdio::null());
    cmd
}

/// A running `berth serve` over HTTPS; killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(ca: &Authority) -> (Server, CertificateDer<'static>) {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("server.crt");
        let key = dir.path().join("server.key");
        let served = ca.issue(&cert, &key);
        let addr = free_addr();
        let log = dir.path().join("server.log");
        let child = berth()
            .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
            .arg(dir.path().join("data"))
            .env("BERTH_TLS_CERT", &cert)
            .env("BERTH_TLS_KEY", &key)
            .env("BERTH_ADMIN_PASSWORD", "tls-test-Pw-1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let server = Server {
            child,
            addr,
            log,
            _dir: dir,
            cert,
            key,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut stream) = server.connect(ca, &[]).await {
                if get(&mut stream, "/healthz").await.0 == 200 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "berth did not answer over HTTPS: {}",
                server.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (server, served)
    }

    async fn connect(
        &self,
        ca: &Authority,
        alpn: &[&[u8]],
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        TlsConnector::from(ca.client_config(alpn))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
    }

    /// The certificate a new connection is shown.
    async fn served_certificate(&self, ca: &Authority) -> CertificateDer<'static> {
        presented(&self.connect(ca, &[]).await.unwrap())
    }

    /// Waits until new connections are shown `wanted`.
    async fn wait_for_certificate(&self, ca: &Authority, wanted: &CertificateDer<'static>) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.served_certificate(ca).await != *wanted {
            assert!(
                Instant::now() < deadline,
                "the new certificate was not served: {}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn hang_up(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has a line containing `needle`, and returns how many it has.
    async fn wait_for_log(&self, needle: &str) -> usize {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let count = self
                .log_text()
                .lines()
                .filter(|l| l.contains(needle))
                .count();
            if count > 0 {
                return count;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?}: {}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn presented(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// One HTTP/1.1 request on a kept-alive connection: the status and the body.
async fn get(stream: &mut TlsStream<TcpStream>, path: &str) -> (u16, String) {
    let port = stream.get_ref().0.peer_addr().unwrap().port();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before the response head");
        received.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("content-length");
    while received.len() < head_end + length {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed inside the body");
        received.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&received[head_end..head_end + length]).to_string();
    (status, head + &body)
}

#[tokio::test]
async fn https_serves_the_certificate_over_http1_and_http2() {
    let ca = Authority::new();
    let (server, served) = Server::start(&ca).await;
    assert_eq!(server.served_certificate(&ca).await, served);

    let h1 = server.connect(&ca, &[b"http/1.1"]).await.unwrap();
    assert_eq!(h1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let h2 = server.connect(&ca, &[b"h2", b"http/1.1"]).await.unwrap();
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    // The registry's challenge sends clients to the token service over HTTPS too.
    let mut stream = server.connect(&ca, &[]).await.unwrap();
    let (status, response) = get(&mut stream, "/v2/").await;
    assert_eq!(status, 401, "{response}");
    let realm = format!("realm=\"https://localhost:{}/token\"", server.addr.port());
    assert!(response.contains(&realm), "{response}");

    // A real HTTP/2 client, trusting only the test CA.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_der(ca.cert.der()).unwrap())
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/v2/", server.addr.port());
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains(&realm), "{challenge}");

    // A browser's sign-in over HTTP/2 (no Host header, only `:authority`) passes the
    // same-origin check, and its session cookie is marked Secure.
    let browser = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_der(ca.cert.der()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let origin = format!("https://localhost:{}", server.addr.port());
    let response = browser
        .post(format!("{origin}/login"))
        .header("origin", &origin)
        .form(&[("username", "admin"), ("password", "tls-test-Pw-1")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 303, "{:?}", response.headers());
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // Plain HTTP on the HTTPS port is not served.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_open_connections_stay_usable() {
    let ca = Authority::new();
    let (server, first) = Server::start(&ca).await;
    let mut open = server.connect(&ca, &[b"http/1.1"]).await.unwrap();
    assert_eq!(get(&mut open, "/healthz").await.0, 200);

    let second = ca.issue(&server.cert, &server.key);
    server.hang_up();
    server.wait_for_certificate(&ca, &second).await;
    server
        .wait_for_log("reloaded the TLS certificate reason=\"SIGHUP\"")
        .await;
    // The connection opened before the reload still answers, on its first certificate.
    assert_eq!(presented(&open), first);
    assert_eq!(get(&mut open, "/healthz").await.0, 200);

    // A key that is not PEM: one line says so, and the second certificate stays.
    std::fs::write(&server.key, "not a key\n").unwrap();
    server.hang_up();
    let kept = server.wait_for_log("kept the TLS certificate in use").await;
    assert!(kept <= 2, "{}", server.log_text());
    assert_eq!(server.served_certificate(&ca).await, second);
    let mut after = server.connect(&ca, &[]).await.unwrap();
    assert_eq!(get(&mut after, "/healthz").await.0, 200);

    // A key that does not match the certificate: refused the same way.
    let third_dir = tempfile::tempdir().unwrap();
    ca.issue(
        &third_dir.path().join("other.crt"),
        &third_dir.path().join("other.key"),
    );
    std::fs::copy(third_dir.path().join("other.key"), &server.key).unwrap();
    server.hang_up();
    server.wait_for_log("do not form a usable pair").await;
    assert_eq!(server.served_certificate(&ca).await, second);
    assert_eq!(get(&mut open, "/healthz").await.0, 200);
}

#[tokio::test]
async fn replaced_files_are_served_without_a_signal() {
    let ca = Authority::new();
    let (server, _first) = Server::start(&ca).await;
    let mut open = server.connect(&ca, &[b"http/1.1"]).await.unwrap();
    let renewed = ca.issue(&server.cert, &server.key);
    server.wait_for_certificate(&ca, &renewed).await;
    server
        .wait_for_log("reloaded the TLS certificate reason=\"the files changed\"")
        .await;
    assert_eq!(get(&mut open, "/healthz").await.0, 200);
}

/// Runs `berth serve` expecting it to refuse to start; returns its stderr.
fn refused(dir: &Path, settings: &[(&str, &Path)]) -> String {
    let mut cmd = berth();
    cmd.args(["serve", "--listen", &free_addr().to_string(), "--data-dir"])
        .arg(dir.join("data"))
        .env("BERTH_ADMIN_PASSWORD", "tls-test-Pw-1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in settings {
        cmd.env(name, value);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("berth started with {settings:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{settings:?}: {stderr}");
    stderr
}

#[test]
fn unusable_certificates_stop_startup_with_one_line() {
    let ca = Authority::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cert, key) = (d.join("server.crt"), d.join("server.key"));
    ca.issue(&cert, &key);
    let (other_cert, other_key) = (d.join("other.crt"), d.join("other.key"));
    ca.issue(&other_cert, &other_key);
    let garbage = d.join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    let missing = d.join("missing.pem");

    let cases: Vec<(Vec<(&str, &Path)>, &str)> = vec![
        (
            vec![("BERTH_TLS_CERT", &cert)],
            "tls_cert is set (from environment) but tls_key is not",
        ),
        (
            vec![("BERTH_TLS_KEY", &key)],
            "tls_key is set (from environment) but tls_cert is not",
        ),
        (
            vec![("BERTH_TLS_CERT", &missing), ("BERTH_TLS_KEY", &key)],
            "cannot read tls_cert",
        ),
        (
            vec![("BERTH_TLS_CERT", &cert), ("BERTH_TLS_KEY", &missing)],
            "cannot read tls_key",
        ),
        (
            vec![("BERTH_TLS_CERT", &garbage), ("BERTH_TLS_KEY", &key)],
            "is not valid PEM",
        ),
        (
            vec![("BERTH_TLS_CERT", &key), ("BERTH_TLS_KEY", &key)],
            "holds no CERTIFICATE block",
        ),
        (
            vec![("BERTH_TLS_CERT", &cert), ("BERTH_TLS_KEY", &cert)],
            "holds no usable PEM private key",
        ),
        (
            vec![("BERTH_TLS_CERT", &cert), ("BERTH_TLS_KEY", &other_key)],
            "do not form a usable pair",
        ),
    ];
    for (settings, expected) in cases {
        let stderr = refused(d, &settings);
        assert!(stderr.contains(expected), "{settings:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{settings:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // Nothing was started or created for a refused certificate.
    assert!(!d.join("data").exists());
}
