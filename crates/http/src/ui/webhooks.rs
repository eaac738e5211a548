//! Webhook pages: the list and the creation form of a repository's, a namespace's or the
//! site's webhooks (the secret shown once after creation), and one webhook's page with its
//! ping, enable, disable and delete buttons and its delivery history with redeliveries.
//! Every call goes through the `Webhooks` service, which decides who may manage what.

use super::form::Form;
use super::html::{html, url_component, Html};
use super::layout::{button_form, copyable, form_start, option, time};
use super::session::Notice;
use super::{Submission, UiError, UiResult, Visitor};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::ports::DeliveryAttempt;
use berth_core::webhooks::{
    CreatedWebhook, PayloadFormat, WebhookEvent, WebhookRequest, WebhookTarget, WebhookView,
};
use berth_core::Error;
use berth_oci::RepoName;

/// Attempts a webhook's page shows, newest first: each carries up to a KiB of response, so
/// this keeps the page light.
const HISTORY_LENGTH: u32 = 20;

/// How the form and the list name each event kind.
fn event_label(event: &str) -> &'static str {
    match event {
        "push" => "Push (an image or tag pushed)",
        "tag_delete" => "Tag deleted",
        "manifest_delete" => "Manifest deleted",
        "repository" => "Repository created, deleted or made public or private",
        "quota_warning" => "Namespace past 85 % of its quota",
        "retention" => "Retention run finished (what it deleted)",
        "scan" => "Image scanned for vulnerabilities (counts by severity)",
        "build" => "Automated build finished (status, ref, commit, digest)",
        "replication" => "Replication run finished (copied, skipped, failed)",
        _ => "Other",
    }
}

fn format_label(format: PayloadFormat) -> &'static str {
    match format {
        PayloadFormat::DockerHub => "Docker Hub (push_data, repository)",
        PayloadFormat::CloudEvents => "CloudEvents 1.0 (structured JSON)",
    }
}

/// The page listing a target's webhooks, where they are created.
pub(crate) async fn list_href(visitor: &Visitor, target: &WebhookTarget) -> String {
    match target {
        WebhookTarget::Repository(repo) => format!("/r/{repo}/-/settings/webhooks"),
        WebhookTarget::Site => "/admin/webhooks".to_owned(),
        WebhookTarget::Namespace(name) => {
            if visitor.user_name() == Some(name.as_str()) {
                "/settings/webhooks".to_owned()
            } else if visitor
                .state
                .identity
                .org(&visitor.acting(), name)
                .await
                .is_ok()
            {
                format!("/orgs/{}/webhooks", url_component(name))
            } else {
                format!("/u/{}", url_component(name))
            }
        }
    }
}

/// The target a webhook view names.
fn target_of(view: &WebhookView) -> WebhookTarget {
    match view.scope {
        "site" => WebhookTarget::Site,
        "repository" => WebhookTarget::parse(&view.target)
            .unwrap_or_else(|_| WebhookTarget::Namespace(view.target.clone())),
        _ => WebhookTarget::Namespace(view.target.clone()),
    }
}

/// The webhooks section and the creation form for `target`, below `top` (the page's h1 and
/// navigation); `first` (a new webhook's secret) comes before everything else.
async fn list_page(
    visitor: &Visitor,
    target: &WebhookTarget,
    top: Html,
    title: &str,
    status: StatusCode,
    first: Option<Html>,
) -> UiResult {
    let acting = visitor.acting();
    let webhooks = visitor.state.webhooks.list(&acting, target).await?;
    let action = list_href(visitor, target).await;
    let mut body = top;
    if let Some(first) = first {
        body.fragment(&first);
    }
    html!(body,
        "<section class=\"panel\" id=\"webhooks\" aria-labelledby=\"webhooks-title\">"
        "<h2 id=\"webhooks-title\">Webhooks of " (target) "</h2>"
        "<p>Each webhook calls its URL when something happens to ");
    match target {
        WebhookTarget::Repository(_) => html!(body, "this repository"),
        WebhookTarget::Namespace(_) => html!(body, "any repository of "(target)),
        WebhookTarget::Site => html!(body, "any repository of this site"),
    }
    html!(body, ", signed with its secret (Standard Webhooks headers), and tries again for a "
        "day when the receiver fails.</p>"
        [webhooks_table(&webhooks)]
        "</section>"
        "<section class=\"panel\" id=\"new-webhook\" aria-labelledby=\"new-webhook-title\">"
        "<h2 id=\"new-webhook-title\">New webhook</h2>"
        [create_form(visitor, &action)]
        "</section>");
    Ok(visitor.page_with_status(status, title, body))
}

