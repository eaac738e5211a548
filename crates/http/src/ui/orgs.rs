//! Organizations: the list and creating one, and an organization's page — its visible
//! repositories (as search results show them) for everyone, its teams for members, and for
//! owners the forms that manage teams, members, team permissions on repositories and
//! organization access tokens, with a link to its webhooks (`webhooks.rs`).

use super::html::{html, url_component, Html};
use super::layout::{button_form, form_start, option, permission_select, short_name};
use super::namespaces::{new_repository_form, repositories_section, usage_section};
use super::session::Notice;
use super::settings::{new_token_panel, revoked_notice, token_form, token_table, TokenFields};
use super::{Submission, UiError, UiResult, Visitor};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::identity::OrgTokenRequest;
use berth_core::ports::{Permission, RepositoryRecord, TeamRecord, OWNERS_TEAM};
use berth_core::Error;
use berth_oci::RepoName;

/// `GET /orgs`: the visitor's organizations (every one for site admins), and a form to
/// create one.
pub(crate) async fn list(visitor: Visitor) -> Response {
    let result = render_list(&visitor).await;
    visitor.respond(result)
}

async fn render_list(visitor: &Visitor) -> UiResult {
    visitor.require_user()?;
    let orgs = visitor.state.identity.list_orgs(&visitor.acting()).await?;
    let mut body = Html::new();
    html!(body, "<h1>Organizations</h1><section class=\"panel\" aria-labelledby=\"orgs-title\"><h2 id=\"orgs-title\">");
    if visitor.is_site_admin() {
        html!(body, "All organizations");
    } else {
        html!(body, "Yours");
    }
    html!(body, "</h2>");
    if orgs.is_empty() {
        html!(
            body,
            "<p class=\"muted\">You are not in any organization yet.</p>"
        );
    } else {
        html!(body, "<ul class=\"repo-list\">");
        for org in &orgs {
            html!(body, "<li><a href=\"/orgs/" (org.name) "\">" (org.name) "</a></li>");
        }
        html!(body, "</ul>");
    }
    html!(body, "</section>"
        "<section class=\"panel\" aria-labelledby=\"new-org-title\"><h2 id=\"new-org-title\">Create an organization</h2>"
        "<p class=\"hint\">You become its first owner. Its name is a namespace, like a username.</p>"
        [form_start(visitor, "/orgs", "inline")]
        "<div class=\"field\"><label for=\"org-name\">Name</label>"
        "<input type=\"text\" id=\"org-name\" name=\"name\" autocapitalize=\"none\" spellcheck=\"false\" required></div>"
        "<button type=\"submit\">Create organization</button></form></section>"
    );
    Ok(visitor.page("Organizations", body))
}

/// `POST /orgs`.
pub(crate) async fn create(submission: Submission) -> Response {
    let result = async {
        let Submission { visitor, form } = &submission;
        let name = form.required("name", "A name")?;
        let org = visitor
            .state
            .identity
            .create_org(&visitor.acting(), name, None)
            .await?;
        Ok::<_, UiError>(org.name)
    }
    .await;
    match result {
        Ok(org) => submission.visitor.redirect(
            &format!("/orgs/{org}"),
            Some(Notice::success(format!(
                "Organization {org} created. You are its owner."
            ))),
        ),
        Err(err) => submission.outcome(Err(err), "/orgs"),
    }
}

/// `GET /orgs/{org}`.
pub(crate) async fn page(visitor: Visitor, Path(org): Path<String>) -> Response {
    let result = render(&visitor, &org, StatusCode::OK, None).await;
    visitor.respond(result)
}

/// What an organization's page shows a member.
struct Membership {
    teams: Vec<(TeamRecord, Vec<String>)>,
    is_owner: bool,
}

