//! `shoal logs -l SELECTOR` and `shoal logs rc/NAME`: the output of every
//! matching pod, from every node, merged; each line prefixed by its pod
//! (`[pod/hello-1] ...`, kubectl's `--prefix`).
//!
//! One stream per pod through the peer we talk to (it forwards each to the
//! pod's node). Without `-f`, the streams are merged by the time the engine
//! recorded each line, so the output reads in order across nodes. With
//! `-f`, lines print as they arrive and new pods (scale-up, a replica that
//! moved) are picked up every few seconds.
//!
//! Back-pressure: every buffer is bounded (batches per pod, batches in
//! flight, line length; a batch is what one network read held). When the terminal reads slower than the pods write, the
//! buffers fill, the readers stop reading, and TCP holds the rest back at
//! the peers: memory stays bounded whatever the pods log.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::client::{Client, segment};
use super::logs::LogsArgs;
use crate::shell::api::models::{RcDetail, RcJson};

/// Batches of lines (one read from the network each) buffered per pod
/// while merging in time order.
const BATCHES_PER_POD: usize = 8;
/// Batches in flight from all pods at once while following.
const BATCHES_IN_FLIGHT: usize = 64;
/// Longer lines are cut into pieces of this size.
const MAX_LINE: usize = 64 * 1024;
/// Most pods streamed at once (kubectl's `--max-log-requests` idea).
const MAX_STREAMS: usize = 64;
/// How often `-f` looks for new matching pods.
const RESCAN_EVERY: Duration = Duration::from_secs(3);

/// Which pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pods {
    /// Pods whose labels include all of these.
    Selector(BTreeMap<String, String>),
    /// The pods of one RC.
    Rc(String),
}

/// `app=hello,tier=web` (equality only, like the RCs' selectors).
pub fn parse_selector(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once("==")
            .or_else(|| part.split_once('='))
            .filter(|(k, _)| !k.is_empty() && !k.ends_with('!'))
            .with_context(|| {
                format!("selector {text:?}: {part:?} is not KEY=VALUE (only equality is supported)")
            })?;
        out.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    anyhow::ensure!(
        !out.is_empty(),
        "selector {text:?} is empty; use e.g. -l app=hello"
    );
    Ok(out)
}

/// The names of the pods that match, sorted.
async fn matching_pods(client: &Client, pods: &Pods) -> anyhow::Result<BTreeSet<String>> {
    let rcs: Vec<String> = match pods {
        Pods::Rc(name) => vec![name.clone()],
        Pods::Selector(_) => {
            let rcs: Vec<RcJson> = client.get("/rcs").await?;
            rcs.into_iter().map(|rc| rc.name).collect()
        }
    };
    let mut names = BTreeSet::new();
    for rc in rcs {
        let detail: RcDetail = client.get(&format!("/rcs/{}", segment(&rc))).await?;
        if let Pods::Selector(selector) = pods {
            let labels = &detail.spec["spec"]["template"]["metadata"]["labels"];
            let matches = selector
                .iter()
                .all(|(k, v)| labels.get(k).and_then(|l| l.as_str()) == Some(v.as_str()));
            if !matches {
                continue;
            }
        }
        names.extend(detail.pods.into_iter().map(|p| p.name));
    }
    Ok(names)
}

/// Lines of one pod (what one read from the network held), or why its
/// stream ended early.
enum Item {
    Lines(Vec<String>),
    Failed(String),
}

pub async fn run(
    client: &Client,
    args: &LogsArgs,
    pods: Pods,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let names = matching_pods(client, &pods).await?;
    anyhow::ensure!(
        names.len() <= MAX_STREAMS,
        "{} pods match; at most {MAX_STREAMS} are streamed at once: narrow the selector",
        names.len()
    );
    if args.follow {
        return follow(client, args, &pods, names, out).await;
    }
    anyhow::ensure!(!names.is_empty(), "no pods match {}", describe(&pods));
    merged(client, args, names, out).await
}

fn describe(pods: &Pods) -> String {
    match pods {
        Pods::Rc(name) => format!("rc/{name} (it has no pods yet, or does not exist)"),
        Pods::Selector(s) => {
            let parts: Vec<String> = s.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("the selector {}", parts.join(","))
        }
    }
}

