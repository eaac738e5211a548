//! Whose allowance a manifest pull spends: the pure attribution rule over the caller, the
//! facts the store holds about its account, and the configured tiers.
//!
//! The rule (Docker Hub's, made explicit):
//! - site admins are never counted;
//! - an anonymous pull spends its client address's allowance (`anonymous` tier), IPv6
//!   addresses grouped per /64 as Docker Hub does, since one host often holds a whole /64;
//! - an organization's access token spends the organization's allowance (its plan, else the
//!   `organization` tier);
//! - a user's pull from a repository of an organization they belong to spends that
//!   organization's allowance (the organization's plan covers its members' work, the way a
//!   Docker Hub team subscription does); otherwise the user's own plan if one is set;
//!   otherwise, when the user belongs to exactly one organization, that organization's
//!   allowance (Docker Hub's single-organization attribution); otherwise the user's own
//!   allowance (`authenticated` tier).
//!
//! A plan or tier without a limit means the pull is not counted at all, and no rate-limit
//! headers are sent (Docker Hub's sign of an unlimited caller).

use super::rate::{Plan, Rate};
use std::net::IpAddr;

/// The limits per tier from `[rate_limit]`; `None`: that tier is not limited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tiers {
    pub anonymous: Option<Rate>,
    pub authenticated: Option<Rate>,
    pub organization: Option<Rate>,
}

impl Tiers {
    /// Whether any tier is limited; plans can still limit accounts when none is.
    pub fn any(&self) -> bool {
        self.anonymous.is_some() || self.authenticated.is_some() || self.organization.is_some()
    }
}

/// What set the limit a counted pull spends: a tier of `[rate_limit]`, or a plan of the
/// account or organization that pays. The label of the rate-limit metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    Anonymous,
    Authenticated,
    Organization,
    Plan,
}

impl Tier {
    pub const ALL: [Tier; 4] = [
        Tier::Anonymous,
        Tier::Authenticated,
        Tier::Organization,
        Tier::Plan,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Anonymous => "anonymous",
            Tier::Authenticated => "authenticated",
            Tier::Organization => "organization",
            Tier::Plan => "plan",
        }
    }
}

/// Who pulls, as the credentials show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Puller<'a> {
    /// No credentials: the client's address (None: unknown, all such pulls share one
    /// allowance).
    Anonymous(Option<IpAddr>),
    /// A user's name, or `org/NAME` for an organization's access token.
    Account(&'a str),
}

/// What the store knows about an account, for attribution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountFacts {
    pub is_site_admin: bool,
    pub is_organization: bool,
    /// The account's own plan, if a site admin set one.
    pub plan: Option<Plan>,
    /// For a user: the organizations they belong to (through any team), with their plans.
    pub organizations: Vec<(String, Option<Plan>)>,
}

/// The outcome of attribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribution {
    /// Not counted, no headers.
    Free,
    /// Counted against `key`'s allowance of `rate`, set by `tier`; `source` is what
    /// `docker-ratelimit-source` names (an address, a /64, or an account).
    Counted {
        key: String,
        source: String,
        rate: Rate,
        tier: Tier,
    },
}

/// The address an anonymous allowance is keyed on: IPv4 addresses (and IPv4-mapped IPv6
/// ones) as they are, other IPv6 addresses as their /64 network.
pub fn client_group(address: IpAddr) -> String {
    match address.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", std::net::Ipv6Addr::from(bits))
        }
    }
}

