//! A hostile length prefix costs memory in proportion to the input that
//! carries it, not to what it declares: measured with the allocation
//! counter, for the wire decoder alone and for the data-dir loader.

use shoal_crdt_state::sync::{ClusterState, Delta};
use shoal_crdt_state::wire::{self, MAX_FILE_BYTES, WIRE_VERSION};
use shoal_fuzz::{files_of, peak_of, regressions_dir, run_checked, target};

/// What an input of `len` bytes may hold at its peak: the decode limit's
/// smallest tier or 128 times its length (`wire::decode_limit`), plus
/// 64 KiB for the loader's own small structures.
fn allowance(len: usize) -> usize {
    (4 << 10).max(128 * len) + (64 << 10)
}

/// The envelope, then a string (or sequence) declared `declared` bytes
/// long, then `padding` bytes of what should have been its content.
fn hostile(declared: u64, padding: usize) -> Vec<u8> {
    let mut out = vec![WIRE_VERSION, 0xfd];
    out.extend_from_slice(&declared.to_le_bytes());
    out.extend(std::iter::repeat_n(b'x', padding));
    out
}

#[test]
fn a_declared_length_costs_in_proportion_to_the_bytes_that_carry_it() {
    let mut report = Vec::new();
    for padding in [0, 100, 1_000, 10_000, 100_000] {
        // Every power of two up to 256 MiB: the worst one is the largest
        // the decode limit still lets through.
        let mut worst = (0, 0);
        for shift in 4..=28 {
            let declared = 1u64 << shift;
            let input = hostile(declared, padding);
            let peak = peak_of(|| {
                // The ceiling a data-dir file is read with: the input
                // still decides the cost.
                assert!(wire::decode::<String>(&input, MAX_FILE_BYTES).is_err());
                assert!(wire::decode::<Delta>(&input, MAX_FILE_BYTES).is_err());
                assert!(wire::decode::<ClusterState>(&input, MAX_FILE_BYTES).is_err());
            });
            worst = worst.max((peak, declared));
            assert!(
                peak <= allowance(input.len()),
                "an input of {} bytes declaring {declared} held {peak} bytes (allowed {})",
                input.len(),
                allowance(input.len())
            );
        }
        let len = padding + 10;
        report.push(format!(
            "{len} bytes: worst peak {} (declaring {}), allowed {}",
            worst.0,
            worst.1,
            allowance(len)
        ));
    }
    println!("{}", report.join("\n"));
}

#[test]
fn a_valid_input_dense_with_small_integers_still_decodes() {
    // Each 1-byte varint claims 8 bytes: the limit must leave room for it.
    for n in [1usize, 1_000, 100_000] {
        let values = vec![0u64; n];
        let bytes = wire::encode(&values).unwrap();
        assert_eq!(
            wire::decode::<Vec<u64>>(&bytes, MAX_FILE_BYTES).unwrap(),
            values
        );
    }
}

#[test]
fn the_data_dir_findings_cost_in_proportion_to_their_size() {
    // The fuzz findings that held 50-218 MB from files of 34-956 bytes.
    let mut replayed = 0;
    for name in ["state_file", "wal_log"] {
        let target = target(name).expect("a target of that name");
        for file in files_of(&regressions_dir(), name) {
            let data = std::fs::read(&file).unwrap();
            let peak = run_checked(target, &data);
            println!("{}: {} bytes, peak {peak}", file.display(), data.len());
            assert!(
                peak <= allowance(data.len()),
                "{}: {} bytes held {peak}",
                file.display(),
                data.len()
            );
            replayed += 1;
        }
    }
    assert!(replayed >= 8, "the findings are in fuzz/regressions");
}
