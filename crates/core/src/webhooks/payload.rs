//! Delivery bodies: Docker Hub's push payload field for field (plus the digest and media type
//! users have asked Docker Hub for), or a CloudEvents 1.0 structured event.

use super::PayloadFormat;
use crate::events::{EventKind, EventRecord};
use crate::ports::RepositoryInfo;
use crate::time::rfc3339;
use serde_json::{json, Map, Value};

/// What a body needs besides the event.
#[derive(Debug, Clone)]
pub struct RenderContext<'a> {
    /// The registry's public address, without a trailing slash.
    pub public_url: &'a str,
    /// The repository as it stands (None when it is gone).
    pub repository: Option<&'a RepositoryInfo>,
}

/// The body of one delivery. A Docker Hub push payload names one tag, so the caller renders
/// one body per tag (`tag`); CloudEvents carry every tag of the event.
pub fn render(
    format: PayloadFormat,
    event: &EventRecord,
    tag: Option<&str>,
    context: &RenderContext<'_>,
) -> String {
    let body = match format {
        PayloadFormat::DockerHub => docker_hub(event, tag, context),
        PayloadFormat::CloudEvents => cloud_event(event, context),
    };
    body.to_string()
}

fn repository_name(event: &EventRecord) -> &str {
    event.repository.as_deref().unwrap_or(&event.namespace)
}

fn repository_url(event: &EventRecord, context: &RenderContext<'_>) -> String {
    format!("{}/r/{}", context.public_url, repository_name(event))
}

/// Docker Hub's `repository` object.
fn docker_hub_repository(event: &EventRecord, context: &RenderContext<'_>) -> Value {
    let full = repository_name(event);
    let short = full
        .strip_prefix(&format!("{}/", event.namespace))
        .unwrap_or(full);
    let info = context.repository;
    json!({
        "comment_count": 0,
        "date_created": info.map_or(event.created_at, |i| i.created_at),
        "description": info.map_or("", |i| i.description.as_str()),
        "dockerfile": "",
        "full_description": info.map_or("", |i| i.full_description.as_str()),
        "is_official": info.is_some_and(|i| i.is_official),
        "is_private": info.is_none_or(|i| i.is_private),
        "is_trusted": info.is_some_and(|i| i.is_verified),
        "name": short,
        "namespace": event.namespace,
        "owner": event.namespace,
        "repo_name": full,
        "repo_url": repository_url(event, context),
        "star_count": info.map_or(0, |i| i.star_count),
        "status": if info.is_some() { "Active" } else { "Deleted" },
    })
}

fn docker_hub(event: &EventRecord, tag: Option<&str>, context: &RenderContext<'_>) -> Value {
    let mut body = Map::new();
    body.insert(
        "callback_url".into(),
        Value::String(repository_url(event, context)),
    );
    if event.kind == EventKind::ManifestPushed {
        let mut push = Map::new();
        push.insert("pushed_at".into(), json!(event.created_at));
        push.insert("pusher".into(), json!(event.actor.as_deref().unwrap_or("")));
        push.insert("tag".into(), json!(tag.unwrap_or("")));
        push.insert("images".into(), json!([]));
        for field in ["digest", "media_type", "platforms", "size"] {
            if let Some(value) = event.data.get(field) {
                push.insert(field.into(), value.clone());
            }
        }
        body.insert("push_data".into(), Value::Object(push));
    } else {
        // Docker Hub sends pushes only; other events keep the same envelope and name their kind.
        let mut data = match &event.data {
            Value::Object(fields) => fields.clone(),
            _ => Map::new(),
        };
        data.insert("at".into(), json!(event.created_at));
        data.insert("actor".into(), json!(event.actor.as_deref().unwrap_or("")));
        body.insert("event_data".into(), Value::Object(data));
    }
    body.insert("event".into(), json!(event.kind.as_str()));
    body.insert("repository".into(), docker_hub_repository(event, context));
    Value::Object(body)
}

