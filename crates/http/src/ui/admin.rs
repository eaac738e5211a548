//! Site administration: users (list, create, grant or revoke site admin, disable, enable, delete), verified publishers and the audit log (site-wide webhooks are in `webhooks.rs`); the services refuse everyone but site admins.

use super::html::{html, url_component, Html};
use super::layout::{form_start, time};
use super::session::Notice;
use super::{Submission, UiError, UiResult, Visitor};
use crate::api::wire::query_text;
use axum::extract::Path;
use axum::response::Response;
use berth_core::identity::MIN_PASSWORD_LEN;
use berth_core::ports::AuditQuery;
use berth_core::Error;

/// Audit records per page.
const AUDIT_PAGE: u32 = 50;

pub(super) fn admin_tabs(current: &str) -> Html {
    let mut out = Html::new();
    html!(
        out,
        "<nav aria-label=\"Administration\"><ul class=\"tabs\">"
    );
    for (href, label) in [
        ("/admin/users", "Users"),
        ("/admin/publishers", "Verified publishers"),
        ("/admin/audit", "Audit log"),
        ("/admin/webhooks", "Webhooks"),
        ("/admin/rate-limits", "Rate limits"),
        ("/admin/replication", "Replication"),
    ] {
        html!(out, "<li><a href=\"" (href) "\"");
        if href == current {
            out.raw(" aria-current=\"page\"");
        }
        html!(out, ">" (label) "</a></li>");
    }
    html!(out, "</ul></nav>");
    out
}

/// `GET /admin/users`.
pub(crate) async fn users(visitor: Visitor) -> Response {
    let result = render_users(&visitor).await;
    visitor.respond(result)
}

async fn render_users(visitor: &Visitor) -> UiResult {
    let accounts = visitor.state.identity.list_users(&visitor.acting()).await?;
    let mut body = Html::new();
    html!(body, "<h1>Administration</h1>" [admin_tabs("/admin/users")]
        "<section class=\"panel\" aria-labelledby=\"users-title\"><h2 id=\"users-title\">Users</h2>"
        "<div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">Username</th>"
        "<th scope=\"col\">Role</th><th scope=\"col\">Status</th><th scope=\"col\">Two-factor</th><th scope=\"col\">Joined</th>"
        "<th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody>");
    for account in &accounts {
        let action = format!("/admin/users/{}/admin", url_component(&account.name));
        html!(body, "<tr><td><a href=\"/u/" (account.name) "\">" (account.name) "</a></td><td>");
        if account.is_admin {
            html!(body, "<span class=\"badge admin\">Site admin</span>");
        } else {
            html!(body, "User");
        }
        html!(body, "</td><td>");
        if account.disabled {
            html!(body, "<span class=\"badge\">Disabled</span>");
        } else {
            html!(body, "Active");
        }
        html!(body, "</td><td>" (if account.totp_enabled { "On" } else { "Off" }) "</td>"
            "<td>" [time(account.created_at)] "</td><td>");
        let mut form = form_start(visitor, &action, "inline");
        if account.is_admin {
            html!(form, "<input type=\"hidden\" name=\"admin\" value=\"revoke\">"
                "<button type=\"submit\" class=\"secondary\">Remove site admin from " (account.name) "</button></form>");
        } else {
            html!(form, "<input type=\"hidden\" name=\"admin\" value=\"grant\">"
                "<button type=\"submit\" class=\"secondary\">Make " (account.name) " a site admin</button></form>");
        }
        html!(body, [form]);
        let status = format!("/admin/users/{}/status", url_component(&account.name));
        let mut form = form_start(visitor, &status, "inline");
        if account.disabled {
            html!(form, "<input type=\"hidden\" name=\"status\" value=\"enable\">"
                "<button type=\"submit\" class=\"secondary\">Enable " (account.name) "</button></form>");
        } else {
            html!(form, "<input type=\"hidden\" name=\"status\" value=\"disable\">"
                "<button type=\"submit\" class=\"secondary\">Disable " (account.name) "</button></form>");
        }
        html!(body, [form] [delete_user_form(visitor, &account.name)] "</td></tr>");
    }
    html!(body, "</tbody></table></div></section>"
        "<section class=\"panel\" aria-labelledby=\"new-user-title\"><h2 id=\"new-user-title\">Create a user</h2>"
        [form_start(visitor, "/admin/users", "stack")]
        "<div class=\"field\"><label for=\"new-username\">Username</label>"
        "<input type=\"text\" id=\"new-username\" name=\"username\" autocomplete=\"off\" "
        "autocapitalize=\"none\" spellcheck=\"false\" required></div>"
        "<div class=\"field\"><label for=\"new-user-password\">Password</label>"
        "<p class=\"hint\" id=\"new-user-password-hint\">At least " (MIN_PASSWORD_LEN) " characters; "
        "the user can change it in their settings.</p>"
        "<input type=\"password\" id=\"new-user-password\" name=\"password\" autocomplete=\"new-password\" "
        "aria-describedby=\"new-user-password-hint\" minlength=\"" (MIN_PASSWORD_LEN) "\" required></div>"
        "<label><input type=\"checkbox\" name=\"admin\" value=\"on\"> Site admin</label>"
        "<div><button type=\"submit\">Create user</button></div></form></section>"
    );
    Ok(visitor.page("Users", body))
}

