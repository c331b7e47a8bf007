//! Rate-limiting a warning that one source can trigger over and over (a
//! member whose messages are all rejected, a joiner refused at every
//! retry): its first occurrence is worth a warning, every one is not. One
//! warning per source, then at most one per [`REPEAT_EVERY`] with the count
//! since.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Least time between two warnings about one source.
pub const REPEAT_EVERY: Duration = Duration::from_secs(60);
/// Sources remembered; beyond it the oldest record is dropped (then its
/// next occurrence warns again, which is harmless).
const MAX_SOURCES: usize = 256;

/// Which occurrences of a repeated warning to log, per source.
#[derive(Debug)]
pub struct RepeatLog<K> {
    sources: HashMap<K, Source>,
}

#[derive(Debug)]
struct Source {
    warned_at: Instant,
    /// Occurrences since the last warning.
    since: u64,
}

impl<K> Default for RepeatLog<K> {
    fn default() -> Self {
        RepeatLog {
            sources: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Copy> RepeatLog<K> {
    /// Notes one occurrence from `source`; returns how many occurrences the
    /// warning to log now covers, or `None` when it is not due.
    pub fn note(&mut self, now: Instant, source: K) -> Option<u64> {
        if let Some(seen) = self.sources.get_mut(&source) {
            seen.since += 1;
            if now.saturating_duration_since(seen.warned_at) < REPEAT_EVERY {
                return None;
            }
            let count = seen.since;
            seen.warned_at = now;
            seen.since = 0;
            return Some(count);
        }
        if self.sources.len() >= MAX_SOURCES
            && let Some(oldest) = self
                .sources
                .iter()
                .min_by_key(|(_, s)| s.warned_at)
                .map(|(key, _)| *key)
        {
            self.sources.remove(&oldest);
        }
        self.sources.insert(
            source,
            Source {
                warned_at: now,
                since: 0,
            },
        );
        Some(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_once_per_source_then_once_a_minute_with_the_count() {
        let mut log = RepeatLog::default();
        let start = Instant::now();
        assert_eq!(log.note(start, 'a'), Some(1));
        assert_eq!(log.note(start, 'b'), Some(1));
        for s in 1..=9 {
            assert_eq!(log.note(start + Duration::from_secs(s), 'a'), None);
        }
        assert_eq!(log.note(start + REPEAT_EVERY, 'a'), Some(10));
        assert_eq!(log.note(start + REPEAT_EVERY, 'a'), None);
    }

    #[test]
    fn remembers_a_bounded_number_of_sources() {
        let mut log = RepeatLog::default();
        let now = Instant::now();
        for source in 0..(MAX_SOURCES * 2) {
            log.note(now, source);
        }
        assert_eq!(log.sources.len(), MAX_SOURCES);
    }
}
