//! The authorization matrix: every kind of caller × every repository of the world × every
//! registry operation, each cell stating what the caller must get, with Basic credentials
//! and with bearer tokens from the token service. Refusals on a private repository must be
//! byte-identical to the same request on a repository that does not exist.

use crate::support::{
    accept_manifests, access_of, client, fresh_loopback, image_manifest, sha256, unique, Creds,
    Image, Snapshot, PASSWORD,
};
use crate::world::{
    is_private, missing_twin, Pat, World, ALICE_HIDDEN, ALICE_SECRET, REPOSITORIES,
};
use berth_core::time::now_unix;
use reqwest::{Client, Method};
use std::fmt;

/// What a caller may do to one repository: nothing, pull, pull and push, or everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    No,
    Read,
    Write,
    Admin,
}

const N: Level = Level::No;
const R: Level = Level::Read;
const W: Level = Level::Write;
const A: Level = Level::Admin;

impl Level {
    /// The `access` entry a token must carry for a request of every action.
    fn token_actions(self) -> Option<Vec<String>> {
        let actions: &[&str] = match self {
            Level::No => return None,
            Level::Read => &["pull"],
            Level::Write => &["pull", "push"],
            Level::Admin => &["pull", "push", "delete"],
        };
        Some(actions.iter().map(|a| a.to_string()).collect())
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Who {
    Anonymous,
    /// A user with their password.
    User(&'static str),
    /// A token of the world, with Basic credentials.
    Token(Pat),
}

/// One kind of caller and what it may do to each repository of the world.
pub(crate) struct Row {
    pub label: &'static str,
    pub who: Who,
    /// In the order of [`REPOSITORIES`]: alice/public, alice/secret, alice/hidden,
    /// acme/public, acme/secret, library/nginx.
    pub access: [Level; 6],
    /// Where this caller mounts blobs into: a repository of their own where possible.
    mount_into: &'static str,
    /// Whether they may push there.
    may_push_there: bool,
}

pub(crate) const fn row(
    label: &'static str,
    who: Who,
    access: [Level; 6],
    mount_into: &'static str,
    may_push_there: bool,
) -> Row {
    Row {
        label,
        who,
        access,
        mount_into,
        may_push_there,
    }
}

#[rustfmt::skip]
pub(crate) const ROWS: [Row; 15] = [
    // (who, how they sign in, their access to [alice/public, alice/secret, alice/hidden,
    // acme/public, acme/secret, library/nginx], the repository they mount into, and whether
    // they may push there)
    row("anonymous",                              Who::Anonymous,                    [R, N, N, R, N, R], "alice/scratch",   false),
    row("outsider",                               Who::User("bob"),                  [R, N, N, R, N, R], "bob/scratch",     true),
    row("team member with read",                  Who::User("rita"),                 [R, N, N, R, R, R], "rita/scratch",    true),
    row("team member with write",                 Who::User("walt"),                 [R, N, N, W, W, R], "walt/scratch",    true),
    row("team member with admin",                 Who::User("ada"),                  [R, N, N, A, A, R], "ada/scratch",     true),
    row("collaborator with write",                Who::User("carol"),                [W, W, N, R, N, R], "carol/scratch",   true),
    row("namespace owner",                        Who::User("alice"),                [A, A, A, R, N, R], "alice/scratch",   true),
    row("organization owner",                     Who::User("olivia"),               [R, N, N, A, A, R], "olivia/scratch",  true),
    row("site admin",                             Who::User("admin"),                [A, A, A, A, A, A], "admin/scratch",   true),
    row("owner's repo:public_read token",         Who::Token(Pat::PublicRead),       [R, N, N, R, N, R], "alice/scratch",   false),
    row("owner's repo:read token",                Who::Token(Pat::Read),             [R, R, R, R, N, R], "alice/scratch",   false),
    row("owner's repo:write token",               Who::Token(Pat::Write),            [W, W, W, R, N, R], "alice/scratch",   true),
    row("owner's repo:admin token",               Who::Token(Pat::Admin),            [A, A, A, R, N, R], "alice/scratch",   true),
    // Outside its repositories a limited token is worth no credentials: public pulls only.
    row("owner's token limited to alice/hidden",  Who::Token(Pat::LimitedToHidden),  [R, N, A, R, N, R], "alice/hidden",    true),
    row("organization access token",              Who::Token(Pat::Acme),             [R, N, N, A, A, R], "acme/scratch",    true),
];

/// The registry operations of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    ManifestGet,
    ManifestHead,
    BlobGet,
    BlobHead,
    TagsList,
    Referrers,
    /// Starting an upload (POST) and putting a manifest.
    Push,
    /// An upload session the site admin started: its status (GET, which like every GET
    /// needs pull, as in CNCF Distribution; the session id is the secret), a chunk (PATCH),
    /// its completion (PUT) and its cancellation (DELETE).
    UploadStatus,
    UploadChunk,
    UploadComplete,
    UploadCancel,
    ManifestDelete,
    TagDelete,
    BlobDelete,
    /// Mounting the repository's layer into the caller's `mount_into`.
    Mount,
}

const OPS: [Op; 15] = [
    Op::ManifestGet,
    Op::ManifestHead,
    Op::BlobGet,
    Op::BlobHead,
    Op::TagsList,
    Op::Referrers,
    Op::Push,
    Op::UploadStatus,
    Op::UploadChunk,
    Op::UploadComplete,
    Op::UploadCancel,
    Op::ManifestDelete,
    Op::TagDelete,
    Op::BlobDelete,
    Op::Mount,
];

impl Op {
    /// The least access to the repository that allows the operation.
    fn needs(self) -> Level {
        match self {
            Op::Push | Op::UploadChunk | Op::UploadComplete | Op::UploadCancel => W,
            Op::ManifestDelete | Op::TagDelete | Op::BlobDelete => A,
            _ => R,
        }
    }

    /// The actions a refusal's challenge asks a token for.
    fn challenge_actions(self) -> &'static str {
        match self {
            Op::Push | Op::Mount | Op::UploadChunk | Op::UploadComplete | Op::UploadCancel => {
                "pull,push"
            }
            Op::ManifestDelete | Op::TagDelete | Op::BlobDelete => "delete",
            _ => "pull",
        }
    }

    fn is_head(self) -> bool {
        matches!(self, Op::ManifestHead | Op::BlobHead)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::ManifestGet => "manifest GET",
            Op::ManifestHead => "manifest HEAD",
            Op::BlobGet => "blob GET",
            Op::BlobHead => "blob HEAD",
            Op::TagsList => "tags list",
            Op::Referrers => "referrers",
            Op::Push => "push (upload POST + manifest PUT)",
            Op::UploadStatus => "upload status GET",
            Op::UploadChunk => "upload chunk PATCH",
            Op::UploadComplete => "upload completion PUT",
            Op::UploadCancel => "upload cancel DELETE",
            Op::ManifestDelete => "manifest DELETE",
            Op::TagDelete => "tag DELETE",
            Op::BlobDelete => "blob DELETE",
            Op::Mount => "mount into own repository",
        })
    }
}

