//! Content lifecycle pages: a repository's (`/r/{repo}/-/settings/lifecycle`), an
//! organization's (`/orgs/{org}/lifecycle`) or the signed-in user's namespace's
//! (`/settings/lifecycle`) immutable-tag rule and retention policy, a dry run listing exactly
//! what a run would delete, the run itself and the recent runs; the trusted keys and the pull
//! policy. Every call goes through the `Lifecycle` or `Signatures` service, which decides who
//! may manage what.

use super::form::Form;
use super::html::{html, url_component, Html};
use super::layout::{button_form, form_start, human_size, time};
use super::session::Notice;
use super::{Submission, UiError, UiResult, Visitor};
use axum::extract::Path;
use axum::response::Response;
use berth_core::lifecycle::{ImmutableRequest, RetentionRequest, RunReport, Target};
use berth_core::signatures::PullPolicyRequest;
use berth_core::Error;
use berth_oci::RepoName;

/// Where the page is.
pub(crate) enum Place {
    Repository(RepoName),
    Organization(String),
    OwnNamespace,
}

impl Place {
    fn target(&self, visitor: &Visitor) -> UiResult<Target> {
        Ok(match self {
            Place::Repository(repo) => Target::Repository(repo.clone()),
            Place::Organization(org) => Target::Namespace(org.clone()),
            Place::OwnNamespace => Target::Namespace(visitor.require_user()?.to_owned()),
        })
    }

    fn href(&self) -> String {
        match self {
            Place::Repository(repo) => format!("/r/{repo}/-/settings/lifecycle"),
            Place::Organization(org) => format!("/orgs/{}/lifecycle", url_component(org)),
            Place::OwnNamespace => "/settings/lifecycle".to_owned(),
        }
    }

    /// The page's h1 and navigation, and its title.
    async fn top(&self, visitor: &Visitor) -> UiResult<(Html, String)> {
        let mut top = Html::new();
        let title = match self {
            Place::Repository(repo) => {
                let view = visitor
                    .state
                    .hub
                    .repository(&visitor.principal, repo)
                    .await?;
                top = super::repository::heading(visitor, repo, &view.info, true, "settings").await;
                html!(top, "<p><a href=\"/r/" (repo) "/-/settings\">General settings</a> · "
                    "<a href=\"/r/" (repo) "/-/settings/webhooks\">Webhooks</a> · "
                    "<strong>Lifecycle</strong></p>");
                format!("Lifecycle of {repo}")
            }
            Place::Organization(org) => {
                let record = visitor.state.identity.org(&visitor.acting(), org).await?;
                let org = record.name.as_str();
                html!(top, "<p class=\"muted\"><a href=\"/orgs/" (url_component(org)) "\">" (org) "</a></p>"
                    "<h1>Lifecycle of " (org) "'s repositories</h1>");
                format!("Lifecycle of {org}")
            }
            Place::OwnNamespace => {
                html!(top, "<p class=\"muted\"><a href=\"/settings\">Account settings</a></p>"
                    "<h1>Lifecycle of your repositories</h1>");
                "Lifecycle of your repositories".to_owned()
            }
        };
        Ok((top, title))
    }

