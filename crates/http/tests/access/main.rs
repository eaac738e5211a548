//! Access control over HTTP, against the real policy authorizer over SQLite: the Docker
//! token service, sign-in throttling, forwarding headers from trusted proxies, and the authorization matrices of callers × repositories × operations
//! of the registry and of the management API.

mod support;
mod world;

mod api_matrix;
mod forwarded;
mod matrix;
mod throttle;
mod token;
