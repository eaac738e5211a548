//! The API's endpoints in one table, and parsing `/api/...` paths into routes by it.
//!
//! Repository names contain slashes, so a repository's sub-resources follow a `/-/`
//! separator (`/api/v1/repositories/acme/app/api/-/groups`): no name component can be `-`.

use super::error::{ApiError, ApiResult};
use crate::query::decode_component;
use axum::http::Method;
use berth_oci::RepoName;

/// One management endpoint, with the names and ids its path carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/api/openapi.json`: the API's own description.
    OpenApi,
    Login,
    Users,
    User(String),
    TwoFactor(String),
    TwoFactorConfirm(String),
    RecoveryCodes(String),
    AccessTokens,
    AccessToken(i64),
    Orgs,
    Org(String),
    Groups(String),
    Group {
        org: String,
        team: String,
    },
    Members {
        org: String,
        team: String,
    },
    Member {
        org: String,
        team: String,
        user: String,
    },
    OrgTokens(String),
    OrgToken {
        org: String,
        id: i64,
    },
    Namespace(String),
    NamespaceRepositories(String),
    NamespaceUsage(String),
    NamespaceQuota(String),
    RepositoryUsage(RepoName),
    RecomputeUsage,
    Repositories,
    Repository(RepoName),
    RepositoryGroups(RepoName),
    RepositoryGroup(RepoName, String),
    Collaborators(RepoName),
    Collaborator(RepoName, String),
    RepositoryStar(RepoName),
    RepositoryTags(RepoName),
    Search,
    AuditLogs,
    RepositoryWebhooks(RepoName),
    NamespaceWebhooks(String),
    SiteWebhooks,
    Webhook(String),
    WebhookPing(String),
    WebhookDeliveries(String),
    WebhookRedeliver(String, String),
    Events,
    RepositoryImmutable(RepoName),
    NamespaceImmutable(String),
    RepositoryRetention(RepoName),
    NamespaceRetention(String),
    RepositoryRetentionRun(RepoName),
    NamespaceRetentionRun(String),
    RepositoryRetentionRuns(RepoName),
    NamespaceRetentionRuns(String),
    RepositoryTag(RepoName, String),
    RateLimits,
    RatePlan(String),
    RepositoryTrustedKeys(RepoName),
    NamespaceTrustedKeys(String),
    RepositoryTrustedKey(RepoName, String),
    NamespaceTrustedKey(String, String),
    RepositoryPullPolicy(RepoName),
    NamespacePullPolicy(String),
    /// A tag's (or digest's) latest scan findings.
    TagVulnerabilities(RepoName, String),
    Replications,
    Replication(String),
    ReplicationRun(String),
    ReplicationHistory(String),
    BuildSource(RepoName),
    BuildRules(RepoName),
    BuildRule(RepoName, String),
    RepositoryBuilds(RepoName),
    BuildBadge(RepoName),
    Build(String),
    BuildLog(String),
    BuildCancel(String),
    /// A git host's push webhook: the provider's name.
    BuildHook(RepoName, String),
}

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const PATCH: Method = Method::PATCH;
const DELETE: Method = Method::DELETE;

/// One path of the API: its template (as the OpenAPI document names it, parameters in
/// braces), the methods it answers, and how its parameters make a [`Route`].
pub(crate) struct Endpoint {
    pub template: &'static str,
    pub methods: &'static [Method],
    build: fn(&Params) -> ApiResult<Route>,
}