fn webhooks_table(webhooks: &[WebhookView]) -> Html {
    let mut out = Html::new();
    if webhooks.is_empty() {
        html!(out, "<p class=\"muted\">No webhooks yet.</p>");
        return out;
    }
    html!(out, "<div class=\"table-wrap\"><table><thead><tr>"
        "<th scope=\"col\">Name</th><th scope=\"col\">URL</th><th scope=\"col\">Events</th>"
        "<th scope=\"col\">Tags</th><th scope=\"col\">Format</th><th scope=\"col\">Status</th>"
        "<th scope=\"col\">Failures in a row</th></tr></thead><tbody>");
    for webhook in webhooks {
        html!(out, "<tr><th scope=\"row\"><a href=\"/webhooks/" (url_component(&webhook.id)) "\">"
            (webhook.name) "</a></th><td><code>" (webhook.url) "</code></td><td>"
            (webhook.events.join(", ")) "</td><td>");
        if webhook.tags.is_empty() {
            html!(out, "All");
        } else {
            html!(out, "<code>" (webhook.tags.join(", ")) "</code>");
        }
        html!(out, "</td><td>" (webhook.format) "</td><td>" [status(webhook)] "</td><td>"
            (webhook.consecutive_failures) "</td></tr>");
    }
    html!(out, "</tbody></table></div>");
    out
}

/// "Active", or "Disabled" with the reason: after failed deliveries, a `410`, or by whom.
fn status(webhook: &WebhookView) -> Html {
    let mut out = Html::new();
    if webhook.enabled {
        html!(out, "Active");
    } else {
        html!(out, "<span class=\"badge revoked\">Disabled</span>");
        if let Some(reason) = &webhook.disabled_reason {
            html!(out, " <span class=\"disabled-reason\">" (reason) "</span>");
        }
    }
    out
}

fn create_form(visitor: &Visitor, action: &str) -> Html {
    let mut out = form_start(visitor, action, "stack");
    html!(out,
        "<div class=\"field\"><label for=\"webhook-name\">Name (optional)</label>"
        "<input type=\"text\" id=\"webhook-name\" name=\"name\" maxlength=\"100\" "
        "placeholder=\"deploy, chat, …\"></div>"
        "<div class=\"field\"><label for=\"webhook-url\">URL</label>"
        "<input type=\"url\" id=\"webhook-url\" name=\"url\" required spellcheck=\"false\" "
        "placeholder=\"https://deploy.example/hooks/berth\"></div>"
        "<fieldset><legend>Events</legend>");
    for event in WebhookEvent::ALL {
        html!(out, "<label><input type=\"checkbox\" name=\"events\" value=\"" (event.as_str()) "\"");
        if event == WebhookEvent::Push {
            out.raw(" checked");
        }
        html!(out, "> " (event_label(event.as_str())) "</label>");
    }
    html!(out, "</fieldset>"
        "<div class=\"field\"><label for=\"webhook-tags\">Only these tags (optional)</label>"
        "<p class=\"hint\" id=\"webhook-tags-hint\">Separated by commas or spaces; <code>*</code> "
        "matches anything, as in <code>v*</code>. Empty: every tag.</p>"
        "<input type=\"text\" id=\"webhook-tags\" name=\"tags\" spellcheck=\"false\" "
        "aria-describedby=\"webhook-tags-hint\"></div>"
        "<div class=\"field\"><label for=\"webhook-format\">Payload format</label>"
        "<select id=\"webhook-format\" name=\"format\">");
    for format in PayloadFormat::ALL {
        out.fragment(&option(
            format.as_str(),
            format_label(format),
            format == PayloadFormat::default(),
        ));
    }
    html!(out, "</select></div>"
        "<div class=\"field\"><label for=\"webhook-header-name\">Custom header name (optional)</label>"
        "<input type=\"text\" id=\"webhook-header-name\" name=\"header_name\" spellcheck=\"false\" "
        "autocapitalize=\"none\" placeholder=\"Authorization\"></div>"
        "<div class=\"field\"><label for=\"webhook-header-value\">Custom header value</label>"
        "<p class=\"hint\" id=\"webhook-header-hint\">Sent with every delivery and stored encrypted; "
        "it is not shown again.</p>"
        "<input type=\"password\" id=\"webhook-header-value\" name=\"header_value\" "
        "autocomplete=\"off\" aria-describedby=\"webhook-header-hint\"></div>"
        "<div><button type=\"submit\">Create webhook</button></div></form>");
    out
}

