//! What the rollout benchmark measures alike for Shoal and Docker Swarm: a
//! client sending GETs at a fixed rate through one entry point (a node
//! port, a published port) and the tally of its answers.
#![allow(dead_code)]

pub mod dns_client;
pub mod swarm;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cluster_support::http;

/// One request's connect, write and read bound: a request that takes
/// longer counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// What one GET returned: the page (`hello from 1.0`) or `None` when it
/// failed (refused, reset, timed out, not 200), and when it was sent.
struct Answer {
    at: Instant,
    page: Option<String>,
}

/// A client thread sending `GET /` to `addr` on a fixed schedule, one
/// request at a time (a slow answer delays the next ones, which then catch
/// up), until stopped or `max_requests` were sent.
pub struct LoadClient {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Answer>>,
    started: Instant,
}

impl LoadClient {
    pub fn start(addr: String, per_second: u32, max_requests: u64) -> LoadClient {
        assert!(per_second > 0, "a request rate of 0 sends nothing");
        let stop = Arc::new(AtomicBool::new(false));
        let stop_thread = stop.clone();
        let started = Instant::now();
        let period = Duration::from_secs(1) / per_second;
        let thread = std::thread::spawn(move || {
            let mut answers = Vec::new();
            for k in 0..max_requests {
                if stop_thread.load(Ordering::Relaxed) {
                    break;
                }
                let slot = started + period * u32::try_from(k).unwrap_or(u32::MAX);
                std::thread::sleep(slot.saturating_duration_since(Instant::now()));
                let at = Instant::now();
                let page = http(&addr, "GET", "/", None, REQUEST_TIMEOUT)
                    .filter(|(status, _)| *status == 200)
                    .map(|(_, body)| body.trim().to_owned());
                answers.push(Answer { at, page });
            }
            answers
        });
        LoadClient {
            stop,
            thread,
            started,
        }
    }

    /// Stops the client and counts its answers; the times failed requests
    /// began are given relative to `origin` (the rollout's start).
    pub fn stop(self, origin: Instant) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let answers = self.thread.join().expect("the client thread panicked");
        let mut tally = Tally {
            requests: answers.len(),
            seconds: self.started.elapsed().as_secs_f64(),
            ..Tally::default()
        };
        for answer in answers {
            match answer.page {
                Some(page) => *tally.pages.entry(page).or_default() += 1,
                None => tally
                    .failures_at
                    .push(answer.at.saturating_duration_since(origin)),
            }
        }
        tally
    }
}

/// The answers of one client run.
#[derive(Debug, Default)]
pub struct Tally {
    pub requests: usize,
    /// How long the client ran.
    pub seconds: f64,
    /// Answer text and how often it came.
    pub pages: BTreeMap<String, usize>,
    /// When each failed request began, since the rollout began.
    pub failures_at: Vec<Duration>,
}

impl Tally {
    pub fn failed(&self) -> usize {
        self.failures_at.len()
    }

    /// Answers whose page is `page`.
    pub fn count(&self, page: &str) -> usize {
        self.pages.get(page).copied().unwrap_or(0)
    }

    /// Answers that were neither of `expected` (a wrong page is no failure
    /// of the connection, but must be seen).
    pub fn unexpected(&self, expected: &[&str]) -> usize {
        self.pages
            .iter()
            .filter(|(page, _)| !expected.contains(&page.as_str()))
            .map(|(_, n)| n)
            .sum()
    }
}

/// The lowest and highest of a sampled count.
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    pub min: Option<u64>,
    pub max: Option<u64>,
    pub samples: usize,
}

impl Range {
    pub fn add(&mut self, value: u64) {
        self.min = Some(self.min.map_or(value, |m| m.min(value)));
        self.max = Some(self.max.map_or(value, |m| m.max(value)));
        self.samples += 1;
    }
}
