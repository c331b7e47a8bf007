//! `wal.log` as a crash and as damage leave it, read back from a real
//! file: a record cut short at any byte is dropped and every complete
//! record before it kept; damage before the end is refused with the
//! record's number and byte offset.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use shoal_crdt_state::Hlc;
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::spec::{ContainerSpec, PodTemplate, RcSpec};

use super::*;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shoal-wal-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn apply(name: &str, at: u64) -> Delta {
    let labels = std::collections::BTreeMap::from([("app".to_owned(), name.to_owned())]);
    let spec = RcSpec {
        name: name.into(),
        replicas: 2,
        selector: labels.clone(),
        template: PodTemplate {
            labels,
            containers: vec![ContainerSpec::new("web", "shoal-test/hello:1.0")],
            node_selector: Default::default(),
            restart_policy: Default::default(),
            termination_grace_period_secs: 2,
        },
        update_strategy: Default::default(),
        partition_policy: Default::default(),
        paused: false,
    };
    let mut desired = shoal_crdt_state::DesiredState::new();
    desired.apply(&spec, Hlc::new(at, 0, NodeId(7))).into()
}

/// A data dir whose log holds `names.len()` records written by the
/// [`Writer`] (and fsynced), after an empty snapshot; returns it with the
/// state after each prefix of the records (`[0]`: none of them).
fn logged(dir: &std::path::Path, names: &[&str]) -> (DataDir, Vec<Persisted>) {
    let data = DataDir::open(dir).unwrap();
    let writer = Writer::spawn(&data, true).unwrap();
    let mut states = vec![Persisted::default()];
    wait_durable(&writer, writer.snapshot(Persisted::default()));
    for (i, name) in names.iter().enumerate() {
        let delta = apply(name, 1 + i as u64);
        let mut next = states.last().unwrap().clone();
        next.state.merge_delta(delta.clone());
        states.push(next);
        // One at a time: the writer groups what is queued together into
        // one record.
        wait_durable(&writer, writer.append(delta));
    }
    // A crash: no later snapshot folds the log away.
    drop(writer);
    (data, states)
}

fn wait_durable(writer: &Writer, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while writer.durability().borrow().durable < seq {
        assert!(Instant::now() < deadline, "seq {seq} never became durable");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_log_cut_at_any_byte_of_its_last_record_keeps_every_record_before_it() {
    let dir = temp_dir("cut");
    let (data, states) = logged(&dir, &["a", "b", "c"]);
    let log = fs::read(data.log_path()).unwrap();
    let records = frame::log_records(&log).unwrap();
    assert_eq!(records.records.len(), 3, "the writer wrote one record each");
    assert_eq!(data.load().unwrap().as_ref(), Some(&states[3]));
    let last = records.records[2].offset;
    for cut in last..log.len() {
        fs::write(data.log_path(), &log[..cut]).unwrap();
        let loaded = data.load().unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(loaded.as_ref(), Some(&states[2]), "cut at byte {cut}");
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn records_appended_after_a_torn_tail_survive_the_next_start() {
    let dir = temp_dir("append-after-torn");
    let (data, states) = logged(&dir, &["a", "b"]);
    let log = fs::read(data.log_path()).unwrap();
    let last = frame::log_records(&log).unwrap().records[1];
    // A crash in the middle of writing "b"'s record.
    let cut = last.offset + (log.len() - last.offset) / 2;
    fs::write(data.log_path(), &log[..cut]).unwrap();
    assert_eq!(data.load().unwrap().as_ref(), Some(&states[1]));
    assert_eq!(
        fs::metadata(data.log_path()).unwrap().len(),
        last.offset as u64,
        "the torn bytes are cut off at load"
    );
    // The restarted peer writes on, then crashes again.
    let writer = Writer::spawn(&data, true).unwrap();
    let delta = apply("c", 3);
    wait_durable(&writer, writer.append(delta.clone()));
    drop(writer);
    let mut expected = states[1].clone();
    expected.state.merge_delta(delta);
    assert_eq!(data.load().unwrap(), Some(expected));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damage_before_the_last_record_is_refused_naming_the_record_and_its_offset() {
    let dir = temp_dir("damage");
    let (data, _) = logged(&dir, &["a", "b", "c"]);
    let log = fs::read(data.log_path()).unwrap();
    let second = frame::log_records(&log).unwrap().records[1];
    // One byte of the second record's payload flipped.
    let mut bad = log.clone();
    bad[second.offset + 12 + second.payload.len() / 2] ^= 0x40;
    fs::write(data.log_path(), &bad).unwrap();
    let err = data.load().unwrap_err().to_string();
    assert!(err.contains("wal.log is corrupt"), "{err}");
    assert!(
        err.contains(&format!("record 2 (at byte {})", second.offset)),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checksummed_record_that_does_not_decode_is_named_by_number_and_offset() {
    let dir = temp_dir("undecodable");
    let (data, _) = logged(&dir, &["a"]);
    let mut log = fs::read(data.log_path()).unwrap();
    let offset = log.len();
    // Intact framing around a payload that is no delta: a 200 MB string
    // declared by a 12-byte record (a fuzz finding's shape).
    let mut payload = vec![wire::WIRE_VERSION, 0xfd];
    payload.extend_from_slice(&(200u64 << 20).to_le_bytes());
    payload.extend_from_slice(b"xyz");
    log.extend(frame::log_record(&payload));
    fs::write(data.log_path(), &log).unwrap();
    let err = data.load().unwrap_err().to_string();
    assert!(
        err.contains(&format!("record 2 (at byte {offset})")),
        "{err}"
    );
    assert!(err.contains("malformed"), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}
