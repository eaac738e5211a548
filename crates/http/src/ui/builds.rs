//! Automated builds in the UI: `/r/{repo}/-/settings/builds` (the git source, the rules, a
//! trigger, the builds) and `/r/{repo}/-/builds/{id}` (one build, its log streamed live by
//! `copy.js` from `/r/{repo}/-/builds/{id}/log`, server-sent events).

use super::html::{html, Html};
use super::layout::{button_form, copyable, form_start, option, time};
use super::session::Notice;
use super::{Submission, UiError, UiResult, Visitor};
use axum::body::Body;
use axum::http::Response;
use berth_core::builds::rules::split_platforms;
use berth_core::builds::{
    BuildRecord, BuildStatus, CredentialInput, RefKind, RuleSpec, SourceView, MAX_RULES,
};
use berth_core::Error;
use berth_oci::RepoName;

fn status_badge(status: BuildStatus) -> Html {
    let mut out = Html::new();
    html!(out, "<span class=\"badge build-" (status.as_str()) "\" data-build-status>" (status.as_str()) "</span>");
    out
}

/// A rule's platforms under its context, when it names any.
fn platforms_note(platforms: &[String]) -> Html {
    let mut out = Html::new();
    if !platforms.is_empty() {
        html!(out, "<br><span class=\"muted\">" (platforms.join(", ")) "</span>");
    }
    out
}

