//! Which schema migrations a database still needs, for both backends' runners: every known
//! version not yet applied, in order (not only those above the newest applied, which would
//! skip a migration merged after a higher-numbered one was applied).

use berth_core::ports::MetaError;
use std::collections::BTreeSet;

/// The migrations of `known` (in ascending order) missing from `applied`, in order; refused
/// when `applied` holds a version this build does not know (a newer Berth migrated it).
pub(crate) fn pending<'a>(
    known: &'a [(i64, &'a str)],
    applied: &BTreeSet<i64>,
) -> Result<Vec<(i64, &'a str)>, MetaError> {
    let latest = known.last().map_or(0, |&(version, _)| version);
    if let Some(unknown) = applied
        .iter()
        .find(|version| !known.iter().any(|(v, _)| v == *version))
    {
        return Err(MetaError::Backend(format!(
            "the database has schema version {unknown}, which this Berth does not know (it knows versions up to {latest}); upgrade Berth"
        )));
    }
    Ok(known
        .iter()
        .filter(|(version, _)| !applied.contains(version))
        .copied()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[(i64, &str)] = &[(1, "one"), (2, "two"), (3, "three"), (5, "five")];

    fn applied(versions: &[i64]) -> BTreeSet<i64> {
        versions.iter().copied().collect()
    }

    fn versions(pending: Vec<(i64, &str)>) -> Vec<i64> {
        pending.into_iter().map(|(v, _)| v).collect()
    }

    #[test]
    fn a_missing_lower_version_is_applied_with_the_newer_ones() {
        assert_eq!(versions(pending(KNOWN, &applied(&[1, 3])).unwrap()), [2, 5]);
        assert_eq!(
            versions(pending(KNOWN, &applied(&[])).unwrap()),
            [1, 2, 3, 5]
        );
        assert!(pending(KNOWN, &applied(&[1, 2, 3, 5])).unwrap().is_empty());
    }

    #[test]
    fn a_version_this_build_does_not_know_is_refused() {
        for unknown in [[1, 2, 3, 4], [1, 2, 3, 6]] {
            let refused = pending(KNOWN, &applied(&unknown)).unwrap_err().to_string();
            assert!(refused.contains("upgrade Berth"), "{refused}");
        }
    }
}
