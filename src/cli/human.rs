//! Numbers for people, as kubectl prints them: ages (`5m`, `2d3h`), memory
//! in binary units (`23Gi`), local times with their age
//! (`2026-12-02 04:10:33 (3m ago)`). The API keeps exact values (epoch
//! milliseconds, exact quantities); only the CLI rounds.

use std::time::{SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Milliseconds since the UNIX epoch on this machine's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The AGE column: time from `then_ms` to `now_ms`, in kubectl's form.
/// `0` means the stamp is unknown (`<unknown>`); a stamp ahead of this
/// machine's clock (skew between peers) reads `0s`.
pub fn age(then_ms: u64, now_ms: u64) -> String {
    if then_ms == 0 {
        return "<unknown>".to_owned();
    }
    duration(now_ms.saturating_sub(then_ms) / 1_000)
}

/// kubectl's `HumanDuration`: two units while the smaller one still says
/// something (`9m30s`, `7h5m`, `3d4h`, `2y10d`), one after that.
pub fn duration(secs: u64) -> String {
    let (mins, hours, days) = (secs / 60, secs / 3_600, secs / 86_400);
    let two = |big: u64, a: &str, small: u64, b: &str| {
        if small == 0 {
            format!("{big}{a}")
        } else {
            format!("{big}{a}{small}{b}")
        }
    };
    match () {
        () if secs < 120 => format!("{secs}s"),
        () if mins < 10 => two(mins, "m", secs % 60, "s"),
        () if mins < 180 => format!("{mins}m"),
        () if hours < 8 => two(hours, "h", mins % 60, "m"),
        () if hours < 48 => format!("{hours}h"),
        () if hours < 24 * 8 => two(days, "d", hours % 24, "h"),
        () if days < 365 * 2 => format!("{days}d"),
        () if days < 365 * 8 => two(days / 365, "y", days % 365, "d"),
        () => format!("{}y", days / 365),
    }
}

/// Memory in the largest binary unit that holds at least one: whole
/// units from 10 up (`23Gi` for 23.5 Gi, as kubectl rounds down), one
/// decimal below (`1.5Gi`), plain bytes under 1 Ki.
pub fn memory(bytes: u64) -> String {
    const UNITS: [(&str, u32); 5] = [("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)];
    for (suffix, shift) in UNITS {
        let unit = 1u64 << shift;
        if bytes < unit {
            continue;
        }
        let whole = bytes / unit;
        if whole >= 10 {
            return format!("{whole}{suffix}");
        }
        // Tenths, rounded down so a value never reads larger than it is.
        let tenths = u64::try_from(u128::from(bytes) * 10 / u128::from(unit)).unwrap_or(u64::MAX);
        return if tenths % 10 == 0 {
            format!("{whole}{suffix}")
        } else {
            format!("{whole}.{}{suffix}", tenths % 10)
        };
    }
    bytes.to_string()
}

/// An exact memory quantity from the API (`24683584Ki`) in [`memory`]'s
/// form; a quantity that does not parse is shown as it came.
pub fn memory_quantity(quantity: &str) -> String {
    shoal_crdt_state::manifest::quantity::parse_memory_bytes(quantity)
        .map_or_else(|_| quantity.to_owned(), memory)
}

/// `2026-12-02 04:10:33 (3m ago)` in the local zone (`TZ`, else the system's).
pub fn local_time(then_ms: u64, now_ms: u64) -> String {
    local_time_in(&TimeZone::system(), then_ms, now_ms)
}

/// [`local_time`] in a given zone.
pub fn local_time_in(zone: &TimeZone, then_ms: u64, now_ms: u64) -> String {
    let stamp = i64::try_from(then_ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok());
    match stamp {
        Some(ts) if then_ms > 0 => format!(
            "{} ({} ago)",
            ts.to_zoned(zone.clone()).strftime("%Y-%m-%d %H:%M:%S"),
            age(then_ms, now_ms)
        ),
        _ => "<unknown>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (9 * 60 + 30, "9m30s"),
            (10 * 60 + 30, "10m"),
            (179 * 60, "179m"),
            (3 * 3_600, "3h"),
            (7 * 3_600 + 5 * 60, "7h5m"),
            (8 * 3_600 + 5 * 60, "8h"),
            (47 * 3_600, "47h"),
            (2 * 86_400 + 3 * 3_600, "2d3h"),
            (7 * 86_400, "7d"),
            (8 * 86_400 + 3_600, "8d"),
            (729 * 86_400, "729d"),
            (2 * 365 * 86_400 + 10 * 86_400, "2y10d"),
            (9 * 365 * 86_400 + 3 * 86_400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(duration(secs), want, "{secs} s");
        }
    }

    #[test]
    fn ages_count_from_the_stamp_and_tolerate_skew() {
        let now = 1_800_000_000_000;
        assert_eq!(age(now - 5 * 60_000, now), "5m");
        assert_eq!(age(now - 1_500, now), "1s");
        // Written by a peer whose clock runs ahead of ours.
        assert_eq!(age(now + 4_000, now), "0s");
        assert_eq!(age(0, now), "<unknown>");
    }

    #[test]
    fn memory_uses_binary_units() {
        assert_eq!(memory(0), "0");
        assert_eq!(memory(1023), "1023");
        assert_eq!(memory(1024), "1Ki");
        assert_eq!(memory(512 << 20), "512Mi");
        assert_eq!(memory(1536 << 20), "1.5Gi");
        assert_eq!(memory(24_683_584 << 10), "23Gi");
        assert_eq!(memory((1 << 30) - 1), "1023Mi");
        assert_eq!(memory(1_000_000_000), "953Mi");
        assert_eq!(memory(3 << 40), "3Ti");
        assert_eq!(memory_quantity("24683584Ki"), "23Gi");
        assert_eq!(memory_quantity("128Mi"), "128Mi");
        assert_eq!(memory_quantity("2G"), "1.8Gi");
        assert_eq!(memory_quantity("lots"), "lots");
    }

    #[test]
    fn local_times_carry_their_age() {
        // 2026-12-02 04:10:33 UTC.
        let then = 1_796_184_633_000;
        let now = then + 3 * 60_000 + 10_000;
        assert_eq!(
            local_time_in(&TimeZone::UTC, then, now),
            "2026-12-02 04:10:33 (3m10s ago)"
        );
        let berlin = TimeZone::fixed(jiff::tz::offset(1));
        assert_eq!(
            local_time_in(&berlin, then, now),
            "2026-12-02 05:10:33 (3m10s ago)"
        );
        assert_eq!(local_time_in(&TimeZone::UTC, 0, now), "<unknown>");
    }
}