/// `GET /r/{repo}/-/settings/builds`.
pub(super) async fn settings_page(visitor: &Visitor, repo: &RepoName) -> UiResult {
    let builds = &visitor.state.builds;
    let source = match builds.source(&visitor.principal, repo).await {
        Ok(source) => Some(source),
        Err(Error::BuildUnknown(_)) => None,
        Err(err) => return Err(err.into()),
    };
    let rules = builds.rules(&visitor.principal, repo).await?;
    let list = builds.list(&visitor.principal, repo, None, 25).await?;
    let base = format!("/r/{repo}/-/settings/builds");
    let mut body = Html::new();
    html!(body, "<h1>Automated builds of " (repo) "</h1>"
        "<p><a href=\"/r/" (repo) "/-/settings\">Back to the settings</a> · Status: "
        "<img src=\"/api/v1/repositories/" (repo) "/-/build/badge.svg\" alt=\"build status\"></p>");

    html!(body, "<section class=\"panel\" id=\"build-source\" aria-labelledby=\"build-source-title\">"
        "<h2 id=\"build-source-title\">Source</h2>");
    match &source {
        Some(source) => {
            html!(body, "<p>Builds from <code id=\"build-git-url\">" (source.git_url) "</code> ("
                (source.credential.as_str()) ").</p>");
            if let Some(key) = &source.public_key {
                html!(
                    body,
                    "<p>Deploy key (read-only on the git host):</p>"
                        [copyable("build-deploy-key", key, "Copy the deploy key")]
                );
            }
            html!(body, "<p>Push webhook: <code>" (visitor.base) "/api/v1/repositories/" (repo)
                "/build-hooks/github</code> (or <code>gitlab</code>, <code>gitea</code>, <code>generic</code>), "
                "signed with the secret shown when the source was linked.</p>");
        }
        None => html!(body, "<p class=\"muted\">No git repository is linked.</p>"),
    }
    html!(body, [form_start(visitor, &format!("{base}/source"), "stack")]
        "<div class=\"field\"><label for=\"build-git\">Git URL</label>"
        "<input type=\"text\" id=\"build-git\" name=\"git_url\" required spellcheck=\"false\" "
        "placeholder=\"https://github.com/acme/app.git\" aria-describedby=\"build-git-hint\">"
        "<p class=\"hint\" id=\"build-git-hint\">https://, ssh:// or file://</p></div>"
        "<div class=\"field\"><label for=\"build-token\">Token (https://, optional)</label>"
        "<input type=\"password\" id=\"build-token\" name=\"token\" autocomplete=\"off\"></div>"
        "<label><input type=\"checkbox\" name=\"deploy_key\" value=\"on\"> Generate a deploy key (ssh://)</label>"
        "<div class=\"field\"><label for=\"build-poll\">Poll every (seconds, optional)</label>"
        "<input type=\"number\" id=\"build-poll\" name=\"poll\" min=\"10\" aria-describedby=\"build-poll-hint\">"
        "<p class=\"hint\" id=\"build-poll-hint\">For hosts that cannot call the webhook.</p></div>"
        "<div><button type=\"submit\" id=\"build-link\">Link source</button></div></form></section>");

    html!(body, "<section class=\"panel\" id=\"build-rules\" aria-labelledby=\"build-rules-title\">"
        "<h2 id=\"build-rules-title\">Build rules</h2>");
    if rules.is_empty() {
        html!(body, "<p class=\"muted\">No rules yet.</p>");
    } else {
        html!(body, "<div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">Type</th>"
            "<th scope=\"col\">Source</th><th scope=\"col\">Docker tag</th><th scope=\"col\">Dockerfile</th>"
            "<th scope=\"col\">Context</th><th scope=\"col\">Autobuild</th>"
            "<th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody>");
        for rule in &rules {
            html!(body, "<tr><td>" (rule.spec.kind.as_str()) "</td><td><code>" (rule.spec.source)
                "</code></td><td><code>" (rule.spec.tag) "</code></td><td>" (rule.spec.dockerfile)
                "</td><td>" (rule.spec.context) [platforms_note(&rule.spec.platforms)] "</td><td>" (if rule.spec.autobuild { "on" } else { "off" })
                "</td><td>" [button_form(visitor, &format!("{base}/rules/{}/delete", rule.id), "Remove", "danger")]
                "</td></tr>");
        }
        html!(body, "</tbody></table></div>");
    }
    if source.is_some() && rules.len() < MAX_RULES {
        html!(body, [form_start(visitor, &format!("{base}/rules"), "stack")]
            "<div class=\"field\"><label for=\"rule-type\">Source type</label><select id=\"rule-type\" name=\"type\">"
            [option("branch", "Branch", true)] [option("tag", "Tag", false)] "</select></div>"
            "<div class=\"field\"><label for=\"rule-source\">Source (a name, or /regex/)</label>"
            "<input type=\"text\" id=\"rule-source\" name=\"source\" required spellcheck=\"false\"></div>"
            "<div class=\"field\"><label for=\"rule-tag\">Docker tag ({sourceref}, {\\1})</label>"
            "<input type=\"text\" id=\"rule-tag\" name=\"tag\" required spellcheck=\"false\"></div>"
            "<div class=\"field\"><label for=\"rule-dockerfile\">Dockerfile</label>"
            "<input type=\"text\" id=\"rule-dockerfile\" name=\"dockerfile\" value=\"Dockerfile\"></div>"
            "<div class=\"field\"><label for=\"rule-context\">Build context</label>"
            "<input type=\"text\" id=\"rule-context\" name=\"context\" value=\".\"></div>"
            "<div class=\"field\"><label for=\"rule-args\">Build arguments (KEY=VALUE, one a line)</label>"
            "<textarea id=\"rule-args\" name=\"build_args\"></textarea></div>"
            "<div class=\"field\"><label for=\"rule-platforms\">Platforms (optional, comma-separated)</label>"
            "<input type=\"text\" id=\"rule-platforms\" name=\"platforms\" spellcheck=\"false\" "
            "placeholder=\"linux/amd64,linux/arm64\" aria-describedby=\"rule-platforms-hint\">"
            "<p class=\"hint\" id=\"rule-platforms-hint\">Empty: this machine's own. Others need qemu-user-static.</p></div>"
            "<label><input type=\"checkbox\" name=\"autobuild\" value=\"on\" checked> Build on every push</label>"
            "<div><button type=\"submit\" id=\"rule-add\">Add rule</button></div></form>");
    }
    html!(body, "</section>");

    html!(body, "<section class=\"panel\" id=\"build-trigger\" aria-labelledby=\"build-trigger-title\">"
        "<h2 id=\"build-trigger-title\">Build now</h2>"
        [form_start(visitor, &format!("{base}/trigger"), "inline")]
        "<div class=\"field\"><label for=\"trigger-ref\">Branch or tag (empty: each rule's own)</label>"
        "<input type=\"text\" id=\"trigger-ref\" name=\"ref\" spellcheck=\"false\"></div>"
        "<button type=\"submit\" id=\"build-now\">Trigger build</button></form></section>");

    html!(body, "<section class=\"panel\" id=\"builds\" aria-labelledby=\"builds-title\">"
        "<h2 id=\"builds-title\">Builds</h2>");
    if list.is_empty() {
        html!(body, "<p class=\"muted\">No builds yet.</p>");
    } else {
        html!(body, "<div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">Build</th>"
            "<th scope=\"col\">Status</th><th scope=\"col\">Ref</th><th scope=\"col\">Tags</th>"
            "<th scope=\"col\">Queued</th><th scope=\"col\">Duration</th></tr></thead><tbody>");
        for build in &list {
            html!(body, "<tr><td><a href=\"/r/" (repo) "/-/builds/" (build.id) "\">#" (build.id) "</a></td><td>"
                [status_badge(build.status)] "</td><td>" (build.ref_kind.as_str()) " " (build.ref_name)
                "</td><td>" (build.tags.join(", ")) "</td><td>" [time(build.created_at)] "</td><td>"
                (build.duration.map(|d| format!("{d} s")).unwrap_or_default()) "</td></tr>");
        }
        html!(body, "</tbody></table></div>");
    }
    html!(body, "</section>");
    Ok(visitor.page(&format!("Builds of {repo}"), body))
}

