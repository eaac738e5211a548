//! Organizations and their teams (Docker Hub's "groups") with their members.

use super::error::ApiResult;
use super::wire::{created, instant, no_content, ok};
use super::Call;
use axum::body::Body;
use axum::http::Response;
use berth_core::ports::{OrgRecord, TeamRecord};
use berth_core::Error;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Serialize)]
pub(super) struct OrgView {
    id: i64,
    orgname: String,
    date_joined: String,
    #[serde(rename = "type")]
    kind: &'static str,
    /// Shown in the answer to the change that sets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_verified: Option<bool>,
}

impl From<OrgRecord> for OrgView {
    fn from(org: OrgRecord) -> OrgView {
        OrgView {
            id: org.id,
            orgname: org.name,
            date_joined: instant(org.created_at),
            kind: "Organization",
            is_verified: None,
        }
    }
}

#[derive(Debug, Serialize)]
struct GroupView {
    id: i64,
    name: String,
    description: String,
    member_count: u64,
}

impl From<TeamRecord> for GroupView {
    fn from(team: TeamRecord) -> GroupView {
        GroupView {
            id: team.id,
            name: team.name,
            description: team.description,
            member_count: team.member_count,
        }
    }
}

/// Every organization for site admins; the caller's own for everyone else.
pub(super) async fn list(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let orgs = call.state.identity.list_orgs(&call.acting()).await?;
    call.page(orgs.into_iter().map(OrgView::from).collect())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    orgname: String,
    /// Site admins may create an organization for someone else.
    #[serde(default)]
    owner: Option<String>,
}

pub(super) async fn create(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let request: NewOrg = call.json()?;
    let org = call
        .state
        .identity
        .create_org(&call.acting(), &request.orgname, request.owner.as_deref())
        .await?;
    created(&OrgView::from(org))
}

pub(super) async fn show(call: &Call<'_>, org: &str) -> ApiResult<Response<Body>> {
    let org = call.state.identity.org(&call.acting(), org).await?;
    ok(&OrgView::from(org))
}

pub(super) async fn list_groups(call: &Call<'_>, org: &str) -> ApiResult<Response<Body>> {
    let teams = call.state.identity.list_teams(&call.acting(), org).await?;
    call.page(teams.into_iter().map(GroupView::from).collect())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGroup {
    name: String,
    #[serde(default)]
    description: String,
}

pub(super) async fn create_group(call: &Call<'_>, org: &str) -> ApiResult<Response<Body>> {
    let request: NewGroup = call.json()?;
    let team = call
        .state
        .identity
        .create_team(&call.acting(), org, &request.name, &request.description)
        .await?;
    created(&GroupView::from(team))
}

pub(super) async fn show_group(
    call: &Call<'_>,
    org: &str,
    team: &str,
) -> ApiResult<Response<Body>> {
    let teams = call.state.identity.list_teams(&call.acting(), org).await?;
    let found = teams
        .into_iter()
        .find(|record| record.name == team)
        .ok_or_else(|| Error::TeamUnknown {
            org: org.to_owned(),
            team: team.to_owned(),
        })?;
    ok(&GroupView::from(found))
}

pub(super) async fn delete_group(
    call: &Call<'_>,
    org: &str,
    team: &str,
) -> ApiResult<Response<Body>> {
    call.state
        .identity
        .delete_team(&call.acting(), org, team)
        .await?;
    no_content()
}

pub(super) async fn members(call: &Call<'_>, org: &str, team: &str) -> ApiResult<Response<Body>> {
    let names = call
        .state
        .identity
        .team_members(&call.acting(), org, team)
        .await?;
    call.page(
        names
            .into_iter()
            .map(|name| json!({ "username": name }))
            .collect(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMember {
    member: String,
}

/// 201 when the user joined the team, 200 when they already were in it.
pub(super) async fn add_member(
    call: &Call<'_>,
    org: &str,
    team: &str,
) -> ApiResult<Response<Body>> {
    let request: NewMember = call.json()?;
    let added = call
        .state
        .identity
        .add_team_member(&call.acting(), org, team, &request.member)
        .await?;
    let body = json!({ "username": request.member });
    if added {
        created(&body)
    } else {
        ok(&body)
    }
}

/// Idempotent: removing someone who is not in the team also answers 204.
pub(super) async fn remove_member(
    call: &Call<'_>,
    org: &str,
    team: &str,
    user: &str,
) -> ApiResult<Response<Body>> {
    call.state
        .identity
        .remove_team_member(&call.acting(), org, team, user)
        .await?;
    no_content()
}