/// The new webhook's request, as the form sends it.
fn request_of(form: &Form) -> UiResult<WebhookRequest> {
    let url = form.required("url", "A URL")?.to_owned();
    let events: Vec<String> = form.all("events").map(str::to_owned).collect();
    if events.is_empty() {
        return Err(UiError::Invalid(
            "Choose at least one event; nothing was created.".to_owned(),
        ));
    }
    let tags = form
        .text("tags")
        .split([',', ' ', '\n', '\r', '\t'])
        .filter(|tag| !tag.is_empty())
        .map(str::to_owned)
        .collect();
    let header = match (form.text("header_name"), form.get("header_value")) {
        ("", None | Some("")) => None,
        ("", Some(_)) => {
            return Err(UiError::Invalid(
                "A custom header value needs a header name; nothing was created.".to_owned(),
            ))
        }
        (name, value) => Some((name.to_owned(), value.unwrap_or_default().to_owned())),
    };
    Ok(WebhookRequest {
        name: Some(form.text("name").to_owned()).filter(|name| !name.is_empty()),
        url,
        events,
        tags,
        format: Some(form.text("format").to_owned()),
        header,
    })
}

/// Creates a webhook on the page's target from the form. The answer is the list page with
/// the secret on it, this once; a refusal goes back to the list with the service's reason.
pub(crate) async fn create(submission: &Submission, place: ListPage) -> Response {
    let visitor = &submission.visitor;
    let target = match place.target(visitor) {
        Ok(target) => target,
        Err(err) => return submission.outcome(Err(err), "/"),
    };
    let back = format!("{}#new-webhook", list_href(visitor, &target).await);
    let result = async {
        let request = request_of(&submission.form)?;
        visitor
            .state
            .webhooks
            .create(&visitor.acting(), target, request)
            .await
            .map_err(|err| match err {
                // The service's reason, as written (it may start with a repository's name).
                Error::Invalid(reason) => {
                    UiError::Invalid(format!("Not created: {}", full_stop(&reason)))
                }
                other => other.into(),
            })
    }
    .await;
    match result {
        Ok(created) => {
            let panel = secret_panel(&created);
            let answer = place
                .render(visitor, StatusCode::CREATED, Some(panel))
                .await;
            visitor.respond(answer)
        }
        Err(err) => submission.outcome(Err(err), &back),
    }
}

/// `text` ending with a full stop.
fn full_stop(text: &str) -> String {
    if text.ends_with(['.', '!', '?']) {
        text.to_owned()
    } else {
        format!("{text}.")
    }
}

/// The new webhook's signing secret, shown this once.
fn secret_panel(created: &CreatedWebhook) -> Html {
    let webhook = &created.webhook;
    let mut out = Html::new();
    html!(out,
        "<section class=\"secret\" aria-labelledby=\"new-webhook-secret-title\" id=\"new-webhook-created\">"
        "<h2 id=\"new-webhook-secret-title\">Copy the secret of “" (webhook.name) "” now</h2>"
        "<p><strong>Copy it now: it is not shown again.</strong> Your receiver checks each "
        "request's <code>webhook-signature</code> header with it.</p>"
        [copyable("new-webhook-secret", &created.secret, "Copy the webhook secret")]
        "<p><a href=\"/webhooks/" (url_component(&webhook.id)) "\">Open the webhook</a> to send a "
        "test ping and see its deliveries.</p></section>");
    out
}

/// `GET /webhooks/{id}` and `GET /webhooks/{id}/delete`.
pub(crate) async fn show(visitor: Visitor, Path(path): Path<String>) -> Response {
    let result = async {
        match path.split('/').collect::<Vec<_>>().as_slice() {
            [id] => webhook_page(&visitor, id).await,
            [id, "delete"] => confirm_deletion(&visitor, id).await,
            _ => Err(Error::NotFound(path.clone()).into()),
        }
    }
    .await;
    visitor.respond(result)
}

