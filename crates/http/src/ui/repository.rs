//! Repository pages under `/r/{namespace}/{name}`: the overview (badges, stars, pulls, pull
//! command, README) and `/-/tags` for anyone who may pull, and `/-/settings` for its admins
//! (descriptions, visibility, collaborators or team permissions, deletion) with
//! `/-/settings/webhooks` (in `webhooks.rs`). `-` cannot be a
//! repository path component, so `/-/` always separates the repository from the page.

use super::builds;
use super::html::{html, url_component, Html};
use super::layout::{
    button_form, copyable, count, form_start, hub_badges, human_size, option, permission_select,
    time, visibility_badge,
};
use super::lifecycle;
use super::namespaces::namespace_href;
use super::orgs::permission_label;
use super::session::Notice;
use super::tag_detail;
use super::webhooks;
use super::{Submission, UiError, UiResult, Visitor};
use crate::api::wire::query_text;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::access::{Action, Resource};
use berth_core::hub::{
    render_readme_nested, Platform, RepositoryView, TagView, MAX_DESCRIPTION_CHARS,
    MAX_FULL_DESCRIPTION_CHARS,
};
use berth_core::lifecycle::format_size;
use berth_core::ports::{Permission, RepositoryInfo, TagSort};
use berth_core::registry::ChangedBy;
use berth_core::webhooks::WebhookTarget;
use berth_core::Error;
use berth_oci::{Reference, RepoName, Tag};

/// Tags the overview shows; the Tags tab pages through all of them.
const RECENT_TAGS: u32 = 10;

/// Tags per page of the Tags tab.
const TAGS_PER_PAGE: u32 = 25;

/// The orders the Tags tab offers, as in its `sort` parameter and menu.
const TAG_SORTS: [(TagSort, &str, &str); 3] = [
    (TagSort::LastPushed, "last_pushed", "Recently pushed"),
    (TagSort::LastPulled, "last_pulled", "Recently pulled"),
    (TagSort::Name, "name", "Name"),
];

/// A repository and the page of it asked for.
struct Target {
    repo: RepoName,
    /// What follows `/-/`, if anything (`settings`, `settings/visibility`, …).
    page: Option<String>,
}

fn target(path: &str) -> UiResult<Target> {
    let (name, page) = match path.split_once("/-/") {
        Some((name, page)) => (name, Some(page.trim_end_matches('/').to_owned())),
        None => (path.trim_end_matches('/'), None),
    };
    let repo = name
        .parse::<RepoName>()
        .map_err(|_| UiError::Domain(Error::NotFound(path.to_owned())))?;
    Ok(Target { repo, page })
}

/// `GET /r/{*path}`.
pub(crate) async fn show(visitor: Visitor, Path(path): Path<String>) -> Response {
    let result = async {
        let target = target(&path)?;
        let repo = &target.repo;
        match page_parts(&target).as_slice() {
            [] => overview(&visitor, repo).await,
            ["tags"] => tags_tab(&visitor, repo).await,
            ["tags", tag] => tag_detail::page(&visitor, repo, tag).await,
            ["tags", tag, "delete"] => confirm_tag_deletion(&visitor, repo, tag).await,
            ["settings"] => settings(&visitor, repo).await,
            ["settings", "webhooks"] => {
                webhooks::ListPage::Repository(repo.clone())
                    .render(&visitor, StatusCode::OK, None)
                    .await
            }
            ["settings", "lifecycle"] => {
                lifecycle::show(&visitor, lifecycle::Place::Repository(repo.clone())).await
            }
            ["settings", "builds"] => builds::settings_page(&visitor, repo).await,
            ["builds", id] => builds::build_page(&visitor, repo, id).await,
            ["builds", id, "log"] => builds::log_stream(&visitor, repo, id).await,
            _ => Err(Error::NotFound(path.clone()).into()),
        }
    }
    .await;
    visitor.respond(result)
}

/// The page's path segments after `/-/`; none for the overview.
fn page_parts(target: &Target) -> Vec<&str> {
    target
        .page
        .as_deref()
        .map_or_else(Vec::new, |page| page.split('/').collect())
}

/// What the visitor may do with the repository, as the authorizer says (a token session
/// would be narrowed like the API's).
struct Abilities {
    push: bool,
    admin: bool,
}

async fn abilities(visitor: &Visitor, repo: &RepoName) -> UiResult<Abilities> {
    let actions = visitor
        .state
        .auth
        .authorizer()
        .actions(&visitor.principal, &Resource::Repository(repo.clone()))
        .await?;
    Ok(Abilities {
        push: actions.contains(Action::Push),
        admin: actions.contains(Action::Delete),
    })
}

