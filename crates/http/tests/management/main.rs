//! The management API under `/api/v1/` end to end: the real router over SQLite with the
//! policy authorizer and the management service, checked both through the API and through
//! what registry clients can then do on `/v2/`.

mod support;

mod accounts;
mod audit;
mod organizations;
mod repositories;
mod requests;
mod sign_in;
mod tokens;
