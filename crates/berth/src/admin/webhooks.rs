//! `berth webhook …`: webhooks managed from the data directory. Deliveries, pings and
//! redeliveries are queued as jobs, which the running server sends.

use super::CliResult;
use crate::cli::{WebhookCommand, WebhookTargetArgs};
use crate::config::Config;
use berth_core::access::PolicyAuthorizer;
use berth_core::identity::Acting;
use berth_core::jobs::Wake;
use berth_core::ports::MetaStore;
use berth_core::webhooks::{WebhookRequest, WebhookSettings, WebhookTarget, WebhookView, Webhooks};
use berth_outbound::HttpTransport;
use std::sync::Arc;

pub(super) fn service(config: &Config, meta: Arc<dyn MetaStore>) -> CliResult<Webhooks> {
    let seal = crate::secrets::load_or_create(&config.secrets_key_path())?;
    let transport = HttpTransport::new(config.webhook_allow_private.value)?;
    let authorizer = Arc::new(PolicyAuthorizer::new(meta.clone()));
    Ok(Webhooks::new(
        meta,
        authorizer,
        Arc::new(transport),
        seal,
        berth_core::clock::system(),
        WebhookSettings {
            allow_private: config.webhook_allow_private.value,
            disable_after: config.webhook_disable_after.value,
        },
        Wake::default(),
    ))
}

fn target(args: WebhookTargetArgs) -> CliResult<WebhookTarget> {
    match (args.site, args.target) {
        (true, _) => Ok(WebhookTarget::Site),
        (false, Some(text)) => Ok(WebhookTarget::parse(&text)?),
        (false, None) => Err("name a repository or namespace, or pass --site".into()),
    }
}

fn line(view: &WebhookView) -> String {
    let state = match (&view.disabled_reason, view.enabled) {
        (_, true) => "active".to_owned(),
        (Some(reason), false) => format!("disabled ({reason})"),
        (None, false) => "disabled".to_owned(),
    };
    format!(
        "{}  {}  {}  events={}  tags={}  format={}  {}",
        view.id,
        view.name,
        view.url,
        view.events.join(","),
        if view.tags.is_empty() {
            "*".to_owned()
        } else {
            view.tags.join(",")
        },
        view.format,
        state
    )
}

pub(super) async fn webhook(
    webhooks: &Webhooks,
    acting: &Acting<'_>,
    command: WebhookCommand,
) -> CliResult {
    match command {
        WebhookCommand::Create {
            target: target_args,
            url,
            events,
            tags,
            format,
            name,
            header,
        } => {
            let header = match header {
                None => None,
                Some(text) => {
                    let (name, value) = text
                        .split_once(':')
                        .ok_or("a header is written NAME: VALUE")?;
                    Some((name.trim().to_owned(), value.trim().to_owned()))
                }
            };
            let request = WebhookRequest {
                name,
                url,
                events,
                tags,
                format,
                header,
            };
            let created = webhooks
                .create(acting, target(target_args)?, request)
                .await?;
            println!("id: {}", created.webhook.id);
            println!("secret: {}", created.secret);
        }
        WebhookCommand::List { target: args, json } => {
            let views = webhooks.list(acting, &target(args)?).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                for view in &views {
                    println!("{}", line(view));
                }
            }
        }
        WebhookCommand::Delete { id } => {
            webhooks.delete(acting, &id).await?;
            println!("deleted webhook {id}");
        }
        WebhookCommand::Ping { id } => {
            let delivery = webhooks.ping(acting, &id).await?;
            println!("queued ping {delivery}; the running server delivers it");
        }
        WebhookCommand::Deliveries { id, json, limit } => {
            let attempts = webhooks.attempts(acting, &id, limit).await?;
            if json {
                let rows: Vec<serde_json::Value> = attempts
                    .iter()
                    .map(|a| {
                        serde_json::json!({
                            "delivery_id": a.delivery_id,
                            "event": a.event_kind,
                            "attempt": a.attempt,
                            "at": berth_core::time::rfc3339(a.at_ms.div_euclid(1000)),
                            "status": a.status,
                            "latency_ms": a.latency_ms,
                            "response": a.response,
                            "error": a.error,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for a in &attempts {
                    let outcome = match (a.status, &a.error) {
                        (Some(status), _) => status.to_string(),
                        (None, Some(error)) => format!("error: {error}"),
                        (None, None) => "-".to_owned(),
                    };
                    println!(
                        "{}  {}  {}  attempt {}  {}  {} ms",
                        berth_core::time::rfc3339(a.at_ms.div_euclid(1000)),
                        a.delivery_id,
                        a.event_kind,
                        a.attempt,
                        outcome,
                        a.latency_ms
                    );
                }
            }
        }
        WebhookCommand::Redeliver { id, delivery } => {
            webhooks.redeliver(acting, &id, &delivery).await?;
            println!("queued {delivery} again; the running server delivers it");
        }
        WebhookCommand::Enable { id } => {
            let view = webhooks.set_enabled(acting, &id, true).await?;
            println!("{}", line(&view));
        }
        WebhookCommand::Disable { id } => {
            let view = webhooks.set_enabled(acting, &id, false).await?;
            println!("{}", line(&view));
        }
    }
    Ok(())
}