/// The page header every repository page shares: name, visibility, Hub badges, tabs.
pub(super) async fn heading(
    visitor: &Visitor,
    repo: &RepoName,
    info: &RepositoryInfo,
    admin: bool,
    current: &str,
) -> Html {
    let namespace = repo.namespace().unwrap_or_default();
    let short = repo
        .as_str()
        .strip_prefix(&format!("{namespace}/"))
        .unwrap_or(repo.as_str());
    let mut out = Html::new();
    html!(out, "<div class=\"heading-row\"><h1><a href=\""
        (namespace_href(visitor, namespace).await) "\">" (namespace) "</a> / " (short) "</h1>"
        [visibility_badge(info.is_private)] [hub_badges(info)]);
    if let Some(mirror) = visitor.state.mirrors.mirroring(repo.as_str()) {
        html!(out, " <span class=\"badge mirror\" title=\"A read-only pull-through cache: pulls are fetched from the upstream and kept here; pushes are refused\">Mirror of "
            (mirror.upstream) "</span>");
    }
    html!(out, "</div>"
        "<nav aria-label=\"Repository\"><ul class=\"tabs\">"
        [tab(&format!("/r/{repo}"), "Overview", current == "overview")]
        [tab(&format!("/r/{repo}/-/tags"), "Tags", current == "tags")]);
    if admin {
        out.fragment(&tab(
            &format!("/r/{repo}/-/settings"),
            "Settings",
            current == "settings",
        ));
    }
    html!(out, "</ul></nav>");
    out
}

fn tab(href: &str, label: &str, current: bool) -> Html {
    let mut out = Html::new();
    html!(out, "<li><a href=\"" (href) "\"");
    if current {
        out.raw(" aria-current=\"page\"");
    }
    html!(out, ">" (label) "</a></li>");
    out
}

async fn overview(visitor: &Visitor, repo: &RepoName) -> UiResult {
    let hub = &visitor.state.hub;
    // Read permission or NameUnknown: a hidden repository is a missing one.
    let view = hub.repository(&visitor.principal, repo).await?;
    let recent = hub
        .tags(
            &visitor.principal,
            repo,
            TagSort::LastPushed,
            1,
            RECENT_TAGS,
        )
        .await?;
    let can = abilities(visitor, repo).await?;
    let info = &view.info;
    let host = visitor.registry_host();
    let mut body = heading(visitor, repo, info, can.admin, "overview").await;
    if !info.description.is_empty() {
        html!(body, "<p class=\"lead\" id=\"short-description\">" (info.description) "</p>");
    }
    let stored = visitor
        .state
        .usage
        .repository(&visitor.acting(), repo)
        .await
        .ok();
    body.fragment(&activity(visitor, repo, &view, stored));
    let default_tag = recent
        .tags
        .iter()
        .find(|tag| tag.name == "latest")
        .or(recent.tags.first());
    html!(
        body,
        "<section class=\"panel\" aria-labelledby=\"pull-title\"><h2 id=\"pull-title\">Pull</h2>"
    );
    match default_tag {
        Some(tag) => {
            body.fragment(&copyable(
                "pull-command",
                &format!("docker pull {host}/{repo}:{}", tag.name),
                "Copy the pull command",
            ));
        }
        None => html!(body, "<p class=\"muted\">Nothing to pull yet.</p>"),
    }
    if can.push {
        html!(
            body,
            "<h3>Push</h3>"[copyable(
                "push-command",
                &format!("docker push {host}/{repo}:TAG"),
                "Copy the push command"
            )]
        );
    }
    html!(body, "</section><section class=\"panel\" id=\"tags\" aria-labelledby=\"tags-title\">"
        "<h2 id=\"tags-title\">Recent tags</h2>");
    if recent.tags.is_empty() {
        html!(body, "<p class=\"muted\">No tags yet.</p>");
    } else {
        html!(body, "<ul class=\"tag-list\">");
        for tag in &recent.tags {
            html!(body, "<li><code>" (tag.name) "</code></li>");
        }
        html!(body, "</ul><p><a href=\"/r/" (repo) "/-/tags\">All " (count(recent.total)) " "
            (if recent.total == 1 { "tag" } else { "tags" }) " with digests, sizes and platforms</a></p>");
    }
    html!(body, "</section><section class=\"panel\" id=\"readme\" aria-labelledby=\"readme-title\">"
        "<h2 id=\"readme-title\">README</h2>");
    if view.readme_html.trim().is_empty() {
        html!(
            body,
            "<p class=\"muted\">This repository has no README yet.</p>"
        );
        if can.admin {
            html!(body, "<p><a href=\"/r/" (repo) "/-/settings#descriptions\">Write one</a></p>");
        }
    } else {
        // The Hub renders the Markdown to sanitized HTML, its headings below this section's
        // h2; this is the one place trusted markup enters a page.
        html!(body, "<div class=\"readme\" id=\"readme-body\">");
        body.trusted(&render_readme_nested(&info.full_description, 2));
        html!(body, "</div>");
    }
    html!(body, "</section>");
    Ok(visitor.page(repo.as_str(), body))
}

