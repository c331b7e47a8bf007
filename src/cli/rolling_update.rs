//! `shoal rolling-update NAME --image IMG [--container C] [--wait]`: change
//! an image; nodes then replace replicas one at a time within the RC's
//! budget. `--wait` follows the rollout until every replica runs the new
//! template and is ready, printing each step, for at most `--timeout`.

use std::io::Write;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use reqwest::Method;

use super::client::{self, AckArgs, Client, ClientArgs, segment};
use crate::shell::api::models::{CommandResponse, RcDetail, RollingUpdateRequest};

/// How often `--wait` asks for the RC's status.
const POLL_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Args)]
pub struct RollingUpdateArgs {
    /// The RC to update.
    pub name: String,
    /// The new image, with its tag (e.g. shoal-test/hello:1.1).
    #[arg(long)]
    pub image: String,
    /// Container whose image changes; the first one by default.
    #[arg(long, short = 'c')]
    pub container: Option<String>,
    /// Wait until every replica runs the new image and is ready.
    #[arg(long)]
    pub wait: bool,
    /// Longest wait with --wait (`90s`, `5m`, `1h`, or seconds).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub ack: AckArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run(args: &RollingUpdateArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    let client = Client::new(&args.client)?;
    client::block_on(rolling_update(&client, args, out))??;
    Ok(true)
}

async fn rolling_update(
    client: &Client,
    args: &RollingUpdateArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let name = segment(&args.name);
    let request = RollingUpdateRequest {
        image: args.image.clone(),
        container: args.container.clone(),
    };
    let response: CommandResponse = client
        .send_json(
            Method::POST,
            &format!("/rcs/{name}/rolling-update{}", args.ack.query()),
            &request,
        )
        .await?;
    writeln!(
        out,
        "replicationcontroller/{} {}",
        response.name, response.outcome
    )?;
    out.flush()?;
    if !args.wait {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut last = String::new();
    loop {
        let rc: RcDetail = client.get(&format!("/rcs/{name}")).await?;
        let line = progress(&rc);
        if line != last {
            writeln!(out, "{line}")?;
            out.flush()?;
            last = line;
        }
        if rc.updated_ready == rc.rc.replicas && rc.total_pods == rc.rc.replicas {
            writeln!(out, "replicationcontroller/{} rolled out", rc.rc.name)?;
            return Ok(());
        }
        if let Some(why) = &rc.rollout_stopped {
            bail!(
                "{why}; the old replicas keep serving. Fix the template and roll out again (or `shoal describe rc {}`)",
                rc.rc.name
            );
        }
        if tokio::time::Instant::now() >= deadline {
            let unplaced = rc
                .unplaced
                .first()
                .map(|u| format!(" ({}: {})", u.pod, u.reason))
                .unwrap_or_default();
            bail!(
                "timed out after {:?} waiting for {}: {}{unplaced}; the rollout goes on without us, `shoal describe rc {}` shows where it stands",
                args.timeout,
                rc.rc.name,
                last,
                rc.rc.name
            );
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// `hello: 1 of 3 replicas updated and ready (4 pods running or starting)`.
fn progress(rc: &RcDetail) -> String {
    format!(
        "{}: {} of {} replicas updated and ready ({} pods in all)",
        rc.rc.name, rc.updated_ready, rc.rc.replicas, rc.total_pods
    )
}

/// `90s`, `5m`, `1h`, `250ms`, or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write it like 90s, 5m or 1h"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(n.saturating_mul(3600))),
        "d" => Ok(Duration::from_secs(n.saturating_mul(86_400))),
        _ => Err(format!(
            "unknown unit {unit:?} in {text:?}; use ms, s, m, h or d"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectls() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5w").is_err());
    }
}
