//! Outgoing HTTP: webhook deliveries and remote registries (`registry`), over reqwest and
//! rustls, with a resolver that drops every address Berth may not call (so DNS rebinding
//! gains nothing: the connection goes to an address that was checked), time limits and caps
//! on what is read back. Webhooks follow no redirects.

pub mod registry;

use berth_core::webhooks::{
    check_address, OutboundError, OutboundRequest, OutboundResponse, WebhookTransport,
};
use futures_util::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Most of a response body read before the connection is dropped.
pub const MAX_RESPONSE_READ: usize = 64 * 1024;
/// How much of it is kept.
const KEPT: usize = 1024;

/// Resolves names, keeping only addresses Berth may call (all of them when private
/// targets are allowed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckedResolver {
    pub(crate) allow_private: bool,
}

impl CheckedResolver {
    async fn lookup(self, host: String, port: u16) -> Result<Vec<SocketAddr>, OutboundError> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| OutboundError::Failed(format!("cannot resolve {host}: {e}")))?
            .collect();
        if self.allow_private {
            return Ok(found);
        }
        let allowed: Vec<SocketAddr> = found
            .iter()
            .copied()
            .filter(|a| check_address(a.ip()).is_ok())
            .collect();
        match (allowed.is_empty(), found.first()) {
            (false, _) => Ok(allowed),
            (true, Some(first)) => Err(OutboundError::Refused(format!(
                "{host} resolves to {}, {}",
                first.ip(),
                check_address(first.ip())
                    .err()
                    .map_or(String::new(), |w| w.to_string())
            ))),
            (true, None) => Err(OutboundError::Failed(format!(
                "{host} resolves to no address"
            ))),
        }
    }
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = *self;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolver
                .lookup(host, 0)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The webhook transport of a running server.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    allow_private: bool,
}

impl HttpTransport {
    pub fn new(allow_private: bool) -> Result<HttpTransport, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(CheckedResolver { allow_private }))
            .connect_timeout(std::time::Duration::from_secs(5))
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(HttpTransport {
            client,
            allow_private,
        })
    }
}

/// The innermost cause of an error, which says what actually went wrong.
pub(crate) fn cause(err: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = err;
    while let Some(next) = source.source() {
        source = next;
    }
    let inner = source.to_string();
    if inner == err.to_string() {
        inner
    } else {
        format!("{err}: {inner}")
    }
}

#[async_trait::async_trait]
impl WebhookTransport for HttpTransport {
    async fn post(&self, request: OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        let url = reqwest::Url::parse(&request.url)
            .map_err(|e| OutboundError::Failed(format!("invalid URL: {e}")))?;
        // Literal addresses never reach the resolver: check them here.
        if !self.allow_private {
            let literal = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                _ => None,
            };
            if let Some(ip) = literal {
                check_address(ip)
                    .map_err(|why| OutboundError::Refused(format!("{ip} is {why}")))?;
            }
        }
        let timeout = request.timeout;
        let mut builder = self.client.post(url).timeout(timeout).body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let exchange = async {
            let response = builder.send().await.map_err(|e| {
                if let Some(refused) = std::error::Error::source(&e).and_then(find_refusal) {
                    refused
                } else if e.is_timeout() {
                    OutboundError::Timeout(timeout.as_secs())
                } else {
                    OutboundError::Failed(cause(&e))
                }
            })?;
            let status = response.status().as_u16();
            let mut body_start = Vec::new();
            let mut read = 0usize;
            let mut stream = response.bytes_stream();
            // The rest of an enormous body is not read: dropping the stream closes it.
            while let Some(chunk) = stream.next().await {
                let Ok(chunk) = chunk else { break };
                read += chunk.len();
                if body_start.len() < KEPT {
                    let room = KEPT - body_start.len();
                    body_start.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                if read >= MAX_RESPONSE_READ {
                    break;
                }
            }
            Ok(OutboundResponse { status, body_start })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(OutboundError::Timeout(timeout.as_secs())),
        }
    }

    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<IpAddr>, OutboundError> {
        let all = CheckedResolver {
            allow_private: true,
        }
        .lookup(host.to_owned(), port)
        .await?;
        Ok(all.into_iter().map(|a| a.ip()).collect())
    }
}

/// An address refusal from our resolver, wherever reqwest wrapped it.
pub(crate) fn find_refusal(mut error: &(dyn std::error::Error + 'static)) -> Option<OutboundError> {
    loop {
        if let Some(OutboundError::Refused(why)) = error.downcast_ref::<OutboundError>() {
            return Some(OutboundError::Refused(why.clone()));
        }
        error = error.source()?;
    }
}
