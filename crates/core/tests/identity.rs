//! The management service against the real SQLite store: who may change accounts, tokens,
//! organizations, teams and repository settings, and what the audit log keeps of it.

use berth_core::access::{
    ActionSet, Actor, Authorizer, OpenAccess, PolicyAuthorizer, Principal, Resource, TokenLimits,
};
use berth_core::auth::{AuthSettings, Authenticator, LoginPurpose};
use berth_core::clock::{Clock, ManualClock};
use berth_core::identity::totp::totp_code;
use berth_core::identity::{
    verify_password, AccountChange, Acting, Identity, OrgTokenRequest, TokenRequest, TokenScope,
    SIGNUPS_PER_ADDRESS, SIGNUP_WINDOW,
};
use berth_core::ports::{
    Accounts, AuditQuery, Permission, RefreshTokens, RepositoryAccess, OWNERS_TEAM,
};
use berth_core::Error;
use berth_meta::SqliteMeta;
use berth_oci::RepoName;
use std::net::IpAddr;
use std::sync::Arc;

struct World {
    _dir: tempfile::TempDir,
    store: Arc<SqliteMeta>,
    identity: Identity<SqliteMeta>,
    /// Stands still until a test moves it: everything in a test happens in one second
    /// (and one TOTP step) unless it says otherwise.
    clock: Arc<ManualClock>,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteMeta::open(&dir.path().join("berth.db"))
            .await
            .unwrap(),
    );
    let clock = ManualClock::starting_now();
    World {
        _dir: dir,
        identity: Identity::new(store.clone()).with_clock(clock.clone()),
        store,
        clock,
    }
}

fn cli() -> Acting<'static> {
    Acting::cli()
}

fn as_user(principal: &Principal) -> Acting<'_> {
    Acting::new(principal, Some("192.0.2.7".to_owned()))
}

impl World {
    /// The sign-in service over this world's store.
    async fn authenticator(&self) -> Authenticator {
        let authorizer = Arc::new(PolicyAuthorizer::new(self.store.clone()));
        Authenticator::new(self.store.clone(), authorizer, AuthSettings::default())
            .await
            .unwrap()
            .with_clock(self.clock.clone())
    }

    /// Creates a user through the CLI and returns the principal signing in as them.
    async fn user(&self, name: &str, is_admin: bool) -> Principal {
        let account = self
            .identity
            .create_user(&cli(), name, "long-password", is_admin)
            .await
            .unwrap();
        Principal {
            actor: Actor::User {
                id: account.id,
                name: name.to_owned(),
                is_admin,
            },
            limits: None,
            credential_generation: None,
        }
    }

    async fn actions(&self, account: &str) -> Vec<String> {
        let query = AuditQuery {
            account: Some(account.to_owned()),
            limit: 100,
            ..AuditQuery::default()
        };
        let mut actions: Vec<String> = self
            .identity
            .audit_records(&cli(), query)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.event.action)
            .collect();
        actions.reverse();
        actions
    }
}

fn with_token(principal: &Principal, scope: TokenScope, repos: &[&str]) -> Principal {
    Principal {
        actor: principal.actor.clone(),
        limits: Some(TokenLimits {
            token_id: 99,
            scope,
            repositories: repos.iter().map(|r| r.to_string()).collect(),
        }),
        credential_generation: None,
    }
}

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

#[track_caller]
fn assert_denied<T: std::fmt::Debug>(result: Result<T, Error>) {
    assert!(matches!(result, Err(Error::Denied)), "{result:?}");
}

#[track_caller]
fn assert_name_unknown<T: std::fmt::Debug>(result: Result<T, Error>) {
    assert!(matches!(result, Err(Error::NameUnknown(_))), "{result:?}");
}

#[tokio::test]
async fn only_site_admins_administer_users() {
    let w = world().await;
    let root = w.user("root", true).await;
    let bob = w.user("bob", false).await;
    let id = &w.identity;

    assert_denied(
        id.create_user(&as_user(&bob), "eve", "long-password", false)
            .await,
    );
    assert!(id
        .create_user(&as_user(&root), "carol", "long-password", false)
        .await
        .is_ok());
    assert!(matches!(
        id.create_user(&cli(), "bob", "long-password", false).await,
        Err(Error::Conflict(_))
    ));
    id.create_org(&as_user(&bob), "acme", None).await.unwrap();
    assert!(matches!(
        id.create_user(&cli(), "acme", "long-password", false).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        id.create_user(&cli(), "cli", "long-password", false).await,
        Err(Error::AccountInvalid(_))
    ));

    assert_denied(id.list_users(&as_user(&bob)).await);
    let names: Vec<String> = id
        .list_users(&as_user(&root))
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["bob", "carol", "root"]);
    assert_eq!(id.user(&as_user(&bob), "bob").await.unwrap().name, "bob");
    assert_denied(id.user(&as_user(&bob), "carol").await);
    let admin_token = with_token(&root, TokenScope::Read, &[]);
    assert_denied(id.list_users(&as_user(&admin_token)).await);

    assert_denied(id.set_admin(&as_user(&bob), "bob", true).await);
    assert!(matches!(
        id.set_admin(&cli(), "root", false).await,
        Err(Error::AccountInvalid(_))
    ));
    id.set_admin(&cli(), "bob", true).await.unwrap();
    id.set_admin(&cli(), "root", false).await.unwrap();
    assert!(w.store.user_by_name("bob").await.unwrap().unwrap().is_admin);
    assert_eq!(
        w.actions("root").await,
        ["user.create", "user.create", "user.admin"]
    );
}

