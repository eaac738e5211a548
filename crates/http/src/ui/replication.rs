//! Site administration of replication: the rules (create, run, turn on or off, delete) and
//! each rule's history of runs with what was copied, skipped and failed; the service
//! refuses everyone but site admins.

use super::admin::admin_tabs;
use super::html::{html, url_component, Html};
use super::layout::{button_form, form_start};
use super::session::Notice;
use super::{Submission, UiError, UiResult, Visitor};
use axum::extract::Path;
use axum::response::Response;
use berth_core::replication::{ReplicationRequest, ReplicationView};
use berth_core::Error;

const HOME: &str = "/admin/replication";

fn rule_path(name: &str) -> String {
    format!("{HOME}/{}", url_component(name))
}

fn require_admin(visitor: &Visitor) -> UiResult<()> {
    if !visitor.is_site_admin() {
        visitor.require_user()?;
        return Err(UiError::Domain(Error::Denied));
    }
    Ok(())
}

/// `GET /admin/replication`.
pub(crate) async fn page(visitor: Visitor) -> Response {
    let result = render_list(&visitor).await;
    visitor.respond(result)
}

/// Where a rule copies: `to URL under NS` (push) or `from URL into NS` (pull).
fn describe(view: &ReplicationView) -> String {
    let flattened = if view.flatten { " (flattened)" } else { "" };
    match (&view.from, &view.to) {
        (Some(from), _) => format!(
            "from {from} into {}{flattened}",
            view.to_namespace.as_deref().unwrap_or("")
        ),
        (None, to) => {
            let mut text = format!("to {}", to.as_deref().unwrap_or(""));
            if let Some(namespace) = &view.to_namespace {
                text.push_str(&format!(" under {namespace}{flattened}"));
            }
            text
        }
    }
}

