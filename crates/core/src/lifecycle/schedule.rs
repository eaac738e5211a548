//! When a retention policy runs by itself: `daily` (midnight UTC) or a cron expression of
//! five fields (minute hour day month weekday, UTC) or six (with seconds first).

use std::str::FromStr;

/// A checked schedule, kept as the text the user gave.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    cron: cron::Schedule,
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        if text.len() > 100 {
            return Err("a schedule has at most 100 characters".to_owned());
        }
        let expression = match text {
            "daily" | "@daily" => "0 0 0 * * *".to_owned(),
            "hourly" | "@hourly" => "0 0 * * * *".to_owned(),
            // The usual five fields; the parser wants seconds first.
            other if other.split_whitespace().count() == 5 => format!("0 {other}"),
            other => other.to_owned(),
        };
        let cron = cron::Schedule::from_str(&expression).map_err(|e| {
            // The parser's message may point at the text over several lines: keep its last.
            let reason = e.to_string();
            let reason = reason
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("not a cron expression")
                .to_owned();
            format!(
                "invalid schedule {:?}: use daily or a cron expression such as \"0 3 * * *\" ({reason})",
                text.chars().take(60).collect::<String>()
            )
        })?;
        if cron.upcoming(chrono::Utc).next().is_none() {
            return Err(format!("the schedule {text:?} never runs"));
        }
        Ok(Schedule {
            text: text.to_owned(),
            cron,
        })
    }

    /// The first run strictly after `after` (seconds since the epoch), if any.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let start = chrono::DateTime::<chrono::Utc>::from_timestamp(after, 0)?;
        self.cron.after(&start).next().map(|t| t.timestamp())
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_and_five_field_expressions_run_when_said() {
        // 2026-01-01T10:00:00Z
        let at = 1_767_261_600;
        let daily = Schedule::parse("daily").unwrap();
        assert_eq!(daily.next_after(at), Some(1_767_312_000)); // next midnight
        let three = Schedule::parse("0 3 * * *").unwrap();
        assert_eq!(three.next_after(at), Some(1_767_312_000 + 3 * 3600));
        let six = Schedule::parse("0 30 12 * * *").unwrap();
        assert_eq!(six.next_after(at), Some(at + 2 * 3600 + 1800));
    }

    #[test]
    fn nonsense_is_refused_with_its_text() {
        for bad in [
            "every day",
            "61 * * * *",
            "* * *",
            "0 0 31 2 *",
            &"1 ".repeat(60),
        ] {
            let err = Schedule::parse(bad).unwrap_err();
            assert!(err.contains("schedule"), "{bad}: {err}");
        }
    }
}