/// Stars (with the star button), pulls and the last push and pull.
fn activity(
    visitor: &Visitor,
    repo: &RepoName,
    view: &RepositoryView,
    stored: Option<u64>,
) -> Html {
    let info = &view.info;
    let mut out = Html::new();
    html!(out, "<section class=\"panel\" id=\"activity\" aria-label=\"Activity\"><ul class=\"stats\">"
        "<li><span id=\"star-count\">" (count(info.star_count)) "</span> "
        (if info.star_count == 1 { "star" } else { "stars" }) "</li>"
        "<li><span id=\"pull-count\">" (count(info.pull_count)) "</span> "
        (if info.pull_count == 1 { "pull" } else { "pulls" }) "</li>"
        "<li>Last pushed " [maybe_time(info.last_pushed_at, "never")] "</li>"
        "<li>Last pulled " [maybe_time(info.last_pulled_at, "never")] "</li>");
    if let Some(bytes) = stored {
        html!(out, "<li><span id=\"usage\">" (format_size(bytes)) "</span> stored</li>");
    }
    html!(out, "</ul>");
    if visitor.user_name().is_some() {
        let (action, label) = if view.starred {
            ("unstar", "Unstar")
        } else {
            ("star", "Star")
        };
        html!(
            out,
            [button_form(
                visitor,
                &format!("/r/{repo}/-/{action}"),
                label,
                "secondary"
            )]
        );
    } else {
        html!(out, "<p class=\"hint\"><a href=\"/login?next=" (url_component(&format!("/r/{repo}")))
            "\">Sign in</a> to star this repository.</p>");
    }
    html!(out, "</section>");
    out
}

/// A time, or `missing` when there is none.
fn maybe_time(at: Option<i64>, missing: &'static str) -> Html {
    let mut out = Html::new();
    match at {
        Some(at) => out.fragment(&time(at)),
        None => out.raw(missing),
    };
    out
}