/// Every API endpoint: the parser, the `Allow` lists and the OpenAPI coverage test all read
/// this one table. `{name}` is a repository's full name, slashes included; where two
/// templates match a path, the first one that answers the method wins.
pub(crate) const ENDPOINTS: &[Endpoint] = &[
    endpoint("/api/openapi.json", &[GET], |_| Ok(Route::OpenApi)),
    endpoint("/api/v1/users/login", &[POST], |_| Ok(Route::Login)),
    endpoint("/api/v1/users", &[GET, POST], |_| Ok(Route::Users)),
    endpoint("/api/v1/users/{username}", &[GET, PATCH, DELETE], |p| {
        Ok(Route::User(p.text("username")))
    }),
    endpoint("/api/v1/users/{username}/2fa", &[POST, DELETE], |p| {
        Ok(Route::TwoFactor(p.text("username")))
    }),
    endpoint("/api/v1/users/{username}/2fa/confirm", &[POST], |p| {
        Ok(Route::TwoFactorConfirm(p.text("username")))
    }),
    endpoint(
        "/api/v1/users/{username}/2fa/recovery-codes",
        &[GET, POST],
        |p| Ok(Route::RecoveryCodes(p.text("username"))),
    ),
    endpoint("/api/v1/access-tokens", &[GET, POST], |_| {
        Ok(Route::AccessTokens)
    }),
    endpoint("/api/v1/access-tokens/{id}", &[GET, PATCH, DELETE], |p| {
        Ok(Route::AccessToken(p.token_id()?))
    }),
    endpoint("/api/v1/orgs", &[GET, POST], |_| Ok(Route::Orgs)),
    endpoint("/api/v1/orgs/{org}", &[GET, PATCH], |p| {
        Ok(Route::Org(p.text("org")))
    }),
    endpoint("/api/v1/orgs/{org}/groups", &[GET, POST], |p| {
        Ok(Route::Groups(p.text("org")))
    }),
    endpoint("/api/v1/orgs/{org}/groups/{team}", &[GET, DELETE], |p| {
        Ok(Route::Group {
            org: p.text("org"),
            team: p.text("team"),
        })
    }),
    endpoint(
        "/api/v1/orgs/{org}/groups/{team}/members",
        &[GET, POST],
        |p| {
            Ok(Route::Members {
                org: p.text("org"),
                team: p.text("team"),
            })
        },
    ),
    endpoint(
        "/api/v1/orgs/{org}/groups/{team}/members/{username}",
        &[DELETE],
        |p| {
            Ok(Route::Member {
                org: p.text("org"),
                team: p.text("team"),
                user: p.text("username"),
            })
        },
    ),
    endpoint("/api/v1/orgs/{org}/access-tokens", &[GET, POST], |p| {
        Ok(Route::OrgTokens(p.text("org")))
    }),
    endpoint(
        "/api/v1/orgs/{org}/access-tokens/{id}",
        &[GET, DELETE],
        |p| {
            Ok(Route::OrgToken {
                org: p.text("org"),
                id: p.token_id()?,
            })
        },
    ),
    endpoint("/api/v1/namespaces/{namespace}", &[GET, PATCH], |p| {
        Ok(Route::Namespace(p.text("namespace")))
    }),
    endpoint("/api/v1/namespaces/{namespace}/repositories", &[GET], |p| {
        Ok(Route::NamespaceRepositories(p.text("namespace")))
    }),
    endpoint("/api/v1/namespaces/{namespace}/usage", &[GET], |p| {
        Ok(Route::NamespaceUsage(p.text("namespace")))
    }),
    endpoint("/api/v1/namespaces/{namespace}/quota", &[PUT], |p| {
        Ok(Route::NamespaceQuota(p.text("namespace")))
    }),
    endpoint("/api/v1/usage/recompute", &[POST], |_| {
        Ok(Route::RecomputeUsage)
    }),
    endpoint("/api/v1/repositories", &[POST], |_| Ok(Route::Repositories)),
    endpoint("/api/v1/repositories/{name}", &[GET, PATCH, DELETE], |p| {
        Ok(Route::Repository(p.repo()?))
    }),
    endpoint("/api/v1/repositories/{name}/-/groups", &[GET, POST], |p| {
        Ok(Route::RepositoryGroups(p.repo()?))
    }),
    endpoint(
        "/api/v1/repositories/{name}/-/groups/{team}",
        &[DELETE],
        |p| Ok(Route::RepositoryGroup(p.repo()?, p.text("team"))),
    ),
    endpoint(
        "/api/v1/repositories/{name}/-/collaborators",
        &[GET, POST],
        |p| Ok(Route::Collaborators(p.repo()?)),
    ),
    endpoint(
        "/api/v1/repositories/{name}/-/collaborators/{username}",
        &[DELETE],
        |p| Ok(Route::Collaborator(p.repo()?, p.text("username"))),
    ),
    endpoint("/api/v1/repositories/{name}/-/star", &[PUT, DELETE], |p| {
        Ok(Route::RepositoryStar(p.repo()?))
    }),
    endpoint("/api/v1/repositories/{name}/-/tags", &[GET], |p| {
        Ok(Route::RepositoryTags(p.repo()?))
    }),
    endpoint("/api/v1/repositories/{name}/-/usage", &[GET], |p| {
        Ok(Route::RepositoryUsage(p.repo()?))
    }),
    endpoint("/api/v1/search", &[GET], |_| Ok(Route::Search)),
    endpoint("/api/v1/auditlogs", &[GET], |_| Ok(Route::AuditLogs)),
    endpoint(
        "/api/v1/repositories/{name}/-/webhooks",
        &[GET, POST],
        |p| Ok(Route::RepositoryWebhooks(p.repo()?)),
    ),
    endpoint(
        "/api/v1/namespaces/{namespace}/webhooks",
        &[GET, POST],
        |p| Ok(Route::NamespaceWebhooks(p.text("namespace"))),
    ),
    endpoint("/api/v1/webhooks", &[GET, POST], |_| {
        Ok(Route::SiteWebhooks)
    }),
    endpoint("/api/v1/webhooks/{id}", &[GET, PATCH, DELETE], |p| {
        Ok(Route::Webhook(p.text("id")))
    }),
    endpoint("/api/v1/webhooks/{id}/ping", &[POST], |p| {
        Ok(Route::WebhookPing(p.text("id")))
    }),
    endpoint("/api/v1/webhooks/{id}/deliveries", &[GET], |p| {
        Ok(Route::WebhookDeliveries(p.text("id")))
    }),
    endpoint(
        "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
        &[POST],
        |p| Ok(Route::WebhookRedeliver(p.text("id"), p.text("delivery"))),
    ),
    endpoint("/api/v1/events", &[GET], |_| Ok(Route::Events)),
    endpoint(
        "/api/v1/repositories/{name}/-/immutable",
        &[GET, PUT, DELETE],
        |p| Ok(Route::RepositoryImmutable(p.repo()?)),
    ),
    endpoint(
        "/api/v1/namespaces/{namespace}/immutable",
        &[GET, PUT, DELETE],
        |p| Ok(Route::NamespaceImmutable(p.text("namespace"))),
    ),
    endpoint(
        "/api/v1/repositories/{name}/-/retention",
        &[GET, PUT, DELETE],
        |p| Ok(Route::RepositoryRetention(p.repo()?)),
    ),
    endpoint(
        "/api/v1/namespaces/{namespace}/retention",
        &[GET, PUT, DELETE],
        |p| Ok(Route::NamespaceRetention(p.text("namespace"))),
    ),
    endpoint(
        "/api/v1/repositories/{name}/-/retention/run",
        &[POST],
        |p| Ok(Route::RepositoryRetentionRun(p.repo()?)),
    ),
    endpoint(
        "/api/v1/namespaces/{namespace}/retention/run",
        &[POST],
        |p| Ok(Route::NamespaceRetentionRun(p.text("namespace"))),
    ),
    endpoint(
        "/api/v1/repositories/{name}/-/retention/runs",
        &[GET],
        |p| Ok(Route::RepositoryRetentionRuns(p.repo()?)),
    ),
    endpoint(
        "/api/v1/namespaces/{namespace}/retention/runs",
        &[GET],
        |p| Ok(Route::NamespaceRetentionRuns(p.text("namespace"))),
    ),
    endpoint("/api/v1/repositories/{name}/-/tags/{tag}", &[DELETE], |p| {
        Ok(Route::RepositoryTag(p.repo()?, p.text("tag")))
    }),
    endpoint("/api/v1/rate-limits", &[GET], |_| Ok(Route::RateLimits)),
    endpoint("/api/v1/rate-limits/plans/{account}", &[PUT, DELETE], |p| {
        Ok(Route::RatePlan(p.text("account")))
    }),
    endpoint(
        "/api/v1/repositories/{name}/-/trusted-keys",
        &[GET, POST],
        |p| Ok(Route::RepositoryTrustedKeys(p.repo()?)),
    ),
    endpoint(
        "/api/v1/namespaces/{namespace}/trusted-keys",
        &[GET, POST],
        |p| Ok(Route::NamespaceTrustedKeys(p.text("namespace"))),
    ),
    endpoint(
        "/api/v1/repositories/{name}/-/trusted-keys/{key}",
        &[DELETE],
        |p| Ok(Route::RepositoryTrustedKey(p.repo()?, p.text("key"))),
    ),
    endpoint(
        "/api/v1/namespaces/{namespace}/trusted-keys/{key}",
        &[DELETE],
        |p| {
            Ok(Route::NamespaceTrustedKey(
                p.text("namespace"),
                p.text("key"),
            ))
        },
    ),
    endpoint(
        "/api/v1/repositories/{name}/-/pull-policy",
        &[GET, PUT, DELETE],
        |p| Ok(Route::RepositoryPullPolicy(p.repo()?)),
    ),
    endpoint(
        "/api/v1/namespaces/{namespace}/pull-policy",
        &[GET, PUT, DELETE],
        |p| Ok(Route::NamespacePullPolicy(p.text("namespace"))),
    ),
    endpoint(
        "/api/v1/repositories/{name}/-/tags/{tag}/vulnerabilities",
        &[GET],
        |p| Ok(Route::TagVulnerabilities(p.repo()?, p.text("tag"))),
    ),
    endpoint("/api/v1/replications", &[GET, POST], |_| {
        Ok(Route::Replications)
    }),
    endpoint("/api/v1/replications/{rule}", &[GET, PATCH, DELETE], |p| {
        Ok(Route::Replication(p.text("rule")))
    }),
    endpoint("/api/v1/replications/{rule}/run", &[POST], |p| {
        Ok(Route::ReplicationRun(p.text("rule")))
    }),
    endpoint("/api/v1/replications/{rule}/history", &[GET], |p| {
        Ok(Route::ReplicationHistory(p.text("rule")))
    }),
    endpoint(
        "/api/v1/repositories/{name}/-/build/source",
        &[GET, PUT, DELETE],
        |p| Ok(Route::BuildSource(p.repo()?)),
    ),
    endpoint(
        "/api/v1/repositories/{name}/-/build/rules",
        &[GET, POST],
        |p| Ok(Route::BuildRules(p.repo()?)),
    ),
    endpoint(
        "/api/v1/repositories/{name}/-/build/rules/{id}",
        &[DELETE],
        |p| Ok(Route::BuildRule(p.repo()?, p.text("id"))),
    ),
    endpoint("/api/v1/repositories/{name}/-/builds", &[GET, POST], |p| {
        Ok(Route::RepositoryBuilds(p.repo()?))
    }),
    endpoint(
        "/api/v1/repositories/{name}/-/build/badge.svg",
        &[GET],
        |p| Ok(Route::BuildBadge(p.repo()?)),
    ),
    endpoint("/api/v1/builds/{id}", &[GET], |p| {
        Ok(Route::Build(p.text("id")))
    }),
    endpoint("/api/v1/builds/{id}/log", &[GET], |p| {
        Ok(Route::BuildLog(p.text("id")))
    }),
    endpoint("/api/v1/builds/{id}/cancel", &[POST], |p| {
        Ok(Route::BuildCancel(p.text("id")))
    }),
    endpoint(
        "/api/v1/repositories/{namespace}/{name}/build-hooks/{provider}",
        &[POST],
        |p| Ok(Route::BuildHook(p.repo()?, p.text("provider"))),
    ),
];

