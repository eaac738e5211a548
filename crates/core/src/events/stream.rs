//! The event stream for polling consumers: the events after a cursor that the caller may
//! see — those about repositories it may pull; namespace-wide ones for site admins only.

use super::EventRecord;
use crate::access::{Action, Authorizer, Principal, Resource};
use crate::error::Result;
use crate::ports::EventLog;
use berth_oci::RepoName;
use std::collections::HashMap;

/// Most events one read returns.
pub const MAX_EVENT_PAGE: u32 = 500;

/// A page of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<EventRecord>,
    /// Where to read on from: past every event examined, shown or not.
    pub next: i64,
}

/// The events after `since` that `principal` may see, at most `limit` examined.
pub async fn visible_events(
    log: &dyn EventLog,
    authorizer: &dyn Authorizer,
    principal: &Principal,
    since: i64,
    limit: u32,
) -> Result<EventPage> {
    let examined = log
        .events_after(since, limit.clamp(1, MAX_EVENT_PAGE))
        .await?;
    let next = examined.last().map_or(since, |e| e.id);
    let mut readable: HashMap<String, bool> = HashMap::new();
    let mut events = Vec::new();
    for event in examined {
        let visible = match &event.repository {
            None => principal.is_site_admin(),
            Some(name) => match readable.get(name) {
                Some(known) => *known,
                None => {
                    let may = match name.parse::<RepoName>() {
                        Ok(repo) => authorizer
                            .actions(principal, &Resource::Repository(repo))
                            .await?
                            .contains(Action::Pull),
                        Err(_) => false,
                    };
                    readable.insert(name.clone(), may);
                    may
                }
            },
        };
        if visible {
            events.push(event);
        }
    }
    Ok(EventPage { events, next })
}