    /// The page, with a dry run's report when one was just asked for.
    async fn render(&self, visitor: &Visitor, report: Option<&RunReport>) -> UiResult {
        let target = self.target(visitor)?;
        let acting = visitor.acting();
        let lifecycle = &visitor.state.lifecycle;
        let rule = lifecycle.immutable_rule(&acting, &target).await?;
        let policy = lifecycle.retention_policy(&acting, &target).await?;
        let runs = lifecycle.runs(&acting, &target, 10).await?;
        let (mut body, title) = self.top(visitor).await?;
        let base = self.href();
        let scope_note = match target {
            Target::Repository(_) => "this repository",
            Target::Namespace(_) => "every repository of this namespace",
        };

        html!(body, "<section class=\"panel\" id=\"immutable\" aria-labelledby=\"immutable-title\">"
            "<h2 id=\"immutable-title\">Immutable tags</h2>"
            "<p>Tags an immutable-tag rule protects can be pushed again with the same image (a CI "
            "rerun) but never pointed at another image or deleted, in " (scope_note) ". "
            "Cosign's signature tags stay mutable unless you say otherwise.</p>");
        match &rule {
            Some(rule) => html!(body, "<p id=\"immutable-current\">In force: <strong>" (rule.describe()) "</strong></p>"),
            None => html!(body, "<p class=\"muted\" id=\"immutable-current\">No rule: every tag can be moved and deleted.</p>"),
        }
        html!(body, [form_start(visitor, &format!("{base}/immutable"), "stack")]
            "<div class=\"field\"><label for=\"immutable-tags\">Immutable tags (globs, separated by spaces; empty: every tag)</label>"
            "<input type=\"text\" id=\"immutable-tags\" name=\"tags\" placeholder=\"v* release-*\" value=\""
            (rule.as_ref().map(|r| r.tags.join(" ")).unwrap_or_default()) "\" autocapitalize=\"none\" spellcheck=\"false\"></div>"
            "<div class=\"field\"><label for=\"immutable-excludes\">Except (globs)</label>"
            "<input type=\"text\" id=\"immutable-excludes\" name=\"excludes\" placeholder=\"*-rc*\" value=\""
            (rule.as_ref().map(|r| r.excludes.join(" ")).unwrap_or_default()) "\" autocapitalize=\"none\" spellcheck=\"false\"></div>"
            "<label><input type=\"checkbox\" id=\"immutable-cosign\" name=\"cosign\" value=\"1\""
            (if rule.as_ref().is_some_and(|r| !r.exempt_cosign) { " checked" } else { "" }) "> "
            "Also make cosign's fallback tags (<code>sha256-….sig</code>, <code>.att</code>, <code>.sbom</code>) immutable</label>"
            "<button type=\"submit\">Save the rule</button></form>");
        if rule.is_some() {
            html!(
                body,
                [button_form(
                    visitor,
                    &format!("{base}/immutable-clear"),
                    "Remove the rule",
                    "danger"
                )]
            );
        }
        html!(body, "</section>");

        let p = policy.as_ref().map(|s| &s.policy);
        let number = |value: Option<u32>| value.map(|n| n.to_string()).unwrap_or_default();
        html!(body, "<section class=\"panel\" id=\"retention\" aria-labelledby=\"retention-title\">"
            "<h2 id=\"retention-title\">Retention policy</h2>"
            "<p>Tags none of the keep rules keeps are deleted, with the images nothing else needs; "
            "immutable tags, images a kept index or signature refers to, and signatures of kept "
            "images always stay. Garbage collection then reclaims the space.");
        if matches!(target, Target::Namespace(_)) {
            html!(body, " A repository's own policy replaces this one.");
        }
        html!(body, "</p>");
        match &policy {
            Some(stored) => {
                html!(body, "<p id=\"retention-current\">In force: <strong>" (stored.policy.describe()) "</strong>");
                if let Some(next) = stored.next_run_at {
                    html!(body, ". Next run "[time(next)]);
                }
                html!(body, "</p>");
            }
            None => html!(
                body,
                "<p class=\"muted\" id=\"retention-current\">No policy: nothing is deleted.</p>"
            ),
        }
        html!(body, [form_start(visitor, &format!("{base}/retention"), "stack")]
            "<div class=\"field\"><label for=\"keep-last-pushed\">Keep the N most recently pushed tags</label>"
            "<input type=\"number\" id=\"keep-last-pushed\" name=\"keep_last_pushed\" min=\"1\" value=\"" (number(p.and_then(|p| p.keep_last_pushed))) "\"></div>"
            "<div class=\"field\"><label for=\"keep-last-pulled\">Keep the N most recently pulled tags</label>"
            "<input type=\"number\" id=\"keep-last-pulled\" name=\"keep_last_pulled\" min=\"1\" value=\"" (number(p.and_then(|p| p.keep_last_pulled))) "\"></div>"
            "<div class=\"field\"><label for=\"keep-pushed-days\">Keep tags pushed within (days)</label>"
            "<input type=\"number\" id=\"keep-pushed-days\" name=\"keep_pushed_days\" min=\"1\" value=\"" (number(p.and_then(|p| p.keep_pushed_days))) "\"></div>"
            "<div class=\"field\"><label for=\"keep-pulled-days\">Keep tags pulled within (days)</label>"
            "<input type=\"number\" id=\"keep-pulled-days\" name=\"keep_pulled_days\" min=\"1\" value=\"" (number(p.and_then(|p| p.keep_pulled_days))) "\"></div>"
            "<div class=\"field\"><label for=\"retention-tags\">Only for tags matching (globs; empty: every tag)</label>"
            "<input type=\"text\" id=\"retention-tags\" name=\"tags\" placeholder=\"pr-* dev-*\" value=\""
            (p.map(|p| p.tags.join(" ")).unwrap_or_default()) "\" autocapitalize=\"none\" spellcheck=\"false\"></div>"
            "<div class=\"field\"><label for=\"untagged-days\">Remove untagged images older than (days)</label>"
            "<input type=\"number\" id=\"untagged-days\" name=\"untagged_days\" min=\"0\" value=\"" (number(p.and_then(|p| p.untagged_days))) "\"></div>"
            "<div class=\"field\"><label for=\"retention-schedule\">Schedule (<code>daily</code> or cron, UTC; empty: only when run by hand)</label>"
            "<input type=\"text\" id=\"retention-schedule\" name=\"schedule\" placeholder=\"daily\" value=\""
            (p.and_then(|p| p.schedule.clone()).unwrap_or_default()) "\" autocapitalize=\"none\" spellcheck=\"false\"></div>"
            "<label><input type=\"checkbox\" id=\"allow-empty\" name=\"allow_empty\" value=\"1\""
            (if p.is_some_and(|p| p.allow_empty) { " checked" } else { "" }) "> "
            "Allow it to delete every tag of a repository</label>"
            "<button type=\"submit\">Save the policy</button></form>");
        if policy.is_some() {
            html!(body, "<div class=\"actions\">"
                [button_form(visitor, &format!("{base}/dry-run"), "Dry run: what would go?", "secondary")]
                [button_form(visitor, &format!("{base}/retention-clear"), "Remove the policy", "danger")]
                "</div>");
        }
        html!(body, "</section>");

        if let Some(report) = report {
            html!(body, "<section class=\"panel\" id=\"dry-run\" aria-labelledby=\"dry-run-title\">"
                "<h2 id=\"dry-run-title\">Dry run</h2>"
                "<p id=\"dry-run-summary\">A run now would delete " (report.tags.len()) " tags and "
                (report.manifests.len()) " images, freeing " (human_size(report.bytes)) " ("
                (report.bytes) " bytes) once garbage collection runs.</p>");
            if !report.tags.is_empty() {
                html!(body, "<h3>Tags</h3><ul id=\"dry-run-tags\">");
                for tag in &report.tags {
                    html!(body, "<li><code>" (tag) "</code></li>");
                }
                html!(body, "</ul>");
            }
            if !report.manifests.is_empty() {
                html!(body, "<h3>Images</h3><ul id=\"dry-run-manifests\">");
                for manifest in &report.manifests {
                    html!(body, "<li><code>" (manifest) "</code></li>");
                }
                html!(body, "</ul>");
            }
            if !(report.tags.is_empty() && report.manifests.is_empty()) {
                html!(
                    body,
                    "<p>A run deletes exactly these, leaving alone any that changed meanwhile.</p>"
                        [button_form(visitor, &format!("{base}/run"), "Delete them now", "danger")]
                );
            }
            html!(body, "</section>");
        }

        body.fragment(&trust_sections(visitor, &target, &base).await?);

        html!(body, "<section class=\"panel\" id=\"runs\" aria-labelledby=\"runs-title\">"
            "<h2 id=\"runs-title\">Recent runs</h2>");
        if runs.is_empty() {
            html!(body, "<p class=\"muted\">No runs yet.</p>");
        } else {
            html!(body, "<div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">Started</th>"
                "<th scope=\"col\">How</th><th scope=\"col\">Tags</th><th scope=\"col\">Images</th>"
                "<th scope=\"col\">Freed</th><th scope=\"col\">Outcome</th></tr></thead><tbody>");
            for run in &runs {
                html!(body, "<tr><td>" [time(run.started_at)] "</td><td>" (run.trigger) " by "
                    (run.actor.as_deref().unwrap_or("-")) "</td><td>" (run.tags.len()) "</td><td>"
                    (run.manifests.len()) "</td><td>" (human_size(run.bytes)) "</td><td>");
                match &run.error {
                    Some(error) => html!(body, "Stopped: "(error)),
                    None if run.skipped > 0 => {
                        html!(body, "Done; " (run.skipped) " left alone (changed)")
                    }
                    None => html!(body, "Done"),
                }
                html!(body, "</td></tr>");
            }
            html!(body, "</tbody></table></div>");
        }
        html!(body, "</section>");
        Ok(visitor.page(&title, body))
    }
}