const fn endpoint(
    template: &'static str,
    methods: &'static [Method],
    build: fn(&Params) -> ApiResult<Route>,
) -> Endpoint {
    Endpoint {
        template,
        methods,
        build,
    }
}

/// The parameters a path filled into a template: decoded components, and the repository
/// name as written (decoded by [`repository_name`]).
#[derive(Debug, Default)]
pub(crate) struct Params {
    values: Vec<(&'static str, String)>,
}

impl Params {
    fn text(&self, key: &str) -> String {
        self.values
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn repo(&self) -> ApiResult<RepoName> {
        repository_name(&self.text("name"))
    }

    /// Token ids are numbers; anything else names no token.
    fn token_id(&self) -> ApiResult<i64> {
        let text = self.text("id");
        text.parse()
            .map_err(|_| ApiError::NoRoute(format!("access token {:?}", shorten(&text))))
    }
}

/// The parameters of `path` (without `/api/`, trailing slash already removed) if it has
/// the shape of `template`.
fn fill(template: &'static str, path: &str) -> Option<Params> {
    let template = template.strip_prefix("/api/")?;
    let mut params = Params::default();
    // Build hooks name the repository as `{namespace}/{name}` without the `/-/` separator
    // (the path git hosts are given): the name runs up to the last literal segment.
    if let Some((before, after)) = template.split_once("{namespace}/{name}/") {
        let rest = path.strip_prefix(before)?;
        let (literal, template_rest) = after.split_once('/')?;
        let (name, sub) = rest.rsplit_once(&format!("/{literal}/"))?;
        if !name.contains('/') || name.split('/').any(str::is_empty) {
            return None;
        }
        params.values.push(("name", name.to_owned()));
        let mut pieces = template_rest.split('/');
        let mut segments = sub.split('/');
        loop {
            match (pieces.next(), segments.next()) {
                (None, None) => return Some(params),
                (Some(piece), Some(raw)) => {
                    let key = piece.strip_prefix('{')?.strip_suffix('}')?;
                    params.values.push((key, decode_component(raw, false)?));
                }
                _ => return None,
            }
        }
    }
    // The repository name runs up to the `/-/` that starts its sub-resources, if any.
    let (template, path) = match template.split_once("{name}") {
        None => (template, path),
        Some((before, after)) => {
            let rest = path.strip_prefix(before)?;
            let (name, sub) = match rest.split_once("/-/") {
                Some((name, sub)) => (name, Some(sub)),
                None => (rest, None),
            };
            if name.is_empty() {
                return None;
            }
            params.values.push(("name", name.to_owned()));
            match (after.strip_prefix("/-/"), sub) {
                (None, None) if after.is_empty() => return Some(params),
                (Some(template_sub), Some(sub)) => (template_sub, sub),
                _ => return None,
            }
        }
    };
    let mut pieces = template.split('/');
    let mut segments = path.split('/');
    loop {
        match (pieces.next(), segments.next()) {
            (None, None) => return Some(params),
            (Some(piece), Some(raw)) => {
                let value = decode_component(raw, false)?;
                match piece.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(key) => params.values.push((key, value)),
                    None if piece == value => {}
                    None => return None,
                }
            }
            _ => return None,
        }
    }
}

impl Route {
    /// The route for a path under `/api/`, given without that prefix (`v1/users/alice`).
    /// `POST v1/users/login` signs in; any other method on it addresses the user `login`.
    pub(crate) fn parse(rest: &str, method: &Method) -> ApiResult<Route> {
        let no_route = || ApiError::NoRoute(format!("/api/{}", shorten(rest)));
        // Docker Hub's paths end in a slash; accept them with or without.
        let trimmed = rest.strip_suffix('/').unwrap_or(rest);
        let matching = ENDPOINTS
            .iter()
            .filter_map(|endpoint| Some((endpoint, fill(endpoint.template, trimmed)?)));
        let mut fallback = None;
        for (endpoint, params) in matching {
            if endpoint.methods.contains(method) {
                return (endpoint.build)(&params).map_err(|e| hide_path(e, no_route));
            }
            fallback = Some((endpoint, params));
        }
        // No template answers the method: the most general one reports the methods it has.
        match fallback {
            Some((endpoint, params)) => {
                (endpoint.build)(&params).map_err(|e| hide_path(e, no_route))
            }
            None => Err(no_route()),
        }
    }