async fn render_list(visitor: &Visitor) -> UiResult {
    require_admin(visitor)?;
    let rules = visitor.state.replications.list(&visitor.acting()).await?;
    let mut body = Html::new();
    html!(body, "<h1>Administration</h1>" [admin_tabs(HOME)]
        "<section class=\"panel\" aria-labelledby=\"rules-title\">"
        "<h2 id=\"rules-title\">Replication rules</h2>"
        "<p class=\"hint\">Each rule copies matching repositories and tags to another registry "
        "(push) or imports them from one into a namespace here (pull), byte for byte, with their "
        "signatures and other referrers; blobs the receiving side has are skipped. A run whose "
        "items fail is tried again.</p>");
    if rules.is_empty() {
        html!(body, "<p class=\"muted\">No rules yet.</p>");
    } else {
        html!(body, "<div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">Rule</th>"
            "<th scope=\"col\">Source</th><th scope=\"col\">Tags</th><th scope=\"col\">Direction</th><th scope=\"col\">Remote</th>"
            "<th scope=\"col\">Trigger</th><th scope=\"col\">State</th>"
            "<th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody>");
        for rule in &rules {
            let path = rule_path(&rule.name);
            let tags = if rule.tags.is_empty() {
                "every tag".to_owned()
            } else {
                rule.tags.join(", ")
            };
            let state = match (rule.enabled, rule.deletes) {
                (false, _) => "off",
                (true, true) => "on, deletes too",
                (true, false) => "on",
            };
            html!(body, "<tr><td><a href=\"" (path) "\">" (rule.name) "</a></td><td><code>"
                (rule.source) "</code></td><td>" (tags) "</td><td>" (rule.direction) "</td><td>" (describe(rule)) "</td><td>"
                (rule.trigger) "</td><td>" (state) "</td><td>"
                [button_form(visitor, &format!("{path}/run"), &format!("Run {} now", rule.name), "secondary")]
                "</td></tr>");
        }
        html!(body, "</tbody></table></div>");
    }
    html!(body, "</section>"
        "<section class=\"panel\" aria-labelledby=\"new-rule-title\"><h2 id=\"new-rule-title\">New rule</h2>"
        [form_start(visitor, HOME, "stack")]
        "<div class=\"field\"><label for=\"rule-name\">Name</label>"
        "<input type=\"text\" id=\"rule-name\" name=\"name\" autocomplete=\"off\" required></div>"
        "<div class=\"field\"><label for=\"rule-direction\">Direction</label>"
        "<select id=\"rule-direction\" name=\"direction\">"
        "<option value=\"push\" selected>Push: copy from here to the remote registry</option>"
        "<option value=\"pull\">Pull: import from the remote registry into a namespace here</option>"
        "</select></div>"
        "<div class=\"field\"><label for=\"rule-source\">Source</label>"
        "<p class=\"hint\" id=\"rule-source-hint\">Push: <code>NAMESPACE/REPO_GLOB</code> here, e.g. <code>acme/*</code>. "
        "Pull: a glob over the remote's repository names, e.g. <code>library/*</code>.</p>"
        "<input type=\"text\" id=\"rule-source\" name=\"source\" autocomplete=\"off\" "
        "aria-describedby=\"rule-source-hint\" required></div>"
        "<div class=\"field\"><label for=\"rule-tags\">Tags</label>"
        "<p class=\"hint\" id=\"rule-tags-hint\">Globs separated by commas; empty for every tag.</p>"
        "<input type=\"text\" id=\"rule-tags\" name=\"tags\" autocomplete=\"off\" aria-describedby=\"rule-tags-hint\"></div>"
        "<div class=\"field\"><label for=\"rule-to\">Remote registry</label>"
        "<input type=\"url\" id=\"rule-to\" name=\"to\" placeholder=\"https://ghcr.io\" required></div>"
        "<div class=\"field\"><label for=\"rule-ns\">Destination namespace</label>"
        "<p class=\"hint\" id=\"rule-ns-hint\">Push: the namespace there (default: the source's). "
        "Pull: the namespace here the imports go under (required).</p>"
        "<input type=\"text\" id=\"rule-ns\" name=\"to_namespace\" autocomplete=\"off\" aria-describedby=\"rule-ns-hint\"></div>"
        "<div class=\"field\"><label><input type=\"checkbox\" name=\"flatten\"> Flatten repository names</label></div>"
        "<div class=\"field\"><label for=\"rule-user\">Username</label>"
        "<input type=\"text\" id=\"rule-user\" name=\"username\" autocomplete=\"off\"></div>"
        "<div class=\"field\"><label for=\"rule-password\">Password or access token</label>"
        "<p class=\"hint\" id=\"rule-password-hint\">Stored encrypted and never shown again.</p>"
        "<input type=\"password\" id=\"rule-password\" name=\"password\" autocomplete=\"new-password\" "
        "aria-describedby=\"rule-password-hint\"></div>"
        "<div class=\"field\"><label for=\"rule-trigger\">Trigger</label>"
        "<p class=\"hint\" id=\"rule-trigger-hint\"><code>push</code>, <code>manual</code>, or a cron expression (UTC).</p>"
        "<input type=\"text\" id=\"rule-trigger\" name=\"trigger\" value=\"manual\" aria-describedby=\"rule-trigger-hint\"></div>"
        "<div class=\"field\"><label for=\"rule-bandwidth\">Bandwidth limit</label>"
        "<p class=\"hint\" id=\"rule-bandwidth-hint\">Bytes per second a run copies, e.g. <code>50MiB/s</code>; empty for no limit.</p>"
        "<input type=\"text\" id=\"rule-bandwidth\" name=\"bandwidth\" autocomplete=\"off\" aria-describedby=\"rule-bandwidth-hint\"></div>"
        "<div class=\"field\"><label><input type=\"checkbox\" name=\"deletes\"> Delete tags there when they are deleted here (push rules)</label></div>"
        "<div class=\"field\"><label><input type=\"checkbox\" name=\"tls_verify\" checked> Verify the remote's TLS certificate</label></div>"
        "<div><button type=\"submit\">Create rule</button></div></form></section>");
    Ok(visitor.page("Replication", body))
}

/// `POST /admin/replication`: a new rule.
pub(crate) async fn create(submission: Submission) -> Response {
    let result = async {
        let Submission { visitor, form } = &submission;
        let optional =
            |name: &str| Some(form.text(name).trim().to_owned()).filter(|v| !v.is_empty());
        let remote = form.required("to", "A remote registry")?.to_owned();
        let (to, from) = match form.text("direction").trim() {
            "pull" => (String::new(), Some(remote)),
            _ => (remote, None),
        };
        let request = ReplicationRequest {
            name: form.required("name", "A name")?.trim().to_owned(),
            source: form.required("source", "A source")?.to_owned(),
            tags: form
                .text("tags")
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            to,
            from,
            to_namespace: optional("to_namespace"),
            flatten: form.checked("flatten"),
            username: optional("username"),
            password: form
                .get("password")
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
            tls_verify: Some(form.checked("tls_verify")),
            trigger: optional("trigger"),
            deletes: form.checked("deletes"),
            bandwidth: optional("bandwidth"),
        };
        let view = visitor
            .state
            .replications
            .create(&visitor.acting(), request)
            .await?;
        Ok::<_, UiError>(Notice::success(format!("Rule {} created.", view.name)))
    }
    .await;
    submission.outcome(result, HOME)
}

/// `GET /admin/replication/{rule}`: the rule and its history.
pub(crate) async fn show(Path(name): Path<String>, visitor: Visitor) -> Response {
    let result = render_rule(&visitor, &name).await;
    visitor.respond(result)
}

