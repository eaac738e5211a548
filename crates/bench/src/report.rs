//! Collected samples and the markdown table.

use serde::Serialize;

use crate::stats::median;
use crate::target::Cost;

#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
    /// Informational (e.g. a count that should match).
    Neither,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    pub metric: String,
    pub better: Better,
    /// Samples per target (one per successful round).
    pub samples: Vec<Vec<f64>>,
    /// Failed rounds per target.
    pub failures: Vec<usize>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub targets: Vec<String>,
    pub rows: Vec<Row>,
    pub errors: Vec<String>,
    /// CPU use of other processes during each measured run, % of one core.
    pub other_cpu_pct: Vec<f64>,
    #[serde(skip)]
    pub preamble: String,
}

impl Report {
    pub fn new(targets: Vec<String>) -> Self {
        Report {
            targets,
            rows: Vec::new(),
            errors: Vec::new(),
            other_cpu_pct: Vec::new(),
            preamble: String::new(),
        }
    }

    /// Remember how busy the rest of the machine was during a measured run.
    pub fn observe(&mut self, cost: &Cost) {
        if let Some(c) = cost.other_cpu {
            self.other_cpu_pct.push(c / cost.wall.as_secs_f64() * 100.0);
        }
    }

    fn row(&mut self, scenario: &str, metric: &str, better: Better) -> &mut Row {
        let pos = self
            .rows
            .iter()
            .position(|r| r.scenario == scenario && r.metric == metric);
        let i = pos.unwrap_or_else(|| {
            let n = self.targets.len();
            self.rows.push(Row {
                scenario: scenario.to_string(),
                metric: metric.to_string(),
                better,
                samples: vec![Vec::new(); n],
                failures: vec![0; n],
            });
            self.rows.len() - 1
        });
        &mut self.rows[i]
    }

    /// Record one sample; `None` (e.g. CPU time without a PID) records nothing
    /// but still makes the row appear.
    pub fn add(
        &mut self,
        scenario: &str,
        metric: &str,
        better: Better,
        target: usize,
        value: Option<f64>,
    ) {
        let row = self.row(scenario, metric, better);
        if let Some(v) = value {
            row.samples[target].push(v);
        }
    }

    /// Record a failed round for every metric of `metrics`.
    pub fn fail(
        &mut self,
        scenario: &str,
        metrics: &[(&str, Better)],
        target: usize,
        error: String,
    ) {
        for (m, b) in metrics {
            self.row(scenario, m, *b).failures[target] += 1;
        }
        let msg = format!("{scenario} on {}: {error}", self.targets[target]);
        eprintln!("ERROR: {msg}");
        self.errors.push(msg);
    }

    pub fn markdown(&self) -> String {
        let mut out = self.preamble.clone();
        let mut header = vec!["scenario".to_string(), "metric".to_string()];
        header.extend(self.targets.iter().cloned());
        if self.targets.len() >= 2 {
            header.push(format!("ratio {}/{}", self.targets[0], self.targets[1]));
        }
        if self.targets.len() >= 3 {
            header.push(format!("ratio {}/{}", self.targets[0], self.targets[2]));
        }
        out.push_str(&format!("| {} |\n", header.join(" | ")));
        out.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
        for r in &self.rows {
            let arrow = match r.better {
                Better::Higher => " ↑",
                Better::Lower => " ↓",
                Better::Neither => "",
            };
            let mut cells = vec![r.scenario.clone(), format!("{}{arrow}", r.metric)];
            let medians: Vec<Option<f64>> = r.samples.iter().map(|s| median(s)).collect();
            for (i, m) in medians.iter().enumerate() {
                let mut cell = m.map_or_else(|| "n/a".to_string(), fmt_num);
                if r.failures[i] > 0 {
                    cell = if m.is_some() {
                        format!("{cell} ({} failed)", r.failures[i])
                    } else {
                        "failed".to_string()
                    };
                }
                cells.push(cell);
            }
            for other in 1..self.targets.len().min(3) {
                cells.push(match (medians[0], medians[other]) {
                    (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
                    _ => "n/a".to_string(),
                });
            }
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        if let Some(m) = median(&self.other_cpu_pct) {
            let max = self.other_cpu_pct.iter().copied().fold(0.0, f64::max);
            out.push_str(&format!(
                "\nOther processes and kernel threads (including disk write-back) used {m:.0}% \
                 of a core during the median measured run, at most {max:.0}%{}.\n",
                if m > 25.0 { ": expect noise" } else { "" }
            ));
        }
        if !self.errors.is_empty() {
            out.push_str("\nErrors:\n");
            for e in &self.errors {
                out.push_str(&format!("- {}\n", e.replace('\n', " ")));
            }
        }
        out
    }
}

/// About three significant digits, without scientific notation.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_medians_and_ratio() {
        let mut r = Report::new(vec!["a".into(), "b".into()]);
        for (t, v) in [
            (0, 300.0),
            (1, 100.0),
            (0, 200.0),
            (1, 120.0),
            (0, 250.0),
            (1, 80.0),
        ] {
            r.add("push", "MB/s", Better::Higher, t, Some(v));
        }
        r.add("pull", "MB/s", Better::Higher, 1, Some(5.0));
        r.fail("pull", &[("MB/s", Better::Higher)], 0, "boom".into());
        let md = r.markdown();
        assert!(
            md.contains("| scenario | metric | a | b | ratio a/b |"),
            "{md}"
        );
        assert!(md.contains("| push | MB/s ↑ | 250 | 100 | 2.50 |"), "{md}");
        assert!(
            md.contains("| pull | MB/s ↑ | failed | 5.00 | n/a |"),
            "{md}"
        );
        assert!(md.contains("- pull on a: boom"), "{md}");
    }

    #[test]
    fn number_format() {
        assert_eq!(fmt_num(1234.56), "1235");
        assert_eq!(fmt_num(12.345), "12.3");
        assert_eq!(fmt_num(1.2345), "1.23");
        assert_eq!(fmt_num(0.012345), "0.012");
    }
}
