//! Sign-ins end when they should, against the real SQLite store and a clock the tests move:
//! signing out, a password change (in the same second too), refresh tokens running out, an
//! account disabled or deleted, and two-factor recovery codes used once.

use berth_core::access::{PolicyAuthorizer, Principal};
use berth_core::auth::{AuthSettings, Authenticator, LoginPurpose};
use berth_core::clock::{Clock, ManualClock};
use berth_core::identity::totp::totp_code;
use berth_core::identity::{
    Acting, Identity, OrgTokenRequest, TokenRequest, TokenScope, RECOVERY_CODE_COUNT,
};
use berth_core::ports::Accounts;
use berth_core::Error;
use berth_meta::SqliteMeta;
use berth_oci::{RepoName, Scope};
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &str = "long-password";
const DAY: Duration = Duration::from_secs(86400);

struct World {
    _dir: tempfile::TempDir,
    store: Arc<SqliteMeta>,
    identity: Identity<SqliteMeta>,
    auth: Authenticator,
    /// Stands still until a test moves it, so everything happens in one second.
    clock: Arc<ManualClock>,
}

async fn world() -> World {
    world_with(AuthSettings::default()).await
}

async fn world_with(settings: AuthSettings) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteMeta::open(&dir.path().join("berth.db"))
            .await
            .unwrap(),
    );
    let clock = ManualClock::starting_now();
    let authorizer = Arc::new(PolicyAuthorizer::new(store.clone()));
    let auth = Authenticator::new(store.clone(), authorizer, settings)
        .await
        .unwrap()
        .with_clock(clock.clone());
    World {
        _dir: dir,
        identity: Identity::new(store.clone()).with_clock(clock.clone()),
        store,
        auth,
        clock,
    }
}

fn cli() -> Acting<'static> {
    Acting::cli()
}

fn acting(principal: &Principal) -> Acting<'_> {
    Acting::new(principal, None)
}

impl World {
    async fn user(&self, name: &str, is_admin: bool) -> Principal {
        self.identity
            .create_user(&cli(), name, PASSWORD, is_admin)
            .await
            .unwrap()
            .principal()
    }

    async fn sign_in(&self, name: &str, password: &str) -> Result<Principal, Error> {
        let purpose = LoginPurpose::Interactive { otp: None };
        self.auth.login(name, password, None, purpose).await
    }

    async fn sign_in_with_code(&self, name: &str, code: &str) -> Result<Principal, Error> {
        let purpose = LoginPurpose::Interactive { otp: Some(code) };
        self.auth.login(name, PASSWORD, None, purpose).await
    }

    /// A registry bearer token for `principal`, and a refresh token with it.
    async fn registry_tokens(&self, principal: &Principal) -> (String, String) {
        let scope: Vec<Scope> = Scope::parse_all(["repository:bob/app:pull"]).unwrap();
        let issued = self.auth.issue(principal, &scope, true).await.unwrap();
        (issued.token, issued.refresh_token.unwrap())
    }

    async fn access_token(&self, owner: &Principal, name: &str) -> String {
        let request = TokenRequest {
            user: name,
            label: "ci",
            scope: TokenScope::Write,
            repositories: Vec::new(),
            expires_in_days: None,
        };
        let created = self
            .identity
            .create_token(&acting(owner), request)
            .await
            .unwrap();
        created.secret
    }

    /// Turns two-factor authentication on for `name`; its secret and recovery codes.
    async fn two_factor(&self, principal: &Principal, name: &str) -> (String, Vec<String>) {
        let setup = self
            .identity
            .begin_totp(&acting(principal), name)
            .await
            .unwrap();
        let code = totp_code(&setup.secret, self.clock.now_unix() - 30, 6).unwrap();
        let codes = self
            .identity
            .confirm_totp(&acting(principal), name, &code)
            .await
            .unwrap();
        (setup.secret, codes)
    }
}

#[tokio::test]
async fn signing_out_ends_that_session_on_the_server_and_no_other() {
    let w = world().await;
    w.user("bob", false).await;
    let bob = w.sign_in("bob", PASSWORD).await.unwrap();
    let laptop = w.auth.issue_ui_session(&bob).await.unwrap();
    let phone = w.auth.issue_ui_session(&bob).await.unwrap();
    assert_eq!(w.auth.verify_ui_session(&laptop).await.unwrap(), bob);

    w.auth.end_ui_session(&laptop).await.unwrap();
    assert!(matches!(
        w.auth.verify_ui_session(&laptop).await,
        Err(Error::Unauthorized)
    ));
    assert_eq!(w.auth.verify_ui_session(&phone).await.unwrap(), bob);
    // Ending it twice, or ending garbage, is no error.
    w.auth.end_ui_session(&laptop).await.unwrap();
    w.auth.end_ui_session("not a session").await.unwrap();
}

