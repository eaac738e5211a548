//! Web UI sessions: the session cookie's value is a signed sign-in JWT for the UI's own
//! audience, so neither API nor registry tokens open one; only sessions ended by signing
//! out are stored (by their `jti`, until they would have expired).

use super::Authenticator;
use crate::access::Principal;
use crate::{Error, Result};
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
    pub async fn issue_ui_session(&self, principal: &Principal) -> Result<String> {
        self.issue_sign_in(principal, self.ui_audience(), UI_SESSION_TTL)
            .await
    }

    /// Who a session signs in, with the account read again (a removed or disabled account,
    /// a lost admin flag or a password changed since the session was opened applies at
    /// once), unless the session was ended by signing out.
    pub async fn verify_ui_session(&self, token: &str) -> Result<Principal> {
        let (principal, claims) = self.verify_sign_in(token, &self.ui_audience()).await?;
        if self.store.session_ended(&claims.jti).await? {
            return Err(Error::Unauthorized);
        }
        Ok(principal)
    }

    /// Ends a session on the server (signing out): its token is refused from now on, even
    /// if the browser kept a copy. A token that does not verify needs no ending.
    pub async fn end_ui_session(&self, token: &str) -> Result<()> {
        let now = self.now_unix();
        let Ok(claims) = self.signer.verify(token, &self.ui_audience(), now) else {
            return Ok(());
        };
        self.store.end_session(&claims.jti, claims.exp, now).await?;
        Ok(())
    }
}