/// A webhook's page: what it is, its buttons, and its latest delivery attempts.
async fn webhook_page(visitor: &Visitor, id: &str) -> UiResult {
    let service = &visitor.state.webhooks;
    let acting = visitor.acting();
    let webhook = service.get(&acting, id).await?;
    let attempts = service.attempts(&acting, id, HISTORY_LENGTH).await?;
    let list = list_href(visitor, &target_of(&webhook)).await;
    let base = format!("/webhooks/{}", url_component(&webhook.id));
    let mut body = Html::new();
    html!(body, "<p class=\"muted\"><a href=\"" (list) "\">Webhooks of " (target_of(&webhook)) "</a></p>"
        "<div class=\"heading-row\"><h1>Webhook " (webhook.name) "</h1>" [status(&webhook)] "</div>"
        "<section class=\"panel\" id=\"webhook\" aria-labelledby=\"webhook-title\">"
        "<h2 id=\"webhook-title\">Settings</h2><dl class=\"facts\">"
        "<dt>URL</dt><dd><code id=\"webhook-url\">" (webhook.url) "</code></dd>"
        "<dt>Events</dt><dd>" (webhook.events.join(", ")) "</dd>"
        "<dt>Tags</dt><dd>");
    if webhook.tags.is_empty() {
        html!(body, "All");
    } else {
        html!(body, "<code>" (webhook.tags.join(", ")) "</code>");
    }
    html!(body, "</dd><dt>Format</dt><dd>" (webhook.format) "</dd>");
    if let Some(header) = &webhook.header_name {
        html!(body, "<dt>Custom header</dt><dd><code>" (header) "</code> (value stored encrypted)</dd>");
    }
    html!(body, "<dt>Failed deliveries in a row</dt><dd id=\"webhook-failures\">"
        (webhook.consecutive_failures) "</dd>"
        "<dt>Created</dt><dd>by " (webhook.created_by) " on " (webhook.created_at.replace('T', " ").replace('Z', " UTC")) "</dd></dl>"
        "<div class=\"actions\">"
        [button_form(visitor, &format!("{base}/ping"), "Send a test ping", "secondary")]);
    if webhook.enabled {
        body.fragment(&button_form(
            visitor,
            &format!("{base}/disable"),
            "Disable",
            "secondary",
        ));
    } else {
        body.fragment(&button_form(
            visitor,
            &format!("{base}/enable"),
            "Enable",
            "secondary",
        ));
    }
    html!(body, "<a class=\"button danger\" href=\"" (base) "/delete\">Delete this webhook</a></div></section>"
        [history(visitor, &base, &attempts)]);
    Ok(visitor.page(&format!("Webhook {}", webhook.name), body))
}

/// The latest attempts, newest first, with a Redeliver button on each delivery's newest.
fn history(visitor: &Visitor, base: &str, attempts: &[DeliveryAttempt]) -> Html {
    let mut out = Html::new();
    html!(out, "<section class=\"panel\" id=\"deliveries\" aria-labelledby=\"deliveries-title\">"
        "<h2 id=\"deliveries-title\">Recent deliveries</h2>");
    if attempts.is_empty() {
        html!(out, "<p class=\"muted\">Nothing delivered yet. Send a test ping, or push, and "
            "reload this page.</p></section>");
        return out;
    }
    html!(out, "<p class=\"muted\">The latest " (HISTORY_LENGTH) " attempts at most, newest first. "
        "A redelivery sends the same body with the same <code>webhook-id</code>.</p>"
        "<div class=\"table-wrap\"><table><thead><tr>"
        "<th scope=\"col\">Time</th><th scope=\"col\">Event</th><th scope=\"col\">Attempt</th>"
        "<th scope=\"col\">Status</th><th scope=\"col\">Latency</th><th scope=\"col\">Response</th>"
        "<th scope=\"col\">Error</th><th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th>"
        "</tr></thead><tbody>");
    let mut seen: Vec<&str> = Vec::new();
    for attempt in attempts {
        let delivered = attempt.status.is_some_and(|s| (200..300).contains(&s));
        html!(out, "<tr><td>" [time(attempt.at_ms.div_euclid(1000))] "</td><td>" (attempt.event_kind)
            "</td><td>" (attempt.attempt) "</td><td class=\"status\">");
        match attempt.status {
            Some(status) if delivered => html!(out, (status)),
            Some(status) => html!(out, "<span class=\"badge revoked\">" (status) "</span>"),
            None => html!(out, "<span class=\"muted\">None</span>"),
        }
        html!(out, "</td><td>" (attempt.latency_ms) " ms</td><td>");
        match attempt.response.as_deref().filter(|r| !r.is_empty()) {
            Some(response) => html!(out, "<pre class=\"response\">" (response) "</pre>"),
            None => html!(out, "<span class=\"muted\">None</span>"),
        }
        html!(out, "</td><td>");
        match &attempt.error {
            Some(error) => html!(out, (error)),
            None => html!(out, "<span class=\"muted\">None</span>"),
        }
        html!(out, "</td><td>");
        if !seen.contains(&attempt.delivery_id.as_str()) {
            seen.push(&attempt.delivery_id);
            let action = format!(
                "{base}/deliveries/{}/redeliver",
                url_component(&attempt.delivery_id)
            );
            out.fragment(&button_form(visitor, &action, "Redeliver", "secondary"));
        }
        html!(out, "</td></tr>");
    }
    html!(out, "</tbody></table></div></section>");
    out
}