fn cloud_event(event: &EventRecord, context: &RenderContext<'_>) -> Value {
    let mut data = match &event.data {
        Value::Object(fields) => fields.clone(),
        _ => Map::new(),
    };
    data.insert("repository".into(), json!(repository_name(event)));
    data.insert("namespace".into(), json!(event.namespace));
    data.insert("actor".into(), json!(event.actor.as_deref().unwrap_or("")));
    if let Some(info) = context.repository {
        data.insert("is_private".into(), json!(info.is_private));
    }
    let subject = match (
        event.data.get("tags").and_then(Value::as_array),
        event.data.get("digest"),
    ) {
        (Some(tags), _) if !tags.is_empty() => tags[0].as_str().map(str::to_owned),
        (_, Some(Value::String(digest))) => Some(digest.clone()),
        _ => event
            .data
            .get("tag")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let mut body = json!({
        "specversion": "1.0",
        "id": format!("evt_{}", event.id),
        "source": repository_url(event, context),
        "type": format!("io.berth.{}", event.kind.as_str()),
        "time": rfc3339(event.created_at),
        "datacontenttype": "application/json",
        "data": data,
    });
    if let Some(subject) = subject {
        body["subject"] = json!(subject);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pushed() -> EventRecord {
        EventRecord {
            id: 42,
            kind: EventKind::ManifestPushed,
            namespace: "alice".into(),
            repository: Some("alice/app".into()),
            actor: Some("alice".into()),
            data: json!({
                "digest": "sha256:abc",
                "media_type": "application/vnd.oci.image.manifest.v1+json",
                "tags": ["1.0", "latest"],
                "platforms": ["linux/amd64"],
                "size": 1234,
            }),
            created_at: 1_795_908_450,
        }
    }

    fn info() -> RepositoryInfo {
        RepositoryInfo {
            name: "alice/app".into(),
            namespace: "alice".into(),
            is_private: false,
            description: "An app".into(),
            full_description: "# App".into(),
            star_count: 3,
            pull_count: 9,
            created_at: 1_700_000_000,
            last_pushed_at: None,
            last_pulled_at: None,
            is_official: false,
            is_verified: true,
        }
    }

    #[test]
    fn docker_hub_push_payload_has_every_field_docker_hub_sends() {
        let info = info();
        let context = RenderContext {
            public_url: "https://registry.example",
            repository: Some(&info),
        };
        let body: Value = serde_json::from_str(&render(
            PayloadFormat::DockerHub,
            &pushed(),
            Some("latest"),
            &context,
        ))
        .unwrap();
        assert_eq!(body["push_data"]["pushed_at"], 1_795_908_450);
        assert_eq!(body["push_data"]["pusher"], "alice");
        assert_eq!(body["push_data"]["tag"], "latest");
        assert_eq!(body["push_data"]["digest"], "sha256:abc");
        assert_eq!(
            body["push_data"]["media_type"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        let repo = &body["repository"];
        for field in [
            "comment_count",
            "date_created",
            "description",
            "dockerfile",
            "full_description",
            "is_official",
            "is_private",
            "is_trusted",
            "name",
            "namespace",
            "owner",
            "repo_name",
            "repo_url",
            "star_count",
            "status",
        ] {
            assert!(
                repo.get(field).is_some(),
                "repository.{field} is missing: {repo}"
            );
        }
        assert_eq!(repo["repo_name"], "alice/app");
        assert_eq!(repo["name"], "app");
        assert_eq!(repo["namespace"], "alice");
        assert_eq!(repo["date_created"], 1_700_000_000);
        assert_eq!(repo["star_count"], 3);
        assert_eq!(repo["is_trusted"], true);
        assert_eq!(repo["status"], "Active");
        assert_eq!(repo["repo_url"], "https://registry.example/r/alice/app");
        assert!(body["callback_url"].is_string());
    }

    #[test]
    fn cloud_events_are_structured_cloudevents_1_0() {
        let context = RenderContext {
            public_url: "https://registry.example",
            repository: None,
        };
        let body: Value = serde_json::from_str(&render(
            PayloadFormat::CloudEvents,
            &pushed(),
            None,
            &context,
        ))
        .unwrap();
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["id"], "evt_42");
        assert_eq!(body["type"], "io.berth.manifest.pushed");
        assert_eq!(body["time"], "2026-11-28T23:27:30Z");
        assert_eq!(body["source"], "https://registry.example/r/alice/app");
        assert_eq!(body["subject"], "1.0");
        assert_eq!(body["data"]["tags"], json!(["1.0", "latest"]));
        assert_eq!(body["data"]["actor"], "alice");
        assert_eq!(body["data"]["digest"], "sha256:abc");
    }

    #[test]
    fn a_deleted_repository_is_described_from_the_event() {
        let event = EventRecord {
            kind: EventKind::RepositoryDeleted,
            data: json!({}),
            ..pushed()
        };
        let context = RenderContext {
            public_url: "http://localhost:5000",
            repository: None,
        };
        let body: Value =
            serde_json::from_str(&render(PayloadFormat::DockerHub, &event, None, &context))
                .unwrap();
        assert_eq!(body["event"], "repository.deleted");
        assert_eq!(body["event_data"]["actor"], "alice");
        assert_eq!(body["repository"]["repo_name"], "alice/app");
        assert_eq!(body["repository"]["status"], "Deleted");
        assert!(body.get("push_data").is_none());
    }
}
