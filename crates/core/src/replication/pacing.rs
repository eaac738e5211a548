//! A rule's bandwidth limit: how it is written (`50MiB/s`), and the pacer that holds the
//! blob bytes a run copies to that many per second by waiting between chunks.

use crate::ports::ByteStream;
use futures_util::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The lowest limit accepted: below it a layer takes hours and the rule is a mistake.
pub const MIN_BANDWIDTH: u64 = 1024;

/// How far a pacer lets a run fall behind and then catch up at full speed: after an idle
/// stretch (reading manifests, waiting on the remote) at most this much is sent in a burst.
pub const MAX_BURST: Duration = Duration::from_secs(1);

/// Parses a limit in bytes per second: `50MiB/s`, `10MB/s`, `512KiB`, `1000000` (bytes);
/// the `/s` is optional, units are B, KB, MB, GB (powers of 1000) and KiB, MiB, GiB.
pub fn parse_bandwidth(text: &str) -> Result<u64, String> {
    let shown = || text.chars().take(40).collect::<String>();
    let bad = || {
        format!(
            "invalid bandwidth {:?}: write a rate such as 50MiB/s, 10MB/s or 512KiB/s",
            shown()
        )
    };
    let trimmed = text.trim();
    let trimmed = trimmed.strip_suffix("/s").unwrap_or(trimmed).trim_end();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    let bytes = number * scale as f64;
    if !bytes.is_finite() || bytes > u64::MAX as f64 / 2.0 {
        return Err(bad());
    }
    let bytes = bytes as u64;
    if bytes < MIN_BANDWIDTH {
        return Err(format!(
            "bandwidth {:?} is below the lowest limit, 1KiB/s",
            shown()
        ));
    }
    Ok(bytes)
}

/// A limit as people read it: `50MiB/s`, or bytes when it is no whole number of a unit.
pub fn format_bandwidth(bytes_per_second: u64) -> String {
    for (unit, scale) in [
        ("GiB", 1u64 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1000),
    ] {
        if bytes_per_second >= scale && bytes_per_second.is_multiple_of(scale) {
            return format!("{}{unit}/s", bytes_per_second / scale);
        }
    }
    format!("{bytes_per_second}B/s")
}

/// Keeps the bytes sent at most `rate` per second on average, since the run's first byte
/// (with a catch-up of at most [`MAX_BURST`] after idle stretches). Shared by the blobs of
/// one run, so the limit holds for the run as a whole.
#[derive(Debug)]
pub struct Pacer {
    rate: u64,
    started: Option<Instant>,
    sent: u64,
}

impl Pacer {
    pub fn new(bytes_per_second: u64) -> Pacer {
        Pacer {
            rate: bytes_per_second.max(1),
            started: None,
            sent: 0,
        }
    }

    /// Records `bytes` sent at `now`; returns how long to wait before sending more.
    pub fn wait_after(&mut self, bytes: u64, now: Instant) -> Duration {
        let behind = match self.started {
            None => true,
            Some(started) => now > started + self.time_for(self.sent) + MAX_BURST,
        };
        if behind {
            // The first bytes, or after an idle stretch: count afresh, with one burst's
            // worth of credit.
            self.started = Some(now.checked_sub(MAX_BURST).unwrap_or(now));
            self.sent = 0;
        }
        self.sent += bytes;
        let started = self.started.unwrap_or(now);
        (started + self.time_for(self.sent)).saturating_duration_since(now)
    }

    fn time_for(&self, bytes: u64) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.rate as f64)
    }
}

/// A pacer one run's blob streams share.
pub type SharedPacer = Arc<Mutex<Pacer>>;

/// The stream, slowed to the pacer's rate: each chunk is passed on after the wait the pacer
/// asks for.
pub fn paced(stream: ByteStream, pacer: Option<SharedPacer>) -> ByteStream {
    let Some(pacer) = pacer else {
        return stream;
    };
    Box::pin(stream.then(move |chunk| {
        let pacer = pacer.clone();
        async move {
            if let Ok(bytes) = &chunk {
                let wait = pacer
                    .lock()
                    .map(|mut p| p.wait_after(bytes.len() as u64, Instant::now()))
                    .unwrap_or_default();
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            chunk
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn rates_are_parsed_and_shown() {
        assert_eq!(parse_bandwidth("50MiB/s").unwrap(), 50 * MIB);
        assert_eq!(parse_bandwidth(" 10MB/s ").unwrap(), 10_000_000);
        assert_eq!(parse_bandwidth("512KiB").unwrap(), 512 * 1024);
        assert_eq!(parse_bandwidth("1.5GiB/s").unwrap(), 3 * (1 << 29));
        assert_eq!(parse_bandwidth("2048").unwrap(), 2048);
        for bad in [
            "",
            "fast",
            "50 parsecs",
            "MiB/s",
            "-5MiB/s",
            "10b/s",
            "100B/s",
        ] {
            assert!(parse_bandwidth(bad).is_err(), "{bad}");
        }
        assert_eq!(format_bandwidth(50 * MIB), "50MiB/s");
        assert_eq!(format_bandwidth(10_000_000), "10MB/s");
        assert_eq!(format_bandwidth(1500), "1500B/s");
    }

    /// The pacer is driven by a clock of our own: the waits it asks for, summed with the
    /// time "spent" sending, are what the rate allows — whatever the machine's speed.
    #[test]
    fn a_run_is_held_to_its_rate() {
        let rate = 10 * MIB;
        let mut pacer = Pacer::new(rate);
        let start = Instant::now();
        let mut now = start;
        let mut waited = Duration::ZERO;
        let chunk = 256 * 1024;
        let total = 100 * MIB;
        let mut sent = 0;
        while sent < total {
            let wait = pacer.wait_after(chunk, now);
            waited += wait;
            now += wait;
            sent += chunk;
        }
        // 100 MiB at 10 MiB/s: ten seconds, less the first second's burst.
        let elapsed = now - start;
        assert!(
            elapsed >= Duration::from_millis(8_990) && elapsed <= Duration::from_secs(9),
            "{elapsed:?}"
        );
        assert_eq!(elapsed, waited);
    }

    #[test]
    fn a_slow_sender_never_waits_and_an_idle_one_bursts_one_second_at_most() {
        let rate = MIB;
        let mut pacer = Pacer::new(rate);
        let start = Instant::now();
        // Sending slower than the limit: no waits.
        for i in 0..10u32 {
            let now = start + Duration::from_secs(u64::from(i) * 2);
            assert_eq!(pacer.wait_after(MIB / 2, now), Duration::ZERO);
        }
        // After a minute of nothing, three MiB at once: one second's worth goes unpaced,
        // the rest waits its time.
        let later = start + Duration::from_secs(80);
        let wait = pacer.wait_after(3 * MIB, later);
        assert_eq!(wait, Duration::from_secs(2));
    }
}