/// `/webhooks/{id}/delete`: the webhook's name typed again before it goes.
async fn confirm_deletion(visitor: &Visitor, id: &str) -> UiResult {
    let webhook = visitor.state.webhooks.get(&visitor.acting(), id).await?;
    let base = format!("/webhooks/{}", url_component(&webhook.id));
    let mut body = Html::new();
    html!(body, "<h1>Delete the webhook " (webhook.name) "</h1>"
        "<section class=\"panel\" id=\"delete-webhook\" aria-labelledby=\"delete-webhook-title\">"
        "<h2 id=\"delete-webhook-title\">Stop calling " (webhook.url) "</h2>"
        "<p>Deliveries not yet made are dropped with its history; this cannot be undone.</p>"
        [form_start(visitor, &format!("{base}/delete"), "inline")]
        "<div class=\"field\"><label for=\"confirm-webhook\">Type <strong>" (webhook.name)
        "</strong> to confirm</label>"
        "<input type=\"text\" id=\"confirm-webhook\" name=\"confirm\" autocapitalize=\"none\" "
        "autocomplete=\"off\" spellcheck=\"false\" required></div>"
        "<button type=\"submit\" class=\"danger\">Delete webhook</button></form>"
        "<p><a href=\"" (base) "\">Keep it and go back to the webhook</a></p></section>");
    Ok(visitor.page(&format!("Delete the webhook {}", webhook.name), body))
}

/// `POST /webhooks/{id}/…`: ping, enable, disable, delete and redeliver.
pub(crate) async fn change(Path(path): Path<String>, submission: Submission) -> Response {
    let parts: Vec<&str> = path.split('/').collect();
    let Some(id) = parts.first().copied() else {
        return submission.visitor.not_found();
    };
    let page = format!("/webhooks/{}", url_component(id));
    let result = match parts.as_slice() {
        [_, "ping"] => ping(&submission, id).await,
        [_, "enable"] => set_enabled(&submission, id, true).await,
        [_, "disable"] => set_enabled(&submission, id, false).await,
        [_, "deliveries", delivery, "redeliver"] => redeliver(&submission, id, delivery).await,
        [_, "delete"] => return delete(&submission, id).await,
        _ => return submission.visitor.not_found(),
    };
    match result {
        // A webhook (or delivery) that is gone, or not the visitor's, has no page to go to.
        Err(UiError::Domain(Error::WebhookUnknown(_))) => submission.visitor.not_found(),
        other => submission.outcome(other, &page),
    }
}

async fn ping(submission: &Submission, id: &str) -> UiResult<Notice> {
    let visitor = &submission.visitor;
    visitor.state.webhooks.ping(&visitor.acting(), id).await?;
    Ok(Notice::success(
        "A test ping is on its way; reload this page to see it in the deliveries.",
    ))
}

async fn set_enabled(submission: &Submission, id: &str, enabled: bool) -> UiResult<Notice> {
    let visitor = &submission.visitor;
    let view = visitor
        .state
        .webhooks
        .set_enabled(&visitor.acting(), id, enabled)
        .await?;
    Ok(Notice::success(if enabled {
        format!("The webhook {} is enabled.", view.name)
    } else {
        format!(
            "The webhook {} is disabled; nothing is sent to it.",
            view.name
        )
    }))
}

async fn redeliver(submission: &Submission, id: &str, delivery: &str) -> UiResult<Notice> {
    let visitor = &submission.visitor;
    visitor
        .state
        .webhooks
        .redeliver(&visitor.acting(), id, delivery)
        .await?;
    Ok(Notice::success(
        "The delivery is sent again with the same webhook-id; reload this page to see it.",
    ))
}

