//! The JSON API under `/api/v1/` and Docker's `/v1/search` end to end: the real router over
//! SQLite with the policy authorizer and the management and Hub services, checked through
//! the API, through what registry clients can then do on `/v2/`, and against the OpenAPI
//! document.

mod browser;
mod schema;
mod support;

mod account_lifecycle;
mod accounts;
mod audit;
mod content_lifecycle;
mod hub_pulls;
mod hub_repositories;
mod hub_search;
mod openapi;
mod operations;
mod organizations;
mod rate_limits;
mod replications;
mod repositories;
mod requests;
mod sessions;
mod sign_in;
mod signatures;
mod signup;
mod tokens;
mod ui_webhooks;
mod usage;
mod webhooks;
