//! Just enough of Kubernetes' resource.Quantity to size fake Nodes: CPU in
//! millicores and memory in bytes, both as exact integers (no float rounding,
//! so density × per-Pod need is exactly what the scheduler will subtract).

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{input:?} is not a Kubernetes {what} quantity (expected e.g. {example})")]
pub struct QuantityError {
    pub input: String,
    pub what: &'static str,
    pub example: &'static str,
}

fn err(input: &str, what: &'static str, example: &'static str) -> QuantityError {
    QuantityError { input: input.to_string(), what, example }
}

/// Splits "1.5Gi" into ("1.5", "Gi").
fn split(s: &str) -> (&str, &str) {
    let idx = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    s.split_at(idx)
}

/// Parses a decimal number times `scale` exactly: "1.5" × 2^30 is fine,
/// "0.0001" × 1000 (a tenth of a millicore) is not.
fn scaled(number: &str, scale: u64) -> Option<u64> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() || frac.len() > 18 {
        return None;
    }
    let digits: u128 = format!("{int}{frac}").parse().ok()?;
    let divisor = 10u128.pow(frac.len() as u32);
    let value = digits.checked_mul(u128::from(scale))?;
    if !value.is_multiple_of(divisor) {
        return None;
    }
    u64::try_from(value / divisor).ok()
}

/// "100m" → 100, "2" → 2000, "1.5" → 1500.
pub fn parse_cpu_millis(s: &str) -> Result<u64, QuantityError> {
    let e = || err(s, "CPU", "\"100m\" or \"2\"");
    let (num, suffix) = split(s.trim());
    let scale = match suffix {
        "m" => 1,
        "" => 1000,
        "k" => 1_000_000,
        _ => return Err(e()),
    };
    scaled(num, scale).ok_or_else(e)
}

/// "128Mi" → 134217728, "1G" → 10^9, "512" → 512.
pub fn parse_memory_bytes(s: &str) -> Result<u64, QuantityError> {
    let e = || err(s, "memory", "\"128Mi\" or \"1Gi\"");
    let (num, suffix) = split(s.trim());
    let scale: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return Err(e()),
    };
    scaled(num, scale).ok_or_else(e)
}

/// Canonical form the apiserver accepts and the scheduler reads back exactly.
pub fn format_cpu_millis(millis: u64) -> String {
    if millis.is_multiple_of(1000) { (millis / 1000).to_string() } else { format!("{millis}m") }
}

pub fn format_memory_bytes(bytes: u64) -> String {
    for (suffix, scale) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes.is_multiple_of(scale) && bytes >= scale {
            return format!("{}{suffix}", bytes / scale);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu() {
        assert_eq!(parse_cpu_millis("100m"), Ok(100));
        assert_eq!(parse_cpu_millis("2"), Ok(2000));
        assert_eq!(parse_cpu_millis("1.5"), Ok(1500));
        assert_eq!(parse_cpu_millis("0.0001").ok(), None);
        assert!(parse_cpu_millis("1x").is_err());
        assert!(parse_cpu_millis("").is_err());
        assert!(parse_cpu_millis("m").is_err());
    }

    #[test]
    fn memory() {
        assert_eq!(parse_memory_bytes("128Mi"), Ok(128 << 20));
        assert_eq!(parse_memory_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(parse_memory_bytes("1.5Gi"), Ok(3 << 29));
        assert_eq!(parse_memory_bytes("512"), Ok(512));
        assert!(parse_memory_bytes("12MB").is_err());
        assert!(parse_memory_bytes("-1").is_err());
    }

    #[test]
    fn format_round_trips() {
        for m in [100, 1000, 12_500, 10_000] {
            assert_eq!(parse_cpu_millis(&format_cpu_millis(m)), Ok(m));
        }
        for b in [512, 128 << 20, 100 * (128 << 20), 3 << 29, 1000] {
            assert_eq!(parse_memory_bytes(&format_memory_bytes(b)), Ok(b));
        }
    }
}
