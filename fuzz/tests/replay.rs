//! The fuzz targets' short run on every `cargo test`: each target gets its
//! seed corpus, every crash found so far (`regressions/TARGET/*`) and a few
//! hundred deterministic mutations of its seeds, under the same allocation
//! bound as under AFL++. No fuzzer needed; a few seconds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shoal_fuzz::{TARGETS, files_of, regressions_dir, run_checked, seeds};

/// Mutations per target, and the time they may take at most.
const MUTATIONS: usize = 300;
const MUTATION_TIME: Duration = Duration::from_secs(20);

fn seeds_by_target() -> BTreeMap<&'static str, Vec<Vec<u8>>> {
    let mut by: BTreeMap<&'static str, Vec<Vec<u8>>> = BTreeMap::new();
    for (name, bytes) in seeds() {
        by.entry(name).or_default().push(bytes);
    }
    by
}

#[test]
fn every_target_has_seeds_and_they_run_within_the_bound() {
    let by = seeds_by_target();
    for target in TARGETS {
        let inputs = by.get(target.name).map(Vec::as_slice).unwrap_or_default();
        assert!(!inputs.is_empty(), "{}: no seed", target.name);
        for input in inputs {
            run_checked(*target, input);
        }
    }
}

#[test]
fn every_crash_found_so_far_runs_clean() {
    let dir = regressions_dir();
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let name = entry.expect("readable").file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        assert!(
            shoal_fuzz::target(&name).is_some(),
            "regressions/{name}: no such target"
        );
    }
    for target in TARGETS {
        for file in files_of(&dir, target.name) {
            let data = std::fs::read(&file).expect("readable");
            run_checked(*target, &data);
            replayed += 1;
        }
    }
    println!("replayed {replayed} crash inputs");
}

/// xorshift64: the same mutations on every run, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One of: flip a byte, overwrite with an extreme value (a hostile length
/// prefix), truncate, duplicate a slice, insert random bytes.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len());
        match rng.below(5) {
            0 if !out.is_empty() => out[at] ^= 1 << rng.below(8),
            1 if !out.is_empty() => out[at] = [0x00, 0xff, 0xfb, 0xfc, 0xfd, 0x7f][rng.below(6)],
            2 => out.truncate(at),
            3 if !out.is_empty() => {
                let end = (at + rng.below(64)).min(out.len());
                let piece = out[at..end].to_vec();
                let to = rng.below(out.len());
                out.splice(to..to, piece);
            }
            _ => {
                let extra: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                out.splice(at..at, extra);
            }
        }
    }
    out
}

#[test]
fn mutated_seeds_run_within_the_bound() {
    let by = seeds_by_target();
    for target in TARGETS {
        let inputs = by.get(target.name).map(Vec::as_slice).unwrap_or_default();
        let mut rng = Rng(0x5eed ^ (target.name.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let started = Instant::now();
        let mut ran = 0;
        while ran < MUTATIONS && started.elapsed() < MUTATION_TIME {
            let seed = &inputs[rng.below(inputs.len())];
            let input = mutate(&mut rng, seed);
            run_checked(*target, &input);
            ran += 1;
        }
        println!(
            "{}: {ran} mutated inputs in {:?}",
            target.name,
            started.elapsed()
        );
    }
}

/// The cluster identity a joiner learns from its seeds, and node.json's
/// record of it, are fuzzed from valid inputs.
#[test]
fn the_cluster_identity_answer_and_node_json_cluster_field_have_valid_seeds() {
    let by = seeds_by_target();
    let answers = by
        .get("cluster_identity_answer")
        .expect("a cluster_identity_answer target with seeds");
    assert!(
        answers
            .iter()
            .any(|a| shoal::shell::cluster_identity::decode_answer(a).is_ok()),
        "no seed is a valid answer"
    );
    let with_cluster = by["node_files"].iter().any(|bytes| {
        shoal::shell::persist::decode_identity(std::path::Path::new("node.json"), bytes).is_ok_and(
            |identity| {
                identity.cluster.is_some()
                    && shoal::shell::cluster_identity::of_recorded(&identity).is_ok()
            },
        )
    });
    assert!(with_cluster, "no node.json seed records a cluster identity");
}
