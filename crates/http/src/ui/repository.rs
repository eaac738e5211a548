//! Repository pages under `/r/{namespace}/{name}`: the overview (visibility, pull command,
//! tags) for anyone who may pull, and `/-/settings` for its admins (visibility,
//! collaborators or team permissions, deletion). `-` cannot be a repository path component,
//! so `/-/` always separates the repository from the page.

use super::html::{html, url_component, Html};
use super::layout::{
    button_form, copyable, form_start, option, permission_select, visibility_badge,
};
use super::namespaces::namespace_href;
use super::orgs::permission_label;
use super::session::Notice;
use super::{Submission, UiError, UiResult, Visitor};
use axum::extract::Path;
use axum::response::Response;
use berth_core::access::{Action, Resource};
use berth_core::ports::Permission;
use berth_core::Error;
use berth_oci::RepoName;

/// Tags the overview lists; the Hub's tags view pages through the rest.
const TAGS_SHOWN: u32 = 100;

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
        match target.page.as_deref() {
            None => overview(&visitor, &target.repo).await,
            Some("settings") => settings(&visitor, &target.repo).await,
            Some(_) => Err(Error::NotFound(path.clone()).into()),
        }
    }
    .await;
    visitor.respond(result)
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

/// The page header every repository page shares: name, visibility, tabs.
async fn heading(
    visitor: &Visitor,
    repo: &RepoName,
    is_private: bool,
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
        [visibility_badge(is_private)] "</div>"
        "<nav aria-label=\"Repository\"><ul class=\"tabs\">"
        [tab(&format!("/r/{repo}"), "Overview", current == "overview")]);
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
    let state = &visitor.state;
    // Read permission or NameUnknown: a hidden repository is a missing one.
    let record = state.identity.repository(&visitor.acting(), repo).await?;
    let tags = state
        .registry
        .list_tags(repo, None, Some(TAGS_SHOWN))
        .await?;
    let can = abilities(visitor, repo).await?;
    let host = visitor.registry_host();
    let mut body = heading(visitor, repo, record.is_private, can.admin, "overview").await;
    // The Hub adds here: badges, short description, stars, pulls and the rendered README.
    let default_tag = tags
        .items
        .iter()
        .find(|tag| *tag == "latest")
        .or(tags.items.first());
    html!(
        body,
        "<section class=\"panel\" aria-labelledby=\"pull-title\"><h2 id=\"pull-title\">Pull</h2>"
    );
    match default_tag {
        Some(tag) => {
            body.fragment(&copyable(
                "pull-command",
                &format!("docker pull {host}/{repo}:{tag}"),
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
        "<h2 id=\"tags-title\">Tags</h2>");
    if tags.items.is_empty() {
        html!(body, "<p class=\"muted\">No tags yet.</p>");
    } else {
        html!(body, "<div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">Tag</th>"
            "<th scope=\"col\">Pull command</th></tr></thead><tbody>");
        for (index, tag) in tags.items.iter().enumerate() {
            html!(body, "<tr><td><code>" (tag) "</code></td><td>"
                [copyable(&format!("pull-tag-{index}"), &format!("docker pull {host}/{repo}:{tag}"),
                    &format!("Copy the pull command for {tag}"))]
                "</td></tr>");
        }
        html!(body, "</tbody></table></div>");
        if tags.next.is_some() {
            html!(body, "<p class=\"hint\">Showing the first " (TAGS_SHOWN) " tags.</p>");
        }
    }
    html!(body, "</section>");
    Ok(visitor.page(repo.as_str(), body))
}

async fn settings(visitor: &Visitor, repo: &RepoName) -> UiResult {
    let identity = &visitor.state.identity;
    let acting = visitor.acting();
    let settings = identity.repository_settings(&acting, repo).await?;
    let namespace = repo.namespace().unwrap_or_default();
    let is_org = identity.org(&acting, namespace).await.is_ok();
    let is_private = settings.repository.is_private;
    let base = format!("/r/{repo}/-/settings");
    let mut body = heading(visitor, repo, is_private, true, "settings").await;
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
    let page = target.page.as_deref().unwrap_or_default();
    let parts: Vec<&str> = page.split('/').collect();
    let result = match parts.as_slice() {
        ["settings", "visibility"] => set_visibility(&submission, repo).await,
        ["settings", "collaborators"] => add_collaborator(&submission, repo).await,
        ["settings", "collaborators", user, "revoke"] => {
            remove_collaborator(&submission, repo, user).await
        }
        ["settings", "teams"] => grant_team(&submission, repo).await,
        ["settings", "teams", team, "revoke"] => revoke_team(&submission, repo, team).await,
        ["delete"] => return delete(&submission, repo).await,
        _ => return submission.visitor.not_found(),
    };
    submission.outcome(result, &back)
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
