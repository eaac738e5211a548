//! The tag detail page `/r/{repo}/-/tags/{tag}[?digest=]`: the manifest, its layers and image configuration, or an index's platforms.

use super::html::{html, url_component, Html};
use super::layout::human_size;
use super::repository::heading;
use super::{UiError, UiResult, Visitor};
use crate::api::wire::query_text;
use berth_core::access::{Action, Resource};
use berth_core::ports::collect_at_most;
use berth_core::Error;
use berth_oci::{Digest, Reference, RepoName, Tag};
use serde_json::Value;

/// Image configurations are a few kilobytes; a larger one is not shown rather than buffered.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// What a page shows of an image configuration.
#[derive(Debug, Default, PartialEq, Eq)]
struct ImageConfig {
    platform: String,
    env: Vec<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    labels: Vec<(String, String)>,
}

impl ImageConfig {
    fn from_json(config: &Value) -> ImageConfig {
        let strings = |value: &Value| -> Vec<String> {
            value
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| item.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let runtime = &config["config"];
        let labels = runtime["Labels"]
            .as_object()
            .map(|labels| {
                labels
                    .iter()
                    .map(|(key, value)| {
                        (key.clone(), value.as_str().unwrap_or_default().to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        ImageConfig {
            platform: platform_of(config),
            env: strings(&runtime["Env"]),
            entrypoint: strings(&runtime["Entrypoint"]),
            cmd: strings(&runtime["Cmd"]),
            labels,
        }
    }
}

/// `os/architecture[/variant]` of a configuration or an index entry's `platform`.
fn platform_of(value: &Value) -> String {
    let part = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
    let mut name = format!("{}/{}", part("os"), part("architecture"));
    if let Some(variant) = value["variant"].as_str() {
        name.push('/');
        name.push_str(variant);
    }
    name
}

/// `GET /r/{repo}/-/tags/{tag}`; `?digest=` picks one platform's manifest of an index.
pub(super) async fn page(visitor: &Visitor, repo: &RepoName, tag: &str) -> UiResult {
    // Read permission or NameUnknown: a hidden repository is a missing one.
    let view = visitor
        .state
        .hub
        .repository(&visitor.principal, repo)
        .await?;
    let missing = || UiError::Domain(Error::NotFound(tag.to_owned()));
    let parsed: Tag = tag.parse().map_err(|_| missing())?;
    let query = visitor.here.split_once('?').map_or("", |(_, query)| query);
    let reference = match query_text(query, "digest") {
        Some(digest) => Reference::Digest(digest.parse::<Digest>().map_err(|_| missing())?),
        None => Reference::Tag(parsed),
    };
    let registry = &visitor.state.registry;
    let record = match registry.get_manifest(repo, &reference).await {
        Ok(record) => record,
        Err(Error::ManifestUnknown(_)) => return Err(missing()),
        Err(other) => return Err(other.into()),
    };
    let admin = visitor
        .state
        .auth
        .authorizer()
        .actions(&visitor.principal, &Resource::Repository(repo.clone()))
        .await?
        .contains(Action::Delete);
    let manifest: Value = serde_json::from_slice(&record.body).unwrap_or(Value::Null);
    let signature = visitor
        .state
        .signatures
        .states(repo, std::slice::from_ref(&record.digest))
        .await?
        .remove(&record.digest)
        .unwrap_or_else(berth_core::signatures::ImageSignature::unsigned);
    let mut body = heading(visitor, repo, &view.info, admin, "tags").await;
    let tag_href = format!("/r/{repo}/-/tags/{}", url_component(tag));
    html!(body, "<section class=\"panel\" id=\"tag-summary\" aria-labelledby=\"tag-title\">"
        "<h2 id=\"tag-title\">" (repo) ":" (tag) "</h2><dl>"
        "<dt>Digest</dt><dd><code id=\"manifest-digest\">" (record.digest) "</code></dd>"
        "<dt>Media type</dt><dd><code>" (record.media_type) "</code></dd>"
        "<dt>Signature</dt><dd id=\"signature-state\">" [super::repository::signature_badge(&signature)] "</dd></dl>");
    if matches!(reference, Reference::Digest(_)) {
        html!(body, "<p><a href=\"" (tag_href) "\">Back to the tag</a></p>");
    }
    html!(body, "</section>");
    body.fragment(&vulnerabilities_section(visitor, repo, &reference).await?);
    if let Some(platforms) = manifest["manifests"].as_array() {
        html!(body, "<section class=\"panel\" id=\"platforms\" aria-labelledby=\"platforms-title\">"
            "<h2 id=\"platforms-title\">Platforms</h2><div class=\"table-wrap\"><table><thead><tr>"
            "<th scope=\"col\">Platform</th><th scope=\"col\">Digest</th><th scope=\"col\">Size</th>"
            "</tr></thead><tbody>");
        for entry in platforms {
            let digest = entry["digest"].as_str().unwrap_or_default();
            let href = format!("{tag_href}?digest={}", url_component(digest));
            html!(body, "<tr><td><a href=\"" (href) "\">" (platform_of(&entry["platform"])) "</a></td>"
                "<td><code>" (digest) "</code></td>"
                "<td>" (human_size(entry["size"].as_u64().unwrap_or_default())) "</td></tr>");
        }
        html!(body, "</tbody></table></div></section>");
    }
    if let Some(layers) = manifest["layers"].as_array() {
        html!(body, "<section class=\"panel\" id=\"layers\" aria-labelledby=\"layers-title\">"
            "<h2 id=\"layers-title\">Layers</h2><div class=\"table-wrap\"><table><thead><tr>"
            "<th scope=\"col\">Digest</th><th scope=\"col\">Media type</th><th scope=\"col\">Size</th>"
            "</tr></thead><tbody>");
        for layer in layers {
            html!(body, "<tr><td><code>" (layer["digest"].as_str().unwrap_or_default()) "</code></td>"
                "<td><code>" (layer["mediaType"].as_str().unwrap_or_default()) "</code></td>"
                "<td>" (human_size(layer["size"].as_u64().unwrap_or_default())) "</td></tr>");
        }
        html!(body, "</tbody></table></div></section>");
    }
    if let Some(config) = manifest["config"]["digest"]
        .as_str()
        .and_then(|d| d.parse::<Digest>().ok())
    {
        body.fragment(&config_section(visitor, repo, &config).await?);
    }
    let pretty = serde_json::to_string_pretty(&manifest)
        .ok()
        .filter(|_| !manifest.is_null())
        .unwrap_or_else(|| String::from_utf8_lossy(&record.body).into_owned());
    html!(body, "<section class=\"panel\" id=\"manifest\" aria-labelledby=\"manifest-title\">"
        "<h2 id=\"manifest-title\">Manifest</h2><pre><code>" (pretty) "</code></pre></section>");
    Ok(visitor.page(&format!("{repo}:{tag}"), body))
}

/// The latest scan of the image (or of each scanned image of an index): its findings.
async fn vulnerabilities_section(
    visitor: &Visitor,
    repo: &RepoName,
    reference: &Reference,
) -> UiResult<Html> {
    let scans = visitor
        .state
        .hub
        .scans(&visitor.principal, repo, reference)
        .await?;
    let mut out = Html::new();
    html!(out, "<section class=\"panel\" id=\"vulnerabilities\" aria-labelledby=\"vulnerabilities-title\">"
        "<h2 id=\"vulnerabilities-title\">Vulnerabilities</h2>");
    if scans.is_empty() {
        html!(out, "<p class=\"muted\">Not scanned yet.</p></section>");
        return Ok(out);
    }
    for scan in &scans {
        let summary = berth_core::ports::VulnerabilitySummary::of(scan.counts, scan.scanned_at);
        html!(out, "<p><code>" (scan.digest) "</code>: " (scan.os.as_deref().unwrap_or("unknown OS")) ", "
            (scan.packages) " packages: " [super::repository::vulnerability_counts(Some(&summary))] "</p>");
        if !scan.findings.is_empty() {
            html!(out, "<div class=\"table-wrap\"><table><thead><tr>"
                "<th scope=\"col\">Severity</th><th scope=\"col\">Package</th><th scope=\"col\">Installed</th>"
                "<th scope=\"col\">Advisory</th><th scope=\"col\">Fixed in</th></tr></thead><tbody>");
            for f in &scan.findings {
                html!(out, "<tr><td>" (f.severity.as_str()) "</td><td>" (f.package) "</td><td><code>"
                    (f.installed_version) "</code></td><td title=\"" (f.summary) "\">" (f.advisory) "</td><td>"
                    (f.fixed_version.as_deref().unwrap_or("not fixed")) "</td></tr>");
            }
            html!(out, "</tbody></table></div>");
        }
        for warning in &scan.warnings {
            html!(out, "<p class=\"muted\">" (warning) "</p>");
        }
    }
    html!(out, "</section>");
    Ok(out)
}

/// The image configuration, read from the repository's config blob.
async fn config_section(visitor: &Visitor, repo: &RepoName, digest: &Digest) -> UiResult<Html> {
    let mut out = Html::new();
    html!(out, "<section class=\"panel\" id=\"config\" aria-labelledby=\"config-title\">"
        "<h2 id=\"config-title\">Configuration</h2><p><code>" (digest) "</code></p>");
    let Some(config) = read_config(visitor, repo, digest).await? else {
        html!(
            out,
            "<p class=\"muted\">Not shown: it is missing, too large or not JSON.</p></section>"
        );
        return Ok(out);
    };
    let config = ImageConfig::from_json(&config);
    html!(out, "<dl><dt>Platform</dt><dd>" (config.platform) "</dd>"
        "<dt>Entrypoint</dt><dd>" [code_or_none(&config.entrypoint.join(" "))] "</dd>"
        "<dt>Command</dt><dd>" [code_or_none(&config.cmd.join(" "))] "</dd>"
        "<dt>Environment</dt><dd>");
    let labels: Vec<String> = config
        .labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    html!(out, [code_list(&config.env)] "</dd><dt>Labels</dt><dd>" [code_list(&labels)]
        "</dd></dl></section>");
    Ok(out)
}

fn code_or_none(text: &str) -> Html {
    let mut out = Html::new();
    if text.is_empty() {
        html!(out, "<span class=\"muted\">None</span>");
    } else {
        html!(out, "<code>" (text) "</code>");
    }
    out
}

fn code_list(items: &[String]) -> Html {
    let mut out = Html::new();
    if items.is_empty() {
        html!(out, "<span class=\"muted\">None</span>");
        return out;
    }
    html!(out, "<ul>");
    for item in items {
        html!(out, "<li><code>" (item) "</code></li>");
    }
    html!(out, "</ul>");
    out
}

/// The config blob as JSON; None when it is absent, over the cap or not JSON.
async fn read_config(
    visitor: &Visitor,
    repo: &RepoName,
    digest: &Digest,
) -> UiResult<Option<Value>> {
    let registry = &visitor.state.registry;
    match registry.blob_size(repo, digest).await {
        Ok(size) if size <= MAX_CONFIG_BYTES => {}
        Ok(_) | Err(Error::BlobUnknown(_)) => return Ok(None),
        Err(other) => return Err(other.into()),
    }
    let content = match registry.read_blob(repo, digest, None, true).await {
        Ok(content) => content,
        Err(Error::BlobUnknown(_)) => return Ok(None),
        Err(other) => return Err(other.into()),
    };
    let Some(stream) = content.body else {
        return Ok(None);
    };
    let bytes = collect_at_most(stream, MAX_CONFIG_BYTES)
        .await
        .map_err(|err| Error::Internal(format!("read config blob: {err}")))?;
    Ok(bytes.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_show_what_docker_inspect_shows() {
        let config: Value = serde_json::json!({
            "os": "linux", "architecture": "arm64", "variant": "v8",
            "config": {
                "Env": ["PATH=/usr/bin"],
                "Entrypoint": ["/bin/app"],
                "Cmd": ["--serve", "<b>"],
                "Labels": { "org.opencontainers.image.title": "app" }
            }
        });
        let shown = ImageConfig::from_json(&config);
        assert_eq!(shown.platform, "linux/arm64/v8");
        assert_eq!(shown.env, ["PATH=/usr/bin"]);
        assert_eq!(shown.entrypoint, ["/bin/app"]);
        assert_eq!(shown.cmd, ["--serve", "<b>"]);
        assert_eq!(
            shown.labels,
            [(
                "org.opencontainers.image.title".to_owned(),
                "app".to_owned()
            )]
        );
        assert_eq!(
            ImageConfig::from_json(&Value::Null).env,
            Vec::<String>::new()
        );
    }

    #[test]
    fn markup_in_an_image_configuration_is_shown_as_text() {
        let shown = code_list(&["note=<script>alert(1)</script>".to_owned()]);
        assert!(shown.as_str().contains("note=&lt;script&gt;"), "{shown:?}");
        assert!(!shown.as_str().contains("<script>"));
        assert!(code_or_none("").as_str().contains("None"));
    }
}
