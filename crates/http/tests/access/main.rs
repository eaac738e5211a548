//! Access control over HTTP, against the real policy authorizer over SQLite: the Docker
//! token service and the authorization matrix of callers × repositories × operations.

mod support;
mod world;

mod matrix;
mod token;