/// Streams pod `name`'s lines into `tx` until its output ends; a failure
/// is sent as the last item. Returns when the receiver is gone.
async fn stream_pod(
    client: Client,
    name: String,
    query: Vec<(&'static str, String)>,
    tx: mpsc::Sender<(String, Item)>,
) {
    let path = format!("/pods/{}/logs", segment(&name));
    let response = match client.stream(&path, &query).await {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send((name, Item::Failed(format!("{e:#}")))).await;
            return;
        }
    };
    let mut body = response.bytes_stream();
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                let why = format!("the stream broke off: {e}");
                let _ = tx.send((name, Item::Failed(why))).await;
                return;
            }
        };
        pending.extend_from_slice(&chunk);
        let lines = take_lines(&mut pending);
        // Waits while the buffer is full: back-pressure.
        if !lines.is_empty() && tx.send((name.clone(), Item::Lines(lines))).await.is_err() {
            return;
        }
    }
    if !pending.is_empty() {
        let line = String::from_utf8_lossy(&pending).into_owned();
        let _ = tx.send((name, Item::Lines(vec![line]))).await;
    }
}

/// Complete lines at the front of `pending` (without their newline);
/// a line longer than [`MAX_LINE`] is cut.
fn take_lines(pending: &mut Vec<u8>) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        match pending.iter().position(|&b| b == b'\n') {
            Some(end) if end <= MAX_LINE => {
                let line: Vec<u8> = pending.drain(..=end).take(end).collect();
                lines.push(String::from_utf8_lossy(&line).into_owned());
            }
            _ if pending.len() > MAX_LINE => {
                let line: Vec<u8> = pending.drain(..MAX_LINE).collect();
                lines.push(String::from_utf8_lossy(&line).into_owned());
            }
            _ => return lines,
        }
    }
}

/// Splits the engine's timestamp off a line (`2026-12-02T05:40:12.1Z text`),
/// as a key that sorts like the time.
fn split_time(line: &str) -> (Option<TimeKey>, &str) {
    match line.split_once(' ') {
        Some((ts, rest)) => match time_key(ts) {
            Some(t) => (Some(t), rest),
            None => (None, line),
        },
        None => (time_key(line), ""),
    }
}

/// `(YYYYMMDDhhmmss, nanoseconds)`: what the engine writes, always UTC
/// (`Z`), its fraction with trailing zeros trimmed. Read by hand: a
/// general RFC 3339 parser per line was most of the merge's cost.
type TimeKey = (u64, u32);

fn time_key(ts: &str) -> Option<TimeKey> {
    let b = ts.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' || *b.last()? != b'Z' {
        return None;
    }
    let mut whole = 0u64;
    for (i, &c) in b[..19].iter().enumerate() {
        match (i, c) {
            (4 | 7, b'-') | (10, b'T') | (13 | 16, b':') => {}
            (_, b'0'..=b'9') => whole = whole * 10 + u64::from(c - b'0'),
            _ => return None,
        }
    }
    let fraction = &b[19..b.len() - 1];
    let mut nanos = 0u32;
    if let Some((&b'.', digits)) = fraction.split_first() {
        if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        for i in 0..9 {
            let d = digits.get(i).map_or(0, |c| u32::from(c - b'0'));
            nanos = nanos * 10 + d;
        }
    } else if !fraction.is_empty() {
        return None;
    }
    Some((whole, nanos))
}

fn print_line(out: &mut impl Write, pod: &str, line: &str) -> std::io::Result<()> {
    writeln!(out, "[pod/{pod}] {line}")
}

/// Every pod's output so far, merged in the engine's time order.
async fn merged(
    client: &Client,
    args: &LogsArgs,
    names: BTreeSet<String>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    // Always ask for times: they order the merge; shown only if asked.
    let query = args.query(false, true);
    let mut streams = Vec::new();
    for name in names {
        let (tx, rx) = mpsc::channel(BATCHES_PER_POD);
        tokio::spawn(stream_pod(client.clone(), name.clone(), query.clone(), tx));
        streams.push(PodLines {
            pod: name,
            rx,
            lines: VecDeque::new(),
        });
    }
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    // The time of each stream's next line: the smallest prints next.
    let mut heads: Vec<Option<Option<TimeKey>>> = Vec::with_capacity(streams.len());
    for stream in &mut streams {
        heads.push(stream.peek_time().await);
    }
    loop {
        let next = heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.map(|t| (t, i)))
            .min();
        let Some((_, i)) = next else { break };
        let stream = &mut streams[i];
        if let Some(line) = stream.lines.pop_front() {
            let shown = if args.timestamps {
                line.as_str()
            } else {
                split_time(&line).1
            };
            print_line(&mut out, &stream.pod, shown)?;
        }
        heads[i] = stream.peek_time().await;
    }
    out.flush()?;
    Ok(())
}