/// `/r/{repo}/-/tags?sort=&page=`: every tag with what it is made of.
async fn tags_tab(visitor: &Visitor, repo: &RepoName) -> UiResult {
    let query = visitor.here.split_once('?').map_or("", |(_, query)| query);
    let sort_value = query_text(query, "sort").unwrap_or_default();
    let (sort, sort_value) = TAG_SORTS
        .iter()
        .find(|(_, value, _)| *value == sort_value)
        .map_or((TagSort::LastPushed, "last_pushed"), |(sort, value, _)| {
            (*sort, *value)
        });
    let page_number = query_text(query, "page")
        .and_then(|page| page.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let hub = &visitor.state.hub;
    let view = hub.repository(&visitor.principal, repo).await?;
    let page = hub
        .tags(&visitor.principal, repo, sort, page_number, TAGS_PER_PAGE)
        .await?;
    let can = abilities(visitor, repo).await?;
    let mut body = heading(visitor, repo, &view.info, can.admin, "tags").await;
    html!(body, "<form class=\"filters\" method=\"get\" action=\"/r/" (repo) "/-/tags\" aria-label=\"Sort tags\">"
        "<div class=\"field\"><label for=\"tag-sort\">Sort by</label><select id=\"tag-sort\" name=\"sort\">");
    for (each, value, label) in TAG_SORTS {
        body.fragment(&option(value, label, each == sort));
    }
    html!(body, "</select></div><button type=\"submit\">Sort</button></form>"
        "<section class=\"panel\" id=\"tags\" aria-labelledby=\"tags-title\">"
        "<h2 id=\"tags-title\">" (count(page.total)) " " (if page.total == 1 { "tag" } else { "tags" }) "</h2>");
    if page.tags.is_empty() {
        html!(body, "<p class=\"muted\">No tags yet.</p>");
    } else {
        html!(body, "<div class=\"table-wrap\"><table><thead><tr>"
            "<th scope=\"col\">Tag</th><th scope=\"col\">Digest</th><th scope=\"col\">Size</th>"
            "<th scope=\"col\">Platforms</th><th scope=\"col\">Last pushed</th>"
            "<th scope=\"col\">Last pulled</th><th scope=\"col\">Signature</th><th scope=\"col\">Vulnerabilities</th>"
            "<th scope=\"col\">Attached</th>");
        if can.admin {
            html!(
                body,
                "<th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th>"
            );
        }
        html!(body, "</tr></thead><tbody>");
        for (index, tag) in page.tags.iter().enumerate() {
            body.fragment(&tag_row(repo, index, tag, can.admin));
        }
        html!(body, "</tbody></table></div>");
    }
    let pages = page.total.div_ceil(u64::from(TAGS_PER_PAGE)).max(1);
    if pages > 1 {
        let href = |number: u32| format!("/r/{repo}/-/tags?sort={sort_value}&page={number}");
        html!(body, "<nav class=\"pagination\" aria-label=\"Tag pages\">");
        if page_number > 1 {
            html!(body, "<a href=\"" (href(page_number - 1)) "\" rel=\"prev\">Previous page</a>");
        }
        html!(body, "<span>Page " (page_number) " of " (pages) "</span>");
        if u64::from(page_number) < pages {
            html!(body, "<a href=\"" (href(page_number + 1)) "\" rel=\"next\">Next page</a>");
        }
        html!(body, "</nav>");
    }
    html!(body, "</section>");
    Ok(visitor.page(&format!("Tags of {repo}"), body))
}

fn tag_row(repo: &RepoName, index: usize, tag: &TagView, deletable: bool) -> Html {
    let mut out = Html::new();
    let detail = format!("/r/{repo}/-/tags/{}", url_component(&tag.name));
    html!(out, "<tr><th scope=\"row\"><a href=\"" (detail) "\"><code>" (tag.name) "</code></a>");
    if tag.immutable {
        html!(out, " <span class=\"badge immutable\" title=\"An immutable-tag rule protects this tag: it can be neither moved nor deleted\">Immutable</span>");
    }
    html!(out, "</th><td class=\"digest\">"
        [copyable(&format!("digest-{index}"), &tag.digest.to_string(), &format!("Copy the digest of {}", tag.name))]
        "</td><td class=\"size\">" (human_size(tag.size)) "</td><td>");
    if tag.platforms.is_empty() {
        // An artifact, or an image whose configuration names no platform.
        html!(out, "<span class=\"muted\">None</span>");
    } else {
        let platforms: Vec<String> = tag.platforms.iter().map(platform_name).collect();
        html!(out, (platforms.join(", ")));
    }
    html!(out, "</td><td>" [time(tag.last_pushed_at)] "</td><td>"
        [maybe_time(tag.last_pulled_at, "never")] "</td><td>"
        [signature_badge(&tag.signature)] "</td><td class=\"vulnerabilities\">"
        [vulnerability_counts(tag.vulnerabilities.as_ref())] "</td><td>");
    if tag.referrers.is_empty() {
        html!(out, "<span class=\"muted\">None</span>");
    } else {
        html!(out, "<ul class=\"referrers\">");
        for referrer in &tag.referrers {
            let kind = referrer
                .artifact_type
                .as_deref()
                .unwrap_or(&referrer.media_type);
            html!(out, "<li title=\"" (referrer.digest) "\">" (referrer_label(kind))
                " <code>" (kind) "</code></li>");
        }
        html!(out, "</ul>");
    }
    html!(out, "</td>");
    if deletable && tag.immutable {
        html!(out, "<td><span class=\"muted\">Immutable</span></td>");
    } else if deletable {
        let href = format!("/r/{repo}/-/tags/{}/delete", url_component(&tag.name));
        html!(out, "<td><a class=\"button danger\" href=\"" (href) "\" aria-label=\"Delete tag "
            (tag.name) "\">Delete</a></td>");
    }
    html!(out, "</tr>");
    out
}

/// An image's signature state: verified (with the keys' names), signed, or unsigned.
pub(super) fn signature_badge(signature: &berth_core::signatures::ImageSignature) -> Html {
    use berth_core::signatures::SignatureState;
    let mut out = Html::new();
    match signature.state {
        SignatureState::Verified => {
            let keys = signature.keys.join(", ");
            html!(out, "<span class=\"badge verified\" title=\"A signature checks against a trusted key\">Verified</span> <span class=\"signature-keys\">by " (keys) "</span>");
        }
        SignatureState::Signed => {
            let title = if signature.reasons.is_empty() {
                "Signed, but no signature checks against a key this repository trusts".to_owned()
            } else {
                format!("Signed, but not verified: {}", signature.reasons.join("; "))
            };
            html!(out, "<span class=\"badge signed\" title=\"" (title) "\">Signed (unverified)</span>");
        }
        SignatureState::Unsigned => html!(out, "<span class=\"muted\">Unsigned</span>"),
    }
    out
}

/// Counts of a scan by severity (`3 critical, 1 high, ...`), or that none was made.
pub(super) fn vulnerability_counts(
    summary: Option<&berth_core::ports::VulnerabilitySummary>,
) -> Html {
    let mut out = Html::new();
    let Some(s) = summary else {
        html!(out, "<span class=\"muted\">Not scanned</span>");
        return out;
    };
    let counts = [
        ("critical", s.critical),
        ("high", s.high),
        ("medium", s.medium),
        ("low", s.low),
        ("unknown", s.unknown),
    ];
    if counts.iter().all(|(_, n)| *n == 0) {
        html!(out, "<span class=\"badge\">None found</span>");
        return out;
    }
    let shown: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{n} {name}"))
        .collect();
    html!(out, (shown.join(", ")));
    out
}

/// Refuses unless the visitor may delete tags: Admin on the repository, the permission the
/// registry's `DELETE` asks the authorizer for. Hidden repositories stay missing ones.
async fn require_tag_deletion(visitor: &Visitor, repo: &RepoName) -> UiResult<()> {
    visitor
        .state
        .hub
        .repository(&visitor.principal, repo)
        .await?;
    if abilities(visitor, repo).await?.admin {
        return Ok(());
    }
    visitor.require_user()?;
    Err(UiError::Domain(Error::Denied))
}

/// An existing tag of the repository, or the missing page.
async fn existing_tag(visitor: &Visitor, repo: &RepoName, tag: &str) -> UiResult<Tag> {
    let missing = || UiError::Domain(Error::NotFound(tag.to_owned()));
    let parsed: Tag = tag.parse().map_err(|_| missing())?;
    match visitor
        .state
        .registry
        .get_manifest(repo, &Reference::Tag(parsed.clone()))
        .await
    {
        Ok(_) => Ok(parsed),
        Err(Error::ManifestUnknown(_)) => Err(missing()),
        Err(other) => Err(other.into()),
    }
}

/// `/r/{repo}/-/tags/{tag}/delete`: the tag's name typed again before it goes.
async fn confirm_tag_deletion(visitor: &Visitor, repo: &RepoName, tag: &str) -> UiResult {
    require_tag_deletion(visitor, repo).await?;
    let tag = existing_tag(visitor, repo, tag).await?;
    let view = visitor
        .state
        .hub
        .repository(&visitor.principal, repo)
        .await?;
    let action = format!("/r/{repo}/-/tags/{}/delete", url_component(tag.as_str()));
    let mut body = heading(visitor, repo, &view.info, true, "tags").await;
    html!(body,
        "<section class=\"panel\" id=\"delete-tag\" aria-labelledby=\"delete-tag-title\">"
        "<h2 id=\"delete-tag-title\">Delete the tag " (tag.as_str()) "</h2>"
        "<p>Pulls of " (repo) ":" (tag.as_str()) " stop working. The image stays under its digest "
        "and under any other tag.</p>"
        [form_start(visitor, &action, "inline")]
        "<div class=\"field\"><label for=\"confirm-tag\">Type <strong>" (tag.as_str())
        "</strong> to confirm</label>"
        "<input type=\"text\" id=\"confirm-tag\" name=\"confirm\" autocapitalize=\"none\" "
        "autocomplete=\"off\" spellcheck=\"false\" required></div>"
        "<button type=\"submit\" class=\"danger\">Delete tag</button></form>"
        "<p><a href=\"/r/" (repo) "/-/tags\">Keep it and go back to the tags</a></p></section>"
    );
    Ok(visitor.page(&format!("Delete {repo}:{}", tag.as_str()), body))
}

/// Deletes the tag once its name was typed again, through the registry's delete.
async fn delete_tag(submission: &Submission, repo: &RepoName, tag: &str) -> Response {
    let Submission { visitor, form } = submission;
    let back = format!("/r/{repo}/-/tags/{}/delete", url_component(tag));
    let result = async {
        require_tag_deletion(visitor, repo).await?;
        let parsed = existing_tag(visitor, repo, tag).await?;
        if form.text("confirm") != tag {
            return Err(UiError::Invalid(format!(
                "Type {tag} exactly to delete it; nothing was deleted."
            )));
        }
        // The registry's own delete: the same event and audit entry as a client's DELETE.
        let actor = visitor.principal.name();
        let address = visitor.address.map(|a| a.to_string());
        visitor
            .state
            .registry
            .delete_manifest(
                repo,
                &Reference::Tag(parsed),
                ChangedBy::new(&actor, address.as_deref()),
            )
            .await?;
        Ok(Notice::success(format!("The tag {repo}:{tag} is deleted.")))
    }
    .await;
    match result {
        Ok(notice) => visitor.redirect(&format!("/r/{repo}/-/tags"), Some(notice)),
        // A tag that is gone (or never was) has no confirmation page to go back to.
        Err(UiError::Domain(Error::NotFound(_))) => visitor.not_found(),
        Err(err) => submission.outcome(Err(err), &back),
    }
}

/// `linux/arm/v7`, as `docker` names platforms.
fn platform_name(platform: &Platform) -> String {
    match &platform.variant {
        Some(variant) => format!("{}/{}/{variant}", platform.os, platform.architecture),
        None => format!("{}/{}", platform.os, platform.architecture),
    }
}

/// What kind of thing a referrer's artifact type says it is, in words.
fn referrer_label(artifact_type: &str) -> &'static str {
    let kind = artifact_type.to_ascii_lowercase();
    if ["sbom", "spdx", "cyclonedx"]
        .iter()
        .any(|k| kind.contains(k))
    {
        "SBOM"
    } else if ["signature", "cosign", "notary", "sigstore"]
        .iter()
        .any(|k| kind.contains(k))
    {
        "Signature"
    } else if kind.contains("attestation") || kind.contains("in-toto") {
        "Attestation"
    } else {
        "Artifact"
    }
}

