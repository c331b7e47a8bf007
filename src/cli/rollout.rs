//! `shoal rollout status|history|undo|pause|resume|restart NAME`: follow a
//! rollout, list the templates an RC ran, go back to one, hold a rollout
//! and let it go on, and replace every pod with the same images.

use std::io::Write;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use reqwest::Method;

use super::client::{self, AckArgs, Client, ClientArgs, segment};
use super::rolling_update::parse_duration;
use super::{OutputFormat, human, table};
use crate::shell::api::models::{
    CommandResponse, RolloutHistoryJson, RolloutStatusJson, UndoRequest,
};

/// How often `status --watch` asks.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// A new pod that has failed this many times stops `status --watch`: the
/// rollout will not finish on its own (a missing image, a crash loop).
pub const FAILURES_TO_GIVE_UP: u32 = 3;

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Where the rollout stands: updated / ready / total; exits 0 once complete.
    Status(StatusArgs),
    /// The revisions of an RC's template: number, images, when.
    History(HistoryArgs),
    /// Roll back to the previous revision, or to `--to-revision N`.
    Undo(UndoArgs),
    /// Hold the rollout: running pods keep their template until `resume`.
    Pause(Target),
    /// Let a paused rollout continue.
    Resume(Target),
    /// Replace every pod with a new one of the same images, one at a time.
    Restart(Target),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The RC.
    pub name: String,
    /// Follow the rollout until it completes, fails or `--timeout` passes.
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// Longest wait with --watch (`90s`, `5m`, `1h`, or seconds).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The RC.
    pub name: String,
    /// Print the revisions as JSON or YAML instead of a table.
    #[arg(long, short = 'o')]
    pub output: Option<OutputFormat>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The RC.
    pub name: String,
    /// Revision to return to (`rollout history` lists them); the previous one by default.
    #[arg(long)]
    pub to_revision: Option<u64>,
    #[command(flatten)]
    pub ack: AckArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct Target {
    /// The RC.
    pub name: String,
    #[command(flatten)]
    pub ack: AckArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run(args: &RolloutArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    match &args.command {
        RolloutCommand::Status(a) => status(a, out),
        RolloutCommand::History(a) => history(a, out),
        RolloutCommand::Undo(a) => {
            let body = UndoRequest {
                to_revision: a.to_revision,
            };
            write(&a.client, &a.ack, &a.name, "undo", &body, out)
        }
        RolloutCommand::Pause(t) => write(&t.client, &t.ack, &t.name, "pause", &(), out),
        RolloutCommand::Resume(t) => write(&t.client, &t.ack, &t.name, "resume", &(), out),
        RolloutCommand::Restart(t) => write(&t.client, &t.ack, &t.name, "restart", &(), out),
    }
}

/// `POST /rcs/NAME/rollout/VERB`, then kubectl's one line.
fn write(
    client_args: &ClientArgs,
    ack: &AckArgs,
    name: &str,
    verb: &str,
    body: &impl serde::Serialize,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let client = Client::new(client_args)?;
    let path = format!("/rcs/{}/rollout/{verb}{}", segment(name), ack.query());
    let response: CommandResponse = client::block_on(client.send_json(Method::POST, &path, body))??;
    writeln!(
        out,
        "replicationcontroller/{} {}",
        response.name, response.outcome
    )?;
    Ok(true)
}

fn history(args: &HistoryArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    let client = Client::new(&args.client)?;
    let path = format!("/rcs/{}/rollout/history", segment(&args.name));
    let history: RolloutHistoryJson = client::block_on(client.get(&path))??;
    match args.output {
        Some(OutputFormat::Json) => {
            serde_json::to_writer_pretty(&mut *out, &history)?;
            writeln!(out)?;
        }
        Some(OutputFormat::Yaml) => {
            write!(out, "{}", serde_saphyr::to_string(&history)?)?;
        }
        None => history_table(&history, human::now_ms(), out)?,
    }
    Ok(true)
}

/// `REVISION IMAGES WHEN`, oldest first as kubectl lists them; the current
/// revision is marked.
fn history_table(
    history: &RolloutHistoryJson,
    now_ms: u64,
    out: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(out, "replicationcontroller/{}", history.name)?;
    // The marker is a cell of the current row only: no trailing spaces.
    let mut t = table::Table::new(&["REVISION", "IMAGES", "WHEN"]);
    for r in &history.revisions {
        let images: Vec<&str> = r
            .images
            .iter()
            .map(|i| i.split_once('=').map_or(i.as_str(), |(_, image)| image))
            .collect();
        let mut row = vec![
            r.revision.to_string(),
            images.join(","),
            human::local_time(r.written_at_ms, now_ms),
        ];
        if r.current {
            row.push("(current)".to_owned());
        }
        t.row(row);
    }
    t.write(out)
}

fn status(args: &StatusArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    let client = Client::new(&args.client)?;
    client::block_on(follow(&client, args, out))??;
    Ok(true)
}

/// Prints the progress line whenever it changes; `Ok` once complete.
async fn follow(client: &Client, args: &StatusArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let path = format!("/rcs/{}/rollout", segment(&args.name));
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut last = String::new();
    loop {
        let status: RolloutStatusJson = client.get(&path).await?;
        let line = progress(&status);
        if line != last {
            writeln!(out, "{line}")?;
            out.flush()?;
            last = line;
        }
        if status.complete {
            writeln!(
                out,
                "replicationcontroller/{} successfully rolled out (revision {})",
                status.name, status.revision
            )?;
            return Ok(());
        }
        if status.paused {
            bail!(
                "the rollout of {} is paused: `shoal rollout resume {}` lets it continue",
                status.name,
                status.name
            );
        }
        let given_up = status
            .failing
            .iter()
            .find(|p| p.restarts >= FAILURES_TO_GIVE_UP || p.phase == "Failed");
        if let Some(pod) = given_up {
            bail!(
                "the rollout of {} is failing: {}; the pods of other templates keep serving; \
                 fix it and roll out again, or `shoal rollout undo {}`",
                status.name,
                failing_reason(pod),
                status.name
            );
        }
        if !args.watch {
            bail!(
                "the rollout of {} is not complete{}",
                status.name,
                problems(&status)
            );
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "timed out after {:?} waiting for the rollout of {}: {}{}",
                args.timeout,
                status.name,
                last,
                problems(&status)
            );
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// `hello: [##--] 2/4 updated, 1/4 updated and ready, 5 pods (revision 3)`.
pub fn progress(s: &RolloutStatusJson) -> String {
    const WIDTH: u32 = 20;
    // An RC of 0 replicas has nothing left to do: a full bar.
    let filled = (s.updated_ready.min(s.replicas) * WIDTH)
        .checked_div(s.replicas)
        .unwrap_or(WIDTH);
    let bar: String = (0..WIDTH)
        .map(|i| if i < filled { '#' } else { '-' })
        .collect();
    format!(
        "{}: [{bar}] {}/{} updated, {}/{} updated and ready, {} ready in all, {} pods (revision {}{})",
        s.name,
        s.updated,
        s.replicas,
        s.updated_ready,
        s.replicas,
        s.ready,
        s.total_pods,
        s.revision,
        if s.paused { ", paused" } else { "" }
    )
}

/// `hello-0 on node1 (CrashLoopBackOff, 3 restarts): image: ... not found`.
fn failing_reason(p: &crate::shell::api::models::FailingPodJson) -> String {
    format!(
        "{} on {} ({}, {} restarts): {}",
        p.pod,
        p.node,
        p.phase,
        p.restarts,
        p.error.as_deref().unwrap_or("no error reported")
    )
}

/// What keeps the rollout from completing, as a `; ...` suffix.
fn problems(s: &RolloutStatusJson) -> String {
    let mut out = String::new();
    for p in &s.failing {
        out.push_str("; ");
        out.push_str(&failing_reason(p));
    }
    for u in &s.unplaced {
        out.push_str(&format!("; {} fits no node: {}", u.pod, u.reason));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::api::models::{FailingPodJson, RolloutRevisionJson};

    fn status() -> RolloutStatusJson {
        RolloutStatusJson {
            name: "hello".into(),
            revision: 3,
            template_hash: "00aa".into(),
            replicas: 4,
            updated: 2,
            updated_ready: 1,
            ready: 4,
            total_pods: 5,
            paused: false,
            complete: false,
            failing: vec![FailingPodJson {
                pod: "hello-1".into(),
                node: "node1".into(),
                phase: "CrashLoopBackOff".into(),
                restarts: 2,
                error: Some("image: no such image".into()),
            }],
            unplaced: Vec::new(),
        }
    }

    #[test]
    fn progress_shows_a_bar_and_the_counts() {
        assert_eq!(
            progress(&status()),
            "hello: [#####---------------] 2/4 updated, 1/4 updated and ready, 4 ready in all, 5 pods (revision 3)"
        );
        assert_eq!(
            problems(&status()),
            "; hello-1 on node1 (CrashLoopBackOff, 2 restarts): image: no such image"
        );
    }

    #[test]
    fn history_lists_revisions_with_images_and_times() {
        let history = RolloutHistoryJson {
            name: "hello".into(),
            revisions: vec![
                RolloutRevisionJson {
                    revision: 1,
                    written_at_ms: 1_796_184_633_000,
                    template_hash: "a".into(),
                    images: vec!["web=shoal-test/hello:1.0".into()],
                    current: false,
                },
                RolloutRevisionJson {
                    revision: 2,
                    written_at_ms: 0,
                    template_hash: "b".into(),
                    images: vec!["web=shoal-test/hello:1.1".into(), "log=busybox:1".into()],
                    current: true,
                },
            ],
        };
        let mut out = Vec::new();
        history_table(&history, 1_796_184_633_000 + 65_000, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "replicationcontroller/hello");
        assert!(lines[1].starts_with("REVISION   IMAGES"), "{text}");
        assert!(text.lines().all(|l| l == l.trim_end()), "{text}");
        assert!(
            lines[2].starts_with("1          shoal-test/hello:1.0"),
            "{text}"
        );
        assert!(lines[2].contains("(65s ago)"), "{text}");
        assert!(
            lines[3].starts_with("2          shoal-test/hello:1.1,busybox:1   <unknown>"),
            "{text}"
        );
        assert!(lines[3].ends_with("(current)"), "{text}");
    }
}