#[tokio::test]
async fn a_password_change_ends_sign_ins_of_the_same_second_and_those_checked_before_it() {
    let w = world().await;
    w.user("bob", false).await;
    let before = w.sign_in("bob", PASSWORD).await.unwrap();
    let session = w.auth.issue_ui_session(&before).await.unwrap();
    let api_token = w.auth.issue_api_token(&before).await.unwrap();
    let (bearer, refresh) = w.registry_tokens(&before).await;
    w.auth.verify_bearer(&bearer).await.unwrap();
    w.auth.basic("bob", PASSWORD, None).await.unwrap();

    // The clock stands still: the change happens in the very second of the sign-ins.
    w.identity
        .set_password(&cli(), "bob", "another-password")
        .await
        .unwrap();
    assert!(w.auth.verify_ui_session(&session).await.is_err());
    assert!(w.auth.verify_api_token(&api_token).await.is_err());
    assert!(matches!(
        w.auth.verify_bearer(&bearer).await,
        Err(Error::Unauthorized)
    ));
    assert!(w.auth.refresh_login(&refresh).await.is_err());
    assert!(w.auth.basic("bob", PASSWORD, None).await.is_err());
    // A session opened now for the sign-in whose password was checked before the change
    // is refused too: it carries the generation read when the password was checked.
    let late = w.auth.issue_ui_session(&before).await.unwrap();
    assert!(w.auth.verify_ui_session(&late).await.is_err());

    // Signing in again with the new password, still in the same second, works.
    let after = w.sign_in("bob", "another-password").await.unwrap();
    let session = w.auth.issue_ui_session(&after).await.unwrap();
    assert_eq!(w.auth.verify_ui_session(&session).await.unwrap(), after);
    let (bearer, _) = w.registry_tokens(&after).await;
    w.auth.verify_bearer(&bearer).await.unwrap();
}

#[tokio::test]
async fn refresh_tokens_run_out_after_their_ttl() {
    let w = world_with(AuthSettings {
        refresh_token_ttl: 7 * DAY,
        ..AuthSettings::default()
    })
    .await;
    w.user("bob", false).await;
    let bob = w.sign_in("bob", PASSWORD).await.unwrap();
    let (_, refresh) = w.registry_tokens(&bob).await;
    w.clock.advance(7 * DAY - Duration::from_secs(1));
    assert_eq!(w.auth.refresh_login(&refresh).await.unwrap(), bob);
    w.clock.advance(Duration::from_secs(1));
    assert!(matches!(
        w.auth.refresh_login(&refresh).await,
        Err(Error::CredentialsInvalid)
    ));
    // Registry bearer tokens run out on the same clock.
    let (bearer, _) = w.registry_tokens(&bob).await;
    w.auth.verify_bearer(&bearer).await.unwrap();
    w.clock
        .advance(AuthSettings::default().token_ttl + Duration::from_secs(1));
    assert!(w.auth.verify_bearer(&bearer).await.is_err());
}

#[tokio::test]
async fn turning_two_factor_on_ends_refresh_tokens() {
    let w = world().await;
    let owner = w.user("bob", false).await;
    let bob = w.sign_in("bob", PASSWORD).await.unwrap();
    let (_, refresh) = w.registry_tokens(&bob).await;
    let secret = w.access_token(&owner, "bob").await;
    let with_token = w
        .auth
        .login("bob", &secret, None, LoginPurpose::Registry)
        .await
        .unwrap();
    let (_, token_refresh) = w.registry_tokens(&with_token).await;
    w.auth.refresh_login(&refresh).await.unwrap();

    w.two_factor(&owner, "bob").await;
    assert!(w.auth.refresh_login(&refresh).await.is_err());
    assert!(w.auth.refresh_login(&token_refresh).await.is_err());
}

