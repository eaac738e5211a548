//! Replication against real registries on loopback: CNCF Distribution 2.8.2 (Debian's
//! `docker-registry`, with and without htpasswd) and a second Berth with token auth, seeded
//! through a first Berth that holds the images.

#[allow(dead_code)]
#[path = "../mirror/support.rs"]
mod support;

mod copy;
mod large;
mod pull;
mod triggers;
