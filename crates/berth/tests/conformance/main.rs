//! Berth's OCI distribution-spec v1.1 conformance suite.
//!
//! One module per workflow category of the spec: pull, push, content
//! discovery and content management. Every test starts its own registry via
//! [`common::TestServer::start`]: a fresh `berth serve` on a free port with a
//! temporary data directory, or, when `BERTH_TEST_REGISTRY` is set (e.g.
//! `http://127.0.0.1:5001`), the external registry at that URL. All tests use
//! unique repository names, so they can share one external registry and run
//! in parallel.
//!
//! Run against Berth:
//!
//! ```text
//! cargo nextest run -p berth --test conformance
//! ```
//!
//! Run against another registry (e.g. CNCF Distribution with
//! `storage.delete.enabled: true`):
//!
//! ```text
//! BERTH_TEST_REGISTRY=http://127.0.0.1:5001 cargo nextest run -p berth --test conformance
//! ```

#[path = "../common/mod.rs"]
mod common;

mod discovery;
mod management;
mod pull;
mod push;