#[tokio::test]
async fn a_disabled_account_loses_every_credential_at_once_and_enabling_restores_only_some() {
    let w = world().await;
    let owner = w.user("bob", false).await;
    w.user("root", true).await;
    let org_owner = w.user("carol", false).await;
    w.identity
        .create_org(&acting(&owner), "acme", None)
        .await
        .unwrap();
    let org_token = w
        .identity
        .create_org_token(
            &acting(&owner),
            OrgTokenRequest {
                org: "acme",
                label: "deploy",
                scope: TokenScope::Read,
                repositories: Vec::new(),
                expires_in_days: None,
            },
        )
        .await
        .unwrap()
        .secret;
    let bob = w.sign_in("bob", PASSWORD).await.unwrap();
    let session = w.auth.issue_ui_session(&bob).await.unwrap();
    let api_token = w.auth.issue_api_token(&bob).await.unwrap();
    let (bearer, refresh) = w.registry_tokens(&bob).await;
    let secret = w.access_token(&owner, "bob").await;
    let with_token = w
        .auth
        .login("bob", &secret, None, LoginPurpose::Registry)
        .await
        .unwrap();
    let (token_bearer, _) = w.registry_tokens(&with_token).await;
    let token_api = w.auth.issue_api_token(&with_token).await.unwrap();
    w.auth.basic("bob", PASSWORD, None).await.unwrap();
    w.auth
        .login("acme", &org_token, None, LoginPurpose::Registry)
        .await
        .unwrap();
    let carol = w.auth.issue_ui_session(&org_owner).await.unwrap();

    assert!(w.identity.set_disabled(&cli(), "bob", true).await.unwrap());
    assert!(!w.identity.set_disabled(&cli(), "bob", true).await.unwrap());
    let refused = [
        w.sign_in("bob", PASSWORD).await.map(drop),
        w.auth.basic("bob", PASSWORD, None).await.map(drop),
        w.auth
            .login("bob", &secret, None, LoginPurpose::Registry)
            .await
            .map(drop),
        w.auth
            .login("acme", &org_token, None, LoginPurpose::Registry)
            .await
            .map(drop),
        w.auth.verify_ui_session(&session).await.map(drop),
        w.auth.verify_api_token(&api_token).await.map(drop),
        w.auth.verify_api_token(&token_api).await.map(drop),
        w.auth.verify_bearer(&bearer).await.map(drop),
        w.auth.verify_bearer(&token_bearer).await.map(drop),
        w.auth.refresh_login(&refresh).await.map(drop),
    ];
    for (kind, outcome) in refused.iter().enumerate() {
        assert!(outcome.is_err(), "credential {kind} still works");
    }
    // Others are untouched.
    w.auth.verify_ui_session(&carol).await.unwrap();
    assert!(w
        .store
        .user_by_name("bob")
        .await
        .unwrap()
        .unwrap()
        .is_disabled());

    // Enabled again: the password and the access tokens work again; what was signed in
    // before does not come back.
    assert!(w.identity.set_disabled(&cli(), "bob", false).await.unwrap());
    w.sign_in("bob", PASSWORD).await.unwrap();
    w.auth.basic("bob", PASSWORD, None).await.unwrap();
    w.auth
        .login("bob", &secret, None, LoginPurpose::Registry)
        .await
        .unwrap();
    assert!(w.auth.verify_ui_session(&session).await.is_err());
    assert!(w.auth.verify_bearer(&bearer).await.is_err());
    assert!(w.auth.refresh_login(&refresh).await.is_err());
    w.auth.verify_api_token(&token_api).await.unwrap();

    let actions: Vec<String> = w
        .identity
        .audit_records(
            &cli(),
            berth_core::ports::AuditQuery {
                account: Some("bob".into()),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event.action)
        .collect();
    assert!(actions.contains(&"user.disable".to_owned()), "{actions:?}");
    assert!(actions.contains(&"user.enable".to_owned()), "{actions:?}");
}

#[tokio::test]
async fn site_admins_cannot_disable_or_delete_themselves_or_the_last_admin() {
    let w = world().await;
    let root = w.user("root", true).await;
    let bob = w.user("bob", false).await;
    assert!(matches!(
        w.identity.set_disabled(&acting(&root), "root", true).await,
        Err(Error::AccountInvalid(_))
    ));
    assert!(matches!(
        w.identity.delete_user(&acting(&root), "root", false).await,
        Err(Error::AccountInvalid(_))
    ));
    // The CLI is no account: it may not take the last site admin away either.
    assert!(matches!(
        w.identity.set_disabled(&cli(), "root", true).await,
        Err(Error::AccountInvalid(_))
    ));
    assert!(matches!(
        w.identity.set_disabled(&acting(&bob), "root", true).await,
        Err(Error::Denied)
    ));
    assert!(matches!(
        w.identity.delete_user(&acting(&bob), "root", false).await,
        Err(Error::Denied)
    ));
    assert!(matches!(
        w.identity.set_disabled(&cli(), "nobody", true).await,
        Err(Error::AccountUnknown(_))
    ));
}

#[tokio::test]
async fn deleting_an_account_keeps_its_repositories_and_organizations_safe() {
    let w = world().await;
    let bob = w.user("bob", false).await;
    let carol = w.user("carol", false).await;
    let app: RepoName = "bob/app".parse().unwrap();
    w.identity
        .create_repository(&acting(&bob), &app, Some(false))
        .await
        .unwrap();
    w.identity
        .create_org(&acting(&bob), "acme", None)
        .await
        .unwrap();
    let session = w
        .auth
        .issue_ui_session(&w.sign_in("bob", PASSWORD).await.unwrap())
        .await
        .unwrap();

    // The last owner of an organization stays, force or not.
    for force in [false, true] {
        let refused = w.identity.delete_user(&cli(), "bob", force).await;
        assert!(
            matches!(&refused, Err(Error::AccountInvalid(m)) if m.contains("acme")),
            "{refused:?}"
        );
    }
    w.identity
        .add_team_member(&acting(&bob), "acme", "owners", "carol")
        .await
        .unwrap();
    // Repositories stay unless they go with the account.
    let refused = w.identity.delete_user(&cli(), "bob", false).await;
    assert!(
        matches!(&refused, Err(Error::Invalid(m)) if m.contains("bob/app")),
        "{refused:?}"
    );
    assert!(w.identity.repository(&acting(&bob), &app).await.is_ok());

    let deleted = w.identity.delete_user(&cli(), "bob", true).await.unwrap();
    assert_eq!(deleted.repositories, ["bob/app"]);
    assert!(w.store.user_by_name("bob").await.unwrap().is_none());
    assert!(w.identity.repository(&acting(&carol), &app).await.is_err());
    assert!(w.auth.verify_ui_session(&session).await.is_err());

    // A new account of the same name is not signed in by the old one's session, and
    // inherits nothing.
    w.user("bob", false).await;
    assert!(w.auth.verify_ui_session(&session).await.is_err());
    let actions: Vec<String> = w
        .identity
        .audit_records(
            &cli(),
            berth_core::ports::AuditQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event.action)
        .collect();
    assert!(actions.contains(&"user.delete".to_owned()), "{actions:?}");
    assert!(
        actions.contains(&"repository.delete".to_owned()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn recovery_codes_sign_in_once_each_and_regenerating_voids_the_old_set() {
    let w = world().await;
    let owner = w.user("bob", false).await;
    let (_, codes) = w.two_factor(&owner, "bob").await;
    assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
    let counts = w
        .identity
        .recovery_code_counts(&cli(), "bob")
        .await
        .unwrap();
    assert_eq!((counts.unused, counts.total), (10, 10));

    // Typed with capitals and without the dash, it still signs in; once.
    let typed = codes[0].replace('-', "").to_uppercase();
    assert_eq!(w.sign_in_with_code("bob", &typed).await.unwrap(), owner);
    assert!(matches!(
        w.sign_in_with_code("bob", &codes[0]).await,
        Err(Error::CredentialsInvalid)
    ));
    // Two sign-ins racing with one code: one gets in.
    let (first, second) = tokio::join!(
        w.sign_in_with_code("bob", &codes[1]),
        w.sign_in_with_code("bob", &codes[1])
    );
    assert!(first.is_ok() ^ second.is_ok(), "{first:?} and {second:?}");
    // Without the password, a code is never tried (nor used up).
    let purpose = LoginPurpose::Interactive {
        otp: Some(&codes[2]),
    };
    assert!(w.auth.login("bob", "wrong", None, purpose).await.is_err());
    let counts = w
        .identity
        .recovery_code_counts(&cli(), "bob")
        .await
        .unwrap();
    assert_eq!(counts.unused, 8);

    // Someone else (even a site admin) cannot regenerate them; the user can.
    assert!(w
        .identity
        .regenerate_recovery_codes(&cli(), "bob")
        .await
        .is_err());
    let fresh = w
        .identity
        .regenerate_recovery_codes(&acting(&owner), "bob")
        .await
        .unwrap();
    assert_eq!(fresh.len(), RECOVERY_CODE_COUNT);
    assert!(w.sign_in_with_code("bob", &codes[2]).await.is_err());
    w.sign_in_with_code("bob", &fresh[0]).await.unwrap();

    // A recovery code also turns two-factor off, and the codes go with it.
    w.identity
        .disable_totp(&acting(&owner), "bob", Some(&fresh[1]))
        .await
        .unwrap();
    let counts = w
        .identity
        .recovery_code_counts(&cli(), "bob")
        .await
        .unwrap();
    assert_eq!(counts.total, 0);
}

#[tokio::test]
async fn totp_codes_follow_the_clock_not_the_wall() {
    let w = world().await;
    let owner = w.user("bob", false).await;
    let (secret, _) = w.two_factor(&owner, "bob").await;
    let now = w.clock.now_unix();
    let current = totp_code(&secret, now, 6).unwrap();
    w.sign_in_with_code("bob", &current).await.unwrap();
    // Two steps on, the next step's code is too old; the current one works.
    w.clock.advance(Duration::from_secs(90));
    let stale = totp_code(&secret, now + 30, 6).unwrap();
    let fresh = totp_code(&secret, now + 90, 6).unwrap();
    if stale != fresh {
        assert!(w.sign_in_with_code("bob", &stale).await.is_err());
    }
    w.sign_in_with_code("bob", &fresh).await.unwrap();
}