    /// The methods this route answers.
    pub(crate) fn methods(&self) -> &'static [Method] {
        ENDPOINTS
            .iter()
            .find(|endpoint| endpoint.template == self.template())
            .map_or(&[], |endpoint| endpoint.methods)
    }

    /// The template of this route's entry in [`ENDPOINTS`].
    pub(crate) fn template(&self) -> &'static str {
        match self {
            Route::OpenApi => "/api/openapi.json",
            Route::Login => "/api/v1/users/login",
            Route::Users => "/api/v1/users",
            Route::User(_) => "/api/v1/users/{username}",
            Route::TwoFactor(_) => "/api/v1/users/{username}/2fa",
            Route::TwoFactorConfirm(_) => "/api/v1/users/{username}/2fa/confirm",
            Route::RecoveryCodes(_) => "/api/v1/users/{username}/2fa/recovery-codes",
            Route::AccessTokens => "/api/v1/access-tokens",
            Route::AccessToken(_) => "/api/v1/access-tokens/{id}",
            Route::Orgs => "/api/v1/orgs",
            Route::Org(_) => "/api/v1/orgs/{org}",
            Route::Groups(_) => "/api/v1/orgs/{org}/groups",
            Route::Group { .. } => "/api/v1/orgs/{org}/groups/{team}",
            Route::Members { .. } => "/api/v1/orgs/{org}/groups/{team}/members",
            Route::Member { .. } => "/api/v1/orgs/{org}/groups/{team}/members/{username}",
            Route::OrgTokens(_) => "/api/v1/orgs/{org}/access-tokens",
            Route::OrgToken { .. } => "/api/v1/orgs/{org}/access-tokens/{id}",
            Route::Namespace(_) => "/api/v1/namespaces/{namespace}",
            Route::NamespaceRepositories(_) => "/api/v1/namespaces/{namespace}/repositories",
            Route::NamespaceUsage(_) => "/api/v1/namespaces/{namespace}/usage",
            Route::NamespaceQuota(_) => "/api/v1/namespaces/{namespace}/quota",
            Route::RepositoryUsage(_) => "/api/v1/repositories/{name}/-/usage",
            Route::RecomputeUsage => "/api/v1/usage/recompute",
            Route::Repositories => "/api/v1/repositories",
            Route::Repository(_) => "/api/v1/repositories/{name}",
            Route::RepositoryGroups(_) => "/api/v1/repositories/{name}/-/groups",
            Route::RepositoryGroup(..) => "/api/v1/repositories/{name}/-/groups/{team}",
            Route::Collaborators(_) => "/api/v1/repositories/{name}/-/collaborators",
            Route::Collaborator(..) => "/api/v1/repositories/{name}/-/collaborators/{username}",
            Route::RepositoryStar(_) => "/api/v1/repositories/{name}/-/star",
            Route::RepositoryTags(_) => "/api/v1/repositories/{name}/-/tags",
            Route::Search => "/api/v1/search",
            Route::AuditLogs => "/api/v1/auditlogs",
            Route::RepositoryWebhooks(_) => "/api/v1/repositories/{name}/-/webhooks",
            Route::NamespaceWebhooks(_) => "/api/v1/namespaces/{namespace}/webhooks",
            Route::SiteWebhooks => "/api/v1/webhooks",
            Route::Webhook(_) => "/api/v1/webhooks/{id}",
            Route::WebhookPing(_) => "/api/v1/webhooks/{id}/ping",
            Route::WebhookDeliveries(_) => "/api/v1/webhooks/{id}/deliveries",
            Route::WebhookRedeliver(..) => "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
            Route::Events => "/api/v1/events",
            Route::RepositoryImmutable(_) => "/api/v1/repositories/{name}/-/immutable",
            Route::NamespaceImmutable(_) => "/api/v1/namespaces/{namespace}/immutable",
            Route::RepositoryRetention(_) => "/api/v1/repositories/{name}/-/retention",
            Route::NamespaceRetention(_) => "/api/v1/namespaces/{namespace}/retention",
            Route::RepositoryRetentionRun(_) => "/api/v1/repositories/{name}/-/retention/run",
            Route::NamespaceRetentionRun(_) => "/api/v1/namespaces/{namespace}/retention/run",
            Route::RepositoryRetentionRuns(_) => "/api/v1/repositories/{name}/-/retention/runs",
            Route::NamespaceRetentionRuns(_) => "/api/v1/namespaces/{namespace}/retention/runs",
            Route::RepositoryTag(..) => "/api/v1/repositories/{name}/-/tags/{tag}",
            Route::RateLimits => "/api/v1/rate-limits",
            Route::RatePlan(_) => "/api/v1/rate-limits/plans/{account}",
            Route::RepositoryTrustedKeys(_) => "/api/v1/repositories/{name}/-/trusted-keys",
            Route::NamespaceTrustedKeys(_) => "/api/v1/namespaces/{namespace}/trusted-keys",
            Route::RepositoryTrustedKey(..) => "/api/v1/repositories/{name}/-/trusted-keys/{key}",
            Route::NamespaceTrustedKey(..) => "/api/v1/namespaces/{namespace}/trusted-keys/{key}",
            Route::RepositoryPullPolicy(_) => "/api/v1/repositories/{name}/-/pull-policy",
            Route::NamespacePullPolicy(_) => "/api/v1/namespaces/{namespace}/pull-policy",
            Route::TagVulnerabilities(..) => {
                "/api/v1/repositories/{name}/-/tags/{tag}/vulnerabilities"
            }
            Route::Replications => "/api/v1/replications",
            Route::Replication(_) => "/api/v1/replications/{rule}",
            Route::ReplicationRun(_) => "/api/v1/replications/{rule}/run",
            Route::ReplicationHistory(_) => "/api/v1/replications/{rule}/history",
            Route::BuildSource(_) => "/api/v1/repositories/{name}/-/build/source",
            Route::BuildRules(_) => "/api/v1/repositories/{name}/-/build/rules",
            Route::BuildRule(..) => "/api/v1/repositories/{name}/-/build/rules/{id}",
            Route::RepositoryBuilds(_) => "/api/v1/repositories/{name}/-/builds",
            Route::BuildBadge(_) => "/api/v1/repositories/{name}/-/build/badge.svg",
            Route::Build(_) => "/api/v1/builds/{id}",
            Route::BuildLog(_) => "/api/v1/builds/{id}/log",
            Route::BuildCancel(_) => "/api/v1/builds/{id}/cancel",
            Route::BuildHook(..) => {
                "/api/v1/repositories/{namespace}/{name}/build-hooks/{provider}"
            }
        }
    }
}