#[tokio::test]
async fn passwords_change_for_oneself_or_by_a_site_admin_and_end_refresh_tokens() {
    let w = world().await;
    let bob = w.user("bob", false).await;
    w.user("carol", false).await;
    let id = &w.identity;
    let bob_id = bob.user_id().unwrap();
    w.store
        .create_refresh_token(bob_id, None, "refresh-hash", w.clock.now_unix())
        .await
        .unwrap();

    assert_denied(
        id.set_password(&as_user(&bob), "carol", "new-password")
            .await,
    );
    let tokened = with_token(&bob, TokenScope::Admin, &[]);
    assert_denied(
        id.set_password(&as_user(&tokened), "bob", "new-password")
            .await,
    );
    assert!(matches!(
        id.set_password(&as_user(&bob), "bob", "short").await,
        Err(Error::AccountInvalid(_))
    ));
    id.set_password(&as_user(&bob), "bob", "new-password")
        .await
        .unwrap();
    let stored = w.store.user_by_name("bob").await.unwrap().unwrap();
    assert!(verify_password("new-password", &stored.password_hash));
    let refresh = w
        .store
        .refresh_token_by_hash("refresh-hash")
        .await
        .unwrap()
        .unwrap();
    assert!(refresh.revoked_at.is_some(), "{refresh:?}");

    id.set_password(&cli(), "carol", "admin-chosen")
        .await
        .unwrap();
    assert!(matches!(
        id.set_password(&cli(), "nobody", "admin-chosen").await,
        Err(Error::AccountUnknown(_))
    ));
    let audit = id
        .audit_records(
            &cli(),
            AuditQuery {
                account: Some("bob".into()),
                limit: 10,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    let change = &audit[0].event;
    assert_eq!(
        (change.action.as_str(), change.actor.as_str()),
        ("user.password", "bob")
    );
    assert_eq!(change.address.as_deref(), Some("192.0.2.7"));
}

#[tokio::test]
async fn two_factor_is_confirmed_with_a_code_and_turned_off_by_the_user_or_an_admin() {
    let w = world().await;
    let bob = w.user("bob", false).await;
    let root = w.user("root", true).await;
    let id = &w.identity;

    assert_denied(id.begin_totp(&as_user(&root), "bob").await);
    let setup = id.begin_totp(&as_user(&bob), "bob").await.unwrap();
    assert!(
        setup
            .otpauth_url
            .starts_with("otpauth://totp/Berth:bob?secret="),
        "{}",
        setup.otpauth_url
    );
    let stored = w.store.user_by_name("bob").await.unwrap().unwrap();
    assert_eq!(stored.totp_secret.as_deref(), Some(setup.secret.as_str()));
    assert!(!stored.totp_enabled);

    assert!(matches!(
        id.confirm_totp(&as_user(&bob), "bob", "000000x").await,
        Err(Error::AccountInvalid(_))
    ));
    let code = totp_code(&setup.secret, w.clock.now_unix(), 6).unwrap();
    id.confirm_totp(&as_user(&bob), "bob", &code).await.unwrap();
    assert!(
        w.store
            .user_by_name("bob")
            .await
            .unwrap()
            .unwrap()
            .totp_enabled
    );
    assert!(id.begin_totp(&as_user(&bob), "bob").await.is_err());

    assert!(id.disable_totp(&as_user(&bob), "bob", None).await.is_err());
    assert!(id
        .disable_totp(&as_user(&bob), "bob", Some("12345"))
        .await
        .is_err());
    // The code that turned it on was used up; the next step's code is current too.
    assert!(id
        .disable_totp(&as_user(&bob), "bob", Some(&code))
        .await
        .is_err());
    let next_code = totp_code(&setup.secret, w.clock.now_unix() + 30, 6).unwrap();
    id.disable_totp(&as_user(&bob), "bob", Some(&next_code))
        .await
        .unwrap();
    let stored = w.store.user_by_name("bob").await.unwrap().unwrap();
    assert!(!stored.totp_enabled && stored.totp_secret.is_none());

    // A lost device: a site admin turns it off without a code. A new secret starts with no
    // code used, though a later step of the old one was.
    let setup = id.begin_totp(&as_user(&bob), "bob").await.unwrap();
    let code = totp_code(&setup.secret, w.clock.now_unix(), 6).unwrap();
    id.confirm_totp(&as_user(&bob), "bob", &code).await.unwrap();
    id.disable_totp(&as_user(&root), "bob", None).await.unwrap();
    assert!(
        !w.store
            .user_by_name("bob")
            .await
            .unwrap()
            .unwrap()
            .totp_enabled
    );
    assert_eq!(
        w.actions("bob").await,
        [
            "user.create",
            "user.2fa.enable",
            "user.2fa.disable",
            "user.2fa.enable",
            "user.2fa.disable"
        ]
    );
}

#[tokio::test]
async fn a_password_change_ends_password_sign_ins_but_not_access_token_ones() {
    let w = world().await;
    let bob = w.user("bob", false).await;
    let root = w.user("root", true).await;
    let auth = w.authenticator().await;
    let signed_in = auth
        .login(
            "bob",
            "long-password",
            None,
            LoginPurpose::Interactive { otp: None },
        )
        .await
        .unwrap();
    let ui_session = auth.issue_ui_session(&signed_in).await.unwrap();
    let api_token = auth.issue_api_token(&signed_in).await.unwrap();
    let access_token = w
        .identity
        .create_token(
            &as_user(&bob),
            TokenRequest {
                user: "bob",
                label: "ci",
                scope: TokenScope::Write,
                repositories: Vec::new(),
                expires_in_days: None,
            },
        )
        .await
        .unwrap();
    let with_access_token = auth
        .login("bob", &access_token.secret, None, LoginPurpose::Registry)
        .await
        .unwrap();
    let token_api_token = auth.issue_api_token(&with_access_token).await.unwrap();
    let root_session = auth.issue_ui_session(&root).await.unwrap();
    assert_eq!(auth.verify_ui_session(&ui_session).await.unwrap(), bob);
    assert_eq!(auth.verify_api_token(&api_token).await.unwrap(), bob);

    w.identity
        .set_password(&as_user(&bob), "bob", "another-password")
        .await
        .unwrap();
    let stored = w.store.user_by_name("bob").await.unwrap().unwrap();
    assert_eq!(stored.credential_generation, 1);

    assert!(matches!(
        auth.verify_ui_session(&ui_session).await,
        Err(Error::Unauthorized)
    ));
    assert!(matches!(
        auth.verify_api_token(&api_token).await,
        Err(Error::Unauthorized)
    ));
    // Signed in with an access token: it ends with the token, not with the password.
    assert_eq!(
        auth.verify_api_token(&token_api_token).await.unwrap(),
        with_access_token
    );
    // Other accounts' sessions are untouched.
    assert_eq!(auth.verify_ui_session(&root_session).await.unwrap(), root);

    // Sessions opened after the change, in the same second too, are valid.
    let signed_in = auth
        .login(
            "bob",
            "another-password",
            None,
            LoginPurpose::Interactive { otp: None },
        )
        .await
        .unwrap();
    let ui_session = auth.issue_ui_session(&signed_in).await.unwrap();
    let api_token = auth.issue_api_token(&signed_in).await.unwrap();
    assert_eq!(auth.verify_ui_session(&ui_session).await.unwrap(), bob);
    assert_eq!(auth.verify_api_token(&api_token).await.unwrap(), bob);

    // A site admin setting the password ends the user's sessions the same way.
    w.identity
        .set_password(&cli(), "bob", "admin-chosen")
        .await
        .unwrap();
    assert!(auth.verify_ui_session(&ui_session).await.is_err());
    assert!(auth.verify_api_token(&api_token).await.is_err());
    assert!(auth.verify_api_token(&token_api_token).await.is_ok());
}

#[tokio::test]
async fn a_remembered_basic_password_counts_only_while_it_is_the_password() {
    let w = world().await;
    let bob = w.user("bob", false).await;
    let auth = w.authenticator().await;
    assert_eq!(auth.basic("bob", "long-password", None).await.unwrap(), bob);
    // Remembered now: a second request costs no argon2id, and still signs bob in.
    assert_eq!(auth.basic("bob", "long-password", None).await.unwrap(), bob);

    w.identity
        .set_password(&as_user(&bob), "bob", "another-password")
        .await
        .unwrap();
    assert!(matches!(
        auth.basic("bob", "long-password", None).await,
        Err(Error::CredentialsInvalid)
    ));
    assert_eq!(
        auth.basic("bob", "another-password", None).await.unwrap(),
        bob
    );

    // Two-factor authentication turned on applies at the next request as well.
    let setup = w.identity.begin_totp(&as_user(&bob), "bob").await.unwrap();
    let code = totp_code(&setup.secret, w.clock.now_unix(), 6).unwrap();
    w.identity
        .confirm_totp(&as_user(&bob), "bob", &code)
        .await
        .unwrap();
    assert!(matches!(
        auth.basic("bob", "another-password", None).await,
        Err(Error::TwoFactorRequired(_))
    ));
}

#[tokio::test]
async fn a_remembered_basic_password_is_answered_without_reading_the_database() {
    let w = world().await;
    let bob = w.user("bob", false).await;
    let auth = w.authenticator().await;
    assert_eq!(auth.basic("bob", "long-password", None).await.unwrap(), bob);
    // With the database closed, only what the cache holds can answer.
    w.store.close().await;
    assert_eq!(auth.basic("bob", "long-password", None).await.unwrap(), bob);
    assert!(auth.basic("bob", "wrong-password", None).await.is_err());
}

#[tokio::test]
async fn credentials_changed_by_another_process_end_a_remembered_password_at_once() {
    let w = world().await;
    let root = w.user("root", true).await;
    let bob = w.user("bob", true).await;
    let auth = w.authenticator().await;
    assert_eq!(auth.basic("bob", "long-password", None).await.unwrap(), bob);
    assert_eq!(
        auth.basic("root", "long-password", None).await.unwrap(),
        root
    );

    // `berth user …` opens the same database file in a process of its own.
    let cli_store = Arc::new(
        SqliteMeta::open(&w._dir.path().join("berth.db"))
            .await
            .unwrap(),
    );
    let cli_identity = Identity::new(cli_store);
    cli_identity.set_admin(&cli(), "bob", false).await.unwrap();
    let demoted = auth.basic("bob", "long-password", None).await.unwrap();
    assert!(!demoted.is_site_admin(), "{demoted:?}");

    cli_identity
        .set_password(&cli(), "bob", "another-password")
        .await
        .unwrap();
    assert!(matches!(
        auth.basic("bob", "long-password", None).await,
        Err(Error::CredentialsInvalid)
    ));
    // Another account's remembered password is checked against its account again, and holds.
    assert_eq!(
        auth.basic("root", "long-password", None).await.unwrap(),
        root
    );
}

#[tokio::test]
async fn a_two_factor_code_signs_in_once() {
    let w = world().await;
    let bob = w.user("bob", false).await;
    let auth = w.authenticator().await;
    let setup = w.identity.begin_totp(&as_user(&bob), "bob").await.unwrap();
    let sign_in = |code: String| {
        let auth = &auth;
        async move {
            auth.login(
                "bob",
                "long-password",
                None,
                LoginPurpose::Interactive { otp: Some(&code) },
            )
            .await
        }
    };
    let now = w.clock.now_unix();
    let [previous, current, next] =
        [-30, 0, 30].map(|offset| totp_code(&setup.secret, now + offset, 6).unwrap());

    // The code that turns two-factor on is used up by it.
    w.identity
        .confirm_totp(&as_user(&bob), "bob", &previous)
        .await
        .unwrap();
    assert!(matches!(
        sign_in(previous.clone()).await,
        Err(Error::CredentialsInvalid)
    ));

    assert_eq!(sign_in(current.clone()).await.unwrap(), bob);
    assert!(
        matches!(
            sign_in(current.clone()).await,
            Err(Error::CredentialsInvalid)
        ),
        "a code signs in once"
    );
    assert_eq!(sign_in(next.clone()).await.unwrap(), bob);
    assert!(
        matches!(
            w.identity
                .disable_totp(&as_user(&bob), "bob", Some(&current))
                .await,
            Err(Error::AccountInvalid(_))
        ),
        "an older code after a newer one was used"
    );
    assert!(
        matches!(
            w.identity
                .disable_totp(&as_user(&bob), "bob", Some(&next))
                .await,
            Err(Error::AccountInvalid(_))
        ),
        "turning it off takes an unused code too"
    );

    // Every code of this step and the ones around it is used now. With a new secret (a
    // site admin turned two-factor off for a lost device), two sign-ins racing with one
    // code: only one gets in.
    w.identity.disable_totp(&cli(), "bob", None).await.unwrap();
    let setup = w.identity.begin_totp(&as_user(&bob), "bob").await.unwrap();
    let [previous, current] =
        [-30, 0].map(|offset| totp_code(&setup.secret, now + offset, 6).unwrap());
    w.identity
        .confirm_totp(&as_user(&bob), "bob", &previous)
        .await
        .unwrap();
    let (first, second) = tokio::join!(sign_in(current.clone()), sign_in(current));
    assert!(first.is_ok() ^ second.is_ok(), "{first:?} and {second:?}");
    assert!(matches!(first.and(second), Err(Error::CredentialsInvalid)));
}

#[tokio::test]
async fn personal_tokens_are_managed_by_their_owner_and_other_ids_stay_hidden() {
    let w = world().await;
    let bob = w.user("bob", false).await;
    let carol = w.user("carol", false).await;
    let id = &w.identity;
    let request = |user| TokenRequest {
        user,
        label: "ci",
        scope: TokenScope::Write,
        repositories: vec!["bob/*".into()],
        expires_in_days: Some(30),
    };

    let created = id
        .create_token(&as_user(&bob), request("bob"))
        .await
        .unwrap();
    assert!(created.secret.starts_with("berth_pat_"));
    assert_eq!(created.record.repositories, ["bob/*"]);
    assert_denied(id.create_token(&as_user(&carol), request("bob")).await);
    let tokened = with_token(&bob, TokenScope::Admin, &[]);
    assert_denied(id.create_token(&as_user(&tokened), request("bob")).await);
    let carols = id.create_token(&cli(), request("carol")).await.unwrap();

    assert_denied(id.list_tokens(&as_user(&carol), "bob").await);
    assert!(matches!(
        id.revoke_token(&as_user(&bob), "bob", carols.record.id)
            .await,
        Err(Error::TokenUnknown(_))
    ));
    assert!(matches!(
        id.revoke_token(&as_user(&bob), "bob", 12_345).await,
        Err(Error::TokenUnknown(_))
    ));
    assert!(id
        .revoke_token(&as_user(&bob), "bob", created.record.id)
        .await
        .unwrap());
    assert!(!id
        .revoke_token(&as_user(&bob), "bob", created.record.id)
        .await
        .unwrap());
    let listed = id.list_tokens(&as_user(&bob), "bob").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked_at.is_some());
    assert_eq!(
        w.actions("bob").await,
        ["user.create", "token.create", "token.revoke"]
    );
}

/// The label and expiry rules the JSON API applied are the service's own: the web UI and
/// `berth token create` call the service directly, and are refused alike.
#[tokio::test]
async fn token_labels_and_expiries_are_checked_for_every_surface() {
    let w = world().await;
    let bob = w.user("bob", false).await;
    let id = &w.identity;
    id.create_org(&as_user(&bob), "acme", None).await.unwrap();
    let too_long = "x".repeat(101);
    let refused: [(&str, Option<u32>); 4] = [
        ("", None),
        (" \t ", None),
        (&too_long, None),
        ("ci", Some(0)),
    ];
    // The web UI acts as the signed-in user, the CLI as `cli`.
    for acting in [as_user(&bob), cli()] {
        for (label, expires_in_days) in refused {
            let personal = TokenRequest {
                user: "bob",
                label,
                scope: TokenScope::Read,
                repositories: vec![],
                expires_in_days,
            };
            let result = id.create_token(&acting, personal).await;
            assert!(
                matches!(result, Err(Error::AccountInvalid(_))),
                "{label:?} {expires_in_days:?}: {result:?}"
            );
            let org = OrgTokenRequest {
                org: "acme",
                label,
                scope: TokenScope::Read,
                repositories: vec![],
                expires_in_days,
            };
            let result = id.create_org_token(&acting, org).await;
            assert!(
                matches!(result, Err(Error::AccountInvalid(_))),
                "{label:?} {expires_in_days:?}: {result:?}"
            );
        }
    }
    assert!(id.list_tokens(&cli(), "bob").await.unwrap().is_empty());
    assert!(id.list_org_tokens(&cli(), "acme").await.unwrap().is_empty());
    assert_eq!(w.actions("bob").await, ["user.create", "org.create"]);

    // The longest label passes, and labels are stored trimmed wherever they came from.
    let longest = "é".repeat(100);
    for (label, stored) in [
        ("  laptop \n", "laptop"),
        (longest.as_str(), longest.as_str()),
    ] {
        let request = TokenRequest {
            user: "bob",
            label,
            scope: TokenScope::Read,
            repositories: vec![],
            expires_in_days: Some(1),
        };
        let created = id.create_token(&cli(), request).await.unwrap();
        assert_eq!(created.record.label, stored);
        let expires = created.record.expires_at.unwrap() - created.record.created_at;
        assert_eq!(expires, 86_400);
    }
}

/// As on Docker Hub, access tokens do not manage access tokens: not even an unrestricted
/// `repo:admin` token of the account, or of a site admin, lists, creates or revokes them.
#[tokio::test]
async fn access_tokens_neither_see_nor_manage_access_tokens() {
    let w = world().await;
    let bob = w.user("bob", false).await;
    let root = w.user("root", true).await;
    let id = &w.identity;
    id.create_org(&as_user(&bob), "acme", None).await.unwrap();
    let request = TokenRequest {
        user: "bob",
        label: "ci",
        scope: TokenScope::Read,
        repositories: vec![],
        expires_in_days: None,
    };
    let bobs = id.create_token(&as_user(&bob), request).await.unwrap();
    let org_request = OrgTokenRequest {
        org: "acme",
        label: "deploy",
        scope: TokenScope::Read,
        repositories: vec![],
        expires_in_days: None,
    };
    let acmes = id
        .create_org_token(&as_user(&bob), org_request.clone())
        .await
        .unwrap();
    for scope in TokenScope::ALL {
        for patterns in [&[][..], &["bob/app"][..]] {
            for principal in [&bob, &root] {
                let tokened = with_token(principal, scope, patterns);
                let acting = as_user(&tokened);
                assert_denied(id.list_tokens(&acting, "bob").await);
                assert_denied(id.revoke_token(&acting, "bob", bobs.record.id).await);
                assert_denied(id.list_org_tokens(&acting, "acme").await);
                assert_denied(id.create_org_token(&acting, org_request.clone()).await);
                assert_denied(id.revoke_org_token(&acting, "acme", acmes.record.id).await);
            }
        }
    }
    // The owner's unrestricted admin token still manages the organization itself.
    let admin_token = with_token(&bob, TokenScope::Admin, &[]);
    id.create_team(&as_user(&admin_token), "acme", "devs", "")
        .await
        .unwrap();
    assert_eq!(
        id.list_tokens(&as_user(&bob), "bob").await.unwrap().len(),
        1
    );
    assert_eq!(
        id.list_org_tokens(&as_user(&root), "acme")
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A site admin's access token, even an unrestricted `repo:admin` one, creates no accounts
/// and makes no site admins: either would hand out credentials that outlive the token.
#[tokio::test]
async fn site_admin_tokens_create_no_accounts_and_no_admins() {
    let w = world().await;
    let root = w.user("root", true).await;
    w.user("bob", false).await;
    let id = &w.identity;
    let token = with_token(&root, TokenScope::Admin, &[]);
    assert_denied(
        id.create_user(&as_user(&token), "eve", "long-password", true)
            .await,
    );
    assert_denied(id.set_admin(&as_user(&token), "bob", true).await);
    assert!(
        id.list_users(&as_user(&token)).await.is_ok(),
        "reading is fine"
    );
    assert!(!id.user(&cli(), "bob").await.unwrap().is_admin);
    assert!(id.user(&cli(), "eve").await.is_err());
    id.set_admin(&as_user(&root), "bob", true).await.unwrap();
}

/// A change to an account's password and admin flag is one change: every part is
/// authorized and checked before any is written, so a refused part leaves the other undone.
#[tokio::test]
async fn an_account_change_is_all_or_nothing() {
    let w = world().await;
    let root = w.user("root", true).await;
    let bob = w.user("bob", false).await;
    let id = &w.identity;
    let store = w.store.clone();
    let hash_of = |name: &'static str| {
        let store = store.clone();
        async move {
            store
                .user_by_name(name)
                .await
                .unwrap()
                .unwrap()
                .password_hash
        }
    };
    let (bobs, roots) = (hash_of("bob").await, hash_of("root").await);

    // bob may change his password but not make himself an admin: neither happens.
    let promote_and_change = AccountChange {
        password: Some("another long password"),
        is_admin: Some(true),
    };
    assert_denied(
        id.change_account(&as_user(&bob), "bob", promote_and_change)
            .await,
    );
    // The last site admin cannot step down, so the password does not change either.
    let step_down_and_change = AccountChange {
        password: Some("another long password"),
        is_admin: Some(false),
    };
    assert!(matches!(
        id.change_account(&as_user(&root), "root", step_down_and_change)
            .await,
        Err(Error::AccountInvalid(_))
    ));
    // A password too short refuses the promotion that came with it.
    let short = AccountChange {
        password: Some("short"),
        is_admin: Some(true),
    };
    assert!(matches!(
        id.change_account(&as_user(&root), "bob", short).await,
        Err(Error::AccountInvalid(_))
    ));
    assert_eq!(hash_of("bob").await, bobs);
    assert_eq!(hash_of("root").await, roots);
    assert!(!id.user(&cli(), "bob").await.unwrap().is_admin);
    assert_eq!(w.actions("bob").await, ["user.create"]);

    let both = AccountChange {
        password: Some("another long password"),
        is_admin: Some(true),
    };
    id.change_account(&as_user(&root), "bob", both)
        .await
        .unwrap();
    assert!(id.user(&cli(), "bob").await.unwrap().is_admin);
    assert_ne!(hash_of("bob").await, bobs);
    assert_eq!(
        w.actions("bob").await,
        ["user.create", "user.admin", "user.password"]
    );
}

/// Repository settings are decided by the authorizer the service is given, the one the
/// registry asks, and not by a copy of the rules: with one that refuses everything, even
/// the namespace's owner changes nothing, and with one that allows everything, anyone may.
#[tokio::test]
async fn repository_settings_are_decided_by_the_authorizer() {
    struct RefuseAll;
    #[async_trait::async_trait]
    impl Authorizer for RefuseAll {
        async fn actions(
            &self,
            _principal: &Principal,
            _resource: &Resource,
        ) -> berth_core::Result<ActionSet> {
            Ok(ActionSet::NONE)
        }
    }
    let w = world().await;
    let alice = w.user("alice", false).await;
    let bob = w.user("bob", false).await;
    let app = repo("alice/app");
    w.identity
        .create_repository(&as_user(&alice), &app, Some(true))
        .await
        .unwrap();

    let refusing = w.identity.clone().with_authorizer(Arc::new(RefuseAll));
    assert_name_unknown(
        refusing
            .set_repository_visibility(&as_user(&alice), &app, false)
            .await,
    );
    assert_denied(
        refusing
            .create_repository(&as_user(&alice), &repo("alice/other"), None)
            .await,
    );
    let open = w.identity.clone().with_authorizer(Arc::new(OpenAccess));
    open.set_repository_visibility(&as_user(&bob), &app, false)
        .await
        .unwrap();
    assert!(!w.store.repository(&app).await.unwrap().unwrap().is_private);
    assert_eq!(
        w.actions("alice/app").await,
        ["repository.create", "repository.visibility"]
    );
}

#[tokio::test]
async fn organizations_are_managed_by_their_owners() {
    let w = world().await;
    let bob = w.user("bob", false).await;
    let carol = w.user("carol", false).await;
    let root = w.user("root", true).await;
    let id = &w.identity;

    assert!(matches!(
        id.create_org(&as_user(&Principal::anonymous()), "anon", None)
            .await,
        Err(Error::Unauthorized)
    ));
    let write_token = with_token(&bob, TokenScope::Write, &[]);
    assert_denied(id.create_org(&as_user(&write_token), "acme", None).await);
    assert_denied(id.create_org(&as_user(&bob), "acme", Some("carol")).await);
    assert!(id.create_org(&cli(), "acme", None).await.is_err());
    let acme = id.create_org(&as_user(&bob), "acme", None).await.unwrap();
    id.create_org(&cli(), "globex", Some("carol"))
        .await
        .unwrap();
    assert!(matches!(
        id.create_org(&cli(), "bob", Some("carol")).await,
        Err(Error::Conflict(_))
    ));

    let names = |orgs: Vec<berth_core::ports::OrgRecord>| -> Vec<String> {
        orgs.into_iter().map(|o| o.name).collect()
    };
    assert_eq!(names(id.list_orgs(&as_user(&bob)).await.unwrap()), ["acme"]);
    assert_eq!(
        names(id.list_orgs(&as_user(&root)).await.unwrap()),
        ["acme", "globex", "library"]
    );

    assert_denied(id.create_team(&as_user(&carol), "acme", "devs", "").await);
    id.create_team(&as_user(&bob), "acme", "devs", "Developers")
        .await
        .unwrap();
    assert!(matches!(
        id.create_team(&as_user(&bob), "acme", "devs", "").await,
        Err(Error::Conflict(_))
    ));
    assert_denied(id.list_teams(&as_user(&carol), "acme").await);
    assert!(id
        .add_team_member(&as_user(&bob), "acme", "devs", "carol")
        .await
        .unwrap());
    assert!(!id
        .add_team_member(&as_user(&bob), "acme", "devs", "carol")
        .await
        .unwrap());
    assert_eq!(
        names(id.list_orgs(&as_user(&carol)).await.unwrap()),
        ["acme", "globex"]
    );
    let teams: Vec<String> = id
        .list_teams(&as_user(&carol), "acme")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(teams, ["devs", OWNERS_TEAM]);
    assert_eq!(
        id.team_members(&as_user(&carol), "acme", "devs")
            .await
            .unwrap(),
        ["carol"]
    );
    assert_denied(
        id.add_team_member(&as_user(&carol), "acme", "owners", "carol")
            .await,
    );
    assert!(matches!(
        id.add_team_member(&as_user(&bob), "acme", "ghosts", "carol")
            .await,
        Err(Error::TeamUnknown { .. })
    ));

    assert!(matches!(
        id.remove_team_member(&as_user(&bob), "acme", OWNERS_TEAM, "bob")
            .await,
        Err(Error::AccountInvalid(_))
    ));
    assert!(matches!(
        id.delete_team(&as_user(&bob), "acme", OWNERS_TEAM).await,
        Err(Error::AccountInvalid(_))
    ));
    id.add_team_member(&cli(), "acme", OWNERS_TEAM, "carol")
        .await
        .unwrap();
    assert!(id
        .remove_team_member(&as_user(&carol), "acme", OWNERS_TEAM, "bob")
        .await
        .unwrap());
    assert_denied(id.delete_team(&as_user(&bob), "acme", "devs").await);
    id.delete_team(&as_user(&carol), "acme", "devs")
        .await
        .unwrap();
    assert!(matches!(
        id.delete_team(&as_user(&carol), "acme", "devs").await,
        Err(Error::TeamUnknown { .. })
    ));

    // Organization tokens: by owners, recorded as created by the caller (or, from the CLI,
    // by the first owner).
    let request = || OrgTokenRequest {
        org: "acme",
        label: "deploy",
        scope: TokenScope::Read,
        repositories: vec![],
        expires_in_days: None,
    };
    assert_denied(id.create_org_token(&as_user(&bob), request()).await);
    let token = id
        .create_org_token(&as_user(&carol), request())
        .await
        .unwrap();
    assert_eq!(token.record.org_id, Some(acme.id));
    assert_eq!(token.record.user_id, carol.user_id().unwrap());
    let from_cli = id.create_org_token(&cli(), request()).await.unwrap();
    assert_eq!(from_cli.record.user_id, carol.user_id().unwrap());
    assert_eq!(id.list_org_tokens(&cli(), "acme").await.unwrap().len(), 2);
    assert!(id.list_tokens(&cli(), "carol").await.unwrap().is_empty());
    assert_denied(id.list_org_tokens(&as_user(&bob), "acme").await);
    assert!(matches!(
        id.revoke_org_token(&cli(), "globex", token.record.id).await,
        Err(Error::TokenUnknown(_))
    ));
    assert!(id
        .revoke_org_token(&as_user(&carol), "acme", token.record.id)
        .await
        .unwrap());
    assert_eq!(
        w.actions("acme").await,
        ["org.create", "token.create", "token.create", "token.revoke"]
    );
    assert_eq!(
        w.actions("acme/devs").await,
        ["team.create", "team.member.add", "team.delete"]
    );
}

#[tokio::test]
async fn repository_settings_need_admin_and_private_repositories_look_missing() {
    let w = world().await;
    let bob = w.user("bob", false).await;
    let carol = w.user("carol", false).await;
    let dave = w.user("dave", false).await;
    let id = &w.identity;
    id.create_org(&as_user(&bob), "acme", None).await.unwrap();
    id.create_team(&as_user(&bob), "acme", "devs", "")
        .await
        .unwrap();
    id.add_team_member(&as_user(&bob), "acme", "devs", "carol")
        .await
        .unwrap();
    let app = repo("acme/app");

    assert_denied(id.create_repository(&as_user(&carol), &app, None).await);
    assert!(matches!(
        id.create_repository(&cli(), &repo("ghost/app"), None).await,
        Err(Error::AccountUnknown(_))
    ));
    assert!(matches!(
        id.create_repository(&cli(), &repo("app"), None).await,
        Err(Error::NameInvalid(_))
    ));
    let created = id
        .create_repository(&as_user(&bob), &app, None)
        .await
        .unwrap();
    assert!(created.is_private, "namespaces default to private");
    // Someone who cannot see it is refused as before, not told that it exists.
    assert_denied(id.create_repository(&as_user(&carol), &app, None).await);
    assert!(matches!(
        id.create_repository(&as_user(&bob), &app, None).await,
        Err(Error::Conflict(_))
    ));

    for outsider in [&carol, &dave, &Principal::anonymous()] {
        assert_name_unknown(id.repository(&as_user(outsider), &app).await);
        assert_name_unknown(
            id.set_repository_visibility(&as_user(outsider), &app, false)
                .await,
        );
        assert_name_unknown(id.delete_repository(&as_user(outsider), &app).await);
        assert_name_unknown(
            id.grant_team(&as_user(outsider), "acme", "devs", &app, Permission::Admin)
                .await,
        );
    }
    assert_name_unknown(id.repository(&as_user(&bob), &repo("acme/missing")).await);

    id.grant_team(&as_user(&bob), "acme", "devs", &app, Permission::Read)
        .await
        .unwrap();
    assert_eq!(
        id.repository(&as_user(&carol), &app).await.unwrap().id,
        created.id
    );
    assert_denied(
        id.set_repository_visibility(&as_user(&carol), &app, false)
            .await,
    );
    id.grant_team(&as_user(&bob), "acme", "devs", &app, Permission::Admin)
        .await
        .unwrap();
    id.set_repository_visibility(&as_user(&carol), &app, false)
        .await
        .unwrap();
    let settings = id
        .repository_settings(&as_user(&carol), &app)
        .await
        .unwrap();
    assert!(!settings.repository.is_private);
    assert_eq!(
        settings.team_grants,
        [("devs".to_owned(), Permission::Admin)]
    );

    // Visible to everyone now, but settings still need Admin.
    assert!(id.repository(&as_user(&dave), &app).await.is_ok());
    assert_denied(id.delete_repository(&as_user(&dave), &app).await);
    assert!(matches!(
        id.delete_repository(&as_user(&Principal::anonymous()), &app)
            .await,
        Err(Error::Unauthorized)
    ));

    // Listings show what the caller may see, narrowed by token patterns.
    id.create_repository(&as_user(&bob), &repo("acme/secret"), Some(true))
        .await
        .unwrap();
    let listed = |p: Principal| {
        let id = id.clone();
        async move {
            id.namespace_repositories(&as_user(&p), "acme")
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(dave.clone()).await, ["acme/app"]);
    assert_eq!(listed(Principal::anonymous()).await, ["acme/app"]);
    assert_eq!(listed(bob.clone()).await, ["acme/app", "acme/secret"]);
    assert_eq!(
        listed(with_token(&bob, TokenScope::Read, &["acme/s*"])).await,
        ["acme/secret"]
    );

    // Teams only on their organization's repositories; tokens narrow settings too.
    id.create_repository(&as_user(&bob), &repo("bob/tool"), None)
        .await
        .unwrap();
    assert!(matches!(
        id.grant_team(
            &as_user(&bob),
            "acme",
            "devs",
            &repo("bob/tool"),
            Permission::Read
        )
        .await,
        Err(Error::AccountInvalid(_))
    ));
    let write_token = with_token(&bob, TokenScope::Write, &[]);
    assert_denied(
        id.set_repository_visibility(&as_user(&write_token), &app, true)
            .await,
    );
    assert!(id
        .revoke_team(&as_user(&bob), "acme", "devs", &app)
        .await
        .unwrap());
    assert!(!id
        .revoke_team(&as_user(&bob), "acme", "devs", &app)
        .await
        .unwrap());

    id.delete_repository(&as_user(&bob), &app).await.unwrap();
    assert_name_unknown(id.repository(&as_user(&bob), &app).await);
    assert_eq!(
        w.actions("acme/app").await,
        [
            "repository.create",
            "repository.team.grant",
            "repository.team.grant",
            "repository.visibility",
            "repository.team.revoke",
            "repository.delete"
        ]
    );
}

#[tokio::test]
async fn collaborators_are_for_personal_repositories() {
    let w = world().await;
    let bob = w.user("bob", false).await;
    let carol = w.user("carol", false).await;
    let id = &w.identity;
    let tool = repo("bob/tool");
    id.create_repository(&as_user(&bob), &tool, None)
        .await
        .unwrap();
    id.create_org(&as_user(&bob), "acme", None).await.unwrap();
    id.create_repository(&as_user(&bob), &repo("acme/app"), None)
        .await
        .unwrap();

    assert_name_unknown(id.repository(&as_user(&carol), &tool).await);
    id.set_collaborator(&as_user(&bob), &tool, "carol", Permission::Write)
        .await
        .unwrap();
    assert!(id.repository(&as_user(&carol), &tool).await.is_ok());
    let facts = w.store.access_facts(carol.user_id(), &tool).await.unwrap();
    assert_eq!(facts.collaborator_permission, Some(Permission::Write));
    assert_denied(
        id.set_collaborator(&as_user(&carol), &tool, "carol", Permission::Admin)
            .await,
    );
    assert!(matches!(
        id.set_collaborator(&as_user(&bob), &tool, "bob", Permission::Read)
            .await,
        Err(Error::AccountInvalid(_))
    ));
    assert!(matches!(
        id.set_collaborator(&as_user(&bob), &repo("acme/app"), "carol", Permission::Read)
            .await,
        Err(Error::AccountInvalid(_))
    ));
    assert!(matches!(
        id.set_collaborator(&as_user(&bob), &tool, "nobody", Permission::Read)
            .await,
        Err(Error::AccountUnknown(_))
    ));
    let settings = id.repository_settings(&as_user(&bob), &tool).await.unwrap();
    assert_eq!(
        settings.collaborators,
        [("carol".to_owned(), Permission::Write)]
    );
    assert!(id
        .remove_collaborator(&as_user(&bob), &tool, "carol")
        .await
        .unwrap());
    assert_name_unknown(id.repository(&as_user(&carol), &tool).await);
}

#[tokio::test]
async fn namespace_defaults_are_set_by_their_owners() {
    let w = world().await;
    let bob = w.user("bob", false).await;
    let carol = w.user("carol", false).await;
    let id = &w.identity;
    id.create_org(&as_user(&bob), "acme", None).await.unwrap();

    assert_denied(
        id.set_default_visibility(&as_user(&carol), "bob", false)
            .await,
    );
    assert_denied(
        id.set_default_visibility(&as_user(&carol), "acme", false)
            .await,
    );
    id.set_default_visibility(&as_user(&bob), "acme", false)
        .await
        .unwrap();
    assert!(
        !id.namespace_settings(&as_user(&bob), "acme")
            .await
            .unwrap()
            .default_private
    );
    let app = id
        .create_repository(&as_user(&bob), &repo("acme/app"), None)
        .await
        .unwrap();
    assert!(!app.is_private);
    id.set_default_visibility(&cli(), "bob", false)
        .await
        .unwrap();
    assert!(matches!(
        id.set_default_visibility(&cli(), "ghost", false).await,
        Err(Error::AccountUnknown(_))
    ));
    assert_eq!(
        w.actions("acme").await,
        ["org.create", "namespace.default_visibility"]
    );
}

#[tokio::test]
async fn the_audit_log_is_for_site_admins() {
    let w = world().await;
    let bob = w.user("bob", false).await;
    assert_denied(
        w.identity
            .audit_records(&as_user(&bob), AuditQuery::default())
            .await,
    );
    w.user("carol", false).await;
    let records = w
        .identity
        .audit_records(&cli(), AuditQuery::default())
        .await
        .unwrap();
    let targets: Vec<&str> = records.iter().map(|r| r.event.target.as_str()).collect();
    assert_eq!(
        targets,
        ["carol", "bob"],
        "newest first; no limit means a default page"
    );
    assert!(records.iter().all(|r| r.event.actor == "cli"));
}

#[tokio::test]
async fn the_first_start_creates_one_admin() {
    let w = world().await;
    let password = w.identity.first_start_admin(None).await.unwrap().unwrap();
    assert_eq!(password.len(), 24);
    let admin = w.store.user_by_name("admin").await.unwrap().unwrap();
    assert!(admin.is_admin);
    assert!(verify_password(&password, &admin.password_hash));
    assert_eq!(w.identity.first_start_admin(None).await.unwrap(), None);
    assert_eq!(w.store.count_users().await.unwrap(), 1);

    let w = world().await;
    let from_env = w
        .identity
        .first_start_admin(Some("from-the-environment".into()))
        .await
        .unwrap();
    assert_eq!(from_env, None);
    let admin = w.store.user_by_name("admin").await.unwrap().unwrap();
    assert!(verify_password(
        "from-the-environment",
        &admin.password_hash
    ));
    assert_eq!(w.actions("admin").await, ["user.create"]);
    let w = world().await;
    assert!(w
        .identity
        .first_start_admin(Some("short".into()))
        .await
        .is_err());
}

// ---------------------------------------------------------------------------
// Self-service sign-up
// ---------------------------------------------------------------------------

/// A client address from the documentation range.
fn client(last: u8) -> Option<IpAddr> {
    Some(IpAddr::from([198, 51, 100, last]))
}

impl World {
    /// The same service with self-service sign-up open, as `allow_signup = true` makes it.
    fn open_for_signup(&self) -> Identity<SqliteMeta> {
        self.identity.clone().with_signup(true)
    }
}

#[tokio::test]
async fn sign_up_is_refused_while_it_is_off() {
    let w = world().await;
    assert!(!w.identity.signup_allowed(), "off unless turned on");
    let refused = w
        .identity
        .sign_up("newcomer", "long-password", client(1))
        .await;
    assert!(matches!(refused, Err(Error::SignupClosed)), "{refused:?}");
    assert!(refused
        .unwrap_err()
        .to_string()
        .contains("sign-up is turned off"));
    assert!(w.store.user_by_name("newcomer").await.unwrap().is_none());
    assert!(w.actions("newcomer").await.is_empty());
}

#[tokio::test]
async fn a_signed_up_account_signs_in_and_is_not_a_site_admin() {
    let w = world().await;
    let open = w.open_for_signup();
    assert!(open.signup_allowed());
    let account = open
        .sign_up("newcomer", "long-password", client(7))
        .await
        .unwrap();
    assert_eq!(account.name, "newcomer");
    assert!(!account.is_admin);
    let stored = w.store.user_by_name("newcomer").await.unwrap().unwrap();
    assert!(!stored.is_admin);
    assert!(stored.password_hash.starts_with("$argon2id$"));
    assert!(verify_password("long-password", &stored.password_hash));

    let authorizer = Arc::new(PolicyAuthorizer::new(w.store.clone()));
    let auth = Authenticator::new(w.store.clone(), authorizer, AuthSettings::default())
        .await
        .unwrap();
    let signed_in = auth
        .login(
            "newcomer",
            "long-password",
            client(7),
            LoginPurpose::Registry,
        )
        .await
        .unwrap();
    assert_eq!(signed_in, account.principal());
    assert!(!signed_in.is_site_admin());
    assert_denied(open.list_users(&as_user(&signed_in)).await);

    let query = AuditQuery {
        account: Some("newcomer".to_owned()),
        limit: 10,
        ..AuditQuery::default()
    };
    let records = w.identity.audit_records(&cli(), query).await.unwrap();
    let signup = records
        .iter()
        .find(|r| r.event.action == "account.signup")
        .expect("the sign-up is in the audit log");
    assert_eq!(signup.event.actor, "newcomer");
    assert_eq!(signup.event.target, "newcomer");
    assert_eq!(signup.event.address.as_deref(), Some("198.51.100.7"));
}

#[tokio::test]
async fn sign_up_keeps_the_rules_for_names_and_passwords() {
    let w = world().await;
    w.user("alice", false).await;
    w.identity
        .create_org(&cli(), "acme", Some("alice"))
        .await
        .unwrap();
    let open = w.open_for_signup();
    for taken in ["alice", "acme", "library"] {
        let refused = open.sign_up(taken, "long-password", client(1)).await;
        assert!(
            matches!(&refused, Err(Error::Conflict(name)) if name == taken),
            "{taken}: {refused:?}"
        );
    }
    for (name, password, says) in [
        ("cli", "long-password", "reserved"),
        ("anonymous", "long-password", "reserved"),
        ("Not Valid", "long-password", "lowercase letters"),
        ("x", "long-password", "2 to 39"),
        ("newcomer", "short", "8 characters"),
    ] {
        match open.sign_up(name, password, client(1)).await {
            Err(Error::AccountInvalid(message)) => {
                assert!(message.contains(says), "{name}: {message}")
            }
            other => panic!("{name} / {password}: {other:?}"),
        }
    }
    let alice = w.store.user_by_name("alice").await.unwrap().unwrap();
    assert!(
        verify_password("long-password", &alice.password_hash),
        "a refused sign-up leaves the existing account alone"
    );
    assert_eq!(w.store.list_users().await.unwrap().len(), 1);

    // Refusals cost nothing from the address's allowance.
    for n in 0..SIGNUPS_PER_ADDRESS {
        open.sign_up(&format!("member{n}"), "long-password", client(1))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn sign_ups_are_rationed_per_client_address() {
    let w = world().await;
    let open = w.open_for_signup();
    for n in 0..SIGNUPS_PER_ADDRESS {
        open.sign_up(&format!("bot{n}"), "long-password", client(9))
            .await
            .unwrap();
    }
    match open.sign_up("one-more", "long-password", client(9)).await {
        Err(Error::TooManyRequests { retry_after_secs }) => {
            assert!(
                retry_after_secs > SIGNUP_WINDOW.as_secs() - 60
                    && retry_after_secs <= SIGNUP_WINDOW.as_secs(),
                "{retry_after_secs}"
            );
        }
        other => panic!("the address used up its allowance: {other:?}"),
    }
    assert!(w.store.user_by_name("one-more").await.unwrap().is_none());

    // Clones of the service (one per request) share the allowance.
    let refused = open
        .clone()
        .sign_up("one-more", "long-password", client(9))
        .await;
    assert!(
        matches!(refused, Err(Error::TooManyRequests { .. })),
        "{refused:?}"
    );

    // Another address has its own allowance.
    open.sign_up("one-more", "long-password", client(10))
        .await
        .unwrap();

    // Callers without a known address share one.
    for n in 0..SIGNUPS_PER_ADDRESS {
        open.sign_up(&format!("anon{n}"), "long-password", None)
            .await
            .unwrap();
    }
    let refused = open.sign_up("anon-more", "long-password", None).await;
    assert!(
        matches!(refused, Err(Error::TooManyRequests { .. })),
        "{refused:?}"
    );
}