async fn render_rule(visitor: &Visitor, name: &str) -> UiResult {
    require_admin(visitor)?;
    let replications = &visitor.state.replications;
    let rule = replications.get(&visitor.acting(), name).await?;
    let runs = replications.history(&visitor.acting(), name, 50).await?;
    let path = rule_path(name);
    let mut body = Html::new();
    html!(body, "<h1>Replication rule " (rule.name) "</h1>" [admin_tabs(HOME)]
        "<section class=\"panel\" aria-labelledby=\"rule-title\"><h2 id=\"rule-title\">Rule</h2><dl>"
        "<dt>Source</dt><dd><code>" (rule.source) "</code></dd>"
        "<dt>Tags</dt><dd>" (if rule.tags.is_empty() { "every tag".to_owned() } else { rule.tags.join(", ") }) "</dd>"
        "<dt>Direction</dt><dd>" (rule.direction) "</dd>"
        "<dt>Remote</dt><dd>" (describe(&rule)) "</dd>"
        "<dt>Bandwidth</dt><dd>" (rule.bandwidth.as_deref().unwrap_or("no limit")) "</dd>"
        "<dt>Credentials</dt><dd>" (match (&rule.username, rule.has_password) {
            (Some(user), true) => format!("{user}, with a stored password"),
            (Some(user), false) => user.clone(),
            (None, _) => "none".to_owned(),
        }) "</dd>"
        "<dt>Trigger</dt><dd>" (rule.trigger) "</dd>"
        "<dt>Deletions</dt><dd>" (if rule.deletes { "replicated" } else { "not replicated" }) "</dd>"
        "<dt>State</dt><dd>" (if rule.enabled { "on" } else { "off" }) "</dd></dl>"
        [button_form(visitor, &format!("{path}/run"), "Run now", "")]
        [button_form(visitor, &format!("{path}/{}", if rule.enabled { "disable" } else { "enable" }),
            if rule.enabled { "Turn off" } else { "Turn on" }, "secondary")]
        [button_form(visitor, &format!("{path}/delete"), "Delete rule", "danger")]
        "</section><section class=\"panel\" id=\"history\" aria-labelledby=\"history-title\">"
        "<h2 id=\"history-title\">History</h2>");
    if runs.is_empty() {
        html!(body, "<p class=\"muted\">No runs yet.</p>");
    }
    for run in &runs {
        html!(body, "<details><summary>Run " (run.id) " (" (run.trigger) "): " (run.status)
            ", started " (run.started_at) ", finished " (run.finished_at.as_deref().unwrap_or("not yet"))
            ": " (run.copied) " copied, " (run.skipped) " skipped, " (run.failed) " failed</summary>");
        if !run.items.is_empty() {
            html!(body, "<div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">Item</th>"
                "<th scope=\"col\">Outcome</th><th scope=\"col\">Reason</th></tr></thead><tbody>");
            for item in &run.items {
                html!(body, "<tr><td><code>" (item.item) "</code></td><td>" (item.outcome)
                    "</td><td>" (item.reason.as_deref().unwrap_or("")) "</td></tr>");
            }
            html!(body, "</tbody></table></div>");
        }
        html!(body, "</details>");
    }
    html!(body, "</section>");
    Ok(visitor.page(&format!("Replication rule {}", rule.name), body))
}

/// `POST /admin/replication/{rule}/{action}`: `run`, `enable`, `disable` or `delete`.
pub(crate) async fn change(
    Path((name, action)): Path<(String, String)>,
    submission: Submission,
) -> Response {
    let mut back = rule_path(&name);
    let result = async {
        let Submission { visitor, .. } = &submission;
        let replications = &visitor.state.replications;
        let acting = visitor.acting();
        Ok::<_, UiError>(match action.as_str() {
            "run" => match replications.enqueue_run(&acting, &name).await? {
                true => Notice::success(format!("A run of {name} is queued.")),
                false => {
                    Notice::success(format!("A run of {name} is already queued or under way."))
                }
            },
            "enable" => {
                replications.set_enabled(&acting, &name, true).await?;
                Notice::success(format!("{name} is on."))
            }
            "disable" => {
                replications.set_enabled(&acting, &name, false).await?;
                Notice::success(format!("{name} is off."))
            }
            "delete" => {
                replications.delete(&acting, &name).await?;
                back = HOME.to_owned();
                Notice::success(format!("Rule {name} deleted."))
            }
            _ => {
                return Err(UiError::Domain(Error::NotFound(format!(
                    "{HOME}/{name}/{action}"
                ))))
            }
        })
    }
    .await;
    submission.outcome(result, &back)
}
