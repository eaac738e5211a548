//! CVSS v3.0/v3.1 base scores from vector strings, by the specification's formulas.

/// Why a vector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CvssError {
    #[error("not a CVSS v3 vector (it must start with CVSS:3.0/ or CVSS:3.1/)")]
    NotV3,
    #[error("metric {0} is missing or repeated")]
    Metric(&'static str),
    #[error("unknown metric or value: {0}")]
    Unknown(String),
}

/// The base score (0.0 to 10.0, one decimal) of a `CVSS:3.x/...` vector.
pub fn base_score(vector: &str) -> Result<f64, CvssError> {
    let rest = vector
        .strip_prefix("CVSS:3.1/")
        .map(|r| (r, true))
        .or_else(|| vector.strip_prefix("CVSS:3.0/").map(|r| (r, false)));
    let Some((rest, v31)) = rest else {
        return Err(CvssError::NotV3);
    };
    const BASE: [&str; 8] = ["AV", "AC", "PR", "UI", "S", "C", "I", "A"];
    let mut values: [Option<char>; 8] = [None; 8];
    for part in rest.split('/') {
        let (metric, value) = part
            .split_once(':')
            .ok_or_else(|| CvssError::Unknown(part.to_owned()))?;
        let mut chars = value.chars();
        let (Some(value), None) = (chars.next(), chars.next()) else {
            return Err(CvssError::Unknown(part.to_owned()));
        };
        match BASE.iter().position(|m| *m == metric) {
            Some(i) if values[i].is_some() => return Err(CvssError::Metric(BASE[i])),
            Some(i) => values[i] = Some(value),
            // Temporal and environmental metrics do not change the base score.
            None if is_other_metric(metric) => {}
            None => return Err(CvssError::Unknown(part.to_owned())),
        }
    }
    let get = |i: usize| values[i].ok_or(CvssError::Metric(BASE[i]));
    let unknown = |i: usize, v: char| CvssError::Unknown(format!("{}:{v}", BASE[i]));
    let changed = match get(4)? {
        'U' => false,
        'C' => true,
        v => return Err(unknown(4, v)),
    };
    let attack_vector = match get(0)? {
        'N' => 0.85,
        'A' => 0.62,
        'L' => 0.55,
        'P' => 0.2,
        v => return Err(unknown(0, v)),
    };
    let attack_complexity = match get(1)? {
        'L' => 0.77,
        'H' => 0.44,
        v => return Err(unknown(1, v)),
    };
    let privileges = match (get(2)?, changed) {
        ('N', _) => 0.85,
        ('L', false) => 0.62,
        ('L', true) => 0.68,
        ('H', false) => 0.27,
        ('H', true) => 0.5,
        (v, _) => return Err(unknown(2, v)),
    };
    let interaction = match get(3)? {
        'N' => 0.85,
        'R' => 0.62,
        v => return Err(unknown(3, v)),
    };
    let mut cia = [0.0f64; 3];
    for (slot, i) in cia.iter_mut().zip(5..8) {
        *slot = match get(i)? {
            'H' => 0.56,
            'L' => 0.22,
            'N' => 0.0,
            v => return Err(unknown(i, v)),
        };
    }
    let iss = 1.0 - (1.0 - cia[0]) * (1.0 - cia[1]) * (1.0 - cia[2]);
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02).powi(15)
    } else {
        6.42 * iss
    };
    if impact <= 0.0 {
        return Ok(0.0);
    }
    let exploitability = 8.22 * attack_vector * attack_complexity * privileges * interaction;
    let raw = if changed {
        1.08 * (impact + exploitability)
    } else {
        impact + exploitability
    };
    Ok(round_up(raw.min(10.0), v31))
}

fn is_other_metric(metric: &str) -> bool {
    matches!(
        metric,
        "E" | "RL"
            | "RC"
            | "CR"
            | "IR"
            | "AR"
            | "MAV"
            | "MAC"
            | "MPR"
            | "MUI"
            | "MS"
            | "MC"
            | "MI"
            | "MA"
    )
}

/// The smallest one-decimal number at least `value`. v3.1 first rounds to five decimals so
/// that floating-point noise (4.000000000000001) does not push a score up a tenth.
fn round_up(value: f64, v31: bool) -> f64 {
    if !v31 {
        return (value * 10.0).ceil() / 10.0;
    }
    let scaled = (value * 100_000.0).round() as i64;
    if scaled % 10_000 == 0 {
        scaled as f64 / 100_000.0
    } else {
        ((scaled / 10_000) + 1) as f64 / 10.0
    }
}