/// Deletes once the name was typed again; then to the target's list of webhooks.
async fn delete(submission: &Submission, id: &str) -> Response {
    let Submission { visitor, form } = submission;
    let service = &visitor.state.webhooks;
    let acting = visitor.acting();
    let back = format!("/webhooks/{}/delete", url_component(id));
    let webhook = match service.get(&acting, id).await {
        Ok(webhook) => webhook,
        Err(Error::WebhookUnknown(_)) => return visitor.not_found(),
        Err(err) => return submission.outcome(Err(err.into()), &back),
    };
    if form.text("confirm") != webhook.name.trim() {
        let message = format!(
            "Type {} exactly to delete the webhook; nothing was deleted.",
            webhook.name
        );
        return submission.outcome(Err(UiError::Invalid(message)), &back);
    }
    match service.delete(&acting, id).await {
        Ok(()) => {
            let list = list_href(visitor, &target_of(&webhook)).await;
            let notice = Notice::success(format!("The webhook {} is deleted.", webhook.name));
            visitor.redirect(&list, Some(notice))
        }
        Err(err) => submission.outcome(Err(err.into()), &back),
    }
}

/// The pages that list webhooks, one for each kind of target.
pub(crate) enum ListPage {
    /// `/r/{repo}/-/settings/webhooks`, for the repository's admins.
    Repository(RepoName),
    /// `/orgs/{org}/webhooks`, for the organization's owners.
    Organization(String),
    /// `/settings/webhooks`: the signed-in user's own namespace.
    OwnNamespace,
    /// `/admin/webhooks`, for site admins.
    Site,
}

impl ListPage {
    fn target(&self, visitor: &Visitor) -> UiResult<WebhookTarget> {
        Ok(match self {
            ListPage::Repository(repo) => WebhookTarget::Repository(repo.clone()),
            ListPage::Organization(org) => WebhookTarget::Namespace(org.clone()),
            ListPage::OwnNamespace => WebhookTarget::Namespace(visitor.require_user()?.to_owned()),
            ListPage::Site => WebhookTarget::Site,
        })
    }

    /// The page, with `first` (a new webhook's secret) above the list.
    pub async fn render(
        &self,
        visitor: &Visitor,
        status: StatusCode,
        first: Option<Html>,
    ) -> UiResult {
        let target = self.target(visitor)?;
        let mut top = Html::new();
        let title = match self {
            ListPage::Repository(repo) => {
                // A repository the visitor cannot see is missing, as on its other pages.
                let view = visitor
                    .state
                    .hub
                    .repository(&visitor.principal, repo)
                    .await?;
                top = super::repository::heading(visitor, repo, &view.info, true, "settings").await;
                html!(top, "<p><a href=\"/r/" (repo) "/-/settings\">General settings</a> · "
                    "<strong>Webhooks</strong></p>");
                format!("Webhooks of {repo}")
            }
            ListPage::Organization(org) => {
                // An organization the visitor cannot see is missing, as on its page.
                let record = visitor.state.identity.org(&visitor.acting(), org).await?;
                let org = record.name.as_str();
                html!(top, "<p class=\"muted\"><a href=\"/orgs/" (url_component(org)) "\">" (org) "</a></p>"
                    "<div class=\"heading-row\"><h1>Webhooks of " (org) "</h1>"
                    "<span class=\"badge\">Organization</span></div>");
                format!("Webhooks of {org}")
            }
            ListPage::OwnNamespace => {
                html!(top, "<p class=\"muted\"><a href=\"/settings\">Account settings</a></p>"
                    "<h1>Webhooks of your repositories</h1>");
                "Your webhooks".to_owned()
            }
            ListPage::Site => {
                html!(
                    top,
                    "<h1>Administration</h1>"[super::admin::admin_tabs("/admin/webhooks")]
                );
                "Site-wide webhooks".to_owned()
            }
        };
        list_page(visitor, &target, top, &title, status, first).await
    }
}

async fn list_of(visitor: Visitor, place: ListPage) -> Response {
    let result = place.render(&visitor, StatusCode::OK, None).await;
    visitor.respond(result)
}

/// `GET /settings/webhooks`.
pub(crate) async fn user_list(visitor: Visitor) -> Response {
    list_of(visitor, ListPage::OwnNamespace).await
}

