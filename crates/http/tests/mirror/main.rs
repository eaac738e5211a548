//! The pull-through cache against real upstreams on loopback: CNCF Distribution (with and
//! without htpasswd) and a second Berth with token auth, through a counting proxy where
//! the test needs to know what reached the upstream.

mod support;

mod cache;
mod faults;
mod governed;
mod transparent;