/// The trusted keys and the pull policy of the target, with their forms.
async fn trust_sections(visitor: &Visitor, target: &Target, base: &str) -> UiResult<Html> {
    let acting = visitor.acting();
    let signatures = &visitor.state.signatures;
    let keys = signatures.keys(&acting, target).await?;
    let policy = signatures.pull_policy(&acting, target).await?;
    let mut body = Html::new();
    html!(body, "<section class=\"panel\" id=\"trusted-keys\" aria-labelledby=\"keys-title\">"
        "<h2 id=\"keys-title\">Trusted keys</h2>"
        "<p>Images signed with <code>cosign sign --key</code> by one of these keys show as verified.");
    if matches!(target, Target::Repository(_)) {
        html!(body, " The repository also trusts its namespace's keys.");
    }
    html!(body, "</p>");
    if keys.is_empty() {
        html!(
            body,
            "<p class=\"muted\" id=\"keys-none\">No trusted keys.</p>"
        );
    } else {
        html!(body, "<div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">Name</th>"
            "<th scope=\"col\">Algorithm</th><th scope=\"col\">Fingerprint</th><th scope=\"col\">Added</th>"
            "<th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody>");
        for key in &keys {
            html!(body, "<tr><th scope=\"row\">" (key.name) "</th><td>" (key.algorithm) "</td><td><code>"
                (key.fingerprint) "</code></td><td>" [time(key.added_at)] " by " (key.added_by) "</td><td>"
                [form_start(visitor, &format!("{base}/trust-remove"), "inline")]
                "<input type=\"hidden\" name=\"name\" value=\"" (key.name) "\">"
                "<button type=\"submit\" class=\"danger\" aria-label=\"Remove key " (key.name) "\">Remove</button></form></td></tr>");
        }
        html!(body, "</tbody></table></div>");
    }
    html!(body, [form_start(visitor, &format!("{base}/trust-add"), "stack")]
        "<div class=\"field\"><label for=\"key-name\">Key name</label>"
        "<input type=\"text\" id=\"key-name\" name=\"name\" placeholder=\"release\" autocapitalize=\"none\" spellcheck=\"false\"></div>"
        "<div class=\"field\"><label for=\"key-pem\">Public key (the contents of cosign.pub)</label>"
        "<textarea id=\"key-pem\" name=\"public_key\" rows=\"5\" spellcheck=\"false\" placeholder=\"-----BEGIN PUBLIC KEY-----\"></textarea></div>"
        "<button type=\"submit\">Trust the key</button></form></section>");

    let p = policy.as_ref().map(|s| s.policy);
    html!(body, "<section class=\"panel\" id=\"pull-policy\" aria-labelledby=\"pull-policy-title\">"
        "<h2 id=\"pull-policy-title\">Pull policy</h2>"
        "<p>Pulls of images the policy refuses are answered with an error naming it; site admins "
        "and signatures themselves are exempt. A repository's policy and its namespace's both apply.</p>");
    match &policy {
        Some(stored) => html!(body, "<p id=\"pull-policy-current\">In force: <strong>" (stored.policy.describe()) "</strong></p>"),
        None => html!(body, "<p class=\"muted\" id=\"pull-policy-current\">No policy: every image can be pulled.</p>"),
    }
    let severity = p
        .and_then(|p| p.block_severity)
        .map(|s| s.as_str())
        .unwrap_or("");
    html!(body, [form_start(visitor, &format!("{base}/pull-policy"), "stack")]
        "<label><input type=\"checkbox\" id=\"require-signature\" name=\"require_signature\" value=\"1\""
        (if p.is_some_and(|p| p.require_signature) { " checked" } else { "" }) "> "
        "Only images with a signature verified by a trusted key</label>"
        "<div class=\"field\"><label for=\"block-severity\">Refuse images with findings of severity</label>"
        "<select id=\"block-severity\" name=\"block_severity\">");
    for (value, label) in [
        ("", "no limit"),
        ("critical", "critical"),
        ("high", "high or higher"),
        ("medium", "medium or higher"),
        ("low", "low or higher"),
    ] {
        html!(body, "<option value=\"" (value) "\"" (if value == severity { " selected" } else { "" }) ">" (label) "</option>");
    }
    html!(body, "</select></div>"
        "<label><input type=\"checkbox\" id=\"allow-unscanned\" name=\"allow_unscanned\" value=\"1\""
        (if p.is_some_and(|p| p.allow_unscanned) { " checked" } else { "" }) "> "
        "Let images that were not scanned yet through</label>"
        "<button type=\"submit\">Save the pull policy</button></form>");
    if policy.is_some() {
        html!(
            body,
            [button_form(
                visitor,
                &format!("{base}/pull-policy-clear"),
                "Remove the pull policy",
                "danger"
            )]
        );
    }
    html!(body, "</section>");
    Ok(body)
}