async fn render(visitor: &Visitor, org: &str, status: StatusCode, first: Option<Html>) -> UiResult {
    let identity = &visitor.state.identity;
    let acting = visitor.acting();
    let record = identity.org(&acting, org).await?;
    let org = record.name.as_str();
    let base = format!("/orgs/{}", url_component(org));
    let repositories = repositories_section(visitor, org, &base).await?;
    let membership = membership(visitor, org).await?;
    let mut body = Html::new();
    html!(body, "<div class=\"heading-row\"><h1>" (org) "</h1><span class=\"badge\">Organization</span></div>");
    if let Some(first) = first {
        body.fragment(&first);
    }
    body.fragment(&repositories);
    body.fragment(&usage_section(visitor, org).await);
    let Some(membership) = membership else {
        return Ok(visitor.page_with_status(status, org, body));
    };
    body.fragment(&teams_section(visitor, org, &membership));
    if membership.is_owner {
        // Every repository, for the permission form's menu.
        let all = identity.namespace_repositories(&acting, org).await?;
        body.fragment(&new_repository_form(visitor, org));
        body.fragment(&permissions_section(visitor, org, &all, &membership.teams).await?);
        let tokens = identity.list_org_tokens(&acting, org).await?;
        let base = format!("/orgs/{org}/tokens");
        html!(body,
            "<section class=\"panel\" id=\"tokens\" aria-labelledby=\"org-tokens-title\">"
            "<h2 id=\"org-tokens-title\">Organization access tokens</h2>"
            "<p>A token that acts for the organization itself, for CI and other machines; "
            "registry clients sign in with the username <code>" (org) "</code> and the token.</p>"
            [token_form(visitor, &base)]
            "<h3>Tokens</h3>"
            [token_table(visitor, &tokens, &base)]
            "</section>"
            "<section class=\"panel\" id=\"webhooks\" aria-labelledby=\"org-webhooks-title\">"
            "<h2 id=\"org-webhooks-title\">Webhooks</h2>"
            "<p>Webhooks on the organization fire for every one of its repositories.</p>"
            "<p><a href=\"/orgs/" (url_component(org)) "/webhooks\">Manage the organization's webhooks</a></p>"
            "<p><a href=\"/orgs/" (url_component(org)) "/lifecycle\">Immutable tags, retention, trusted keys and pull policy</a></p>"
            "</section>"
        );
    }
    Ok(visitor.page_with_status(status, org, body))
}

/// The teams and their members when the visitor belongs to the organization (or is a site
/// admin); None for everyone else, who sees only repositories.
async fn membership(visitor: &Visitor, org: &str) -> UiResult<Option<Membership>> {
    let identity = &visitor.state.identity;
    let acting = visitor.acting();
    let teams = match identity.list_teams(&acting, org).await {
        Ok(teams) => teams,
        Err(Error::Unauthorized | Error::Denied) => return Ok(None),
        Err(other) => return Err(other.into()),
    };
    let mut with_members = Vec::with_capacity(teams.len());
    for team in teams {
        let members = identity.team_members(&acting, org, &team.name).await?;
        with_members.push((team, members));
    }
    let in_owners_team = with_members.iter().any(|(team, members)| {
        team.name == OWNERS_TEAM
            && visitor
                .user_name()
                .is_some_and(|me| members.iter().any(|m| m == me))
    });
    let is_owner =
        visitor.is_site_admin() || (visitor.principal.limits.is_none() && in_owners_team);
    Ok(Some(Membership {
        teams: with_members,
        is_owner,
    }))
}

fn teams_section(visitor: &Visitor, org: &str, membership: &Membership) -> Html {
    let mut out = Html::new();
    html!(out, "<section class=\"panel\" id=\"teams\" aria-labelledby=\"teams-title\">"
        "<h2 id=\"teams-title\">Teams</h2>");
    for (team, members) in &membership.teams {
        let team_path = format!("/orgs/{org}/teams/{}", url_component(&team.name));
        html!(out, "<h3 id=\"team-" (team.name) "\">" (team.name) "</h3>");
        if !team.description.is_empty() {
            html!(out, "<p class=\"muted\">" (team.description) "</p>");
        }
        if members.is_empty() {
            html!(out, "<p class=\"muted\">No members.</p>");
        } else {
            html!(out, "<ul aria-label=\"Members of " (team.name) "\">");
            for member in members {
                html!(out, "<li><a href=\"/u/" (member) "\">" (member) "</a>");
                if membership.is_owner {
                    html!(
                        out,
                        " "[button_form(
                            visitor,
                            &format!("{team_path}/members/{}/remove", url_component(member)),
                            &format!("Remove {member} from {}", team.name),
                            "link"
                        )]
                    );
                }
                html!(out, "</li>");
            }
            html!(out, "</ul>");
        }
        if membership.is_owner {
            let field = format!("add-{}", team.name);
            html!(out,
                [form_start(visitor, &format!("{team_path}/members"), "inline")]
                "<div class=\"field\"><label for=\"" (field) "\">Add a member to " (team.name) "</label>"
                "<input type=\"text\" id=\"" (field) "\" name=\"user\" placeholder=\"username\" "
                "autocapitalize=\"none\" spellcheck=\"false\" required></div>"
                "<button type=\"submit\" class=\"secondary\">Add to " (team.name) "</button></form>"
            );
            if team.name != OWNERS_TEAM {
                out.fragment(&button_form(
                    visitor,
                    &format!("{team_path}/delete"),
                    &format!("Delete team {}", team.name),
                    "link",
                ));
            }
        }
    }
    if membership.is_owner {
        html!(out,
            "<h3>Create a team</h3>"
            [form_start(visitor, &format!("/orgs/{org}/teams"), "inline")]
            "<div class=\"field\"><label for=\"team-name\">Team name</label>"
            "<input type=\"text\" id=\"team-name\" name=\"name\" autocapitalize=\"none\" spellcheck=\"false\" required></div>"
            "<div class=\"field\"><label for=\"team-description\">Description (optional)</label>"
            "<input type=\"text\" id=\"team-description\" name=\"description\"></div>"
            "<button type=\"submit\">Create team</button></form>"
        );
    }
    html!(out, "</section>");
    out
}

