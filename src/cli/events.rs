//! `shoal get events [-w] [--for rc/NAME|pod/NAME|node/NAME]`, and the
//! `Events:` section `describe` ends with. Any peer answers for the whole
//! cluster (it asks the live peers; see `shell/events`); `-w` reads the
//! peer's watch stream (`/events?watch=1`), fed by its one event fan-in.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;

use super::client::Client;
use super::get::GetFormat;
use super::human;
use super::table::Table;
use crate::shell::api::events::EventList;
use crate::shell::events::EventJson;
use crate::shell::events::hub::{Key, key};

/// How long `-w` waits before watching again after its stream broke.
const REWATCH_AFTER: Duration = Duration::from_secs(1);

/// The cluster's events (about `target` when given).
pub async fn fetch(client: &Client, target: Option<&str>) -> anyhow::Result<EventList> {
    let mut query = Vec::new();
    if let Some(target) = target {
        query.push(("for", target.to_owned()));
    }
    let response = client.stream("/events", &query).await?;
    response.json().await.with_context(|| {
        format!(
            "the events answer of {} is not what this shoal version expects",
            client.base()
        )
    })
}

/// `get events`: the table (or JSON/YAML), then with `watch` every new
/// or repeated event as it appears, until interrupted.
pub async fn get(
    client: &Client,
    target: Option<&str>,
    format: Option<GetFormat>,
    watch: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let list = fetch(client, target).await?;
    let wide = format == Some(GetFormat::Wide);
    match format {
        Some(GetFormat::Json) => writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?,
        Some(GetFormat::Yaml) => write!(out, "{}", serde_saphyr::to_string(&list)?)?,
        None | Some(GetFormat::Wide) => {
            if list.items.is_empty() && !watch {
                writeln!(out, "No events found.")?;
            } else {
                table(&list.items, wide, true, out)?;
            }
        }
    }
    warn_unanswered(&list);
    out.flush()?;
    if !watch {
        return Ok(());
    }
    let mut shown = seen(&list.items);
    // The peer's watch stream; reopened after a break (the peer fell
    // behind or restarted), its first lines then repeat what was shown.
    loop {
        if let Err(e) = follow(client, target, format, wide, &mut shown, out).await {
            eprintln!(
                "warning: {e:#}; watching again in {}s",
                REWATCH_AFTER.as_secs()
            );
        }
        tokio::time::sleep(REWATCH_AFTER).await;
    }
}

/// One watch stream (`/events?watch=1`): prints each event not shown yet
/// in that state (a new event, or a repeat with a higher count), until
/// the stream ends.
async fn follow(
    client: &Client,
    target: Option<&str>,
    format: Option<GetFormat>,
    wide: bool,
    shown: &mut BTreeMap<Key, (u32, u64)>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut query = vec![("watch", "1".to_owned())];
    if let Some(target) = target {
        query.push(("for", target.to_owned()));
    }
    let response = client.stream("/events", &query).await?;
    let mut body = response.bytes_stream();
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.with_context(|| format!("the event watch of {} broke", client.base()))?;
        pending.extend_from_slice(&chunk);
        let mut fresh = Vec::new();
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let change: WatchLine = serde_json::from_slice(&line).with_context(|| {
                format!(
                    "a line of the event watch of {} is not what this shoal version expects",
                    client.base()
                )
            })?;
            if change.kind == "ERROR" {
                anyhow::bail!("{}: {}", client.base(), change.object);
            }
            let event: EventJson = serde_json::from_value(change.object)?;
            let state = (event.count, event.last_ms);
            if shown.insert(key(&event), state) != Some(state) {
                fresh.push(event);
            }
        }
        if fresh.is_empty() {
            continue;
        }
        match format {
            Some(GetFormat::Json) => {
                for e in &fresh {
                    writeln!(out, "{}", serde_json::to_string(e)?)?;
                }
            }
            Some(GetFormat::Yaml) => {
                for e in &fresh {
                    write!(out, "---\n{}", serde_saphyr::to_string(e)?)?;
                }
            }
            None | Some(GetFormat::Wide) => table(&fresh, wide, false, out)?,
        }
        out.flush()?;
    }
    anyhow::bail!("{} ended the event watch", client.base())
}

/// One line of the watch stream.
#[derive(serde::Deserialize)]
struct WatchLine {
    #[serde(rename = "type")]
    kind: String,
    object: serde_json::Value,
}

fn seen(events: &[EventJson]) -> BTreeMap<Key, (u32, u64)> {
    events
        .iter()
        .map(|e| (key(e), (e.count, e.last_ms)))
        .collect()
}

fn warn_unanswered(list: &EventList) {
    for why in &list.unanswered {
        eprintln!("warning: events of {why} are missing");
    }
}

/// kubectl's columns: LAST SEEN (`5s (x3 over 2m)`), TYPE, REASON,
/// OBJECT, MESSAGE; wide adds SOURCE and FIRST SEEN.
pub fn table(
    events: &[EventJson],
    wide: bool,
    headers: bool,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let mut columns = vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"];
    if wide {
        columns.extend(["SOURCE", "FIRST SEEN"]);
    }
    let now = human::now_ms();
    let mut t = Table::new(&columns);
    for e in events {
        let mut row = vec![
            seen_column(e, now),
            e.kind.clone(),
            e.reason.clone(),
            e.object(),
            e.message.clone(),
        ];
        if wide {
            row.extend([e.source.host.clone(), human::age(e.first_ms, now)]);
        }
        t.row(row);
    }
    if headers {
        return t.write(out);
    }
    // A watch prints rows under the first table: drop the header line.
    let mut text = Vec::new();
    t.write(&mut text)?;
    let text = String::from_utf8_lossy(&text);
    for line in text.lines().skip(1) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `5s`, or `5s (x3 over 2m)` for a repeated event.
fn seen_column(e: &EventJson, now: u64) -> String {
    let last = human::age(e.last_ms, now);
    if e.count > 1 {
        format!("{last} (x{} over {})", e.count, human::age(e.first_ms, now))
    } else {
        last
    }
}

/// The `Events:` section `describe` ends with (kubectl's Type, Reason,
/// Age, From, Message), or why the events could not be read.
pub async fn describe_section(
    client: &Client,
    target: &str,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let list = match fetch(client, Some(target)).await {
        Ok(list) => list,
        Err(e) => return writeln!(out, "Events:         <unavailable: {e:#}>"),
    };
    warn_unanswered(&list);
    if list.items.is_empty() {
        return writeln!(out, "Events:         <none>");
    }
    writeln!(out, "Events:")?;
    let now = human::now_ms();
    let mut t = Table::new(&["TYPE", "REASON", "AGE", "FROM", "MESSAGE"]);
    for e in &list.items {
        t.row(vec![
            e.kind.clone(),
            e.reason.clone(),
            seen_column(e, now),
            e.source.host.clone(),
            e.message.clone(),
        ]);
    }
    let mut text = Vec::new();
    t.write(&mut text)?;
    for line in String::from_utf8_lossy(&text).lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}
