//! How both metadata backends spell lists and webhook targets in their columns.

use berth_core::webhooks::WebhookTarget;

/// A list stored in one text column, one item a line.
pub(crate) fn join_lines<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The items of a list stored by [`join_lines`]; none for `NULL` or an empty text.
pub(crate) fn split_lines(joined: Option<&str>) -> Vec<String> {
    joined
        .into_iter()
        .flat_map(|all| all.split('\n'))
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A webhook target as the `scope`, `namespace` and `repository` columns hold it.
pub(crate) fn target_columns(target: &WebhookTarget) -> (&'static str, Option<&str>, Option<&str>) {
    match target {
        WebhookTarget::Site => ("site", None, None),
        WebhookTarget::Namespace(namespace) => ("namespace", Some(namespace.as_str()), None),
        WebhookTarget::Repository(repo) => ("repository", repo.namespace(), Some(repo.as_str())),
    }
}

/// The target the `scope`, `namespace` and `repository` columns name; `None` when they
/// are broken.
pub(crate) fn target_of_columns(
    scope: &str,
    namespace: Option<String>,
    repository: Option<String>,
) -> Option<WebhookTarget> {
    match scope {
        "site" => Some(WebhookTarget::Site),
        "namespace" => namespace.map(WebhookTarget::Namespace),
        _ => repository
            .and_then(|r| r.parse().ok())
            .map(WebhookTarget::Repository),
    }
}
