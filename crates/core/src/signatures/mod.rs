//! Supply-chain trust: the public keys a namespace or repository trusts, the verification of
//! cosign signatures against them (the state of each image: unsigned, signed, verified), and
//! the pull policies that refuse images without a verified signature or with findings of a
//! severity (read from the scanner's summaries).

pub mod keys;
pub mod policy;
mod service;
mod verify;

pub use keys::{KeyAlgorithm, PublicKey};
pub use policy::{evaluate, PolicyFacts, PullPolicy, PullPolicyRequest, Refusal, Severity};
pub use service::{
    SignatureFeed, Signatures, TrustedKeyView, VerifySignatures, REVERIFY_JOB, VERIFY_JOB,
};
pub use verify::check_image;

use serde::{Deserialize, Serialize};

/// What is known of an image's signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureState {
    /// No signature of any recognised form.
    Unsigned,
    /// Signed, but no signature checks against a key the repository trusts.
    Signed,
    /// A cosign signature names the image's digest and checks against a trusted key.
    Verified,
}

impl SignatureState {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureState::Unsigned => "unsigned",
            SignatureState::Signed => "signed",
            SignatureState::Verified => "verified",
        }
    }

    pub fn parse(text: &str) -> Option<SignatureState> {
        match text {
            "unsigned" => Some(SignatureState::Unsigned),
            "signed" => Some(SignatureState::Signed),
            "verified" => Some(SignatureState::Verified),
            _ => None,
        }
    }
}

/// An image's signature state with the names of the trusted keys that verify it, as the API
/// shows it per tag: `{"state": "verified", "keys": ["release"]}`; a signed image that no
/// trusted key verifies also says why (`"reasons": […]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSignature {
    pub state: SignatureState,
    pub keys: Vec<String>,
    /// Why none of the image's signatures verifies (only in state `signed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl ImageSignature {
    pub fn unsigned() -> ImageSignature {
        ImageSignature {
            state: SignatureState::Unsigned,
            keys: Vec::new(),
            reasons: Vec::new(),
        }
    }

    /// A stored state (`signed`/`verified`, keys a JSON array of names): a row exists only
    /// for an image that carries signatures, so an unreadable state reads as `signed`.
    pub fn from_stored(state: &str, keys: &str, reasons: &str) -> ImageSignature {
        ImageSignature {
            state: SignatureState::parse(state).unwrap_or(SignatureState::Signed),
            keys: serde_json::from_str(keys).unwrap_or_default(),
            reasons: serde_json::from_str(reasons).unwrap_or_default(),
        }
    }

    /// The key names as stored: a JSON array.
    pub fn stored_keys(&self) -> String {
        serde_json::to_string(&self.keys).unwrap_or_else(|_| "[]".into())
    }

    /// Why the signatures found do not verify, as stored: a JSON array.
    pub fn stored_reasons(&self) -> String {
        serde_json::to_string(&self.reasons).unwrap_or_else(|_| "[]".into())
    }
}

/// The scanner's counts of findings per severity for one image (table
/// `vulnerability_summaries`), read through the scanner's port.
pub use crate::ports::VulnerabilitySummary;

impl VulnerabilitySummary {
    /// Findings of `severity` or worse (findings of unknown severity are not counted).
    pub fn at_or_above(&self, severity: Severity) -> u64 {
        let counts = [
            (Severity::Critical, self.critical),
            (Severity::High, self.high),
            (Severity::Medium, self.medium),
            (Severity::Low, self.low),
        ];
        counts
            .iter()
            .filter(|(s, _)| *s >= severity)
            .map(|(_, n)| n)
            .sum()
    }
}
