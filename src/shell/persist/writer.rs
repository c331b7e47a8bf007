//! The writer: one thread that makes the peer's state durable, off the
//! driver task, with group commit.
//!
//! The driver queues two kinds of work and never waits for either:
//! - [`Writer::append`]: desired-state records a write changed. They go to
//!   `wal.log` and are fsynced before the write is acknowledged.
//! - [`Writer::snapshot`]: the whole [`Persisted`] state, about once a
//!   second. It replaces `state.bin` atomically and empties the log, whose
//!   records it contains.
//!
//! Every queued item gets the next sequence number. The thread takes
//! everything queued so far as one batch — the latest snapshot, and the log
//! records queued after it merged into one — writes it, fsyncs once, and
//! publishes the batch's last sequence number as durable. Appends that
//! arrive while an fsync runs wait for the next one: that is the group
//! commit that keeps throughput up when many writes arrive at once.
//!
//! A batch that fails (disk full, permissions) is put back and retried
//! every second; the failure is published with the sequence numbers it
//! covers, so the writes waiting on them are answered with the reason
//! instead of hanging.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use shoal_crdt_state::{Delta, wire};
use tokio::sync::watch;

use super::frame::{self, FileKind};
use super::{DataDir, PersistError, write_atomically};
use crate::peer::Persisted;

/// How long a failed batch waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What the writer has made durable, published after every batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Durability {
    /// Every item with a sequence number up to this one is on disk.
    pub durable: u64,
    /// The last batch failed: items up to this sequence number are not
    /// durable yet, for this reason (they are retried).
    pub failed: Option<(u64, String)>,
}

/// Work queued for the thread.
#[derive(Debug, Default)]
struct Queue {
    snapshot: Option<Persisted>,
    /// Log records queued after `snapshot` (or since the last batch).
    log: Delta,
    /// Sequence number of the last item queued.
    seq: u64,
    /// Sequence number of the last item the thread took.
    taken: u64,
    closing: bool,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Shared {
    /// The queue is only ever left consistent between statements, so a
    /// panic elsewhere cannot leave it half-updated: keep using it.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Handle on the writer thread; the driver owns it.
#[derive(Debug)]
pub struct Writer {
    shared: Arc<Shared>,
    durability: watch::Receiver<Durability>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread. With `fsync` false nothing is flushed to the
    /// disk (benchmarks only: an acknowledged write may then be lost).
    pub fn spawn(data: &DataDir, fsync: bool) -> Result<Writer, PersistError> {
        let log = LogFile::open(data.log_path(), fsync)?;
        let shared = Arc::new(Shared::default());
        let (tx, durability) = watch::channel(Durability::default());
        let thread_shared = shared.clone();
        let state_path = data.state_path();
        let thread = std::thread::Builder::new()
            .name("shoal-writer".into())
            .spawn(move || writer_loop(&thread_shared, state_path, log, fsync, &tx))
            .map_err(|source| PersistError::Write {
                path: data.path().to_owned(),
                source,
            })?;
        Ok(Writer {
            shared,
            durability,
            thread: Some(thread),
        })
    }

    /// Queues desired-state records for the log; returns their sequence number.
    pub fn append(&self, delta: Delta) -> u64 {
        let mut queue = self.shared.lock();
        queue.log.merge(delta);
        self.queued(queue)
    }

    /// Queues a whole snapshot; log records queued before it are in it.
    pub fn snapshot(&self, persisted: Persisted) -> u64 {
        let mut queue = self.shared.lock();
        queue.snapshot = Some(persisted);
        queue.log = Delta::default();
        self.queued(queue)
    }

    fn queued(&self, mut queue: MutexGuard<'_, Queue>) -> u64 {
        queue.seq += 1;
        let seq = queue.seq;
        drop(queue);
        self.shared.wake.notify_one();
        seq
    }

    /// Sequence number of the last item queued: what a write that was just
    /// applied must wait for.
    pub fn last_queued(&self) -> u64 {
        self.shared.lock().seq
    }

    /// What is durable; changes after every batch.
    pub fn durability(&self) -> watch::Receiver<Durability> {
        self.durability.clone()
    }

    /// Writes what is queued, then stops the thread. Blocks: call it from
    /// a blocking context at shutdown.
    pub fn close(mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the state writer thread panicked");
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
    }
}

fn writer_loop(
    shared: &Shared,
    state_path: PathBuf,
    mut log: LogFile,
    fsync: bool,
    durability: &watch::Sender<Durability>,
) {
    loop {
        let (snapshot, records, seq, closing) = {
            let mut queue = shared.lock();
            while queue.seq == queue.taken && !queue.closing {
                queue = shared
                    .wake
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if queue.seq == queue.taken {
                return; // closing, and everything is written
            }
            queue.taken = queue.seq;
            (
                queue.snapshot.take(),
                std::mem::take(&mut queue.log),
                queue.seq,
                queue.closing,
            )
        };
        match write_batch(&state_path, &mut log, snapshot.as_ref(), &records, fsync) {
            Ok(()) => {
                durability.send_replace(Durability {
                    durable: seq,
                    failed: None,
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot make the cluster state durable; retrying");
                durability.send_modify(|d| d.failed = Some((seq, e.to_string())));
                if closing {
                    return;
                }
                {
                    // Put the batch back under what was queued since, and
                    // mark it not taken so the next round retries it.
                    let mut queue = shared.lock();
                    if queue.snapshot.is_none() {
                        queue.snapshot = snapshot;
                    }
                    let mut back = records;
                    back.merge(std::mem::take(&mut queue.log));
                    queue.log = back;
                    queue.taken = 0;
                }
                std::thread::sleep(RETRY_AFTER);
            }
        }
    }
}

fn write_batch(
    state_path: &std::path::Path,
    log: &mut LogFile,
    snapshot: Option<&Persisted>,
    records: &Delta,
    fsync: bool,
) -> Result<(), PersistError> {
    if let Some(snapshot) = snapshot {
        let payload = wire::encode(snapshot).map_err(|e| PersistError::Write {
            path: state_path.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
        write_atomically(state_path, &frame::state_file(&payload), fsync)?;
        // Everything logged so far is in the snapshot.
        log.reset()?;
    }
    if !records.is_empty() {
        let payload = wire::encode(records).map_err(|e| PersistError::Write {
            path: log.path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        log.append(&frame::log_record(&payload))?;
    }
    Ok(())
}

/// `wal.log`, open for appending.
#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    file: File,
    fsync: bool,
}

impl LogFile {
    /// Opens the log, writing a fresh header if it is new or empty.
    fn open(path: PathBuf, fsync: bool) -> Result<LogFile, PersistError> {
        let error = |source| PersistError::Write {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(error)?;
        let empty = file.metadata().map_err(error)?.len() == 0;
        let mut log = LogFile { path, file, fsync };
        if empty {
            log.append(&frame::header(FileKind::Log))?;
        }
        Ok(log)
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), PersistError> {
        let error = |source| PersistError::Write {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(bytes).map_err(error)?;
        if self.fsync {
            self.file.sync_data().map_err(error)?;
        }
        Ok(())
    }

    /// Replaces the log with an empty one, atomically: a crash leaves the
    /// old log (whose records the new snapshot also holds) or the new one.
    fn reset(&mut self) -> Result<(), PersistError> {
        write_atomically(&self.path, &frame::header(FileKind::Log), self.fsync)?;
        let fresh = LogFile::open(self.path.clone(), self.fsync)?;
        *self = fresh;
        Ok(())
    }
}
