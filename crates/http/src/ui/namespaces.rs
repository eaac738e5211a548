//! Namespace pages: a user's repositories the visitor may see, as search results show
//! them, a page at a time, and creating a repository in a namespace one administers.

use super::html::{html, url_component, Html};
use super::layout::{form_start, short_name};
use super::listing::{page_parameter, pagination, repository_results, result_count, PAGE_SIZE};
use super::session::Notice;
use super::{Submission, UiError, UiResult, Visitor};
use axum::extract::Path;
use axum::response::Response;
use berth_core::lifecycle::format_size;
use berth_core::Error;
use berth_oci::RepoName;

/// `GET /u/{name}?page=`: a user's namespace; an organization's lives at `/orgs/{name}`.
pub(crate) async fn user_page(visitor: Visitor, Path(name): Path<String>) -> Response {
    let result = render_user(&visitor, &name).await;
    visitor.respond(result)
}

async fn render_user(visitor: &Visitor, name: &str) -> UiResult {
    let identity = &visitor.state.identity;
    let acting = visitor.acting();
    if identity.org(&acting, name).await.is_ok() {
        return Ok(visitor.redirect(&format!("/orgs/{name}"), None));
    }
    let repositories =
        repositories_section(visitor, name, &format!("/u/{}", url_component(name))).await?;
    let mut body = Html::new();
    html!(body, "<div class=\"heading-row\"><h1>" (name) "</h1><span class=\"badge\">User</span></div>"
        [repositories]);
    body.fragment(&usage_section(visitor, name).await);
    let administers = visitor.user_name() == Some(name) || visitor.is_site_admin();
    if administers {
        body.fragment(&new_repository_form(visitor, name));
    }
    Ok(visitor.page(name, body))
}

/// A namespace's repositories the visitor may see, a page at a time (the `page` parameter
/// of this request), each as search results show it; `base` is the namespace page's path.
pub(crate) async fn repositories_section(
    visitor: &Visitor,
    namespace: &str,
    base: &str,
) -> UiResult<Html> {
    let query = visitor.here.split_once('?').map_or("", |(_, query)| query);
    let page = page_parameter(query).map_err(UiError::Invalid)?;
    let found = visitor
        .state
        .hub
        .in_namespace(&visitor.principal, namespace, page, PAGE_SIZE)
        .await?;
    let mut out = Html::new();
    html!(out, "<section class=\"panel\" id=\"repositories\" aria-labelledby=\"repos-title\">"
        "<h2 id=\"repos-title\">Repositories</h2>");
    if found.total == 0 {
        html!(out, "<p class=\"muted\">No repositories to show.</p>");
    } else {
        html!(out, "<p class=\"muted\" id=\"repository-count\">" (result_count(found.total))
            " · most recently pushed first</p>");
    }
    let href = |page: u32| {
        if page > 1 {
            format!("{base}?page={page}")
        } else {
            base.to_owned()
        }
    };
    html!(out, [repository_results(&found.results, |name| {
            visitor.state.mirrors.mirroring(name).map(|m| m.upstream.as_str())
        })]
        [pagination("Repository pages", page, found.total, PAGE_SIZE, href)]
        "</section>");
    Ok(out)
}