/// `POST /settings/webhooks`.
pub(crate) async fn user_create(submission: Submission) -> Response {
    create(&submission, ListPage::OwnNamespace).await
}

/// `GET /orgs/{org}/webhooks`.
pub(crate) async fn org_list(visitor: Visitor, Path(org): Path<String>) -> Response {
    list_of(visitor, ListPage::Organization(org)).await
}

/// `POST /orgs/{org}/webhooks`.
pub(crate) async fn org_create(Path(org): Path<String>, submission: Submission) -> Response {
    create(&submission, ListPage::Organization(org)).await
}

/// `GET /admin/webhooks`.
pub(crate) async fn site_list(visitor: Visitor) -> Response {
    list_of(visitor, ListPage::Site).await
}

/// `POST /admin/webhooks`.
pub(crate) async fn site_create(submission: Submission) -> Response {
    create(&submission, ListPage::Site).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(scope: &'static str, target: &str) -> WebhookView {
        WebhookView {
            id: "wh_1".into(),
            scope,
            target: target.into(),
            name: "<b>deploy</b>".into(),
            url: "https://deploy.example/?a=1&b=<2>".into(),
            events: vec!["push", "tag_delete"],
            tags: vec!["v*".into()],
            format: "dockerhub",
            header_name: None,
            enabled: false,
            disabled_reason: Some("disabled after 5 consecutive failed deliveries".into()),
            consecutive_failures: 5,
            created_by: "alice".into(),
            created_at: "2026-12-07T06:00:00Z".into(),
        }
    }

    #[test]
    fn the_list_says_why_a_webhook_is_disabled_and_escapes_what_users_wrote() {
        let out = webhooks_table(&[view("repository", "acme/app")]).into_string();
        assert!(out.contains("Disabled</span>"), "{out}");
        assert!(
            out.contains("disabled after 5 consecutive failed deliveries"),
            "{out}"
        );
        assert!(out.contains("&lt;b&gt;deploy&lt;/b&gt;"), "{out}");
        assert!(out.contains("b=&lt;2&gt;"), "{out}");
        assert!(!out.contains("<b>"), "{out}");
        assert!(out.contains("push, tag_delete") && out.contains("<code>v*</code>"));
    }

    #[test]
    fn views_name_their_targets_back() {
        assert_eq!(target_of(&view("site", "")), WebhookTarget::Site);
        assert_eq!(
            target_of(&view("namespace", "acme")),
            WebhookTarget::Namespace("acme".into())
        );
        assert_eq!(
            target_of(&view("repository", "acme/app")),
            WebhookTarget::Repository("acme/app".parse().unwrap())
        );
    }

    #[test]
    fn the_form_becomes_the_request_the_service_checks() {
        let form = Form::parse(
            b"name=deploy&url=https%3A%2F%2Fh.example%2Fx&events=push&events=tag_delete\
              &tags=v*%2C+latest++1.*&format=cloudevents&header_name=Authorization\
              &header_value=Bearer+t",
        );
        let request = request_of(&form).unwrap();
        assert_eq!(request.name.as_deref(), Some("deploy"));
        assert_eq!(request.url, "https://h.example/x");
        assert_eq!(request.events, ["push", "tag_delete"]);
        assert_eq!(request.tags, ["v*", "latest", "1.*"]);
        assert_eq!(request.format.as_deref(), Some("cloudevents"));
        assert_eq!(
            request.header,
            Some(("Authorization".to_owned(), "Bearer t".to_owned()))
        );

        let unnamed = request_of(&Form::parse(
            b"url=https%3A%2F%2Fh.example&events=push&name=",
        ))
        .unwrap();
        assert_eq!(unnamed.name, None, "the service names it after the host");
        assert_eq!(unnamed.header, None);
        assert!(unnamed.tags.is_empty());

        let message = |body: &[u8]| match request_of(&Form::parse(body)) {
            Err(UiError::Invalid(message)) => message,
            other => panic!("refused as invalid, not {other:?}"),
        };
        assert!(message(b"url=https%3A%2F%2Fh.example").contains("at least one event"));
        assert!(message(b"events=push").contains("URL is required"));
        assert!(
            message(b"url=https%3A%2F%2Fh.example&events=push&header_value=x")
                .contains("needs a header name")
        );
    }

    #[test]
    fn every_event_kind_has_a_label() {
        for event in WebhookEvent::ALL {
            assert_ne!(event_label(event.as_str()), "Other", "{event:?}");
        }
    }
}
