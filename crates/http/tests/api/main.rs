//! HTTP integration tests of the OCI distribution API: the real router, served in-process
//! over a real socket, driven by a real HTTP client. One module per endpoint group.

mod support;

mod base;
mod blobs;
mod bounds;
mod lifecycle;
mod listing;
mod manifests;
mod referrers;
mod robustness;
mod uploads;
