//! Kubernetes resource quantities: `500m`, `0.5`, `2`, `128Mi`, `1G`, `1e3`.
//!
//! Arithmetic is exact (integers, never floats) and rounds up like
//! Kubernetes does: `0.0001` cpu is 1 millicore, `0.5` bytes is 1 byte.

/// A parsed quantity: `mantissa × 10^exp10 × 2^pow2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quantity {
    mantissa: u128,
    exp10: i32,
    pow2: u32,
}

/// Most significant digits we keep exact; more is not a real request.
const MAX_DIGITS: usize = 30;

/// Parses a cpu quantity into millicores (`500m` → 500, `2` → 2000, `0.25` → 250).
pub fn parse_cpu_millis(text: &str) -> Result<u64, String> {
    let q = parse(text).map_err(|why| explain(text, &why, "cpu", "500m, 0.5 or 2"))?;
    scaled(q, 1000).ok_or_else(|| format!("cpu quantity {text:?} is too large"))
}

/// Parses a memory quantity into bytes (`128Mi` → 134217728, `1G` → 10^9).
pub fn parse_memory_bytes(text: &str) -> Result<u64, String> {
    let q = parse(text).map_err(|why| explain(text, &why, "memory", "128Mi, 1Gi or 500M"))?;
    scaled(q, 1).ok_or_else(|| format!("memory quantity {text:?} is too large"))
}

fn explain(text: &str, why: &str, what: &str, examples: &str) -> String {
    format!("{text:?} is not a valid {what} quantity ({why}); write it like {examples}")
}

fn parse(text: &str) -> Result<Quantity, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("it is empty".into());
    }
    let s = match s.strip_prefix('+') {
        Some(rest) => rest,
        None if s.starts_with('-') => return Err("requests cannot be negative".into()),
        None => s,
    };
    let number_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_len);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return Err("it has no number".into());
    }
    if frac_part.contains('.') {
        return Err("it has two decimal points".into());
    }
    let digits = format!("{int_part}{frac_part}");
    let significant = digits.trim_start_matches('0');
    if significant.len() > MAX_DIGITS {
        return Err("too many digits".into());
    }
    let mantissa: u128 = if significant.is_empty() {
        0
    } else {
        significant.parse().map_err(|_| "bad number".to_string())?
    };
    let frac_len = i32::try_from(frac_part.len()).map_err(|_| "too many digits".to_string())?;
    let (suffix_exp10, pow2) = parse_suffix(suffix)?;
    Ok(Quantity {
        mantissa,
        exp10: suffix_exp10 - frac_len,
        pow2,
    })
}

/// `(decimal exponent, binary exponent)` of a suffix.
fn parse_suffix(suffix: &str) -> Result<(i32, u32), String> {
    let fixed = match suffix {
        "" => Some((0, 0)),
        "n" => Some((-9, 0)),
        "u" => Some((-6, 0)),
        "m" => Some((-3, 0)),
        "k" => Some((3, 0)),
        "M" => Some((6, 0)),
        "G" => Some((9, 0)),
        "T" => Some((12, 0)),
        "P" => Some((15, 0)),
        "E" => Some((18, 0)),
        "Ki" => Some((0, 10)),
        "Mi" => Some((0, 20)),
        "Gi" => Some((0, 30)),
        "Ti" => Some((0, 40)),
        "Pi" => Some((0, 50)),
        "Ei" => Some((0, 60)),
        _ => None,
    };
    if let Some(found) = fixed {
        return Ok(found);
    }
    // Decimal exponent form: `1e3`, `5E-2`.
    let exponent = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))
        .ok_or_else(|| format!("unknown suffix {suffix:?}"))?;
    let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() > 3 {
        return Err(format!("unknown suffix {suffix:?}"));
    }
    let exp: i32 = exponent
        .parse()
        .map_err(|_| format!("unknown suffix {suffix:?}"))?;
    Ok((exp, 0))
}

/// `ceil(q × scale)` as a u64, or `None` on overflow.
fn scaled(q: Quantity, scale: u128) -> Option<u64> {
    let mut value = q
        .mantissa
        .checked_mul(scale)?
        .checked_mul(1u128.checked_shl(q.pow2)?)?;
    if q.exp10 >= 0 {
        value = value.checked_mul(10u128.checked_pow(q.exp10.unsigned_abs())?)?;
    } else {
        match 10u128.checked_pow(q.exp10.unsigned_abs()) {
            Some(divisor) => value = value.div_ceil(divisor),
            // Smaller than any unit we count: a non-zero request still asks for one.
            None => value = u128::from(value > 0),
        }
    }
    u64::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities_become_millicores() {
        let table = [
            ("500m", 500),
            ("1", 1000),
            ("0.5", 500),
            (".25", 250),
            ("2.", 2000),
            ("100m", 100),
            ("1e3", 1_000_000),
            ("1e-3", 1),
            ("0.0001", 1),
            ("0", 0),
            ("+1.5", 1500),
            ("1k", 1_000_000),
            ("250000u", 250),
            ("5E-1", 500),
        ];
        for (text, millis) in table {
            assert_eq!(parse_cpu_millis(text), Ok(millis), "{text}");
        }
    }

    #[test]
    fn memory_quantities_become_bytes() {
        let table = [
            ("128Mi", 128 << 20),
            ("1Gi", 1 << 30),
            ("1G", 1_000_000_000),
            ("100k", 100_000),
            ("1e3", 1000),
            ("1.5Gi", 3 << 29),
            ("64", 64),
            ("500m", 1),
            ("1Ki", 1024),
            ("2Ti", 2 << 40),
            ("1E", 1_000_000_000_000_000_000),
        ];
        for (text, bytes) in table {
            assert_eq!(parse_memory_bytes(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bad_quantities_are_rejected_with_an_example() {
        for text in [
            "", "abc", "-1", "1.2.3", "12x", "1Mib", "Mi", "1e", "1ee3", "1 Gi",
        ] {
            let err = parse_memory_bytes(text).expect_err(text);
            assert!(err.contains("128Mi"), "{text}: {err}");
        }
        let err = parse_cpu_millis("-500m").unwrap_err();
        assert!(err.contains("negative"), "{err}");
    }

    #[test]
    fn huge_quantities_overflow_cleanly() {
        assert!(
            parse_memory_bytes("100Ei")
                .unwrap_err()
                .contains("too large")
        );
        assert!(parse_cpu_millis("1e30").unwrap_err().contains("too large"));
        assert!(parse_memory_bytes("1e999").is_err());
    }
}