fn build_of_repo(build: BuildRecord, repo: &RepoName) -> UiResult<BuildRecord> {
    if build.repository == repo.as_str() {
        Ok(build)
    } else {
        Err(Error::BuildUnknown(format!("build {} is not known", build.id)).into())
    }
}

fn parse_id(text: &str) -> UiResult<i64> {
    text.parse()
        .map_err(|_| UiError::Domain(Error::BuildUnknown(format!("build {text:?} is not known"))))
}

/// `GET /r/{repo}/-/builds/{id}`.
pub(super) async fn build_page(visitor: &Visitor, repo: &RepoName, id: &str) -> UiResult {
    let id = parse_id(id)?;
    let build = build_of_repo(
        visitor.state.builds.get(&visitor.principal, id).await?,
        repo,
    )?;
    let mut body = Html::new();
    html!(body, "<h1>Build #" (build.id) " of " (repo) "</h1>"
        "<p><a href=\"/r/" (repo) "/-/settings/builds\">All builds</a></p>"
        "<dl class=\"facts\"><dt>Status</dt><dd>" [status_badge(build.status)] "</dd>"
        "<dt>Ref</dt><dd>" (build.ref_kind.as_str()) " " (build.ref_name) "</dd>"
        "<dt>Commit</dt><dd><code>" (build.commit.clone().unwrap_or_else(|| "-".into())) "</code></dd>"
        "<dt>Tags</dt><dd>" (build.tags.join(", ")) "</dd>"
        "<dt>Digest</dt><dd><code>" (build.digest.clone().unwrap_or_else(|| "-".into())) "</code></dd>"
        "<dt>Trigger</dt><dd>" (build.trigger) "</dd>");
    if let Some(duration) = build.duration {
        html!(body, "<dt>Duration</dt><dd>" (duration) " s</dd>");
    }
    if let Some(reason) = &build.reason {
        html!(body, "<dt>Reason</dt><dd id=\"build-reason\">" (reason) "</dd>");
    }
    html!(body, "</dl>");
    if !build.status.is_final() {
        html!(
            body,
            [button_form(
                visitor,
                &format!("/r/{repo}/-/builds/{}/cancel", build.id),
                "Cancel build",
                "danger"
            )]
        );
    }
    html!(
        body,
        "<h2>Log</h2><pre id=\"build-log\" class=\"build-log\" aria-live=\"polite\""
    );
    if build.status.is_final() {
        html!(body, " data-log-ended=\"" (build.status.as_str()) "\"");
    } else {
        html!(body, " data-log-stream=\"/r/" (repo) "/-/builds/" (build.id) "/log\"");
    }
    html!(body, ">" (build.log) "</pre>");
    Ok(visitor.page(&format!("Build {} of {repo}", build.id), body))
}

/// `GET /r/{repo}/-/builds/{id}/log`: the live log as server-sent events.
pub(super) async fn log_stream(
    visitor: &Visitor,
    repo: &RepoName,
    id: &str,
) -> UiResult<Response<Body>> {
    let id = parse_id(id)?;
    build_of_repo(
        visitor.state.builds.get(&visitor.principal, id).await?,
        repo,
    )?;
    Ok(crate::api::build_log_stream(
        visitor.state.builds.clone(),
        visitor.principal.clone(),
        id,
    ))
}

/// The build forms under `/r/{repo}/-/settings/builds/…` and `/-/builds/{id}/cancel`.
pub(super) async fn change(
    submission: &Submission,
    repo: &RepoName,
    parts: &[&str],
) -> Response<Body> {
    let visitor = &submission.visitor;
    let back = format!("/r/{repo}/-/settings/builds");
    let result = match parts {
        ["source"] => return set_source(submission, repo).await,
        ["rules"] => add_rule(submission, repo).await,
        ["rules", id, "delete"] => delete_rule(submission, repo, id).await,
        ["trigger"] => match trigger(submission, repo).await {
            Ok(first) => {
                return visitor.redirect(
                    &format!("/r/{repo}/-/builds/{first}"),
                    Some(Notice::success("Build queued.")),
                )
            }
            Err(err) => Err(err),
        },
        _ => return visitor.not_found(),
    };
    submission.outcome(result, &back)
}

