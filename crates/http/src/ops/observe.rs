//! The layer every request passes: it gets a request id (sent back in `X-Request-Id`), a
//! tracing span naming it (so every log line of the request does), its metrics, and one
//! log line at the end.

use super::metrics::{RequestMetrics, RouteKind};
use super::Operations;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use std::hash::{BuildHasher as _, Hasher as _};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;
use tracing::Instrument as _;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A fresh id: a random prefix drawn once per process and a counter, so ids are unique
/// across restarts without a random draw per request.
fn new_request_id() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        hasher.finish() >> 16
    });
    format!("{prefix:012x}{:08x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// An id a proxy in front already gave the request is kept, so its logs and ours match;
/// only a short one of plain characters, since it ends up in every log line.
fn forwarded_id(value: &HeaderValue) -> Option<&str> {
    let id = value.to_str().ok()?;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    (!id.is_empty() && id.len() <= 64 && id.chars().all(plain)).then_some(id)
}

pub(crate) async fn observe(
    State(ops): State<Operations>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let metrics = ops.requests.as_ref();
    let _in_flight = metrics.map(|m| m.start());
    let id = match request.headers().get(&REQUEST_ID).and_then(forwarded_id) {
        Some(id) => id.to_owned(),
        None => new_request_id(),
    };
    let kind = RouteKind::of_path(request.uri().path());
    let method = request.method().clone();
    // As the origin layer (outside this one) worked it out: behind a trusted proxy, the
    // proxy's client.
    let client = request
        .extensions()
        .get::<crate::origin::RequestOrigin>()
        .and_then(|origin| origin.client);
    let span = tracing::info_span!("request", id = %id);
    // Only bodies that carry bytes are wrapped to count them.
    if let Some(metrics) = metrics.filter(|_| request.body().size_hint().exact() != Some(0)) {
        let body = std::mem::take(request.body_mut());
        *request.body_mut() = Body::new(Counted {
            inner: body,
            count: Count::Received(metrics.clone(), kind),
        });
    }
    let (status, mut response) = {
        // A clone shares the parsed bytes: the path costs no copy unless it is logged.
        let uri = request.uri().clone();
        let path = uri.path();
        let response = next.run(request).instrument(span.clone()).await;
        let status = response.status().as_u16();
        let micros = started.elapsed().as_micros() as u64;
        let _entered = span.enter();
        let client = client.map(tracing::field::display);
        if status >= 500 {
            tracing::warn!(%method, %path, status, micros, client, "request failed");
        } else {
            tracing::debug!(%method, %path, status, micros, client, "request");
        }
        (status, response)
    };
    // Writes are acknowledged only once on stable storage (a GET of `/token` can issue a
    // refresh token, so it counts as one). An upload's `202` (a session started, a chunk
    // taken) acknowledges nothing kept: a session lost to a power cut only makes the client
    // start over, and its blob's `201` waits for the flush. Holding the `202`s for it made
    // every upload start wait for the disk.
    let writes = (!matches!(method, Method::GET | Method::HEAD) || kind == RouteKind::Token)
        && !(kind == RouteKind::Upload && status == 202);
    if writes {
        if let Err(detail) = ops.durable().await {
            let _entered = span.enter();
            tracing::error!(%detail, "a write could not be made durable");
            response = crate::oci::error_response(&berth_core::Error::Internal(detail), &method);
        }
    }
    let status = if writes {
        response.status().as_u16()
    } else {
        status
    };
    if let Some(metrics) = metrics {
        metrics.record(kind, &method, status, started.elapsed());
        match response.body().size_hint().exact() {
            Some(len) => metrics.sent(kind, len),
            None => {
                let body = std::mem::take(response.body_mut());
                *response.body_mut() = Body::new(Counted {
                    inner: body,
                    count: Count::Sent(metrics.clone(), kind),
                });
            }
        }
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}

/// Which counter a body's bytes go to.
enum Count {
    Received(Arc<RequestMetrics>, RouteKind),
    Sent(Arc<RequestMetrics>, RouteKind),
}

/// A body that adds the bytes of each frame to a counter as they pass.
struct Counted {
    inner: Body,
    count: Count,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let len = data.len() as u64;
                match &self.count {
                    Count::Received(metrics, kind) => metrics.received(*kind, len),
                    Count::Sent(metrics, kind) => metrics.sent(*kind, len),
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_plain() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert!(forwarded_id(&HeaderValue::from_str(&a).unwrap()).is_some());
        assert_eq!(a.len(), 20, "{a}");
    }

    #[test]
    fn only_short_plain_forwarded_ids_are_kept() {
        let kept = HeaderValue::from_static("f3a9-01.proxy:7");
        assert_eq!(forwarded_id(&kept), Some("f3a9-01.proxy:7"));
        for refused in ["", "has space", "a\"quote", "semi;colon", &"x".repeat(65)] {
            let value = HeaderValue::from_str(refused).unwrap();
            assert_eq!(forwarded_id(&value), None, "{refused:?}");
        }
    }
}