/// Which team holds what on which repository, with the forms to grant and revoke.
async fn permissions_section(
    visitor: &Visitor,
    org: &str,
    repositories: &[RepositoryRecord],
    teams: &[(TeamRecord, Vec<String>)],
) -> UiResult<Html> {
    let identity = &visitor.state.identity;
    let acting = visitor.acting();
    let mut grants: Vec<(String, String, Permission)> = Vec::new();
    for repository in repositories {
        let Ok(repo) = repository.name.parse::<RepoName>() else {
            continue;
        };
        let settings = match identity.repository_settings(&acting, &repo).await {
            Ok(settings) => settings,
            // Deleted since it was listed.
            Err(Error::NameUnknown(_)) => continue,
            Err(other) => return Err(other.into()),
        };
        for (team, permission) in settings.team_grants {
            grants.push((repository.name.clone(), team, permission));
        }
    }
    let mut out = Html::new();
    html!(out, "<section class=\"panel\" id=\"permissions\" aria-labelledby=\"permissions-title\">"
        "<h2 id=\"permissions-title\">Team permissions</h2>"
        "<p>Owners can do everything; other teams can do what they are granted on each repository.</p>");
    if grants.is_empty() {
        html!(
            out,
            "<p class=\"muted\">No team has been granted a repository yet.</p>"
        );
    } else {
        html!(out, "<div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">Repository</th>"
            "<th scope=\"col\">Team</th><th scope=\"col\">Permission</th>"
            "<th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody>");
        for (repository, team, permission) in &grants {
            let mut revoke = form_start(
                visitor,
                &format!("/orgs/{org}/permissions/{}/revoke", url_component(team)),
                "inline",
            );
            html!(revoke,
                "<input type=\"hidden\" name=\"repository\" value=\"" (repository) "\">"
                "<button type=\"submit\" class=\"danger\">Revoke " (team) " on " (short_name(repository, org)) "</button></form>"
            );
            html!(out, "<tr><td><a href=\"/r/" (repository) "\">" (repository) "</a></td>"
                "<td>" (team) "</td><td>" (permission_label(*permission)) "</td><td>" [revoke] "</td></tr>");
        }
        html!(out, "</tbody></table></div>");
    }
    let grantable: Vec<&TeamRecord> = teams
        .iter()
        .map(|(team, _)| team)
        .filter(|team| team.name != OWNERS_TEAM)
        .collect();
    if repositories.is_empty() || grantable.is_empty() {
        html!(out, "<p class=\"hint\">Create a repository and a team (besides owners) to grant permissions.</p></section>");
        return Ok(out);
    }
    html!(out, "<h3>Grant a permission</h3>"
        [form_start(visitor, &format!("/orgs/{org}/permissions"), "inline")]
        "<div class=\"field\"><label for=\"grant-team\">Team</label><select id=\"grant-team\" name=\"team\">");
    for team in grantable {
        out.fragment(&option(&team.name, &team.name, false));
    }
    html!(out, "</select></div><div class=\"field\"><label for=\"grant-repository\">Repository</label>"
        "<select id=\"grant-repository\" name=\"repository\">");
    for repository in repositories {
        out.fragment(&option(&repository.name, &repository.name, false));
    }
    html!(out, "</select></div><div class=\"field\"><label for=\"grant-permission\">Permission</label>"
        [permission_select("grant-permission", "permission")]
        "</div><button type=\"submit\">Grant</button></form></section>");
    Ok(out)
}

/// A section of an organization's page, to come back to after a form.
fn org_page(org: &str, section: &str) -> String {
    format!("/orgs/{}#{section}", url_component(org))
}

pub(crate) fn permission_label(permission: Permission) -> &'static str {
    match permission {
        Permission::Read => "Read-only",
        Permission::Write => "Read & Write",
        Permission::Admin => "Admin",
    }
}

/// `POST /orgs/{org}/teams`.
pub(crate) async fn create_team(Path(org): Path<String>, submission: Submission) -> Response {
    let result = async {
        let Submission { visitor, form } = &submission;
        let name = form.required("name", "A team name")?;
        let team = visitor
            .state
            .identity
            .create_team(&visitor.acting(), &org, name, form.text("description"))
            .await?;
        Ok(Notice::success(format!("Team {} created.", team.name)))
    }
    .await;
    submission.outcome(result, &org_page(&org, "teams"))
}