pub(super) async fn cancel(submission: &Submission, repo: &RepoName, id: &str) -> Response<Body> {
    let visitor = &submission.visitor;
    let result = async {
        let id = parse_id(id)?;
        build_of_repo(
            visitor.state.builds.get(&visitor.principal, id).await?,
            repo,
        )?;
        visitor.state.builds.cancel(&visitor.acting(), id).await?;
        Ok(Notice::success(format!("Build {id} cancelled.")))
    }
    .await;
    submission.outcome(result, &format!("/r/{repo}/-/builds/{id}"))
}

/// Links the source and shows its secrets once, on this answer (no redirect: the secret
/// must not travel in a cookie).
async fn set_source(submission: &Submission, repo: &RepoName) -> Response<Body> {
    let Submission { visitor, form } = submission;
    let back = format!("/r/{repo}/-/settings/builds");
    let result: UiResult<SourceView> = async {
        let url = form.required("git_url", "Git URL")?;
        let token = form.text("token").trim();
        let poll = match form.text("poll").trim() {
            "" => None,
            seconds => Some(std::time::Duration::from_secs(seconds.parse().map_err(
                |_| UiError::Invalid("Poll every: a number of seconds, or empty.".into()),
            )?)),
        };
        let credential = match (token.is_empty(), form.checked("deploy_key")) {
            (false, true) => {
                return Err(UiError::Invalid(
                    "Give a token or ask for a deploy key, not both.".into(),
                ))
            }
            (false, false) => CredentialInput::Token(token.to_owned()),
            (true, true) => CredentialInput::DeployKey,
            (true, false) => CredentialInput::None,
        };
        Ok(visitor
            .state
            .builds
            .set_source(&visitor.acting(), repo, url, credential, poll)
            .await?)
    }
    .await;
    let view = match result {
        Ok(view) => view,
        Err(err) => return submission.outcome(Err(err), &back),
    };
    let mut body = Html::new();
    html!(body, "<h1>Source linked</h1><p>" (repo) " builds from <code>" (view.git_url) "</code>.</p>"
        "<p><strong>Copy these now: they are not shown again.</strong></p>"
        "<p>Webhook secret (GitHub and Gitea: the webhook's secret; GitLab: its token; generic: "
        "<code>?token=</code>):</p>"
        [copyable("build-hook-secret", view.hook_secret.as_deref().unwrap_or_default(), "Copy the webhook secret")]);
    if let Some(key) = &view.public_key {
        html!(
            body,
            "<p>Deploy key, to add read-only to the git host:</p>"
                [copyable("build-new-deploy-key", key, "Copy the deploy key")]
        );
    }
    html!(body, "<p><a href=\"" (back) "\">Continue to the build settings</a></p>");
    visitor.page("Source linked", body)
}

async fn add_rule(submission: &Submission, repo: &RepoName) -> UiResult<Notice> {
    let Submission { visitor, form } = submission;
    let spec = RuleSpec {
        kind: RefKind::parse(form.text("type"))?,
        source: form.required("source", "Source")?.trim().to_owned(),
        tag: form.required("tag", "Docker tag")?.trim().to_owned(),
        dockerfile: match form.text("dockerfile").trim() {
            "" => "Dockerfile".to_owned(),
            path => path.to_owned(),
        },
        context: match form.text("context").trim() {
            "" => ".".to_owned(),
            path => path.to_owned(),
        },
        build_args: form
            .text("build_args")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        autobuild: form.checked("autobuild"),
        platforms: split_platforms(form.text("platforms")),
    };
    let rule = visitor
        .state
        .builds
        .add_rule(&visitor.acting(), repo, spec)
        .await?;
    Ok(Notice::success(format!("Rule {} added.", rule.id)))
}

async fn delete_rule(submission: &Submission, repo: &RepoName, id: &str) -> UiResult<Notice> {
    let visitor = &submission.visitor;
    let id: i64 = id
        .parse()
        .map_err(|_| UiError::Invalid("No such rule.".into()))?;
    if visitor
        .state
        .builds
        .delete_rule(&visitor.acting(), repo, id)
        .await?
    {
        Ok(Notice::success("Rule removed."))
    } else {
        Err(UiError::Invalid("No such rule.".into()))
    }
}

async fn trigger(submission: &Submission, repo: &RepoName) -> UiResult<i64> {
    let Submission { visitor, form } = submission;
    let git_ref = Some(form.text("ref").trim()).filter(|r| !r.is_empty());
    let builds = visitor
        .state
        .builds
        .trigger(&visitor.acting(), repo, git_ref)
        .await?;
    builds
        .first()
        .map(|b| b.id)
        .ok_or_else(|| UiError::Invalid("No rule matched.".into()))
}