async fn settings(visitor: &Visitor, repo: &RepoName) -> UiResult {
    let identity = &visitor.state.identity;
    let acting = visitor.acting();
    let settings = identity.repository_settings(&acting, repo).await?;
    let view = visitor
        .state
        .hub
        .repository(&visitor.principal, repo)
        .await?;
    let namespace = repo.namespace().unwrap_or_default();
    let is_org = identity.org(&acting, namespace).await.is_ok();
    let is_private = settings.repository.is_private;
    let base = format!("/r/{repo}/-/settings");
    let mut body = heading(visitor, repo, &view.info, true, "settings").await;
    html!(body,
        "<section class=\"panel\" id=\"descriptions\" aria-labelledby=\"descriptions-title\">"
        "<h2 id=\"descriptions-title\">Description and README</h2>"
        [form_start(visitor, &format!("{base}/descriptions"), "stack")]
        "<div class=\"field\"><label for=\"short-description-field\">Short description</label>"
        "<input type=\"text\" id=\"short-description-field\" name=\"description\" maxlength=\""
        (MAX_DESCRIPTION_CHARS) "\" value=\"" (view.info.description) "\" aria-describedby=\"short-description-hint\">"
        "<p class=\"hint\" id=\"short-description-hint\">One line, up to " (MAX_DESCRIPTION_CHARS)
        " characters, shown in search results.</p></div>"
        "<div class=\"field\"><label for=\"readme-field\">README (Markdown)</label>"
        "<textarea id=\"readme-field\" class=\"readme-source\" name=\"full_description\" maxlength=\""
        (MAX_FULL_DESCRIPTION_CHARS) "\">" (view.info.full_description) "</textarea></div>"
        "<div><button type=\"submit\">Save description</button></div></form></section>");
    html!(body,
        "<section class=\"panel\" id=\"visibility\" aria-labelledby=\"visibility-title\">"
        "<h2 id=\"visibility-title\">Visibility</h2>"
        [form_start(visitor, &format!("{base}/visibility"), "stack")]
        "<fieldset><legend>Who can pull</legend>"
        "<label><input type=\"radio\" name=\"visibility\" value=\"public\"");
    if !is_private {
        body.raw(" checked");
    }
    html!(body, "> Public: anyone, signed in or not</label>"
        "<label><input type=\"radio\" name=\"visibility\" value=\"private\"");
    if is_private {
        body.raw(" checked");
    }
    html!(body, "> Private: only people given access (to everyone else it does not exist)</label>"
        "</fieldset><div><button type=\"submit\">Save visibility</button></div></form></section>");
    if is_org {
        let teams = identity
            .list_teams(&acting, namespace)
            .await
            .unwrap_or_default();
        html!(body, "<section class=\"panel\" id=\"teams\" aria-labelledby=\"teams-title\">"
            "<h2 id=\"teams-title\">Team permissions</h2>");
        grants_table(
            visitor,
            &mut body,
            &settings.team_grants,
            &format!("{base}/teams"),
            "Team",
        );
        let grantable: Vec<_> = teams
            .iter()
            .filter(|team| team.name != berth_core::ports::OWNERS_TEAM)
            .collect();
        if grantable.is_empty() {
            html!(body, "<p class=\"hint\">Create a team on the <a href=\"/orgs/" (namespace)
                "#teams\">organization's page</a> to grant it this repository.</p>");
        } else {
            html!(body, [form_start(visitor, &format!("{base}/teams"), "inline")]
                "<div class=\"field\"><label for=\"grant-team\">Team</label><select id=\"grant-team\" name=\"team\">");
            for team in grantable {
                body.fragment(&option(&team.name, &team.name, false));
            }
            html!(body, "</select></div><div class=\"field\"><label for=\"grant-permission\">Permission</label>"
                [permission_select("grant-permission", "permission")]
                "</div><button type=\"submit\">Grant</button></form>");
        }
        html!(body, "</section>");
    } else {
        html!(body, "<section class=\"panel\" id=\"collaborators\" aria-labelledby=\"collaborators-title\">"
            "<h2 id=\"collaborators-title\">Collaborators</h2>");
        grants_table(
            visitor,
            &mut body,
            &settings.collaborators,
            &format!("{base}/collaborators"),
            "User",
        );
        html!(body, [form_start(visitor, &format!("{base}/collaborators"), "inline")]
            "<div class=\"field\"><label for=\"collaborator\">Username</label>"
            "<input type=\"text\" id=\"collaborator\" name=\"user\" autocapitalize=\"none\" spellcheck=\"false\" required></div>"
            "<div class=\"field\"><label for=\"collaborator-permission\">Permission</label>"
            [permission_select("collaborator-permission", "permission")]
            "</div><button type=\"submit\">Add collaborator</button></form></section>");
    }
    let hooks = visitor
        .state
        .webhooks
        .list(&acting, &WebhookTarget::Repository(repo.clone()))
        .await?;
    html!(body,
        "<section class=\"panel\" id=\"webhooks\" aria-labelledby=\"webhooks-title\">"
        "<h2 id=\"webhooks-title\">Webhooks</h2>"
        "<p>Call a URL when an image is pushed or a tag deleted, to redeploy or to tell a chat. "
        (count(hooks.len() as u64)) " " (if hooks.len() == 1 { "webhook" } else { "webhooks" })
        " on this repository.</p>"
        "<p><a href=\"/r/" (repo) "/-/settings/webhooks\">Manage webhooks</a></p></section>"
        "<section class=\"panel\" id=\"lifecycle\" aria-labelledby=\"lifecycle-title\">"
        "<h2 id=\"lifecycle-title\">Lifecycle</h2>"
        "<p>Immutable tags, the retention policy, and dry runs of what it would delete; the keys trusted to sign its images and its pull policy.</p>"
        "<p><a href=\"/r/" (repo) "/-/settings/lifecycle\">Manage the lifecycle</a></p></section>"
        "<section class=\"panel\" id=\"automated-builds\" aria-labelledby=\"automated-builds-title\">"
        "<h2 id=\"automated-builds-title\">Automated builds</h2>"
        "<p>Link a git repository; Berth builds the image on every push and pushes it here.</p>"
        "<p><a href=\"/r/" (repo) "/-/settings/builds\">Manage builds</a></p></section>");
    html!(body,
        "<section class=\"panel\" id=\"delete\" aria-labelledby=\"delete-title\">"
        "<h2 id=\"delete-title\">Delete this repository</h2>"
        "<p>Its tags, settings and grants go at once; this cannot be undone.</p>"
        [form_start(visitor, &format!("/r/{repo}/-/delete"), "inline")]
        "<div class=\"field\"><label for=\"confirm-delete\">Type <strong>" (repo) "</strong> to confirm</label>"
        "<input type=\"text\" id=\"confirm-delete\" name=\"confirm\" autocapitalize=\"none\" "
        "autocomplete=\"off\" spellcheck=\"false\" required></div>"
        "<button type=\"submit\" class=\"danger\">Delete repository</button></form></section>"
    );
    Ok(visitor.page(&format!("Settings of {repo}"), body))
}