/// Deleting an account asks for its name typed again, and, to take its repositories with it,
/// a box ticked: nothing is deleted by one stray click.
fn delete_user_form(visitor: &Visitor, name: &str) -> Html {
    let action = format!("/admin/users/{}/delete", url_component(name));
    let id = format!("delete-{}", url_component(name));
    let mut out = Html::new();
    html!(out, "<details class=\"inline\"><summary>Delete " (name) "</summary>"
        [form_start(visitor, &action, "stack")]
        "<p class=\"hint\">Its tokens, sessions and memberships go with it. An account that owns "
        "repositories is kept unless they go too; the last owner of an organization is kept.</p>"
        "<div class=\"field\"><label for=\"" (id) "-confirm\">Type " (name) " to confirm</label>"
        "<input type=\"text\" id=\"" (id) "-confirm\" name=\"confirm\" autocomplete=\"off\" required></div>"
        "<label><input type=\"checkbox\" name=\"force\" value=\"on\"> Delete its repositories too</label>"
        "<div><button type=\"submit\" class=\"danger\">Delete " (name) "</button></div></form></details>");
    out
}

/// `POST /admin/users/{name}/status`: `status=disable` or `status=enable`.
pub(crate) async fn set_status(Path(name): Path<String>, submission: Submission) -> Response {
    let result = async {
        let Submission { visitor, form } = &submission;
        let disable = match form.text("status") {
            "disable" => true,
            "enable" => false,
            _ => return Err(UiError::Invalid("Say disable or enable.".to_owned())),
        };
        let changed = visitor
            .state
            .identity
            .set_disabled(&visitor.acting(), &name, disable)
            .await?;
        Ok(Notice::success(match (disable, changed) {
            (true, true) => {
                format!("{name} is disabled: its password, tokens and sessions no longer work.")
            }
            (true, false) => format!("{name} was already disabled."),
            (false, true) => format!("{name} is enabled again."),
            (false, false) => format!("{name} was not disabled."),
        }))
    }
    .await;
    submission.outcome(result, "/admin/users")
}

/// `POST /admin/users/{name}/delete`: `confirm` must repeat the name; `force=on` deletes
/// the account's repositories with it.
pub(crate) async fn delete_user(Path(name): Path<String>, submission: Submission) -> Response {
    let result = async {
        let Submission { visitor, form } = &submission;
        if form.text("confirm") != name {
            return Err(UiError::Invalid(format!(
                "Type {name} to confirm deleting the account."
            )));
        }
        let deleted = visitor
            .state
            .identity
            .delete_user(&visitor.acting(), &name, form.checked("force"))
            .await?;
        Ok(Notice::success(match deleted.repositories.len() {
            0 => format!("User {name} deleted."),
            n => format!("User {name} deleted, with its {n} repositories."),
        }))
    }
    .await;
    submission.outcome(result, "/admin/users")
}