/// `POST /orgs/{org}/teams/{team}/delete`.
pub(crate) async fn delete_team(
    Path((org, team)): Path<(String, String)>,
    submission: Submission,
) -> Response {
    let visitor = &submission.visitor;
    let result = visitor
        .state
        .identity
        .delete_team(&visitor.acting(), &org, &team)
        .await
        .map(|()| Notice::success(format!("Team {team} deleted.")))
        .map_err(UiError::from);
    submission.outcome(result, &org_page(&org, "teams"))
}

/// `POST /orgs/{org}/teams/{team}/members`.
pub(crate) async fn add_member(
    Path((org, team)): Path<(String, String)>,
    submission: Submission,
) -> Response {
    let result = async {
        let Submission { visitor, form } = &submission;
        let user = form.required("user", "A username")?;
        let added = visitor
            .state
            .identity
            .add_team_member(&visitor.acting(), &org, &team, user)
            .await?;
        Ok(Notice::success(if added {
            format!("{user} added to {team}.")
        } else {
            format!("{user} already is in {team}.")
        }))
    }
    .await;
    submission.outcome(result, &org_page(&org, "teams"))
}

/// `POST /orgs/{org}/teams/{team}/members/{user}/remove`.
pub(crate) async fn remove_member(
    Path((org, team, user)): Path<(String, String, String)>,
    submission: Submission,
) -> Response {
    let visitor = &submission.visitor;
    let result = visitor
        .state
        .identity
        .remove_team_member(&visitor.acting(), &org, &team, &user)
        .await
        .map(|removed| {
            Notice::success(if removed {
                format!("{user} removed from {team}.")
            } else {
                format!("{user} was not in {team}.")
            })
        })
        .map_err(UiError::from);
    submission.outcome(result, &org_page(&org, "teams"))
}

/// The repository a permission form names, in the organization (short or full name).
fn repository_in(org: &str, name: &str) -> UiResult<RepoName> {
    format!("{org}/{}", short_name(name, org))
        .parse()
        .map_err(|e: berth_oci::name::NameError| UiError::Domain(Error::NameInvalid(e.to_string())))
}

/// `POST /orgs/{org}/permissions`.
pub(crate) async fn grant(Path(org): Path<String>, submission: Submission) -> Response {
    let result = async {
        let Submission { visitor, form } = &submission;
        let team = form.required("team", "A team")?;
        let repo = repository_in(&org, form.required("repository", "A repository")?)?;
        let permission: Permission = form.text("permission").parse().map_err(UiError::Invalid)?;
        visitor
            .state
            .identity
            .grant_team(&visitor.acting(), &org, team, &repo, permission)
            .await?;
        Ok(Notice::success(format!(
            "{team} now has {} on {repo}.",
            permission_label(permission)
        )))
    }
    .await;
    submission.outcome(result, &org_page(&org, "permissions"))
}

/// `POST /orgs/{org}/permissions/{team}/revoke`.
pub(crate) async fn revoke_grant(
    Path((org, team)): Path<(String, String)>,
    submission: Submission,
) -> Response {
    let result = async {
        let Submission { visitor, form } = &submission;
        let repo = repository_in(&org, form.required("repository", "A repository")?)?;
        visitor
            .state
            .identity
            .revoke_team(&visitor.acting(), &org, &team, &repo)
            .await?;
        Ok(Notice::success(format!(
            "{team} no longer has access to {repo}."
        )))
    }
    .await;
    submission.outcome(result, &org_page(&org, "permissions"))
}

/// `POST /orgs/{org}/tokens`: the new token's secret is on the answer, once.
pub(crate) async fn create_token(Path(org): Path<String>, submission: Submission) -> Response {
    let visitor = &submission.visitor;
    let result = async {
        let fields = TokenFields::read(&submission)?;
        let request = OrgTokenRequest {
            org: &org,
            label: &fields.label,
            scope: fields.scope,
            repositories: fields.repositories,
            expires_in_days: fields.expires_in_days,
        };
        Ok::<_, UiError>(
            visitor
                .state
                .identity
                .create_org_token(&visitor.acting(), request)
                .await?,
        )
    }
    .await;
    match result {
        Ok(created) => {
            let panel = new_token_panel(visitor, &created, &org);
            let page = render(visitor, &org, StatusCode::CREATED, Some(panel)).await;
            visitor.respond(page)
        }
        Err(err) => submission.outcome(Err(err), &org_page(&org, "tokens")),
    }
}

/// `POST /orgs/{org}/tokens/{id}/revoke`.
pub(crate) async fn revoke_token(
    Path((org, id)): Path<(String, i64)>,
    submission: Submission,
) -> Response {
    let visitor = &submission.visitor;
    let result = visitor
        .state
        .identity
        .revoke_org_token(&visitor.acting(), &org, id)
        .await
        .map(revoked_notice)
        .map_err(UiError::from);
    submission.outcome(result, &org_page(&org, "tokens"))
}