/// A path that fits a template but names nothing (a token id that is not a number) reports
/// the whole path, as any other unknown path does.
fn hide_path(err: ApiError, no_route: impl Fn() -> ApiError) -> ApiError {
    match err {
        ApiError::NoRoute(_) => no_route(),
        other => other,
    }
}

/// A repository as users write it; a bare name is an official image (`library/NAME`).
pub(crate) fn repository_name(text: &str) -> ApiResult<RepoName> {
    let decoded = text
        .split('/')
        .map(|raw| decode_component(raw, false))
        .collect::<Option<Vec<String>>>()
        .map(|parts| parts.join("/"))
        .ok_or_else(|| ApiError::BadRequest("the repository name has a broken %-escape".into()))?;
    decoded
        .parse::<RepoName>()
        .map(RepoName::with_default_namespace)
        .map_err(|e| berth_core::Error::NameInvalid(e.to_string()).into())
}

fn shorten(text: &str) -> String {
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(path: &str) -> ApiResult<Route> {
        Route::parse(path, &Method::GET)
    }

    fn repo(name: &str) -> RepoName {
        name.parse().unwrap()
    }

    #[test]
    fn build_paths_and_the_hook_path_without_a_dash() {
        let post = |path: &str| Route::parse(path, &Method::POST);
        assert_eq!(
            post("v1/repositories/acme/app/build-hooks/github").unwrap(),
            Route::BuildHook(repo("acme/app"), "github".into())
        );
        assert_eq!(
            post("v1/repositories/acme/team/app/build-hooks/generic").unwrap(),
            Route::BuildHook(repo("acme/team/app"), "generic".into())
        );
        // A bare name is not `{namespace}/{name}`; GET is not a hook.
        assert!(!matches!(
            post("v1/repositories/app/build-hooks/github"),
            Ok(Route::BuildHook(..))
        ));
        assert!(matches!(
            parse("v1/repositories/acme/app/build-hooks/github"),
            Ok(Route::Repository(_)) | Err(_)
        ));
        assert_eq!(
            parse("v1/repositories/acme/app/-/builds").unwrap(),
            Route::RepositoryBuilds(repo("acme/app"))
        );
        assert_eq!(
            parse("v1/repositories/acme/app/-/build/rules/3").unwrap(),
            Route::BuildRule(repo("acme/app"), "3".into())
        );
        assert_eq!(
            parse("v1/builds/9/log").unwrap(),
            Route::BuildLog("9".into())
        );
        for route in [
            Route::BuildHook(repo("acme/app"), "github".into()),
            Route::BuildBadge(repo("acme/app")),
            Route::BuildCancel("1".into()),
        ] {
            assert!(!route.methods().is_empty(), "{route:?} is in the table");
        }
    }

    #[test]
    fn account_and_organization_paths() {
        let cases = [
            ("v1/users", Route::Users),
            ("v1/users/", Route::Users),
            ("v1/users/alice", Route::User("alice".into())),
            ("v1/users/alice/2fa", Route::TwoFactor("alice".into())),
            (
                "v1/users/alice/2fa/confirm",
                Route::TwoFactorConfirm("alice".into()),
            ),
            (
                "v1/users/alice/2fa/recovery-codes",
                Route::RecoveryCodes("alice".into()),
            ),
            ("v1/access-tokens/7", Route::AccessToken(7)),
            (
                "v1/orgs/acme/groups/devs/members/bob",
                Route::Member {
                    org: "acme".into(),
                    team: "devs".into(),
                    user: "bob".into(),
                },
            ),
            (
                "v1/orgs/acme/access-tokens/3",
                Route::OrgToken {
                    org: "acme".into(),
                    id: 3,
                },
            ),
            (
                "v1/namespaces/acme/repositories",
                Route::NamespaceRepositories("acme".into()),
            ),
            ("v1/auditlogs", Route::AuditLogs),
        ];
        for (path, route) in cases {
            assert_eq!(parse(path).unwrap(), route, "{path}");
        }
    }

    #[test]
    fn signing_in_does_not_hide_a_user_named_login() {
        assert_eq!(
            Route::parse("v1/users/login", &Method::POST).unwrap(),
            Route::Login
        );
        assert_eq!(
            Route::parse("v1/users/login", &Method::GET).unwrap(),
            Route::User("login".into())
        );
    }

    #[test]
    fn repositories_take_slashes_and_sub_resources_follow_a_dash() {
        let cases = [
            ("v1/repositories", Route::Repositories),
            (
                "v1/repositories/acme/app",
                Route::Repository(repo("acme/app")),
            ),
            (
                "v1/repositories/acme/app/api/",
                Route::Repository(repo("acme/app/api")),
            ),
            (
                "v1/repositories/nginx",
                Route::Repository(repo("library/nginx")),
            ),
            (
                "v1/repositories/acme/app/api/-/groups",
                Route::RepositoryGroups(repo("acme/app/api")),
            ),
            (
                "v1/repositories/acme/app/-/groups/devs",
                Route::RepositoryGroup(repo("acme/app"), "devs".into()),
            ),
            (
                "v1/repositories/bob/tool/-/collaborators/carol",
                Route::Collaborator(repo("bob/tool"), "carol".into()),
            ),
            (
                "v1/repositories/bob%2Ftool",
                Route::Repository(repo("bob/tool")),
            ),
        ];
        for (path, route) in cases {
            assert_eq!(parse(path).unwrap(), route, "{path}");
        }
    }

    #[test]
    fn unknown_paths_and_bad_names() {
        for path in [
            "",
            "v1",
            "v2/users",
            "v1/nothing",
            "v1/users/a/b",
            "v1/access-tokens/abc",
            "v1/repositories/acme/app/-/stars",
            "v1/repositories/acme/app/-/groups/a/b",
        ] {
            assert!(
                matches!(parse(path), Err(ApiError::NoRoute(_))),
                "{path}: {:?}",
                parse(path)
            );
        }
        assert!(matches!(
            parse("v1/repositories/Acme/App"),
            Err(ApiError::Domain(berth_core::Error::NameInvalid(_)))
        ));
        assert!(matches!(
            parse("v1/repositories/acme/app/-"),
            Err(ApiError::Domain(berth_core::Error::NameInvalid(_)))
        ));
    }

    /// A concrete path for a template (without `/api/`), with sample parameters.
    pub(crate) fn sample_path(template: &str) -> String {
        template
            .trim_start_matches("/api/")
            .replace("{name}", "acme/app/api")
            .replace("{id}", "7")
            .replace(['{', '}'], "")
    }

    #[test]
    fn every_endpoint_parses_back_to_itself_for_each_of_its_methods() {
        for endpoint in ENDPOINTS {
            assert!(!endpoint.methods.is_empty(), "{}", endpoint.template);
            let path = sample_path(endpoint.template);
            for method in endpoint.methods {
                let route = Route::parse(&path, method)
                    .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
                assert_eq!(route.template(), endpoint.template, "{method} {path}");
                assert_eq!(route.methods(), endpoint.methods, "{method} {path}");
            }
        }
        assert_eq!(Route::Repositories.methods(), [Method::POST]);
    }

    mod never_panic {
        use super::super::*;
        use proptest::prelude::*;

        const METHODS: [Method; 5] = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any path under `/api/` and any method: a route or an API error.
            #[test]
            fn any_path_gives_a_route_or_an_error(
                path in "(v1/|[a-z0-9]{1,8}/|-/|%[0-9a-fA-F]{0,2}|\\PC|/){0,16}",
                method in 0..METHODS.len(),
            ) {
                let _ = Route::parse(&path, &METHODS[method]);
            }

            /// An endpoint's path with any names, ids and tags in its parameters parses
            /// back to that endpoint, or is refused for a bad parameter: never another
            /// endpoint.
            #[test]
            fn filled_templates_parse_back_to_their_endpoint(
                endpoint in 0..ENDPOINTS.len(),
                word in "[a-z][a-z0-9_.-]{0,12}",
                id in "[0-9]{1,6}",
            ) {
                let endpoint = &ENDPOINTS[endpoint];
                let filled = fill_words(endpoint.template, &word, &id);
                for method in endpoint.methods {
                    match Route::parse(&filled, method) {
                        Ok(route) => prop_assert_eq!(
                            route.template(),
                            endpoint.template,
                            "{} {}",
                            method,
                            filled
                        ),
                        Err(ApiError::NoRoute(_)) => {
                            prop_assert!(false, "{} {} found no route", method, filled)
                        }
                        // A parameter this endpoint refuses (a name too odd, say).
                        Err(_) => {}
                    }
                }
            }
        }

        /// `template` (without `/api/`) with every `{…}` filled: `{name}` with two words,
        /// ids with `id`, anything else with `word`.
        fn fill_words(template: &str, word: &str, id: &str) -> String {
            template
                .trim_start_matches("/api/")
                .split('/')
                .map(|piece| match piece {
                    "{name}" => format!("{word}/{word}"),
                    "{id}" | "{delivery}" => id.to_owned(),
                    p if p.starts_with('{') => word.to_owned(),
                    p => p.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("/")
        }
    }

    #[test]
    fn hub_paths() {
        assert_eq!(parse("openapi.json").unwrap(), Route::OpenApi);
        assert_eq!(parse("v1/search/").unwrap(), Route::Search);
        assert_eq!(
            Route::parse("v1/repositories/acme/app/api/-/star", &Method::PUT).unwrap(),
            Route::RepositoryStar(repo("acme/app/api"))
        );
        assert_eq!(
            parse("v1/repositories/nginx/-/tags").unwrap(),
            Route::RepositoryTags(repo("library/nginx"))
        );
        assert_eq!(
            Route::Org("acme".into()).methods(),
            [Method::GET, Method::PATCH]
        );
    }
}