/// `POST /admin/users`.
pub(crate) async fn create_user(submission: Submission) -> Response {
    let result = async {
        let Submission { visitor, form } = &submission;
        let name = form.required("username", "A username")?;
        let password = form.secret("password", "A password")?;
        let account = visitor
            .state
            .identity
            .create_user(&visitor.acting(), name, password, form.checked("admin"))
            .await?;
        Ok::<_, UiError>(Notice::success(format!("User {} created.", account.name)))
    }
    .await;
    submission.outcome(result, "/admin/users")
}

/// `POST /admin/users/{name}/admin`: `admin=grant` or `admin=revoke`.
pub(crate) async fn set_admin(Path(name): Path<String>, submission: Submission) -> Response {
    let result = async {
        let Submission { visitor, form } = &submission;
        let grant = match form.text("admin") {
            "grant" => true,
            "revoke" => false,
            _ => return Err(UiError::Invalid("Say grant or revoke.".to_owned())),
        };
        visitor
            .state
            .identity
            .set_admin(&visitor.acting(), &name, grant)
            .await?;
        Ok(Notice::success(if grant {
            format!("{name} is a site admin.")
        } else {
            format!("{name} is no longer a site admin.")
        }))
    }
    .await;
    submission.outcome(result, "/admin/users")
}

/// `GET /admin/publishers`: every organization with its verified-publisher mark.
pub(crate) async fn publishers(visitor: Visitor) -> Response {
    let result = render_publishers(&visitor).await;
    visitor.respond(result)
}

async fn render_publishers(visitor: &Visitor) -> UiResult {
    // Everyone else would see their own organizations here: only site admins get the page.
    if !visitor.is_site_admin() {
        visitor.require_user()?;
        return Err(UiError::Domain(Error::Denied));
    }
    let orgs = visitor.state.identity.list_orgs(&visitor.acting()).await?;
    let mut body = Html::new();
    html!(body, "<h1>Administration</h1>" [admin_tabs("/admin/publishers")]
        "<section class=\"panel\" aria-labelledby=\"publishers-title\">"
        "<h2 id=\"publishers-title\">Verified publishers</h2>"
        "<p class=\"hint\">Repositories of a verified organization carry the verified-publisher badge.</p>");
    if orgs.is_empty() {
        html!(
            body,
            "<p class=\"muted\">No organizations yet.</p></section>"
        );
        return Ok(visitor.page("Verified publishers", body));
    }
    html!(body, "<div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">Organization</th>"
        "<th scope=\"col\">Status</th>"
        "<th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody>");
    for org in &orgs {
        let verified = visitor.state.hub.org_verified(&org.name).await?;
        let action = format!("/admin/publishers/{}", url_component(&org.name));
        html!(body, "<tr><td><a href=\"/orgs/" (url_component(&org.name)) "\">" (org.name) "</a></td><td>");
        if verified {
            html!(
                body,
                "<span class=\"badge verified\">Verified publisher</span>"
            );
        } else {
            html!(body, "Not verified");
        }
        html!(body, "</td><td>");
        let mut form = form_start(visitor, &action, "inline");
        if verified {
            html!(form, "<input type=\"hidden\" name=\"verified\" value=\"no\">"
                "<button type=\"submit\" class=\"secondary\">Remove the verified mark from " (org.name) "</button></form>");
        } else {
            html!(form, "<input type=\"hidden\" name=\"verified\" value=\"yes\">"
                "<button type=\"submit\" class=\"secondary\">Mark " (org.name) " verified</button></form>");
        }
        html!(body, [form] "</td></tr>");
    }
    html!(body, "</tbody></table></div></section>");
    Ok(visitor.page("Verified publishers", body))
}

/// `POST /admin/publishers/{org}`: `verified=yes` or `verified=no`.
pub(crate) async fn set_verified(Path(org): Path<String>, submission: Submission) -> Response {
    let result = async {
        let Submission { visitor, form } = &submission;
        let verified = match form.text("verified") {
            "yes" => true,
            "no" => false,
            _ => return Err(UiError::Invalid("Say yes or no.".to_owned())),
        };
        visitor
            .state
            .hub
            .set_verified(&visitor.acting(), &org, verified)
            .await?;
        Ok(Notice::success(if verified {
            format!("{org} is a verified publisher.")
        } else {
            format!("{org} is no longer a verified publisher.")
        }))
    }
    .await;
    submission.outcome(result, "/admin/publishers")
}

