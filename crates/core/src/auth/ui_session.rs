//! Web UI sessions: the session cookie's value is a signed sign-in JWT for the UI's own
//! audience, so nothing is stored per session and neither API nor registry tokens open one.

use super::Authenticator;
use crate::access::Principal;
use crate::Result;
use std::time::Duration;

/// How long a browser stays signed in: a working day, then the password again.
pub const UI_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Appended to the service name to form UI sessions' `aud`.
const UI_AUDIENCE_SUFFIX: &str = ":ui";

impl Authenticator {
    /// The `aud` of UI sessions.
    pub fn ui_audience(&self) -> String {
        format!("{}{UI_AUDIENCE_SUFFIX}", self.settings.service)
    }

    /// A session for someone who just signed in to the UI.
    pub fn issue_ui_session(&self, principal: &Principal) -> Result<String> {
        self.issue_sign_in(principal, self.ui_audience(), UI_SESSION_TTL)
    }

    /// Who a session signs in, with the account read again (a removed account, a lost admin
    /// flag or a password changed since the session was opened applies at once).
    pub async fn verify_ui_session(&self, token: &str) -> Result<Principal> {
        self.verify_sign_in(token, &self.ui_audience()).await
    }
}