/// One pod's stream while merging: lines received, not yet printed.
struct PodLines {
    pod: String,
    rx: mpsc::Receiver<(String, Item)>,
    lines: VecDeque<String>,
}

impl PodLines {
    /// The time of the next line (`Some(None)`: a line without one);
    /// `None` once the stream ended. Failures are reported and end it.
    async fn peek_time(&mut self) -> Option<Option<TimeKey>> {
        while self.lines.is_empty() {
            match self.rx.recv().await? {
                (_, Item::Lines(lines)) => self.lines.extend(lines),
                (pod, Item::Failed(why)) => {
                    eprintln!("warning: no logs of pod {pod}: {why}");
                    return None;
                }
            }
        }
        self.lines.front().map(|line| split_time(line).0)
    }
}

/// Lines as they arrive from every matching pod, new pods included.
async fn follow(
    client: &Client,
    args: &LogsArgs,
    pods: &Pods,
    names: BTreeSet<String>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel(BATCHES_IN_FLIGHT);
    let query = args.query(true, args.timestamps);
    let mut following: BTreeMap<String, tokio::task::JoinHandle<()>> = BTreeMap::new();
    let start = |name: String, query: Vec<(&'static str, String)>| {
        tokio::spawn(stream_pod(client.clone(), name, query, tx.clone()))
    };
    for name in names {
        following.insert(name.clone(), start(name, query.clone()));
    }
    let mut rescan = tokio::time::interval(RESCAN_EVERY);
    rescan.tick().await;
    loop {
        tokio::select! {
            Some((pod, item)) = rx.recv() => match item {
                Item::Lines(lines) => {
                    for line in &lines {
                        print_line(out, &pod, line)?;
                    }
                    out.flush()?;
                }
                Item::Failed(why) => eprintln!("warning: logs of pod {pod}: {why}"),
            },
            _ = rescan.tick() => {
                let Ok(now) = matching_pods(client, pods).await else { continue };
                following.retain(|name, task| now.contains(name) || !task.is_finished());
                for name in now {
                    let again = following.get(&name).is_some_and(|t| t.is_finished());
                    if following.contains_key(&name) && !again {
                        continue;
                    }
                    if following.len() >= MAX_STREAMS && !again {
                        continue;
                    }
                    // A pod seen before whose stream ended (restarted,
                    // moved): only what is new.
                    let mut q = query.clone();
                    if again {
                        q.retain(|(k, _)| *k != "tail" && *k != "sinceSeconds");
                        q.push(("sinceSeconds", RESCAN_EVERY.as_secs().to_string()));
                    }
                    following.insert(name.clone(), start(name, q));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_long_ones_cut() {
        let mut pending = b"one\ntwo\npart".to_vec();
        assert_eq!(take_lines(&mut pending), ["one", "two"]);
        assert_eq!(pending, b"part");
        let mut long = vec![b'x'; MAX_LINE + 10];
        let lines = take_lines(&mut long);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(long.len(), 10);
    }

    #[test]
    fn selectors_take_equality_only() {
        let s = parse_selector("app=hello, tier==web").unwrap();
        assert_eq!(s.get("app").map(String::as_str), Some("hello"));
        assert_eq!(s.get("tier").map(String::as_str), Some("web"));
        assert!(parse_selector("app!=x").is_err());
        assert!(parse_selector("app").is_err());
        assert!(parse_selector("").is_err());
    }

    #[test]
    fn engine_times_are_split_off() {
        let (t, rest) = split_time("2026-12-02T05:40:12.5Z hello world");
        assert_eq!(t, Some((20261202054012, 500_000_000)));
        assert_eq!(rest, "hello world");
        // Trimmed fractions still order by time, not by text.
        let later = time_key("2026-12-02T05:40:12.05Z").unwrap();
        let earlier = time_key("2026-12-02T05:40:12.049999999Z").unwrap();
        assert!(earlier < later);
        assert!(time_key("2026-12-02T05:40:12Z").unwrap() < earlier);
        assert_eq!(time_key("2026-12-02T05:40:12+01:00"), None);
        let (t, rest) = split_time("no time here");
        assert_eq!((t, rest), (None, "no time here"));
    }
}
