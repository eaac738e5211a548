//! Automated builds for several platforms and from base images behind the Docker Hub
//! mirror, through the real binary, git, buildah, skopeo and CNCF Distribution: a rule for
//! `linux/amd64,linux/arm64` pushes an index of one image each, the index annotated with
//! its source; a Dockerfile that runs a program is refused for a platform the machine
//! cannot run (no qemu-user-static handler) and pushes nothing, while the native platform
//! listed alone builds; where qemu-user-static's handler is registered, a program for the
//! other platform runs in its RUN step and the build succeeds; and
//! `FROM docker.io/library/...` (or a bare name) is pulled through Berth's pull-through
//! cache of a Distribution standing in for Docker Hub.

mod common;

use common::builds::{api, berth_ok, run_with, tools_present};
use common::{SpawnOptions, TestServer, ADMIN_PASSWORD, ADMIN_USER};
use reqwest::Method;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Generous: the machine running the tests may be busy.
const DEADLINE: Duration = Duration::from_secs(600);

/// Runs a program in `dir`; buildah and skopeo are told the user namespace is set up.
fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    run_with(
        dir,
        program,
        args,
        &[("_CONTAINERS_USERNS_CONFIGURED", "1")],
    )
}

/// A bare repository whose `main` holds `files`; returns its `file://` URL.
fn git_repository(root: &Path, files: &[(&str, &[u8])]) -> String {
    let bare = root.join("app.git");
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    run(
        root,
        "git",
        &["init", "-q", "--bare", bare.to_str().unwrap()],
    );
    run(&work, "git", &["init", "-q", "-b", "main"]);
    for (name, bytes) in files {
        std::fs::write(work.join(name), bytes).unwrap();
        std::fs::set_permissions(
            work.join(name),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    run(&work, "git", &["add", "."]);
    run(&work, "git", &["commit", "-q", "-m", "app"]);
    let url = format!("file://{}", bare.display());
    run(&work, "git", &["push", "-q", &url, "main"]);
    url
}

/// Triggers `main` by hand and waits for every build it queued to end.
async fn build_main(server: &TestServer, repo: &str) -> Vec<Value> {
    let response = server
        .request(
            Method::POST,
            &format!("/api/v1/repositories/{repo}/-/builds"),
        )
        .json(&serde_json::json!({ "ref": "main" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let queued: Value = response.json().await.unwrap();
    let mut done = Vec::new();
    for build in queued["builds"].as_array().unwrap() {
        let id = build["id"].as_i64().unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let (status, build) = api(server, Method::GET, &format!("/api/v1/builds/{id}")).await;
            assert_eq!(status, 200, "{build}");
            if ["succeeded", "failed", "cancelled"].contains(&build["status"].as_str().unwrap()) {
                done.push(build);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "build {id} did not end: {build}\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    done
}

/// `skopeo inspect --raw` of `reference` on the server, as the admin.
fn raw_manifest(tmp: &Path, reference: &str) -> Value {
    let policy = tmp.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let out = Command::new("skopeo")
        .arg("--policy")
        .arg(&policy)
        .args(["inspect", "--raw", "--tls-verify=false", "--creds"])
        .arg(format!("{ADMIN_USER}:{ADMIN_PASSWORD}"))
        .arg(format!("docker://{reference}"))
        .env("_CONTAINERS_USERNS_CONFIGURED", "1")
        .env("HOME", tmp)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The binfmt_misc handler qemu-user-static registers for an OCI architecture.
fn qemu_handler(arch: &str) -> std::path::PathBuf {
    let name = match arch {
        "arm64" => "aarch64",
        "amd64" => "x86_64",
        other => other,
    };
    Path::new("/proc/sys/fs/binfmt_misc").join(format!("qemu-{name}"))
}

/// Whether this machine runs `arch`'s programs through a registered, enabled qemu handler.
fn qemu_runs(arch: &str) -> bool {
    std::fs::read_to_string(qemu_handler(arch)).is_ok_and(|text| text.starts_with("enabled"))
}

/// This machine's architecture as OCI names it, and one it is not, preferring one with no
/// qemu handler registered (for the refusal), with its ELF machine number.
fn native_and_foreign() -> Option<(&'static str, &'static str, u16)> {
    let (native, candidates): (&str, &[(&str, u16)]) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", &[("arm64", 0xB7), ("riscv64", 0xF3)]),
        "aarch64" => ("arm64", &[("amd64", 0x3E), ("riscv64", 0xF3)]),
        _ => return None,
    };
    let (foreign, machine) = candidates
        .iter()
        .copied()
        .find(|(arch, _)| !qemu_handler(arch).exists())
        .unwrap_or(candidates[0]);
    Some((native, foreign, machine))
}

/// The first bytes of a 64-bit little-endian ELF executable for `machine`: the kernel
/// refuses it with "exec format error" unless a binfmt handler (qemu) takes it.
fn foreign_elf(machine: u16) -> Vec<u8> {
    let mut elf = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
    elf.resize(16, 0);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&machine.to_le_bytes());
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.resize(64, 0);
    elf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_platforms_push_an_index_and_a_platform_the_machine_cannot_run_is_refused() {
    if !tools_present(&["git", "buildah", "skopeo"], "git buildah skopeo") {
        return;
    }
    let Some((native, foreign, foreign_machine)) = native_and_foreign() else {
        eprintln!("\n!!! SKIPPED: the platform tests know amd64 and arm64 machines only !!!\n");
        return;
    };
    // A program that runs here without a dynamic loader: glibc's ldconfig is static.
    let Ok(static_program) = std::fs::read("/sbin/ldconfig") else {
        eprintln!("\n!!! SKIPPED: no static /sbin/ldconfig to run in a FROM scratch image !!!\n");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let foreign_program = foreign_elf(foreign_machine);
    let native_name = format!("probe-{native}");
    let foreign_name = format!("probe-{foreign}");
    let url = git_repository(
        tmp.path(),
        &[
            ("hello.txt", b"Hello Hub\n"),
            ("Dockerfile", b"FROM scratch\nCOPY hello.txt /hello.txt\n"),
            // Runs a program built for the platform being built: only a machine that can
            // run that platform's programs gets through the RUN.
            (
                "Dockerfile.run",
                b"FROM scratch\nARG TARGETARCH\nCOPY probe-${TARGETARCH} /probe\nRUN [\"/probe\", \"--version\"]\n",
            ),
            (&native_name, &static_program),
            (&foreign_name, &foreign_program),
        ],
    );
    let server = TestServer::spawn_with(SpawnOptions::default().env(
        "BERTH_BUILD_DIR",
        tmp.path().join("builds").to_str().unwrap(),
    ))
    .await;
    let dir = server.data_dir().unwrap().to_owned();
    let repo = "admin/multi";
    let both = format!("linux/{native},linux/{foreign}");
    let native_platform = format!("linux/{native}");
    berth_ok(&dir, &["build", "source", "set", repo, "--git", &url]);
    for (tag, dockerfile, platforms) in [
        ("index", "Dockerfile", both.as_str()),
        ("runs", "Dockerfile.run", both.as_str()),
        ("native", "Dockerfile.run", native_platform.as_str()),
    ] {
        berth_ok(
            &dir,
            &[
                "build",
                "rule",
                "add",
                repo,
                "--type",
                "branch",
                "--source",
                "main",
                "--tag",
                tag,
                "--dockerfile",
                dockerfile,
                "--platform",
                platforms,
            ],
        );
    }
    let rules = berth_ok(&dir, &["build", "rule", "list", repo]);
    assert!(rules.contains(&format!("platforms={both}")), "{rules}");

    let builds = build_main(&server, repo).await;
    let by_tag = |tag: &str| {
        builds
            .iter()
            .find(|b| b["tags"][0] == tag)
            .unwrap_or_else(|| panic!("no build for {tag}: {builds:?}"))
            .clone()
    };
    let registry = server.base().trim_start_matches("http://").to_owned();

    // FROM scratch + COPY runs nothing: it builds for any platform, as an index.
    let index = by_tag("index");
    assert_eq!(index["status"], "succeeded", "{}", index["log"]);
    assert_eq!(
        index["platforms"],
        serde_json::json!([native_platform, format!("linux/{foreign}")])
    );
    let raw = raw_manifest(tmp.path(), &format!("{registry}/{repo}:index"));
    assert_eq!(
        raw["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{raw}"
    );
    let mut archs: Vec<String> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap().to_owned())
        .collect();
    archs.sort();
    let mut want = vec![native.to_owned(), foreign.to_owned()];
    want.sort();
    assert_eq!(archs, want, "{raw}");
    // The index itself says where it came from, as each image does.
    let annotations = &raw["annotations"];
    assert_eq!(
        annotations["org.opencontainers.image.source"],
        url.as_str(),
        "{raw}"
    );
    assert_eq!(
        annotations["org.opencontainers.image.revision"], index["commit"],
        "{raw}"
    );
    assert_eq!(
        annotations["org.opencontainers.image.ref.name"],
        "refs/heads/main"
    );
    let head = server
        .request(Method::HEAD, &format!("/v2/{repo}/manifests/index"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.headers()["docker-content-digest"].to_str().unwrap(),
        index["digest"].as_str().unwrap(),
        "the build reports the digest its tag names"
    );
    for child in raw["manifests"].as_array().unwrap() {
        let image = raw_manifest(
            tmp.path(),
            &format!("{registry}/{repo}@{}", child["digest"].as_str().unwrap()),
        );
        assert_eq!(
            image["annotations"]["org.opencontainers.image.source"],
            url.as_str(),
            "each platform's image says where it came from: {image}"
        );
    }

    // A RUN of a program for a platform the machine cannot run: refused by name, nothing
    // pushed, while the native platform did build (its program ran: ldconfig's banner).
    let handler = qemu_handler(foreign);
    let runs = by_tag("runs");
    if handler.exists() {
        eprintln!(
            "\n!!! NOT TESTED: the refusal, since {} is registered here !!!\n",
            handler.display()
        );
    } else {
        assert_eq!(runs["status"], "failed", "{}", runs["log"]);
        let reason = runs["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("linux/{foreign}: refused"))
                && reason.contains("qemu-user-static")
                && reason.contains("nothing was pushed")
                && !reason.contains(&format!("linux/{native}:")),
            "{reason}"
        );
        let log = runs["log"].as_str().unwrap();
        assert!(log.contains("ldconfig ("), "the native platform ran: {log}");
        assert!(log.contains("exec format error"), "{log}");
        let (status, _) = api(&server, Method::GET, &format!("/v2/{repo}/manifests/runs")).await;
        assert_eq!(status, 404, "a partial index is never pushed");
    }

    // The native platform named alone: one image (no index) for it.
    let alone = by_tag("native");
    assert_eq!(alone["status"], "succeeded", "{}", alone["log"]);
    let raw = raw_manifest(tmp.path(), &format!("{registry}/{repo}:native"));
    assert_eq!(
        raw["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{raw}"
    );
    assert_eq!(
        raw["annotations"]["org.opencontainers.image.ref.name"],
        "refs/heads/main"
    );
}

/// A static ELF program for `arch` (amd64 or arm64) that prints `hello from ARCH` and exits
/// 0: a few instructions written out by hand, since the tests have no cross compiler.
fn hello_program(arch: &str) -> Vec<u8> {
    let message = format!("hello from {arch}\n");
    let len = message.len() as u32;
    let (machine, mut code): (u16, Vec<u8>) = match arch {
        "arm64" => {
            let words = [
                0xD280_0020u32,           // mov x0, #1 (stdout)
                0x1000_00E1,              // adr x1, message (28 bytes on)
                0xD280_0002 | (len << 5), // mov x2, #len
                0xD280_0808,              // mov x8, #64 (write)
                0xD400_0001,              // svc #0
                0xD280_0000,              // mov x0, #0
                0xD280_0BA8,              // mov x8, #93 (exit)
                0xD400_0001,              // svc #0
            ];
            (0xB7, words.iter().flat_map(|w| w.to_le_bytes()).collect())
        }
        "amd64" => {
            let mut code = vec![0xB8, 1, 0, 0, 0, 0xBF, 1, 0, 0, 0]; // mov eax, 1; mov edi, 1
            code.extend([0x48, 0x8D, 0x35, 16, 0, 0, 0]); // lea rsi, [rip + 16]: the message
            code.push(0xBA); // mov edx, len
            code.extend(len.to_le_bytes());
            code.extend([0x0F, 0x05]); // syscall (write)
            code.extend([0xB8, 60, 0, 0, 0, 0x31, 0xFF, 0x0F, 0x05]); // exit(0)
            (0x3E, code)
        }
        other => panic!("no hello program for {other}"),
    };
    code.extend(message.as_bytes());
    const BASE: u64 = 0x40_0000;
    const HEADERS: u64 = 64 + 56;
    let total = HEADERS + code.len() as u64;
    let mut elf = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
    elf.resize(16, 0);
    elf.extend(2u16.to_le_bytes()); // ET_EXEC
    elf.extend(machine.to_le_bytes());
    elf.extend(1u32.to_le_bytes());
    elf.extend((BASE + HEADERS).to_le_bytes()); // entry
    elf.extend(64u64.to_le_bytes()); // program headers
    elf.extend(0u64.to_le_bytes()); // no section headers
    elf.extend(0u32.to_le_bytes());
    for half in [64u16, 56, 1, 0, 0, 0] {
        elf.extend(half.to_le_bytes());
    }
    elf.extend(1u32.to_le_bytes()); // PT_LOAD
    elf.extend(5u32.to_le_bytes()); // read + execute
    for word in [0, BASE, BASE, total, total, 0x1000] {
        elf.extend(word.to_le_bytes());
    }
    elf.extend(code);
    elf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_platform_builds_where_qemu_runs_its_programs() {
    if !tools_present(&["git", "buildah", "skopeo"], "git buildah skopeo") {
        return;
    }
    let (native, foreign) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", "arm64"),
        "aarch64" => ("arm64", "amd64"),
        _ => {
            eprintln!("\n!!! SKIPPED: the qemu test knows amd64 and arm64 machines only !!!\n");
            return;
        }
    };
    if !qemu_runs(foreign) {
        eprintln!(
            "\n!!! SKIPPED: no enabled qemu-user-static handler {} on this machine, so it \
             cannot run {foreign} programs (apt-get install -y qemu-user-static; mount -t \
             binfmt_misc none /proc/sys/fs/binfmt_misc; register /usr/lib/binfmt.d/qemu-*.conf \
             in /proc/sys/fs/binfmt_misc/register: scripts/test does it where the machine \
             allows) !!!\n",
            qemu_handler(foreign).display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let native_name = format!("hello-{native}");
    let foreign_name = format!("hello-{foreign}");
    let url = git_repository(
        tmp.path(),
        &[
            (
                "Dockerfile",
                b"FROM scratch\nARG TARGETARCH\nCOPY hello-${TARGETARCH} /hello\nRUN [\"/hello\"]\n",
            ),
            (&native_name, &hello_program(native)),
            (&foreign_name, &hello_program(foreign)),
        ],
    );
    let server = TestServer::spawn_with(SpawnOptions::default().env(
        "BERTH_BUILD_DIR",
        tmp.path().join("builds").to_str().unwrap(),
    ))
    .await;
    let dir = server.data_dir().unwrap().to_owned();
    let repo = "admin/emulated";
    berth_ok(&dir, &["build", "source", "set", repo, "--git", &url]);
    berth_ok(
        &dir,
        &[
            "build",
            "rule",
            "add",
            repo,
            "--type",
            "branch",
            "--source",
            "main",
            "--tag",
            "both",
            "--platform",
            &format!("linux/{native},linux/{foreign}"),
        ],
    );
    let builds = build_main(&server, repo).await;
    let build = &builds[0];
    assert_eq!(build["status"], "succeeded", "{}", build["log"]);
    let log = build["log"].as_str().unwrap();
    // Each platform's RUN ran its own program: the foreign one through qemu.
    assert!(log.contains(&format!("hello from {foreign}")), "{log}");
    assert!(log.contains(&format!("hello from {native}")), "{log}");
    let registry = server.base().trim_start_matches("http://").to_owned();
    let raw = raw_manifest(tmp.path(), &format!("{registry}/{repo}:both"));
    let mut archs: Vec<&str> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    archs.sort();
    let mut want = vec![native, foreign];
    want.sort();
    assert_eq!(archs, want, "{raw}");
}

/// CNCF Distribution on a free loopback port, storing under `dir`; killed on drop.
struct Distribution {
    child: Child,
    address: String,
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn distribution(dir: &Path) -> Distribution {
    let address = format!("127.0.0.1:{}", free_port());
    let config = dir.join("distribution.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp: {{addr: {address}}}\n",
            dir.join("upstream").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .env_remove("AWS_CA_BUNDLE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start docker-registry");
    let upstream = Distribution { child, address };
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("http://{}/v2/", upstream.address))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "Distribution did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    upstream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_images_from_docker_hub_come_through_the_mirror() {
    if !tools_present(
        &["git", "buildah", "skopeo", "docker-registry"],
        "git buildah skopeo docker-registry",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let upstream = distribution(tmp.path()).await;

    // The base image on the Docker Hub stand-in, as library/base:1.
    let base = tmp.path().join("base");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("base.txt"), "from the base\n").unwrap();
    std::fs::write(
        base.join("Dockerfile"),
        "FROM scratch\nCOPY base.txt /base.txt\n",
    )
    .unwrap();
    let storage = tmp.path().join("base-storage");
    let buildah = |args: &[&str]| {
        let mut all = vec![
            "--root",
            storage.to_str().unwrap(),
            "--runroot",
            storage.to_str().unwrap(),
            "--storage-driver",
            "vfs",
        ];
        all.extend_from_slice(args);
        run(&base, "buildah", &all)
    };
    buildah(&[
        "build",
        "-q",
        "--isolation",
        "chroot",
        "-t",
        "localhost/base:1",
        ".",
    ]);
    buildah(&[
        "push",
        "--tls-verify=false",
        "localhost/base:1",
        &format!("docker://{}/library/base:1", upstream.address),
    ]);

    let url = git_repository(
        tmp.path(),
        &[
            ("app.txt", b"the app\n"),
            (
                "Dockerfile",
                b"FROM docker.io/library/base:1\nCOPY app.txt /app.txt\n",
            ),
            ("Dockerfile.bare", b"FROM base:1\nCOPY app.txt /bare.txt\n"),
        ],
    );
    let config = tmp.path().join("berth.toml");
    std::fs::write(
        &config,
        format!(
            "mirror_default = \"hub\"\n[[mirror]]\nprefix = \"hub\"\nupstream = \"http://{}\"\n",
            upstream.address
        ),
    )
    .unwrap();
    let server = TestServer::spawn_with(
        SpawnOptions::default()
            .env(
                "BERTH_BUILD_DIR",
                tmp.path().join("builds").to_str().unwrap(),
            )
            .env("BERTH_CONFIG", config.to_str().unwrap()),
    )
    .await;
    let dir = server.data_dir().unwrap().to_owned();
    let repo = "admin/app";
    berth_ok(&dir, &["build", "source", "set", repo, "--git", &url]);
    for (tag, dockerfile) in [("latest", "Dockerfile"), ("bare", "Dockerfile.bare")] {
        berth_ok(
            &dir,
            &[
                "build",
                "rule",
                "add",
                repo,
                "--type",
                "branch",
                "--source",
                "main",
                "--tag",
                tag,
                "--dockerfile",
                dockerfile,
            ],
        );
    }
    let builds = build_main(&server, repo).await;
    let registry = server.base().trim_start_matches("http://").to_owned();
    for build in &builds {
        assert_eq!(build["status"], "succeeded", "{}", build["log"]);
        let log = build["log"].as_str().unwrap();
        assert!(
            log.contains(&format!("come through the mirror {registry}/hub")),
            "{log}"
        );
        let raw = raw_manifest(
            tmp.path(),
            &format!("{registry}/{repo}:{}", build["tags"][0].as_str().unwrap()),
        );
        assert_eq!(
            raw["layers"].as_array().unwrap().len(),
            2,
            "the base's layer and the app's: {raw}"
        );
    }
    // The base image is in the pull-through cache now, under the mirror's prefix.
    let (status, cached) = api(
        &server,
        Method::GET,
        "/api/v1/repositories/hub/library/base",
    )
    .await;
    assert_eq!(status, 200, "{cached}");
    assert_eq!(cached["mirror"]["prefix"], "hub", "{cached}");
}