/// Globs typed separated by spaces or commas.
fn globs(text: &str) -> Vec<String> {
    text.split([' ', ',', '\n', '\t'])
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A number field: blank is unset.
fn count(form: &Form, name: &str, label: &str) -> UiResult<Option<i64>> {
    match form.text(name).trim() {
        "" => Ok(None),
        text => text.parse().map(Some).map_err(|_| {
            UiError::Invalid(format!(
                "{label} must be a whole number; nothing was changed."
            ))
        }),
    }
}

fn refused(err: Error) -> UiError {
    match err {
        Error::Invalid(reason) => UiError::Invalid(format!("Nothing was changed: {reason}.")),
        other => other.into(),
    }
}

/// `GET` of the page.
pub(crate) async fn show(visitor: &Visitor, place: Place) -> UiResult {
    place.render(visitor, None).await
}

/// `POST {page}/{action}`.
pub(crate) async fn change(submission: &Submission, place: Place, action: &str) -> Response {
    let visitor = &submission.visitor;
    let back = place.href();
    let target = match place.target(visitor) {
        Ok(target) => target,
        Err(err) => return submission.outcome(Err(err), "/"),
    };
    let form = &submission.form;
    let acting = visitor.acting();
    let lifecycle = &visitor.state.lifecycle;
    let result: UiResult<Notice> = match action {
        "immutable" => {
            let request = ImmutableRequest {
                tags: globs(form.text("tags")),
                excludes: globs(form.text("excludes")),
                exempt_cosign: Some(!form.checked("cosign")),
            };
            lifecycle
                .set_immutable(&acting, &target, request)
                .await
                .map(|rule| Notice::success(format!("Saved: {}.", rule.describe())))
                .map_err(refused)
        }
        "immutable-clear" => lifecycle
            .clear_immutable(&acting, &target)
            .await
            .map(|_| Notice::success("The immutable-tag rule is removed.".to_owned()))
            .map_err(refused),
        "retention" => {
            let request = async {
                Ok::<_, UiError>(RetentionRequest {
                    keep_last_pushed: count(
                        form,
                        "keep_last_pushed",
                        "Keep the N most recently pushed",
                    )?,
                    keep_last_pulled: count(
                        form,
                        "keep_last_pulled",
                        "Keep the N most recently pulled",
                    )?,
                    keep_pushed_days: count(form, "keep_pushed_days", "Pushed within")?,
                    keep_pulled_days: count(form, "keep_pulled_days", "Pulled within")?,
                    tags: globs(form.text("tags")),
                    untagged_days: count(form, "untagged_days", "Untagged older than")?,
                    schedule: Some(form.text("schedule").to_owned())
                        .filter(|s| !s.trim().is_empty()),
                    allow_empty: form.checked("allow_empty"),
                })
            }
            .await;
            match request {
                Ok(request) => lifecycle
                    .set_retention(&acting, &target, request)
                    .await
                    .map(|stored| Notice::success(format!("Saved: {}.", stored.policy.describe())))
                    .map_err(refused),
                Err(err) => Err(err),
            }
        }
        "retention-clear" => lifecycle
            .clear_retention(&acting, &target)
            .await
            .map(|_| Notice::success("The retention policy is removed.".to_owned()))
            .map_err(refused),
        "dry-run" => match lifecycle.run(&acting, &target, true).await {
            Ok(report) => return visitor.respond(place.render(visitor, Some(&report)).await),
            Err(err) => Err(refused(err)),
        },
        "run" => lifecycle
            .run(&acting, &target, false)
            .await
            .map(|report| {
                Notice::success(format!(
                    "Deleted {} tags and {} images; {} for garbage collection to reclaim.",
                    report.tags.len(),
                    report.manifests.len(),
                    human_size(report.bytes)
                ))
            })
            .map_err(refused),
        "trust-add" => visitor
            .state
            .signatures
            .add_key(&acting, &target, form.text("name"), form.text("public_key"))
            .await
            .map(|key| {
                Notice::success(format!(
                    "Trusted {} ({}, {}).",
                    key.name, key.algorithm, key.fingerprint
                ))
            })
            .map_err(refused),
        "trust-remove" => match visitor
            .state
            .signatures
            .remove_key(&acting, &target, form.text("name"))
            .await
        {
            Ok(true) => Ok(Notice::success(format!(
                "{} is no longer trusted.",
                form.text("name")
            ))),
            Ok(false) => Err(UiError::Invalid(
                "There is no such key; nothing was changed.".to_owned(),
            )),
            Err(err) => Err(refused(err)),
        },
        "pull-policy" => {
            let request = PullPolicyRequest {
                require_signature: form.checked("require_signature"),
                block_severity: Some(form.text("block_severity").to_owned())
                    .filter(|s| !s.is_empty()),
                allow_unscanned: form.checked("allow_unscanned"),
            };
            match request.check() {
                Ok(policy) => visitor
                    .state
                    .signatures
                    .set_pull_policy(&acting, &target, policy)
                    .await
                    .map(|stored| Notice::success(format!("Saved: {}.", stored.policy.describe())))
                    .map_err(refused),
                Err(reason) => Err(UiError::Invalid(format!("Nothing was changed: {reason}."))),
            }
        }
        "pull-policy-clear" => visitor
            .state
            .signatures
            .clear_pull_policy(&acting, &target)
            .await
            .map(|_| Notice::success("The pull policy is removed.".to_owned()))
            .map_err(refused),
        _ => return visitor.not_found(),
    };
    submission.outcome(result, &back)
}

/// `GET /settings/lifecycle`.
pub(crate) async fn user_page(visitor: Visitor) -> Response {
    let result = show(&visitor, Place::OwnNamespace).await;
    visitor.respond(result)
}

/// `POST /settings/lifecycle/{action}`.
pub(crate) async fn user_change(Path(action): Path<String>, submission: Submission) -> Response {
    change(&submission, Place::OwnNamespace, &action).await
}

/// `GET /orgs/{org}/lifecycle`.
pub(crate) async fn org_page(visitor: Visitor, Path(org): Path<String>) -> Response {
    let result = show(&visitor, Place::Organization(org)).await;
    visitor.respond(result)
}

/// `POST /orgs/{org}/lifecycle/{action}`.
pub(crate) async fn org_change(
    Path((org, action)): Path<(String, String)>,
    submission: Submission,
) -> Response {
    change(&submission, Place::Organization(org), &action).await
}