/// Decides whose allowance a pull of a repository in `namespace` spends. `facts` is `None`
/// for an anonymous caller, or for an account the store no longer knows (counted as a
/// signed-in user).
pub fn attribute(
    puller: Puller<'_>,
    facts: Option<&AccountFacts>,
    namespace: &str,
    tiers: &Tiers,
) -> Attribution {
    let counted = |key: String, source: String, rate: Option<Rate>, tier: Tier| match rate {
        Some(rate) => Attribution::Counted {
            key,
            source,
            rate,
            tier,
        },
        None => Attribution::Free,
    };
    let authenticated = (Tier::Authenticated, tiers.authenticated);
    let organization = (Tier::Organization, tiers.organization);
    let account = |name: &str, plan: Option<Plan>, (tier, rate): (Tier, Option<Rate>)| {
        let (tier, rate) = match plan {
            Some(plan) => (Tier::Plan, plan.rate()),
            None => (tier, rate),
        };
        counted(format!("ns:{name}"), name.to_owned(), rate, tier)
    };
    let name = match puller {
        Puller::Anonymous(address) => {
            let group = address.map_or_else(|| "unknown".to_owned(), client_group);
            return counted(
                format!("ip:{group}"),
                group,
                tiers.anonymous,
                Tier::Anonymous,
            );
        }
        Puller::Account(name) => name,
    };
    let Some(facts) = facts else {
        return account(name, None, authenticated);
    };
    if facts.is_site_admin {
        return Attribution::Free;
    }
    if facts.is_organization {
        let org = name.strip_prefix("org/").unwrap_or(name);
        return account(org, facts.plan, organization);
    }
    let org = |(org, plan): &(String, Option<Plan>)| account(org, *plan, organization);
    if let Some(owner) = facts.organizations.iter().find(|(org, _)| org == namespace) {
        return org(owner);
    }
    if facts.plan.is_some() {
        return account(name, facts.plan, authenticated);
    }
    match facts.organizations.as_slice() {
        [only] => org(only),
        _ => account(name, None, authenticated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(raw: &str) -> Rate {
        Rate::parse(raw).unwrap()
    }

    fn tiers() -> Tiers {
        Tiers {
            anonymous: Some(rate("100;w=21600")),
            authenticated: Some(rate("200;w=21600")),
            organization: Some(rate("5000;w=86400")),
        }
    }

    fn counted(key: &str, source: &str, limit: &str, tier: Tier) -> Attribution {
        Attribution::Counted {
            key: key.to_owned(),
            source: source.to_owned(),
            rate: rate(limit),
            tier,
        }
    }

    fn user(orgs: &[(&str, Option<Plan>)], plan: Option<Plan>) -> AccountFacts {
        AccountFacts {
            plan,
            organizations: orgs.iter().map(|(o, p)| (o.to_string(), *p)).collect(),
            ..AccountFacts::default()
        }
    }

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_group(a), "2001:db8:1:2::/64");
        assert_eq!(client_group(a), client_group(b));
        assert_ne!(client_group(a), client_group(other));
        assert_eq!(client_group("192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_ne!(
            client_group("192.0.2.7".parse().unwrap()),
            client_group("192.0.2.8".parse().unwrap())
        );
        // An IPv4 client seen through a dual-stack socket is still one IPv4 address.
        assert_eq!(
            client_group("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7"
        );
    }

    #[test]
    fn tiers_and_plans() {
        let t = tiers();
        let ns = "library";
        let anon = Puller::Anonymous(Some("2001:db8::9".parse().unwrap()));
        assert_eq!(
            attribute(anon, None, ns, &t),
            counted(
                "ip:2001:db8::/64",
                "2001:db8::/64",
                "100;w=21600",
                Tier::Anonymous
            )
        );
        assert_eq!(
            attribute(Puller::Anonymous(None), None, ns, &t),
            counted("ip:unknown", "unknown", "100;w=21600", Tier::Anonymous)
        );
        let alice = Puller::Account("alice");
        assert_eq!(
            attribute(alice, Some(&user(&[], None)), ns, &t),
            counted("ns:alice", "alice", "200;w=21600", Tier::Authenticated)
        );
        assert_eq!(
            attribute(alice, None, ns, &t),
            counted("ns:alice", "alice", "200;w=21600", Tier::Authenticated)
        );
        let own = Plan::Limited(rate("7;w=60"));
        assert_eq!(
            attribute(alice, Some(&user(&[], Some(own))), ns, &t),
            counted("ns:alice", "alice", "7;w=60", Tier::Plan)
        );
        assert_eq!(
            attribute(alice, Some(&user(&[], Some(Plan::Unlimited))), ns, &t),
            Attribution::Free
        );
        let admin = AccountFacts {
            is_site_admin: true,
            ..AccountFacts::default()
        };
        assert_eq!(attribute(alice, Some(&admin), ns, &t), Attribution::Free);
        let org_token = AccountFacts {
            is_organization: true,
            ..AccountFacts::default()
        };
        assert_eq!(
            attribute(Puller::Account("org/acme"), Some(&org_token), ns, &t),
            counted("ns:acme", "acme", "5000;w=86400", Tier::Organization)
        );
        let no_tiers = Tiers::default();
        assert_eq!(attribute(anon, None, ns, &no_tiers), Attribution::Free);
        assert_eq!(
            attribute(alice, Some(&user(&[], Some(own))), ns, &no_tiers),
            counted("ns:alice", "alice", "7;w=60", Tier::Plan)
        );
    }

    #[test]
    fn organizations_cover_their_members() {
        let t = tiers();
        let alice = Puller::Account("alice");
        let acme_plan = Plan::Limited(rate("3;w=60"));
        let member = user(&[("acme", Some(acme_plan)), ("beta", None)], None);
        // Pulling from one of the member's organizations: that organization pays.
        assert_eq!(
            attribute(alice, Some(&member), "acme", &t),
            counted("ns:acme", "acme", "3;w=60", Tier::Plan)
        );
        assert_eq!(
            attribute(alice, Some(&member), "beta", &t),
            counted("ns:beta", "beta", "5000;w=86400", Tier::Organization)
        );
        // Elsewhere, with two organizations: the user's own allowance.
        assert_eq!(
            attribute(alice, Some(&member), "library", &t),
            counted("ns:alice", "alice", "200;w=21600", Tier::Authenticated)
        );
        // With exactly one organization, it covers every pull of its member...
        let single = user(&[("acme", Some(Plan::Unlimited))], None);
        assert_eq!(
            attribute(alice, Some(&single), "library", &t),
            Attribution::Free
        );
        // ...unless the member has a plan of their own.
        let own = Plan::Limited(rate("9;w=60"));
        let single_with_plan = user(&[("acme", Some(Plan::Unlimited))], Some(own));
        assert_eq!(
            attribute(alice, Some(&single_with_plan), "library", &t),
            counted("ns:alice", "alice", "9;w=60", Tier::Plan)
        );
        assert_eq!(
            attribute(alice, Some(&single_with_plan), "acme", &t),
            Attribution::Free
        );
    }
}