/// `POST /admin/quotas/{namespace}`: a site admin sets or lifts a namespace's quota from
/// its page.
pub(crate) async fn set_quota(Path(namespace): Path<String>, submission: Submission) -> Response {
    let result = async {
        let Submission { visitor, form } = &submission;
        let quota = berth_core::lifecycle::parse_quota(form.text("quota"))
            .map_err(|why| UiError::Invalid(format!("Nothing was changed: {why}.")))?;
        let usage = visitor
            .state
            .usage
            .set_quota(&visitor.acting(), &namespace, quota)
            .await?;
        Ok(Notice::success(match usage.quota {
            Some(quota) => format!(
                "The quota of {namespace} is {}; it uses {}.",
                berth_core::lifecycle::format_size(quota),
                berth_core::lifecycle::format_size(usage.bytes)
            ),
            None => format!("{namespace} has no quota now."),
        }))
    }
    .await;
    submission.outcome(result, &format!("/u/{}", url_component(&namespace)))
}

/// `GET /admin/audit?account=&before=`: newest first, a page at a time.
pub(crate) async fn audit(visitor: Visitor) -> Response {
    let result = render_audit(&visitor).await;
    visitor.respond(result)
}

/// How often an entry happened, when identical failures were counted in it.
fn times(count: u32) -> Html {
    let mut out = Html::new();
    if count > 1 {
        html!(out, " <span class=\"muted\">×" (count.to_string()) "</span>");
    }
    out
}

async fn render_audit(visitor: &Visitor) -> UiResult {
    let query = visitor.here.split_once('?').map_or("", |(_, query)| query);
    let account = query_text(query, "account")
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty());
    let before = query_text(query, "before").and_then(|b| b.parse::<i64>().ok());
    let records = visitor
        .state
        .identity
        .audit_records(
            &visitor.acting(),
            AuditQuery {
                account: account.clone(),
                before,
                limit: AUDIT_PAGE,
            },
        )
        .await?;
    let account = account.unwrap_or_default();
    let mut body = Html::new();
    html!(body, "<h1>Administration</h1>" [admin_tabs("/admin/audit")]
        "<section class=\"panel\" aria-labelledby=\"audit-title\"><h2 id=\"audit-title\">Audit log</h2>"
        "<form method=\"get\" action=\"/admin/audit\" class=\"inline\">"
        "<div class=\"field\"><label for=\"audit-account\">Only by or about</label>"
        "<input type=\"text\" id=\"audit-account\" name=\"account\" value=\"" (account) "\" "
        "placeholder=\"a user or organization\" autocapitalize=\"none\" spellcheck=\"false\"></div>"
        "<button type=\"submit\" class=\"secondary\">Filter</button></form>");
    if records.is_empty() {
        html!(body, "<p class=\"muted\">No entries.</p></section>");
        return Ok(visitor.page("Audit log", body));
    }
    html!(body, "<div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">When</th>"
        "<th scope=\"col\">Who</th><th scope=\"col\">Action</th><th scope=\"col\">On</th>"
        "<th scope=\"col\">Details</th><th scope=\"col\">Address</th></tr></thead><tbody>");
    for record in &records {
        let event = &record.event;
        html!(body, "<tr><td>" [time(event.at)] "</td><td>" (event.actor) "</td>"
            "<td><code>" (event.action) "</code>" [times(record.count)] "</td><td>" (event.target) "</td>"
            "<td>" (event.detail.as_deref().unwrap_or_default()) "</td>"
            "<td>" (event.address.as_deref().unwrap_or_default()) "</td></tr>");
    }
    html!(body, "</tbody></table></div>");
    if records.len() == AUDIT_PAGE as usize {
        if let Some(oldest) = records.last() {
            let mut href = format!("/admin/audit?before={}", oldest.id);
            if !account.is_empty() {
                href.push_str(&format!("&account={}", url_component(&account)));
            }
            html!(body, "<p class=\"pagination\"><a href=\"" (href) "\">Older entries</a></p>");
        }
    }
    html!(body, "</section>");
    Ok(visitor.page("Audit log", body))
}
