//! Site administration of pull rate limits: the tiers as configured, and the plans of
//! accounts and organizations (set, replace, remove); the service refuses everyone but site
//! admins.

use super::admin::admin_tabs;
use super::html::{html, url_component, Html};
use super::layout::{form_start, time};
use super::session::Notice;
use super::{Submission, UiError, UiResult, Visitor};
use axum::extract::Path;
use axum::response::Response;
use berth_core::ratelimit::{Plan, Rate};
use berth_core::Error;

/// `GET /admin/rate-limits`.
pub(crate) async fn page(visitor: Visitor) -> Response {
    let result = render(&visitor).await;
    visitor.respond(result)
}

fn tier(rate: Option<Rate>) -> String {
    rate.map_or_else(
        || "not limited".to_owned(),
        |r| format!("{} pulls per {} s ({r})", r.pulls, r.window_secs),
    )
}

async fn render(visitor: &Visitor) -> UiResult {
    if !visitor.is_site_admin() {
        visitor.require_user()?;
        return Err(UiError::Domain(Error::Denied));
    }
    let limits = &visitor.state.pull_limits;
    let plans = limits.plans(&visitor.acting()).await?;
    let tiers = limits.tiers();
    let mut body = Html::new();
    html!(body, "<h1>Administration</h1>" [admin_tabs("/admin/rate-limits")]
        "<section class=\"panel\" aria-labelledby=\"tiers-title\">"
        "<h2 id=\"tiers-title\">Pull rate limits</h2>"
        "<p class=\"hint\">Manifest pulls (GET) count; HEAD requests, blobs and the platforms of an "
        "index just pulled do not. Site admins are never limited. Tiers are set in the "
        "configuration file (<code>[rate_limit]</code>).</p>"
        "<dl><dt>Anonymous (per address, IPv6 per /64)</dt><dd>" (tier(tiers.anonymous)) "</dd>"
        "<dt>Signed-in users</dt><dd>" (tier(tiers.authenticated)) "</dd>"
        "<dt>Organizations</dt><dd>" (tier(tiers.organization)) "</dd></dl></section>"
        "<section class=\"panel\" aria-labelledby=\"plans-title\"><h2 id=\"plans-title\">Plans</h2>"
        "<p class=\"hint\">A plan replaces the tier of one account or organization.</p>");
    if plans.is_empty() {
        html!(body, "<p class=\"muted\">No plans yet.</p>");
    } else {
        html!(body, "<div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">Account</th>"
            "<th scope=\"col\">Kind</th><th scope=\"col\">Plan</th><th scope=\"col\">Set</th>"
            "<th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody>");
        for record in &plans {
            let action = format!(
                "/admin/rate-limits/{}/clear",
                url_component(&record.account)
            );
            let kind = if record.is_organization {
                "Organization"
            } else {
                "User"
            };
            let mut form = form_start(visitor, &action, "inline");
            html!(form, "<button type=\"submit\" class=\"secondary\">Remove the plan of "
                (record.account) "</button></form>");
            html!(body, "<tr><td>" (record.account) "</td><td>" (kind) "</td><td>"
                (record.plan.to_string()) "</td><td>" [time(record.updated_at)] " by "
                (record.updated_by) "</td><td>" [form] "</td></tr>");
        }
        html!(body, "</tbody></table></div>");
    }
    html!(body, "</section>"
        "<section class=\"panel\" aria-labelledby=\"new-plan-title\"><h2 id=\"new-plan-title\">Set a plan</h2>"
        [form_start(visitor, "/admin/rate-limits", "stack")]
        "<div class=\"field\"><label for=\"plan-account\">User or organization</label>"
        "<input type=\"text\" id=\"plan-account\" name=\"account\" autocomplete=\"off\" "
        "autocapitalize=\"none\" spellcheck=\"false\" required></div>"
        "<div class=\"field\"><label for=\"plan-limit\">Plan</label>"
        "<p class=\"hint\" id=\"plan-limit-hint\"><code>unlimited</code>, or <code>N;w=S</code> for N "
        "pulls per S seconds, e.g. <code>500;w=21600</code>.</p>"
        "<input type=\"text\" id=\"plan-limit\" name=\"plan\" autocomplete=\"off\" "
        "aria-describedby=\"plan-limit-hint\" required></div>"
        "<div><button type=\"submit\">Set plan</button></div></form></section>");
    Ok(visitor.page("Rate limits", body))
}

/// `POST /admin/rate-limits`: `account` and `plan`.
pub(crate) async fn set(submission: Submission) -> Response {
    let result = async {
        let Submission { visitor, form } = &submission;
        let account = form.required("account", "A user or organization")?;
        let raw = form.required("plan", "A plan")?;
        let plan = Plan::parse(raw).map_err(|e| UiError::Invalid(format!("Plan: {e}.")))?;
        visitor
            .state
            .pull_limits
            .set_plan(&visitor.acting(), account, plan)
            .await?;
        Ok::<_, UiError>(Notice::success(format!("The plan of {account} is {plan}.")))
    }
    .await;
    submission.outcome(result, "/admin/rate-limits")
}

/// `POST /admin/rate-limits/{account}/clear`.
pub(crate) async fn clear(Path(account): Path<String>, submission: Submission) -> Response {
    let result = async {
        let Submission { visitor, .. } = &submission;
        let cleared = visitor
            .state
            .pull_limits
            .clear_plan(&visitor.acting(), &account)
            .await?;
        Ok::<_, UiError>(Notice::success(match cleared {
            true => format!("{account} has no plan now: its tier applies."),
            false => format!("{account} had no plan."),
        }))
    }
    .await;
    submission.outcome(result, "/admin/rate-limits")
}
