//! The `N;w=S` grammar of pull limits (Docker Hub's `ratelimit-limit` header format), and
//! plans: a limit or `unlimited`.

use std::fmt;

/// The longest window accepted (a year): longer ones are surely typos.
pub const MAX_WINDOW_SECS: u64 = 366 * 86_400;

/// At most `pulls` manifest pulls per `window_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    pub pulls: u32,
    pub window_secs: u32,
}

impl Rate {
    /// Parses `100;w=21600` strictly: a positive count, `;w=`, a positive number of seconds
    /// up to a year; no spaces, units or other parameters. The error says what is expected.
    pub fn parse(raw: &str) -> Result<Rate, String> {
        const EXPECTED: &str = "expected PULLS;w=SECONDS, e.g. 100;w=21600 (100 pulls per 6 hours)";
        let (pulls, window) = raw.split_once(";w=").ok_or_else(|| EXPECTED.to_owned())?;
        let number = |text: &str| -> Option<u64> {
            if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            text.parse().ok()
        };
        let pulls = number(pulls).ok_or_else(|| EXPECTED.to_owned())?;
        let window = number(window).ok_or_else(|| EXPECTED.to_owned())?;
        if pulls == 0 {
            return Err(
                "the number of pulls must be at least 1 (leave the tier out for no limit)".into(),
            );
        }
        let pulls =
            u32::try_from(pulls).map_err(|_| format!("at most {} pulls per window", u32::MAX))?;
        if window == 0 || window > MAX_WINDOW_SECS {
            return Err(format!(
                "the window must be from 1 to {MAX_WINDOW_SECS} seconds (a year)"
            ));
        }
        Ok(Rate {
            pulls,
            window_secs: window as u32,
        })
    }

    /// The window in microseconds.
    pub fn window_us(&self) -> i64 {
        i64::from(self.window_secs) * 1_000_000
    }

    /// How far apart pulls may be on average, in microseconds (at least 1).
    pub fn interval_us(&self) -> i64 {
        (self.window_us() / i64::from(self.pulls)).max(1)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{};w={}", self.pulls, self.window_secs)
    }
}

/// A plan set for one account or organization: it replaces the tier the account would get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plan {
    Unlimited,
    Limited(Rate),
}

impl Plan {
    /// `unlimited` or `N;w=S`.
    pub fn parse(raw: &str) -> Result<Plan, String> {
        if raw.trim().eq_ignore_ascii_case("unlimited") {
            return Ok(Plan::Unlimited);
        }
        Rate::parse(raw.trim())
            .map(Plan::Limited)
            .map_err(|e| format!("{e}, or unlimited"))
    }

    /// The limit it sets (`None`: no limit).
    pub fn rate(&self) -> Option<Rate> {
        match self {
            Plan::Unlimited => None,
            Plan::Limited(rate) => Some(*rate),
        }
    }

    /// The plan as every backend stores it: (`pulls`, `window_secs`), both `None` for
    /// unlimited.
    pub fn columns(&self) -> (Option<i64>, Option<i64>) {
        match self {
            Plan::Unlimited => (None, None),
            Plan::Limited(rate) => (
                Some(i64::from(rate.pulls)),
                Some(i64::from(rate.window_secs)),
            ),
        }
    }

    /// A stored plan from its two columns; a pair the schema's checks should have kept out
    /// (one of them NULL, a value out of range) reads as no plan at all.
    pub fn from_columns(pulls: Option<i64>, window_secs: Option<i64>) -> Option<Plan> {
        match (pulls, window_secs) {
            (None, None) => Some(Plan::Unlimited),
            (Some(pulls), Some(window)) => Some(Plan::Limited(Rate {
                pulls: u32::try_from(pulls).ok()?,
                window_secs: u32::try_from(window).ok()?,
            })),
            _ => None,
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Plan::Unlimited => f.write_str("unlimited"),
            Plan::Limited(rate) => rate.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_strictly() {
        assert_eq!(
            Rate::parse("100;w=21600"),
            Ok(Rate {
                pulls: 100,
                window_secs: 21600
            })
        );
        assert_eq!(Rate::parse("1;w=1").unwrap().to_string(), "1;w=1");
        for bad in [
            "",
            "100",
            "100;w=",
            ";w=60",
            "0;w=60",
            "10;w=0",
            "10; w=60",
            "10;w=6h",
            "-1;w=60",
            "10;w=60;x=1",
            "10;W=60",
            "1;w=99999999999",
            "4294967296;w=60",
            " 10;w=60",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(Rate::parse("10;w=31622401").is_err());
    }

    #[test]
    fn plans_are_a_rate_or_unlimited() {
        assert_eq!(Plan::parse("unlimited"), Ok(Plan::Unlimited));
        assert_eq!(Plan::parse("Unlimited").unwrap().to_string(), "unlimited");
        assert_eq!(Plan::parse("5;w=60").unwrap().to_string(), "5;w=60");
        let refused = Plan::parse("lots").unwrap_err();
        assert!(refused.contains("unlimited"), "{refused}");
    }

    #[test]
    fn intervals_spread_the_window() {
        let rate = Rate::parse("100;w=21600").unwrap();
        assert_eq!(rate.interval_us(), 216_000_000);
        assert_eq!(Rate::parse("4000000;w=1").unwrap().interval_us(), 1);
    }
}