/// Who holds what (teams or collaborators), each with a remove button posting to
/// `{base}/{who}/revoke`.
fn grants_table(
    visitor: &Visitor,
    out: &mut Html,
    grants: &[(String, Permission)],
    base: &str,
    who: &str,
) {
    if grants.is_empty() {
        html!(
            *out,
            "<p class=\"muted\">Nobody besides the owners has access.</p>"
        );
        return;
    }
    html!(*out, "<div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">" (who) "</th>"
        "<th scope=\"col\">Permission</th><th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th>"
        "</tr></thead><tbody>");
    for (name, permission) in grants {
        html!(*out, "<tr><td>" (name) "</td><td>" (permission_label(*permission)) "</td><td>"
            [button_form(visitor, &format!("{base}/{}/revoke", url_component(name)),
                &format!("Remove {name}"), "danger")]
            "</td></tr>");
    }
    html!(*out, "</tbody></table></div>");
}

/// `POST /r/{*path}`: the settings forms and deletion.
pub(crate) async fn change(Path(path): Path<String>, submission: Submission) -> Response {
    let target = match target(&path) {
        Ok(target) => target,
        Err(_) => return submission.visitor.not_found(),
    };
    let repo = &target.repo;
    let back = format!("/r/{repo}/-/settings");
    let result = match page_parts(&target).as_slice() {
        ["star"] => return star(&submission, repo, true).await,
        ["unstar"] => return star(&submission, repo, false).await,
        ["settings", "descriptions"] => set_descriptions(&submission, repo).await,
        ["settings", "visibility"] => set_visibility(&submission, repo).await,
        ["settings", "collaborators"] => add_collaborator(&submission, repo).await,
        ["settings", "collaborators", user, "revoke"] => {
            remove_collaborator(&submission, repo, user).await
        }
        ["settings", "teams"] => grant_team(&submission, repo).await,
        ["settings", "teams", team, "revoke"] => revoke_team(&submission, repo, team).await,
        ["settings", "webhooks"] => {
            return webhooks::create(&submission, webhooks::ListPage::Repository(repo.clone()))
                .await
        }
        ["settings", "lifecycle", action] => {
            return lifecycle::change(
                &submission,
                lifecycle::Place::Repository(repo.clone()),
                action,
            )
            .await
        }
        ["settings", "builds", rest @ ..] => return builds::change(&submission, repo, rest).await,
        ["builds", id, "cancel"] => return builds::cancel(&submission, repo, id).await,
        ["delete"] => return delete(&submission, repo).await,
        ["tags", tag, "delete"] => return delete_tag(&submission, repo, tag).await,
        _ => return submission.visitor.not_found(),
    };
    submission.outcome(result, &back)
}