/// The space the namespace uses and its quota, for those who may see it (site admins and
/// the namespace's owners); nothing for anyone else.
pub(crate) async fn usage_section(visitor: &Visitor, namespace: &str) -> Html {
    let mut out = Html::new();
    let Ok(usage) = visitor
        .state
        .usage
        .namespace(&visitor.acting(), namespace)
        .await
    else {
        return out;
    };
    html!(out, "<section class=\"panel\" id=\"usage\" aria-labelledby=\"usage-title\">"
        "<h2 id=\"usage-title\">Storage</h2><p id=\"usage-text\">Uses "
        (format_size(usage.bytes)));
    match usage.quota {
        Some(quota) => {
            let percent = (usage.bytes as u128 * 100)
                .checked_div(quota as u128)
                .unwrap_or(100);
            html!(out, " of its " (format_size(quota)) " quota (" (percent.to_string()) " %).");
            if usage.bytes >= quota {
                html!(
                    out,
                    " Pushes that add content are refused until space is freed."
                );
            }
        }
        None => html!(out, "; no quota."),
    }
    html!(
        out,
        "</p><p class=\"hint\">A layer shared by several repositories counts once.</p>"
    );
    if visitor.is_site_admin() {
        // As `parse_quota` reads it back: whole units, else bytes.
        let current = match usage.quota {
            None => "none".to_owned(),
            Some(quota) => match format_size(quota).replace(' ', "") {
                whole if !whole.contains('.') => whole,
                _ => quota.to_string(),
            },
        };
        html!(out, [form_start(visitor, &format!("/admin/quotas/{}", url_component(namespace)), "inline")]
            "<div class=\"field\"><label for=\"quota-field\">Quota (a size such as 10GiB, or none)</label>"
            "<input type=\"text\" id=\"quota-field\" name=\"quota\" value=\"" (current)
            "\" autocapitalize=\"none\" spellcheck=\"false\" required></div>"
            "<button type=\"submit\">Set the quota</button></form>");
    }
    html!(out, "</section>");
    out
}

/// The form that creates an empty repository in `namespace` (a push creates one too).
pub(crate) fn new_repository_form(visitor: &Visitor, namespace: &str) -> Html {
    let mut out = Html::new();
    html!(out,
        "<section class=\"panel\" aria-labelledby=\"new-repo-title\">"
        "<h2 id=\"new-repo-title\">Create a repository</h2>"
        "<p class=\"hint\">Pushing to a new name creates the repository too; creating it first "
        "lets you choose its visibility before anything is in it.</p>"
        [form_start(visitor, "/repositories", "stack")]
        "<input type=\"hidden\" name=\"namespace\" value=\"" (namespace) "\">"
        "<div class=\"field\"><label for=\"new-repo-name\">Name</label>"
        "<p class=\"hint\" id=\"new-repo-hint\">In " (namespace) "/…, lowercase letters, digits and . _ - /</p>"
        "<input type=\"text\" id=\"new-repo-name\" name=\"name\" aria-describedby=\"new-repo-hint\" "
        "autocapitalize=\"none\" spellcheck=\"false\" required></div>"
        "<fieldset><legend>Visibility</legend>"
        "<label><input type=\"radio\" name=\"visibility\" value=\"public\" checked> Public: anyone can pull</label>"
        "<label><input type=\"radio\" name=\"visibility\" value=\"private\"> Private: only people you give access</label>"
        "</fieldset>"
        "<div><button type=\"submit\">Create repository</button></div></form></section>"
    );
    out
}

/// The namespace page a repository belongs to.
pub(crate) async fn namespace_href(visitor: &Visitor, namespace: &str) -> String {
    match visitor
        .state
        .identity
        .org(&visitor.acting(), namespace)
        .await
    {
        Ok(_) => format!("/orgs/{namespace}"),
        Err(_) => format!("/u/{namespace}"),
    }
}

/// `POST /repositories`.
pub(crate) async fn create_repository(submission: Submission) -> Response {
    let form = &submission.form;
    let namespace = form.text("namespace");
    let result = create(&submission, namespace).await;
    match result {
        Ok(repo) => submission.visitor.redirect(
            &format!("/r/{repo}"),
            Some(Notice::success(format!("Repository {repo} created."))),
        ),
        Err(err) => {
            let back = namespace_href(&submission.visitor, namespace).await;
            submission.outcome(Err(err), &back)
        }
    }
}

async fn create(submission: &Submission, namespace: &str) -> UiResult<RepoName> {
    let form = &submission.form;
    let name = form.required("name", "A name")?;
    let name = short_name(name, namespace);
    let repo: RepoName =
        format!("{namespace}/{name}")
            .parse()
            .map_err(|e: berth_oci::name::NameError| {
                UiError::Domain(Error::NameInvalid(e.to_string()))
            })?;
    let private = match form.text("visibility") {
        "private" => true,
        "public" => false,
        _ => return Err(UiError::Invalid("Choose public or private.".to_owned())),
    };
    submission
        .visitor
        .state
        .identity
        .create_repository(&submission.visitor.acting(), &repo, Some(private))
        .await?;
    Ok(repo)
}
