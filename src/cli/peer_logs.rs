//! How `shoal up` logs: `--log-format text|json` on stderr, and every line
//! inside a `peer` span naming this node (id and name), so the merged logs
//! of several peers (one terminal, one journal, one collector) can be told
//! apart. Sync exchanges add their own `sync` span inside it
//! (`peer/spread.rs`, `shell/driver.rs`).
//!
//! A span follows a future only where the future is instrumented, and a
//! peer spawns tasks in many places (the runtime crate's included). One
//! process runs one peer, so instead the `peer` span is entered once at the
//! bottom of every thread of the async runtime (and of the main thread):
//! whatever any task logs then carries it.

use std::cell::RefCell;
use std::io::IsTerminal;

use clap::ValueEnum;
use tracing::span::EnteredSpan;
use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event: `TIME LEVEL peer{node=.. id=..}: target: message`.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`,
    /// `span`, `spans`: the `peer` span's `node` and `id` among them).
    Json,
}

/// Installs the global subscriber: `SHOAL_LOG` (an `EnvFilter`) or `info`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("SHOAL_LOG")
        // hickory-server logs every DNS request at info.
        .unwrap_or_else(|_| EnvFilter::new("info,hickory_server=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // Colour codes only for a person at a terminal, not in a log file.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}

/// The span every line of this peer's process is logged in.
pub fn peer_span(name: &str, node_id: u64) -> tracing::Span {
    tracing::info_span!("peer", node = %name, id = %format_args!("{node_id:016x}"))
}

thread_local! {
    /// This thread's entry into the peer span, left when the thread stops.
    static ENTERED: RefCell<Option<EnteredSpan>> = const { RefCell::new(None) };
}

/// Enters `span` at the bottom of this thread's span stack until
/// [`leave_on_this_thread`].
pub fn enter_on_this_thread(span: &tracing::Span) {
    ENTERED.with(|entered| *entered.borrow_mut() = Some(span.clone().entered()));
}

/// Leaves the span entered by [`enter_on_this_thread`], while the
/// subscriber's own per-thread state still exists.
pub fn leave_on_this_thread() {
    ENTERED.with(|entered| drop(entered.borrow_mut().take()));
}

/// A multi-threaded async runtime whose every thread logs inside `span`.
pub fn runtime_in(span: &tracing::Span) -> std::io::Result<tokio::runtime::Runtime> {
    let start = span.clone();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || enter_on_this_thread(&start))
        .on_thread_stop(leave_on_this_thread)
        .build()
}