/// What one cell must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The operation's normal success.
    Allowed,
    /// Refused: 401 with a challenge, or 403 for a signed-in caller with Basic credentials.
    Refused,
    /// A mount from a repository the caller cannot read: a fresh upload session (202), as
    /// from a repository that does not exist.
    FreshSession,
}

fn expected(row: &Row, column: usize, op: Op) -> Outcome {
    let level = row.access[column];
    match op {
        Op::Mount if !row.may_push_there => Outcome::Refused,
        Op::Mount if level >= R => Outcome::Allowed,
        Op::Mount => Outcome::FreshSession,
        _ if level >= op.needs() => Outcome::Allowed,
        _ => Outcome::Refused,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The row's own credentials on every request.
    Basic,
    /// A bearer token from `GET /token`, asked for everything.
    Bearer,
    /// Basic credentials that are no longer valid (expired or revoked tokens).
    Stale,
}

/// Who sends a cell's requests, and from where.
struct Caller {
    creds: Creds,
    client: Client,
    /// Anonymous callers are asked for credentials rather than refused.
    anonymous: bool,
}

impl Caller {
    fn request(&self, world: &World, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.creds
            .apply(self.client.request(method, world.server.url(path)))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Snapshot {
        Snapshot::of(request.send().await.expect("request failed")).await
    }
}

pub(crate) fn creds_of(world: &World, who: Who) -> Creds {
    match who {
        Who::Anonymous => Creds::Anonymous,
        Who::User(name) => Creds::basic(name, PASSWORD),
        Who::Token(pat) => world.pat(pat),
    }
}

/// Content an operation acts on, pushed by the site admin just for this cell so that a
/// delete that goes through is seen and no cell depends on another.
async fn prepare(world: &World, op: Op, name: &str) -> String {
    let server = &world.server;
    let admin = &world.admin;
    let n = unique();
    match op {
        Op::Push => format!("pushed-{n}"),
        Op::TagDelete => {
            let tag = format!("doomed-{n}");
            server
                .push_manifest(admin, name, &tag, &world.image(name).manifest)
                .await;
            tag
        }
        Op::ManifestDelete => {
            let config = format!(r#"{{"fresh":{n}}}"#);
            let config_digest = server.push_blob(admin, name, config.as_bytes()).await;
            let image = world.image(name);
            let manifest = image_manifest(
                (&config_digest, config.len()),
                &[(&image.layer_digest, image.layer.len())],
            );
            let digest = sha256(&manifest);
            server.push_manifest(admin, name, &digest, &manifest).await;
            digest
        }
        Op::BlobDelete => {
            server
                .push_blob(admin, name, format!("fresh blob {n}").as_bytes())
                .await
        }
        Op::UploadStatus | Op::UploadChunk | Op::UploadComplete | Op::UploadCancel => {
            let resp = server
                .send(server.request(admin, Method::POST, &format!("/v2/{name}/blobs/uploads/")))
                .await;
            assert_eq!(resp.status(), 202, "the site admin starts an upload");
            resp.headers()["docker-upload-uuid"]
                .to_str()
                .expect("session id")
                .to_owned()
        }
        _ => String::new(),
    }
}

/// Sends the operation on repository `name` (the content is `image`'s; `reference` is what
/// [`prepare`] returned) and returns every answer.
async fn perform(
    world: &World,
    caller: &Caller,
    row: &Row,
    op: Op,
    name: &str,
    image: &Image,
    reference: &str,
) -> Vec<Snapshot> {
    let get = |path: String| caller.request(world, Method::GET, &path);
    let one = match op {
        Op::ManifestGet => accept_manifests(get(format!("/v2/{name}/manifests/v1"))),
        Op::ManifestHead => accept_manifests(caller.request(
            world,
            Method::HEAD,
            &format!("/v2/{name}/manifests/v1"),
        )),
        Op::BlobGet => get(format!("/v2/{name}/blobs/{}", image.layer_digest)),
        Op::BlobHead => caller.request(
            world,
            Method::HEAD,
            &format!("/v2/{name}/blobs/{}", image.layer_digest),
        ),
        Op::UploadStatus => get(format!("/v2/{name}/blobs/uploads/{reference}")),
        Op::UploadChunk => caller
            .request(
                world,
                Method::PATCH,
                &format!("/v2/{name}/blobs/uploads/{reference}"),
            )
            .header("content-type", "application/octet-stream")
            .body(upload_body(reference)),
        Op::UploadComplete => caller
            .request(
                world,
                Method::PUT,
                &format!(
                    "/v2/{name}/blobs/uploads/{reference}?digest={}",
                    sha256(&upload_body(reference))
                ),
            )
            .header("content-type", "application/octet-stream")
            .body(upload_body(reference)),
        Op::UploadCancel => caller.request(
            world,
            Method::DELETE,
            &format!("/v2/{name}/blobs/uploads/{reference}"),
        ),
        Op::TagsList => get(format!("/v2/{name}/tags/list")),
        Op::Referrers => get(format!("/v2/{name}/referrers/{}", image.digest)),
        Op::Push => {
            let start = caller
                .send(caller.request(world, Method::POST, &format!("/v2/{name}/blobs/uploads/")))
                .await;
            let put = caller
                .send(
                    caller
                        .request(
                            world,
                            Method::PUT,
                            &format!("/v2/{name}/manifests/{reference}"),
                        )
                        .header("content-type", crate::support::OCI_MANIFEST)
                        .body(image.manifest.clone()),
                )
                .await;
            return vec![start, put];
        }
        Op::ManifestDelete | Op::TagDelete => caller.request(
            world,
            Method::DELETE,
            &format!("/v2/{name}/manifests/{reference}"),
        ),
        Op::BlobDelete => caller.request(
            world,
            Method::DELETE,
            &format!("/v2/{name}/blobs/{reference}"),
        ),
        Op::Mount => caller.request(
            world,
            Method::POST,
            &format!(
                "/v2/{}/blobs/uploads/?mount={}&from={name}",
                row.mount_into, image.layer_digest
            ),
        ),
    };
    vec![caller.send(one).await]
}

/// What a cell uploads into the session `id`.
fn upload_body(id: &str) -> Vec<u8> {
    format!("uploaded into {id}").into_bytes()
}

/// Checks the answers of an allowed operation.
fn check_allowed(op: Op, row: &Row, image: &Image, answers: &[Snapshot]) -> Result<(), String> {
    let first = &answers[0];
    let status = |want: u16, s: &Snapshot| {
        if s.status == want {
            Ok(())
        } else {
            Err(format!("expected {want}, got {} {}", s.status, s.body))
        }
    };
    match op {
        Op::ManifestGet => {
            status(200, first)?;
            if first.body.as_bytes() != image.manifest.as_slice()
                || first.header("docker-content-digest") != Some(image.digest.as_str())
            {
                return Err("the manifest is not the one pushed".into());
            }
        }
        Op::ManifestHead => {
            status(200, first)?;
            if first.header("docker-content-digest") != Some(image.digest.as_str()) {
                return Err("HEAD does not name the manifest's digest".into());
            }
        }
        Op::BlobGet => {
            status(200, first)?;
            if first.body.as_bytes() != image.layer.as_slice() {
                return Err("the blob is not the one pushed".into());
            }
        }
        Op::BlobHead => {
            status(200, first)?;
            let length = image.layer.len().to_string();
            if first.header("content-length") != Some(length.as_str()) {
                return Err(format!(
                    "HEAD gives length {:?}",
                    first.header("content-length")
                ));
            }
        }
        Op::UploadStatus | Op::UploadCancel => status(204, first)?,
        Op::UploadChunk => status(202, first)?,
        Op::UploadComplete => status(201, first)?,
        Op::TagsList => {
            status(200, first)?;
            let tags = first.json()["tags"].clone();
            if !tags.as_array().is_some_and(|t| t.iter().any(|t| t == "v1")) {
                return Err(format!("tag v1 is not listed: {}", first.body));
            }
        }
        Op::Referrers => {
            status(200, first)?;
            let listed = first.json()["manifests"]
                .as_array()
                .is_some_and(|m| m.iter().any(|d| d["digest"] == image.signature_digest));
            if !listed {
                return Err(format!("the signature is not listed: {}", first.body));
            }
        }
        Op::Push => {
            status(202, first)?;
            status(201, &answers[1])?;
        }
        Op::ManifestDelete | Op::TagDelete | Op::BlobDelete => status(202, first)?,
        Op::Mount => {
            status(201, first)?;
            let location = format!("/v2/{}/blobs/{}", row.mount_into, image.layer_digest);
            if first.header("location") != Some(location.as_str()) {
                return Err(format!(
                    "mounted, but Location is {:?}",
                    first.header("location")
                ));
            }
        }
    }
    Ok(())
}

/// Checks that every answer is the refusal `mode` calls for.
fn check_refused(
    world: &World,
    mode: Mode,
    caller: &Caller,
    row: &Row,
    op: Op,
    name: &str,
    answers: &[Snapshot],
) -> Result<(), String> {
    let resource = if op == Op::Mount {
        row.mount_into
    } else {
        name
    };
    let scope = format!("repository:{resource}:{}", op.challenge_actions());
    let (status, code, challenge) = match mode {
        Mode::Bearer => (
            401,
            "UNAUTHORIZED",
            Some(world.server.challenge(Some(&scope), true)),
        ),
        Mode::Basic if !caller.anonymous => (403, "DENIED", None),
        Mode::Basic | Mode::Stale => (
            401,
            "UNAUTHORIZED",
            Some(world.server.challenge(Some(&scope), false)),
        ),
    };
    for answer in answers {
        if answer.status != status {
            return Err(format!(
                "expected {status} {code}, got {} {}",
                answer.status, answer.body
            ));
        }
        if !op.is_head() && answer.error_code().as_deref() != Some(code) {
            return Err(format!("expected error code {code}, got {}", answer.body));
        }
        if let Some(challenge) = &challenge {
            let got = answer.header("www-authenticate");
            if got != Some(challenge.as_str()) {
                return Err(format!("expected challenge {challenge}, got {got:?}"));
            }
        }
    }
    Ok(())
}

/// After the operation, as the site admin sees it: a push or upload that went through left
/// its content, a refused one did not; a delete or cancel that went through removed its
/// content, a refused one left it; a mount links the blob only when the source was readable.
async fn check_effect(
    world: &World,
    row: &Row,
    op: Op,
    name: &str,
    image: &Image,
    reference: &str,
    outcome: Outcome,
) -> Result<(), String> {
    let allowed = outcome == Outcome::Allowed;
    let session = format!("/v2/{name}/blobs/uploads/{reference}");
    // (path, status expected, Range expected)
    let (path, want, range) = match op {
        Op::Push => (
            format!("/v2/{name}/manifests/{reference}"),
            if allowed { 200 } else { 404 },
            None,
        ),
        Op::ManifestDelete | Op::TagDelete => (
            format!("/v2/{name}/manifests/{reference}"),
            if allowed { 404 } else { 200 },
            None,
        ),
        Op::BlobDelete => (
            format!("/v2/{name}/blobs/{reference}"),
            if allowed { 404 } else { 200 },
            None,
        ),
        Op::Mount if outcome != Outcome::Refused => (
            format!("/v2/{}/blobs/{}", row.mount_into, image.layer_digest),
            if allowed { 200 } else { 404 },
            None,
        ),
        Op::UploadChunk => {
            let size = if allowed {
                upload_body(reference).len()
            } else {
                0
            };
            (session, 204, Some(format!("0-{}", size.saturating_sub(1))))
        }
        Op::UploadComplete => (
            format!("/v2/{name}/blobs/{}", sha256(&upload_body(reference))),
            if allowed { 200 } else { 404 },
            None,
        ),
        Op::UploadCancel => (session, if allowed { 404 } else { 204 }, None),
        _ => return Ok(()),
    };
    let server = &world.server;
    let method = if path.contains("/blobs/uploads/") {
        Method::GET
    } else {
        Method::HEAD
    };
    let resp = server
        .send(accept_manifests(server.request(
            &world.admin,
            method,
            &path,
        )))
        .await;
    if resp.status() != want {
        return Err(format!(
            "afterwards the site admin gets {} for {path}, expected {want}",
            resp.status()
        ));
    }
    let got = resp.headers().get("range").and_then(|v| v.to_str().ok());
    if range.is_some() && got != range.as_deref() {
        return Err(format!(
            "afterwards the session's range is {got:?}, expected {range:?}"
        ));
    }
    Ok(())
}

/// Runs one cell; on a private repository a refusal is also compared with the same request
/// on a repository that does not exist.
async fn run_cell(
    world: &World,
    mode: Mode,
    caller: &Caller,
    row: &Row,
    column: usize,
    op: Op,
    outcome: Outcome,
) -> Result<(), String> {
    let name = REPOSITORIES[column];
    let image = world.image(name);
    let reference = prepare(world, op, name).await;
    let answers = perform(world, caller, row, op, name, image, &reference).await;
    match outcome {
        Outcome::Allowed => check_allowed(op, row, image, &answers)?,
        Outcome::Refused => check_refused(world, mode, caller, row, op, name, &answers)?,
        Outcome::FreshSession => {
            let location = answers[0].header("location").unwrap_or_default();
            let prefix = format!("/v2/{}/blobs/uploads/", row.mount_into);
            if answers[0].status != 202 || !location.starts_with(&prefix) {
                return Err(format!(
                    "expected 202 with a fresh session, got {} at {location:?} {}",
                    answers[0].status, answers[0].body
                ));
            }
        }
    }
    check_effect(world, row, op, name, image, &reference, outcome).await?;
    if is_private(name) && outcome != Outcome::Allowed {
        let twin = missing_twin(name);
        let twin_answers = perform(world, caller, row, op, twin, image, &reference).await;
        for (real, missing) in answers.iter().zip(&twin_answers) {
            let missing = missing.renamed(twin, name);
            let real = real.renamed(twin, name);
            if real != missing {
                return Err(format!(
                    "LEAK: {name} answers differently from the missing {twin}:\n  private: {real:?}\n  missing: {missing:?}"
                ));
            }
        }
    }
    Ok(())
}

/// `_catalog` lists exactly the repositories the caller may read.
async fn check_catalog(world: &World, caller: &Caller, row: &Row) -> Result<(), String> {
    let answer = caller
        .send(caller.request(world, Method::GET, "/v2/_catalog?n=100"))
        .await;
    if answer.status != 200 {
        return Err(format!(
            "expected 200, got {} {}",
            answer.status, answer.body
        ));
    }
    let listed: Vec<String> = answer.json()["repositories"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    // A token limited to repositories lists only those (it still pulls public ones).
    let limited_to = match row.who {
        Who::Token(Pat::LimitedToHidden) => Some(ALICE_HIDDEN),
        _ => None,
    };
    let mut readable: Vec<String> = REPOSITORIES
        .iter()
        .zip(row.access)
        .filter(|(_, level)| *level >= R)
        .map(|(name, _)| name.to_string())
        .filter(|name| limited_to.is_none_or(|only| name == only))
        .collect();
    readable.sort();
    if listed != readable {
        return Err(format!("lists {listed:?}, expected {readable:?}"));
    }
    // Page by page, following `Link`, the pages show the same and nothing more.
    let mut paged = Vec::new();
    let mut next = Some("/v2/_catalog?n=1".to_owned());
    while let Some(path) = next.take() {
        let answer = caller.send(caller.request(world, Method::GET, &path)).await;
        if answer.status != 200 || paged.len() > REPOSITORIES.len() {
            return Err(format!(
                "paging: {path} gives {} {}",
                answer.status, answer.body
            ));
        }
        if let Some(names) = answer.json()["repositories"].as_array() {
            paged.extend(names.iter().filter_map(|n| n.as_str().map(str::to_owned)));
        }
        next = answer.header("link").and_then(|link| {
            let (target, _) = link.strip_prefix('<')?.split_once('>')?;
            Some(target.to_owned())
        });
    }
    if paged != readable {
        return Err(format!(
            "one by one, lists {paged:?}, expected {readable:?}"
        ));
    }
    Ok(())
}

/// What a token for every repository must grant this row.
fn check_grants(row: &Row, claims: &serde_json::Value) -> Result<(), String> {
    let access = access_of(claims);
    for (name, level) in REPOSITORIES.iter().zip(row.access) {
        let granted = access.get(&format!("repository:{name}")).cloned();
        if granted != level.token_actions() {
            return Err(format!(
                "token grants {granted:?} on {name}, expected {:?}",
                level.token_actions()
            ));
        }
    }
    if access.get("registry:catalog") != Some(&vec!["*".to_owned()]) {
        return Err(format!("token does not grant the catalog: {access:?}"));
    }
    Ok(())
}

/// Every scope a client could ask for in the world, as a bearer-mode caller asks.
fn all_scopes(row: &Row) -> Vec<String> {
    let mut names: Vec<&str> = REPOSITORIES.to_vec();
    names.extend(["alice/absent", "acme/absent", row.mount_into]);
    let mut scopes: Vec<String> = names
        .into_iter()
        .map(|name| format!("repository:{name}:pull,push,delete"))
        .collect();
    scopes.push("registry:catalog:*".into());
    scopes
}

/// Runs every cell of every row in `mode`; returns (cells, failures).
async fn run_matrix(world: &World, mode: Mode) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut cells = 0;
    let mut callers = Vec::new();
    for row in &ROWS {
        let mut creds = creds_of(world, row.who);
        if mode == Mode::Bearer {
            let scopes = all_scopes(row);
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let (bearer, claims) = world.server.bearer(&creds, &scopes).await;
            cells += 1;
            if let Err(e) = check_grants(row, &claims) {
                failures.push(format!("[{mode:?}] {} × token grants: {e}", row.label));
            }
            creds = bearer;
        }
        callers.push(Caller {
            creds,
            client: world.server.client.clone(),
            anonymous: matches!(row.who, Who::Anonymous),
        });
    }
    // The catalog first, while the world's repositories are the only ones.
    for (row, caller) in ROWS.iter().zip(&callers) {
        cells += 1;
        if let Err(e) = check_catalog(world, caller, row).await {
            failures.push(format!("[{mode:?}] {} × _catalog: {e}", row.label));
        }
    }
    for (row, caller) in ROWS.iter().zip(&callers) {
        for (column, name) in REPOSITORIES.iter().enumerate() {
            for op in OPS {
                cells += 1;
                let outcome = expected(row, column, op);
                if let Err(e) = run_cell(world, mode, caller, row, column, op, outcome).await {
                    failures.push(format!(
                        "[{mode:?}] {} × {name} × {op} (expected {outcome:?}): {e}",
                        row.label
                    ));
                }
            }
        }
    }
    (cells, failures)
}

fn report(cells: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} of {cells} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn every_caller_with_basic_credentials_gets_exactly_its_access() {
    let world = World::build().await;
    let (cells, failures) = run_matrix(&world, Mode::Basic).await;
    assert_eq!(cells, ROWS.len() * (1 + REPOSITORIES.len() * OPS.len()));
    println!("{cells} cells");
    report(cells, &failures);
}

#[tokio::test]
async fn every_caller_with_a_bearer_token_gets_exactly_its_access() {
    let world = World::build().await;
    let (cells, failures) = run_matrix(&world, Mode::Bearer).await;
    // One more cell per row: what its token grants.
    assert_eq!(cells, ROWS.len() * (2 + REPOSITORIES.len() * OPS.len()));
    println!("{cells} cells");
    report(cells, &failures);
}

/// Expired and revoked tokens (of a site admin, who could otherwise do anything) are
/// refused everywhere with a challenge, and alike on private and missing repositories.
///
/// Every failed sign-in counts against the account and the client address (5 and 30 within
/// 15 minutes), so each cell uses an account and a loopback address of its own: the
/// answers stay the credential refusal rather than turning into 429s.
#[tokio::test]
async fn expired_and_revoked_tokens_are_refused_everywhere() {
    let world = World::build().await;
    let server = &world.server;
    let now = now_unix();
    let mut failures = Vec::new();
    let mut cells = 0;

    // Control: the same kind of token, still valid, works.
    let owner = server.user("stale-control", true).await;
    let (_, secret) = server.token(owner, None, "repo:admin", &[], None).await;
    let valid = Creds::basic("stale-control", &secret);
    let resp = server
        .send(accept_manifests(server.request(
            &valid,
            Method::GET,
            &format!("/v2/{ALICE_SECRET}/manifests/v1"),
        )))
        .await;
    assert_eq!(resp.status(), 200, "a valid admin token pulls");

    for kind in ["expired", "revoked"] {
        let stale_caller = || async {
            let name = format!("stale-{}", unique());
            let id = server.user(&name, true).await;
            let expires = (kind == "expired").then_some(now - 60);
            let (token_id, secret) = server.token(id, None, "repo:admin", &[], expires).await;
            if kind == "revoked" {
                server.revoke(token_id).await;
            }
            Caller {
                creds: Creds::basic(&name, &secret),
                client: client(Some(fresh_loopback())),
                anonymous: false,
            }
        };
        // The rows' mount targets do not matter: the credentials are refused first.
        let row = Row {
            label: "",
            who: Who::Anonymous,
            access: [N; 6],
            mount_into: "alice/scratch",
            may_push_there: false,
        };
        for (column, name) in REPOSITORIES.iter().enumerate() {
            for op in OPS {
                cells += 1;
                let caller = stale_caller().await;
                let result = run_cell(
                    &world,
                    Mode::Stale,
                    &caller,
                    &row,
                    column,
                    op,
                    Outcome::Refused,
                )
                .await;
                if let Err(e) = result {
                    failures.push(format!("{kind} token × {name} × {op}: {e}"));
                }
            }
        }
        for (path, scope) in [("/v2/", None), ("/v2/_catalog", Some("registry:catalog:*"))] {
            cells += 1;
            let caller = stale_caller().await;
            let answer = caller.send(caller.request(&world, Method::GET, path)).await;
            let challenge = server.challenge(scope, false);
            let ok = answer.status == 401
                && answer.error_code().as_deref() == Some("UNAUTHORIZED")
                && answer.header("www-authenticate") == Some(challenge.as_str());
            if !ok {
                failures.push(format!("{kind} token × {path}: got {answer:?}"));
            }
        }
        cells += 1;
        let caller = stale_caller().await;
        let answer = caller
            .send(caller.request(
                &world,
                Method::GET,
                "/token?service=berth&scope=repository:alice/public:pull",
            ))
            .await;
        if answer.status != 401 || answer.error_code().as_deref() != Some("UNAUTHORIZED") {
            failures.push(format!("{kind} token × GET /token: got {answer:?}"));
        }
    }
    println!("{cells} cells");
    report(cells, &failures);
}

/// `library` holds the official images: a bare name means `library/<name>`, anyone may pull
/// them, and only site admins push there.
#[tokio::test]
async fn the_library_namespace_is_for_official_images() {
    let world = World::build().await;
    let server = &world.server;
    let nginx = world.image("library/nginx");

    // A bare name is the official image, for pulls with and without a token.
    for path in ["/v2/nginx/manifests/v1", "/v2/library/nginx/manifests/v1"] {
        let resp = server
            .send(accept_manifests(server.request(
                &Creds::Anonymous,
                Method::GET,
                path,
            )))
            .await;
        assert_eq!(resp.status(), 200, "anonymous GET {path}");
        assert_eq!(
            resp.headers()["docker-content-digest"],
            nginx.digest.as_str()
        );
    }
    let (bearer, claims) = server
        .bearer(&Creds::Anonymous, &["repository:nginx:pull,push"])
        .await;
    assert_eq!(
        access_of(&claims).get("repository:library/nginx"),
        Some(&vec!["pull".to_owned()]),
        "a bare name is granted as library/<name>, and only pull: {claims}"
    );
    let resp = server
        .send(accept_manifests(server.request(
            &bearer,
            Method::GET,
            "/v2/nginx/manifests/v1",
        )))
        .await;
    assert_eq!(resp.status(), 200);

    // Nobody but a site admin pushes there: not users, not organization owners, not tokens.
    let refused = [
        Creds::basic("alice", PASSWORD),
        Creds::basic("olivia", PASSWORD),
        world.pat(Pat::Admin),
        world.pat(Pat::Acme),
    ];
    for creds in &refused {
        for path in [
            "/v2/nginx/blobs/uploads/",
            "/v2/library/redis/blobs/uploads/",
        ] {
            let resp = server.send(server.request(creds, Method::POST, path)).await;
            let answer = Snapshot::of(resp).await;
            assert_eq!(
                (answer.status, answer.error_code().as_deref()),
                (403, Some("DENIED")),
                "{creds:?} POST {path}"
            );
        }
    }
    let resp = server
        .send(server.request(&Creds::Anonymous, Method::POST, "/v2/redis/blobs/uploads/"))
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        server
            .challenge(Some("repository:library/redis:pull,push"), false)
            .as_str()
    );

    // A site admin pushing a bare name creates a public official image.
    let redis = server.push_image(&world.admin, "redis", "7", 99).await;
    for path in ["/v2/redis/manifests/7", "/v2/library/redis/manifests/7"] {
        let resp = server
            .send(accept_manifests(server.request(
                &Creds::Anonymous,
                Method::GET,
                path,
            )))
            .await;
        assert_eq!(resp.status(), 200, "anonymous GET {path}");
        assert_eq!(
            resp.headers()["docker-content-digest"],
            redis.digest.as_str()
        );
    }
    let resp = server.get(&Creds::Anonymous, "/v2/_catalog").await;
    let catalog: serde_json::Value = resp.json().await.expect("json");
    let names = catalog["repositories"].as_array().expect("list");
    assert!(names.iter().any(|n| n == "library/redis"), "{catalog}");
    assert!(!names.iter().any(|n| n == "redis"), "{catalog}");
}

/// A request about a digest: its method, its path for the digest, and a body to send.
type Probe = (Method, fn(&str) -> String, Option<&'static [u8]>);

/// Knowing the digests of a private repository's content does not reach it through a
/// repository one may write: not by reading, not by referring to it in a manifest, not by
/// mounting without a source, not by uploading without the bytes. Every answer is the one
/// for a digest that was never pushed anywhere.
#[tokio::test]
async fn private_content_cannot_be_reached_through_another_repository() {
    let world = World::build().await;
    let server = &world.server;
    let bob = Creds::basic("bob", PASSWORD);
    server.push_image(&bob, "bob/scratch", "v1", 500).await;
    let secret = world.image(ALICE_SECRET);
    let never = |label: &str| sha256(format!("never pushed: {label}").as_bytes());

    let probes: [Probe; 5] = [
        (Method::HEAD, |d| format!("/v2/bob/scratch/blobs/{d}"), None),
        (Method::GET, |d| format!("/v2/bob/scratch/blobs/{d}"), None),
        (
            Method::GET,
            |d| format!("/v2/bob/scratch/manifests/{d}"),
            None,
        ),
        (
            Method::GET,
            |d| format!("/v2/bob/scratch/referrers/{d}"),
            None,
        ),
        // Claiming the digest with other bytes.
        (
            Method::POST,
            |d| format!("/v2/bob/scratch/blobs/uploads/?digest={d}"),
            Some(b"not the bytes"),
        ),
    ];
    for digest in [&secret.layer_digest, &secret.digest] {
        let unknown = never(digest);
        for (method, path, body) in &probes {
            let send = |digest: String| {
                let mut request = server.request(&bob, method.clone(), &path(&digest));
                if let Some(body) = body {
                    request = request
                        .header("content-type", "application/octet-stream")
                        .body(body.to_vec());
                }
                async move { Snapshot::of(server.send(accept_manifests(request)).await).await }
            };
            let known = send(digest.clone()).await;
            let fresh = send(unknown.clone()).await.renamed(&unknown, digest);
            assert_eq!(known, fresh, "{method} {}", path(digest));
            assert!(
                known.status == 404
                    || known.status == 400
                    || known.json()["manifests"] == serde_json::json!([]),
                "{method} {}: {known:?}",
                path(digest)
            );
        }
    }

    // A manifest naming the secret image's blobs is refused as naming unknown blobs.
    let resp = server
        .put_manifest(&bob, "bob/scratch", "stolen", &secret.manifest)
        .await;
    let answer = Snapshot::of(resp).await;
    assert_eq!(
        (answer.status, answer.error_code().as_deref()),
        (400, Some("MANIFEST_BLOB_UNKNOWN")),
        "{answer:?}"
    );

    // Mounting without naming a source gives a fresh session and links nothing.
    let resp = server
        .send(server.request(
            &bob,
            Method::POST,
            &format!(
                "/v2/bob/scratch/blobs/uploads/?mount={}",
                secret.layer_digest
            ),
        ))
        .await;
    assert_eq!(resp.status(), 202);
    let resp = server
        .send(server.request(
            &bob,
            Method::HEAD,
            &format!("/v2/bob/scratch/blobs/{}", secret.layer_digest),
        ))
        .await;
    assert_eq!(resp.status(), 404);

    // An upload session of the private repository, under the name of bob's: unknown to
    // every method, and left as it was.
    let admin = &world.admin;
    let resp = server
        .send(server.request(
            admin,
            Method::POST,
            &format!("/v2/{ALICE_SECRET}/blobs/uploads/"),
        ))
        .await;
    let id = resp.headers()["docker-upload-uuid"]
        .to_str()
        .unwrap()
        .to_owned();
    let staged = b"secret bytes in flight".to_vec();
    let resp = server
        .send(
            server
                .request(
                    admin,
                    Method::PATCH,
                    &format!("/v2/{ALICE_SECRET}/blobs/uploads/{id}"),
                )
                .header("content-type", "application/octet-stream")
                .body(staged.clone()),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let elsewhere = format!("/v2/bob/scratch/blobs/uploads/{id}");
    let attempts = [
        server.request(&bob, Method::GET, &elsewhere),
        server
            .request(&bob, Method::PATCH, &elsewhere)
            .header("content-type", "application/octet-stream")
            .body(b"more".to_vec()),
        server
            .request(
                &bob,
                Method::PUT,
                &format!("{elsewhere}?digest={}", sha256(&staged)),
            )
            .header("content-type", "application/octet-stream"),
        server.request(&bob, Method::DELETE, &elsewhere),
    ];
    for attempt in attempts {
        let answer = Snapshot::of(server.send(attempt).await).await;
        assert_eq!(
            (answer.status, answer.error_code().as_deref()),
            (404, Some("BLOB_UPLOAD_UNKNOWN")),
            "{answer:?}"
        );
    }
    let resp = server
        .send(server.request(
            &bob,
            Method::HEAD,
            &format!("/v2/bob/scratch/blobs/{}", sha256(&staged)),
        ))
        .await;
    assert_eq!(resp.status(), 404);
    let resp = server
        .send(server.request(
            admin,
            Method::GET,
            &format!("/v2/{ALICE_SECRET}/blobs/uploads/{id}"),
        ))
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(
        resp.headers()["range"],
        format!("0-{}", staged.len() - 1).as_str()
    );
}
