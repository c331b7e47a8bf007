//! `shoal logs POD [-f] [-c CONTAINER]`: a pod's output, from whichever
//! node runs it (the peer we ask forwards the request there);
//! `shoal logs -l app=hello` or `shoal logs rc/hello`: every matching
//! pod's, merged, each line prefixed by its pod (see [`super::logs_multi`]).

use std::io::Write;

use clap::Args;
use futures_util::StreamExt;

use super::client::{self, Client, ClientArgs, segment};
use super::logs_multi;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Pod name, as `shoal get pods` shows it (e.g. hello-0); `rc/NAME`
    /// for every pod of an RC; leave out with -l.
    pub pod: Option<String>,
    /// Every pod whose labels match (`app=hello,tier=web`), from every node.
    #[arg(short = 'l', long = "selector", conflicts_with = "pod")]
    pub selector: Option<String>,
    /// Keep streaming new output (and, with -l or rc/NAME, pick up new pods).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Container of the pod; the first one by default.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Only the last N lines of each pod.
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
    /// Only output newer than this (`30s`, `5m`, `2h`).
    #[arg(long, value_name = "DURATION", value_parser = parse_since)]
    pub since: Option<u64>,
    /// Prefix each line with the time the engine recorded it.
    #[arg(long)]
    pub timestamps: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `30s`, `5m`, `2h`, `1h30m` in seconds.
fn parse_since(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a duration; use e.g. 30s, 5m, 2h or 1h30m");
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(total)
}

impl LogsArgs {
    /// The query every pod's stream is asked with.
    pub fn query(&self, follow: bool, timestamps: bool) -> Vec<(&'static str, String)> {
        let mut query = vec![
            ("follow", follow.to_string()),
            ("timestamps", timestamps.to_string()),
        ];
        if let Some(container) = &self.container {
            query.push(("container", container.clone()));
        }
        if let Some(tail) = self.tail {
            query.push(("tail", tail.to_string()));
        }
        if let Some(since) = self.since {
            query.push(("sinceSeconds", since.to_string()));
        }
        query
    }
}

pub fn run(args: &LogsArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    let client = Client::new(&args.client)?;
    let pods = match (&args.selector, args.pod.as_deref()) {
        (Some(selector), _) => Some(logs_multi::Pods::Selector(logs_multi::parse_selector(
            selector,
        )?)),
        (None, Some(rc)) if rc.starts_with("rc/") || rc.starts_with("replicationcontroller/") => {
            let name = rc.split_once('/').map(|(_, n)| n).unwrap_or_default();
            anyhow::ensure!(
                !name.is_empty(),
                "{rc:?}: give the RC's name, e.g. rc/hello"
            );
            Some(logs_multi::Pods::Rc(name.to_owned()))
        }
        (None, Some(_)) => None,
        (None, None) => anyhow::bail!(
            "name a pod (`shoal logs hello-0`), an RC (`shoal logs rc/hello`) or a selector (`-l app=hello`)"
        ),
    };
    match pods {
        Some(pods) => client::block_on(logs_multi::run(&client, args, pods, out))??,
        None => client::block_on(logs(&client, args, out))??,
    }
    Ok(true)
}

async fn logs(client: &Client, args: &LogsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let pod = args.pod.as_deref().unwrap_or_default();
    let pod = pod.strip_prefix("pod/").unwrap_or(pod);
    let path = format!("/pods/{}/logs", segment(pod));
    let response = client
        .stream(&path, &args.query(args.follow, args.timestamps))
        .await?;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk
            .map_err(|e| anyhow::anyhow!("the log stream from {} broke off: {e}", client.base()))?;
        out.write_all(&chunk)?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn since_takes_kubectl_durations() {
        assert_eq!(parse_since("30s"), Ok(30));
        assert_eq!(parse_since("5m"), Ok(300));
        assert_eq!(parse_since("1h30m"), Ok(5_400));
        assert!(parse_since("5").unwrap_err().contains("not a duration"));
        assert!(parse_since("5x").is_err());
        assert!(parse_since("").is_err());
    }
}
