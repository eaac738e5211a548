//! Pull policies as a pure rule: what a policy asks (a verified signature; no findings of a
//! severity or worse, optionally letting unscanned images through) against the facts of one
//! manifest, and the refusal that names the policy and the reason.

use super::{SignatureState, VulnerabilitySummary};
use crate::lifecycle::Target;
use berth_oci::Digest;
use serde::{Deserialize, Serialize};

/// Severities a policy can block at, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Result<Severity, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            _ => Err(format!(
                "invalid severity {:?}: one of low, medium, high, critical",
                text.chars().take(40).collect::<String>()
            )),
        }
    }
}

/// What a namespace or repository asks of the images pulled from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PullPolicy {
    /// Only images with a signature verified by a trusted key.
    pub require_signature: bool,
    /// Refuse images with findings of this severity or worse.
    pub block_severity: Option<Severity>,
    /// With `block_severity`: let images through that have not been scanned yet.
    pub allow_unscanned: bool,
}

impl PullPolicy {
    /// Whether it asks for anything at all.
    pub fn is_empty(&self) -> bool {
        !self.require_signature && self.block_severity.is_none()
    }

    /// One line, as the CLI and the UI show it.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.require_signature {
            parts.push("verified signatures only".to_owned());
        }
        if let Some(severity) = self.block_severity {
            let mut text = format!("block severity {} or higher", severity.as_str());
            if self.allow_unscanned {
                text.push_str(" (unscanned images allowed)");
            }
            parts.push(text);
        }
        if parts.is_empty() {
            "no requirements".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

/// A policy as the API takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullPolicyRequest {
    #[serde(default)]
    pub require_signature: bool,
    /// `low`, `medium`, `high`, `critical`, or absent.
    #[serde(default)]
    pub block_severity: Option<String>,
    #[serde(default)]
    pub allow_unscanned: bool,
}

impl PullPolicyRequest {
    pub fn check(&self) -> Result<PullPolicy, String> {
        let block_severity = self
            .block_severity
            .as_deref()
            .map(Severity::parse)
            .transpose()?;
        if self.allow_unscanned && block_severity.is_none() {
            return Err("allow_unscanned goes with block_severity".to_owned());
        }
        let policy = PullPolicy {
            require_signature: self.require_signature,
            block_severity,
            allow_unscanned: self.allow_unscanned,
        };
        if policy.is_empty() {
            return Err(
                "the policy asks for nothing: set require_signature or block_severity (or clear the policy)"
                    .to_owned(),
            );
        }
        Ok(policy)
    }
}

/// What is known of the manifest being pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFacts {
    pub digest: Digest,
    /// The manifest's state, counting an index of the repository that lists it and is
    /// verified as verifying it.
    pub signature: SignatureState,
    /// The images the pull reaches (the image, or the index's manifests) and their scan
    /// summaries, if scanned.
    pub scans: Vec<(Digest, Option<VulnerabilitySummary>)>,
}

/// Why a pull was refused: the policy (where it is set and what it asks) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub policy: String,
    pub reason: String,
}

fn policy_name(target: &Target, rule: &str) -> String {
    format!(
        "the {} {}'s pull policy \"{rule}\"",
        target.scope(),
        target.name()
    )
}