/// Stars or unstars, then back to the repository's page.
async fn star(submission: &Submission, repo: &RepoName, starring: bool) -> Response {
    let visitor = &submission.visitor;
    let hub = &visitor.state.hub;
    let result = if starring {
        hub.star(&visitor.acting(), repo).await
    } else {
        hub.unstar(&visitor.acting(), repo).await
    };
    let notice = result.map(|()| {
        Notice::success(if starring {
            format!("You starred {repo}.")
        } else {
            format!("You no longer star {repo}.")
        })
    });
    submission.outcome(notice.map_err(UiError::from), &format!("/r/{repo}"))
}

async fn set_descriptions(submission: &Submission, repo: &RepoName) -> UiResult<Notice> {
    let Submission { visitor, form } = submission;
    // Browsers send a textarea's line breaks as CRLF; the README keeps the author's LF.
    let readme = form
        .get("full_description")
        .unwrap_or_default()
        .replace("\r\n", "\n");
    visitor
        .state
        .hub
        .set_descriptions(
            &visitor.acting(),
            repo,
            Some(form.text("description").to_owned()),
            Some(readme),
        )
        .await?;
    Ok(Notice::success(format!(
        "The description of {repo} is saved."
    )))
}

async fn set_visibility(submission: &Submission, repo: &RepoName) -> UiResult<Notice> {
    let Submission { visitor, form } = submission;
    let private = match form.text("visibility") {
        "private" => true,
        "public" => false,
        _ => return Err(UiError::Invalid("Choose public or private.".to_owned())),
    };
    visitor
        .state
        .identity
        .set_repository_visibility(&visitor.acting(), repo, private)
        .await?;
    Ok(Notice::success(if private {
        format!("{repo} is private.")
    } else {
        format!("{repo} is public.")
    }))
}

