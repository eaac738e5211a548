//! The start page: what to do first when signed out, and one's own repositories,
//! organizations and the commands to push when signed in.

use super::html::{html, Html};
use super::layout::{copyable, count};
use super::listing::repository_results;
use super::{UiResult, Visitor};
use axum::response::Response;

/// How many of one's repositories (the most recently pushed) the start page lists before
/// linking to the rest.
const HOME_REPOSITORIES: u32 = 10;

/// `GET /`.
pub(crate) async fn page(visitor: Visitor) -> Response {
    let result = render(&visitor).await;
    visitor.respond(result)
}

async fn render(visitor: &Visitor) -> UiResult {
    let host = visitor.registry_host();
    let Some(name) = visitor.user_name() else {
        let mut body = Html::new();
        html!(body,
            "<h1>Berth</h1>"
            "<p class=\"lead\">Container images for your team: public and private repositories, "
            "organizations and teams, access tokens, and every OCI client unmodified.</p>"
            "<p><a class=\"button\" href=\"/login\">Sign in</a> or "
            "<a href=\"/search\">explore public repositories</a>.</p>"
            "<section class=\"panel\" aria-labelledby=\"clients-title\">"
            "<h2 id=\"clients-title\">Use it from your tools</h2>"
            "<p>Public images pull without signing in:</p>"
            [copyable("pull-example", &format!("docker pull {host}/library/alpine"), "Copy the pull command")]
            "<p>Sign in to push:</p>"
            [copyable("login-example", &format!("docker login {host}"), "Copy the login command")]
            "</section>"
        );
        return Ok(visitor.page("Home", body));
    };
    let identity = &visitor.state.identity;
    let acting = visitor.acting();
    let repositories = visitor
        .state
        .hub
        .in_namespace(&visitor.principal, name, 1, HOME_REPOSITORIES)
        .await?;
    let orgs = identity.list_orgs(&acting).await?;
    let mut body = Html::new();
    html!(body, "<h1>Welcome, " (name) "</h1><div class=\"columns\">"
        "<section class=\"panel\" aria-labelledby=\"mine-title\">"
        "<h2 id=\"mine-title\">Your repositories</h2>");
    if repositories.total == 0 {
        html!(
            body,
            "<p class=\"muted\">None yet: push an image to create one.</p>"
        );
    } else {
        body.fragment(&repository_results(&repositories.results, |name| {
            visitor
                .state
                .mirrors
                .mirroring(name)
                .map(|m| m.upstream.as_str())
        }));
    }
    html!(body, "<p><a href=\"/u/" (name) "\">All your repositories (" (count(repositories.total)) ")</a></p></section>"
        "<section class=\"panel\" aria-labelledby=\"orgs-title\">"
        "<h2 id=\"orgs-title\">");
    if visitor.is_site_admin() {
        html!(body, "Organizations");
    } else {
        html!(body, "Your organizations");
    }
    html!(body, "</h2>");
    if orgs.is_empty() {
        html!(body, "<p class=\"muted\">None yet.</p>");
    } else {
        html!(body, "<ul>");
        for org in &orgs {
            html!(body, "<li><a href=\"/orgs/" (org.name) "\">" (org.name) "</a></li>");
        }
        html!(body, "</ul>");
    }
    html!(body, "<p><a href=\"/orgs\">Create an organization</a></p></section></div>"
        "<section class=\"panel\" aria-labelledby=\"push-title\">"
        "<h2 id=\"push-title\">Push an image</h2>"
        "<p>Sign in with your username and password, or with an "
        "<a href=\"/settings#tokens\">access token</a> (required once two-factor authentication is on):</p>"
        [copyable("login-command", &format!("docker login {host} -u {name}"), "Copy the login command")]
        "<p>Tag an image with your namespace, then push it:</p>"
        [copyable("tag-command", &format!("docker tag my-image {host}/{name}/my-image:latest"), "Copy the tag command")]
        [copyable("push-command", &format!("docker push {host}/{name}/my-image:latest"), "Copy the push command")]
        "</section>"
    );
    Ok(visitor.page("Home", body))
}