/// Applies one policy to the facts.
pub fn evaluate(target: &Target, policy: &PullPolicy, facts: &PolicyFacts) -> Result<(), Refusal> {
    if policy.require_signature && facts.signature != SignatureState::Verified {
        let reason = match facts.signature {
            SignatureState::Signed => format!(
                "{} is signed, but no signature verifies with a key the repository trusts",
                facts.digest
            ),
            _ => format!("{} has no signature", facts.digest),
        };
        return Err(Refusal {
            policy: policy_name(target, "verified signatures only"),
            reason,
        });
    }
    if let Some(severity) = policy.block_severity {
        let rule = format!("block severity {} or higher", severity.as_str());
        for (digest, summary) in &facts.scans {
            match summary {
                None if policy.allow_unscanned => {}
                None => {
                    return Err(Refusal {
                        policy: policy_name(target, &rule),
                        reason: format!("{digest} has not been scanned yet"),
                    })
                }
                Some(summary) => {
                    let found = summary.at_or_above(severity);
                    if found > 0 {
                        return Err(Refusal {
                            policy: policy_name(target, &rule),
                            reason: format!(
                                "{digest} has {found} finding(s) of severity {} or higher \
                                 (critical {}, high {}, medium {}, low {})",
                                severity.as_str(),
                                summary.critical,
                                summary.high,
                                summary.medium,
                                summary.low
                            ),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(signature: SignatureState, scans: Vec<Option<VulnerabilitySummary>>) -> PolicyFacts {
        PolicyFacts {
            digest: Digest::sha256_of(b"image"),
            signature,
            scans: scans
                .into_iter()
                .enumerate()
                .map(|(i, s)| (Digest::sha256_of(&[i as u8]), s))
                .collect(),
        }
    }

    fn summary(critical: u64, high: u64, medium: u64, low: u64) -> Option<VulnerabilitySummary> {
        Some(VulnerabilitySummary {
            critical,
            high,
            medium,
            low,
            unknown: 7,
            scanned_at: 1,
        })
    }

    #[test]
    fn the_rule_table() {
        let ns = Target::Namespace("acme".into());
        let signed_only = PullPolicy {
            require_signature: true,
            ..PullPolicy::default()
        };
        let high = PullPolicy {
            block_severity: Some(Severity::High),
            ..PullPolicy::default()
        };
        let high_lenient = PullPolicy {
            allow_unscanned: true,
            ..high
        };
        use SignatureState::*;
        let table: Vec<(&PullPolicy, PolicyFacts, Option<&str>)> = vec![
            (&signed_only, facts(Verified, vec![]), None),
            (
                &signed_only,
                facts(Signed, vec![]),
                Some("no signature verifies"),
            ),
            (
                &signed_only,
                facts(Unsigned, vec![]),
                Some("has no signature"),
            ),
            (&high, facts(Unsigned, vec![summary(0, 0, 3, 9)]), None),
            (
                &high,
                facts(Unsigned, vec![summary(0, 1, 0, 0)]),
                Some("1 finding(s)"),
            ),
            (
                &high,
                facts(Unsigned, vec![summary(2, 0, 0, 0)]),
                Some("2 finding(s)"),
            ),
            (&high, facts(Unsigned, vec![None]), Some("not been scanned")),
            (&high_lenient, facts(Unsigned, vec![None]), None),
            (
                &high_lenient,
                facts(Unsigned, vec![None, summary(0, 1, 0, 0)]),
                Some("finding"),
            ),
            (
                &high,
                facts(Unsigned, vec![summary(0, 0, 0, 0), None]),
                Some("not been scanned"),
            ),
        ];
        for (policy, facts, expected) in table {
            let outcome = evaluate(&ns, policy, &facts);
            match (expected, outcome) {
                (None, Ok(())) => {}
                (Some(text), Err(refusal)) => {
                    assert!(refusal.reason.contains(text), "{policy:?}: {refusal:?}");
                    assert!(refusal.policy.contains("namespace acme"), "{refusal:?}");
                }
                (expected, outcome) => panic!("{policy:?} {facts:?}: {expected:?} vs {outcome:?}"),
            }
        }
    }

    #[test]
    fn requests_are_checked() {
        let ok = PullPolicyRequest {
            block_severity: Some("HIGH".into()),
            allow_unscanned: true,
            ..PullPolicyRequest::default()
        };
        assert_eq!(ok.check().unwrap().block_severity, Some(Severity::High));
        assert!(PullPolicyRequest::default().check().is_err());
        let lonely = PullPolicyRequest {
            require_signature: true,
            allow_unscanned: true,
            ..PullPolicyRequest::default()
        };
        assert!(lonely.check().is_err());
        let bad = PullPolicyRequest {
            block_severity: Some("severe".into()),
            ..PullPolicyRequest::default()
        };
        assert!(bad.check().unwrap_err().contains("invalid severity"));
    }

    #[test]
    fn severities_count_upwards() {
        let s = summary(1, 2, 3, 4).unwrap();
        assert_eq!(s.at_or_above(Severity::Critical), 1);
        assert_eq!(s.at_or_above(Severity::High), 3);
        assert_eq!(s.at_or_above(Severity::Medium), 6);
        assert_eq!(s.at_or_above(Severity::Low), 10);
    }
}