fn permission_field(submission: &Submission) -> UiResult<Permission> {
    submission
        .form
        .text("permission")
        .parse()
        .map_err(UiError::Invalid)
}

async fn add_collaborator(submission: &Submission, repo: &RepoName) -> UiResult<Notice> {
    let visitor = &submission.visitor;
    let user = submission.form.required("user", "A username")?;
    let permission = permission_field(submission)?;
    visitor
        .state
        .identity
        .set_collaborator(&visitor.acting(), repo, user, permission)
        .await?;
    Ok(Notice::success(format!(
        "{user} has {} on {repo}.",
        permission_label(permission)
    )))
}

async fn remove_collaborator(
    submission: &Submission,
    repo: &RepoName,
    user: &str,
) -> UiResult<Notice> {
    let visitor = &submission.visitor;
    let removed = visitor
        .state
        .identity
        .remove_collaborator(&visitor.acting(), repo, user)
        .await?;
    Ok(Notice::success(if removed {
        format!("{user} no longer has access to {repo}.")
    } else {
        format!("{user} was not a collaborator.")
    }))
}

async fn grant_team(submission: &Submission, repo: &RepoName) -> UiResult<Notice> {
    let visitor = &submission.visitor;
    let team = submission.form.required("team", "A team")?;
    let permission = permission_field(submission)?;
    let org = repo.namespace().unwrap_or_default();
    visitor
        .state
        .identity
        .grant_team(&visitor.acting(), org, team, repo, permission)
        .await?;
    Ok(Notice::success(format!(
        "{team} now has {} on {repo}.",
        permission_label(permission)
    )))
}

async fn revoke_team(submission: &Submission, repo: &RepoName, team: &str) -> UiResult<Notice> {
    let visitor = &submission.visitor;
    let org = repo.namespace().unwrap_or_default();
    visitor
        .state
        .identity
        .revoke_team(&visitor.acting(), org, team, repo)
        .await?;
    Ok(Notice::success(format!(
        "{team} no longer has access to {repo}."
    )))
}

/// Deletes after the name was typed again; then to the namespace's page.
async fn delete(submission: &Submission, repo: &RepoName) -> Response {
    let Submission { visitor, form } = submission;
    let back = format!("/r/{repo}/-/settings#delete");
    if form.text("confirm") != repo.as_str() {
        let message = format!("Type {repo} exactly to delete it; nothing was deleted.");
        return submission.outcome(Err(UiError::Invalid(message)), &back);
    }
    let result = visitor
        .state
        .identity
        .delete_repository(&visitor.acting(), repo)
        .await;
    match result {
        Ok(()) => {
            let namespace = repo.namespace().unwrap_or_default();
            let to = namespace_href(visitor, namespace).await;
            visitor.redirect(&to, Some(Notice::success(format!("{repo} is deleted."))))
        }
        Err(err) => submission.outcome(Err(err.into()), &back),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_read_as_docker_names_them() {
        let arm = Platform {
            os: "linux".into(),
            architecture: "arm".into(),
            variant: Some("v7".into()),
        };
        assert_eq!(platform_name(&arm), "linux/arm/v7");
        let amd = Platform {
            variant: None,
            architecture: "amd64".into(),
            ..arm
        };
        assert_eq!(platform_name(&amd), "linux/amd64");
    }

    #[test]
    fn attached_artifacts_are_named_by_kind() {
        assert_eq!(referrer_label("application/spdx+json"), "SBOM");
        assert_eq!(referrer_label("application/vnd.cyclonedx+json"), "SBOM");
        assert_eq!(
            referrer_label("application/vnd.dev.cosign.artifact.sig.v1+json"),
            "Signature"
        );
        assert_eq!(
            referrer_label("application/vnd.cncf.notary.signature"),
            "Signature"
        );
        assert_eq!(
            referrer_label("application/vnd.in-toto+json"),
            "Attestation"
        );
        assert_eq!(referrer_label("application/vnd.example.thing"), "Artifact");
    }

    #[test]
    fn pages_of_a_repository_follow_the_dash() {
        let tags = target("acme/app/api/-/tags").unwrap();
        assert_eq!(tags.repo.as_str(), "acme/app/api");
        assert_eq!(tags.page.as_deref(), Some("tags"));
        assert_eq!(target("acme/app/").unwrap().page, None);
        assert!(target("acme/App").is_err());
    }
}
