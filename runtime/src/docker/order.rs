//! Actions on one pod version run one after another, in the order they
//! were handed to the executor.
//!
//! Each action runs in a task of its own; a lock taken inside the task
//! would serialize them but not order them (the scheduler may run a later
//! task first). So the place in line is taken synchronously, when the
//! action is handed over ([`Queues::turn`]), and the task waits for the
//! previous action's [`Turn`] to end. After a peer restart the core hands
//! over the start that adopts a running pod and, right behind it, the stop
//! of that pod; run the other way round, the start created a new copy of a
//! pod nobody tracked any more.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;

/// The waiting lines, one per key; a line goes once its last action ended.
#[derive(Debug)]
pub(crate) struct Queues<K> {
    /// Per key: the sequence number of the last action in line and what
    /// ends when it does.
    tails: Mutex<BTreeMap<K, (u64, oneshot::Receiver<()>)>>,
    next: AtomicU64,
}

impl<K: Ord + Clone> Default for Queues<K> {
    fn default() -> Self {
        Queues {
            tails: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
        }
    }
}

/// One action's place in its line.
#[derive(Debug)]
pub(crate) struct Turn<K> {
    key: K,
    seq: u64,
    previous: Option<oneshot::Receiver<()>>,
    /// Dropped when the action ends: that lets the next one go.
    done: oneshot::Sender<()>,
}

impl<K: Ord + Clone> Queues<K> {
    /// Takes the next place in `key`'s line, now.
    pub(crate) fn turn(&self, key: &K) -> Turn<K> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let (done, ends) = oneshot::channel();
        let previous = self
            .tails
            .lock()
            .expect("queues poisoned")
            .insert(key.clone(), (seq, ends))
            .map(|(_, previous)| previous);
        Turn {
            key: key.clone(),
            seq,
            previous,
            done,
        }
    }

    /// Waits until every action in line before `turn` ended.
    pub(crate) async fn wait(turn: &mut Turn<K>) {
        if let Some(previous) = turn.previous.as_mut() {
            // An error only says the previous action's turn was dropped: it ended.
            let _ = previous.await;
            turn.previous = None;
        }
    }

    /// Ends `turn`: the next action in line may run; the line goes when
    /// nobody is behind.
    pub(crate) fn end(&self, turn: Turn<K>) {
        let mut tails = self.tails.lock().expect("queues poisoned");
        if tails
            .get(&turn.key)
            .is_some_and(|(seq, _)| *seq == turn.seq)
        {
            tails.remove(&turn.key);
        }
        drop(turn.done);
    }

    #[cfg(test)]
    fn lines(&self) -> usize {
        self.tails.lock().expect("queues poisoned").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// Hands 200 actions over 4 keys to tasks in order, each yielding or
    /// sleeping a little; every key's actions must run in hand-over order
    /// and never two at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn actions_on_one_key_run_in_the_order_they_were_handed_over() {
        let queues: Arc<Queues<u32>> = Arc::default();
        let ran: Arc<Mutex<BTreeMap<u32, Vec<u32>>>> = Arc::default();
        let busy: Arc<Mutex<BTreeMap<u32, bool>>> = Arc::default();
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let key = i % 4;
            let mut turn = queues.turn(&key);
            let (queues, ran, busy) = (queues.clone(), ran.clone(), busy.clone());
            tasks.push(tokio::spawn(async move {
                // Later tasks often get going first: the line must hold anyway.
                if i % 3 == 0 {
                    tokio::time::sleep(Duration::from_millis(u64::from(i % 5))).await;
                }
                Queues::wait(&mut turn).await;
                let was = busy.lock().unwrap().insert(key, true);
                assert_ne!(was, Some(true), "two actions on key {key} at once");
                tokio::task::yield_now().await;
                ran.lock().unwrap().entry(key).or_default().push(i);
                busy.lock().unwrap().insert(key, false);
                queues.end(turn);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        for (key, order) in ran.lock().unwrap().iter() {
            let want: Vec<u32> = (0..200).filter(|i| i % 4 == *key).collect();
            assert_eq!(order, &want, "key {key}");
        }
        assert_eq!(queues.lines(), 0, "every line goes once it is empty");
    }

    #[tokio::test]
    async fn an_action_alone_in_line_runs_at_once() {
        let queues: Queues<&str> = Queues::default();
        let mut first = queues.turn(&"a");
        let mut other = queues.turn(&"b");
        tokio::time::timeout(Duration::from_secs(1), Queues::wait(&mut first))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(1), Queues::wait(&mut other))
            .await
            .unwrap();
        let mut second = queues.turn(&"a");
        let waited =
            tokio::time::timeout(Duration::from_millis(50), Queues::wait(&mut second)).await;
        assert!(
            waited.is_err(),
            "the second action ran before the first ended"
        );
        queues.end(first);
        tokio::time::timeout(Duration::from_secs(1), Queues::wait(&mut second))
            .await
            .unwrap();
        queues.end(second);
        queues.end(other);
        assert_eq!(queues.lines(), 0);
    }
}
