//! Runs Shoal's fuzz targets ([`shoal::fuzzing`]) with a bound on memory:
//! every allocation goes through [`Counting`], and an input whose decoding
//! allocates more than [`budget`] at its peak fails as a crash does (a
//! hostile length prefix must not make a peer allocate gigabytes).
//!
//! `cargo afl build -p shoal-fuzz` builds the `fuzz` binary that AFL++ runs
//! (`scripts/bench-fuzz.sh`); without `--cfg fuzzing` the same binary
//! replays files, and `tests/replay.rs` replays the seeds and every crash
//! found so far on each `cargo test`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

pub use shoal::fuzzing::{TARGETS, Target, seeds, target};

/// No single allocation may ask for more: refused (the process aborts as on
/// out-of-memory) before the system is asked for it.
pub const HARD_CAP: usize = 256 << 20;

/// Peak bytes one input may hold above what was allocated before it: a
/// fixed allowance for a peer core's own structures, plus a multiple of the
/// input (what decoding it may legitimately build).
pub fn budget(input_len: usize) -> usize {
    (32 << 20) + 64 * input_len
}

// Per thread, so that tests running side by side do not count each
// other's bytes (a target runs on the thread that calls it). Signed: a
// thread may free what another allocated. Const-initialised cells without
// destructors: reading them never allocates.
thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// The system allocator, counting the bytes each thread holds and their peak.
#[derive(Debug)]
pub struct Counting;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn grew(by: usize) {
    let _ = CURRENT.try_with(|current| {
        let now = current.get() + by as isize;
        current.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrank(by: usize) {
    let _ = CURRENT.try_with(|current| current.set(current.get() - by as isize));
}

#[allow(unsafe_code)]
// SAFETY: every call is forwarded to `System` with the caller's arguments;
// only the counters are added, and a request over HARD_CAP returns null,
// which the GlobalAlloc contract allows.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > HARD_CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > HARD_CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > HARD_CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        new
    }
}

/// Runs `work`; returns the peak bytes it held (on this thread) above what
/// was held before.
pub fn peak_of(work: impl FnOnce()) -> usize {
    let before = CURRENT.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    work();
    (PEAK.with(Cell::get) - before).max(0) as usize
}

/// Runs `target` on `data`; returns the peak bytes it held above what was
/// held before. Panics (a finding) when that passes [`budget`].
pub fn run_checked(target: Target, data: &[u8]) -> usize {
    let peak = peak_of(|| (target.run)(data));
    assert!(
        peak <= budget(data.len()),
        "{}: an input of {} bytes held {peak} bytes at its peak (budget {})",
        target.name,
        data.len(),
        budget(data.len())
    );
    peak
}

/// Where the crashes found so far are kept, one folder per target.
pub fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions")
}

/// The files of `dir/<target>`, sorted; none when it does not exist.
pub fn files_of(dir: &Path, target: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(target))
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.is_file());
    files.sort();
    files
}

/// Writes [`seeds`] as `dir/<target>/seed-N`, AFL++'s input folders.
pub fn write_seeds(dir: &Path) -> std::io::Result<usize> {
    let all = seeds();
    for (i, (name, bytes)) in all.iter().enumerate() {
        let folder = dir.join(name);
        std::fs::create_dir_all(&folder)?;
        std::fs::write(folder.join(format!("seed-{i:03}")), bytes)?;
    }
    Ok(all.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hog(data: &[u8]) {
        let held = vec![1u8; 64 << 20];
        std::hint::black_box((&held, data));
    }

    fn modest(data: &[u8]) {
        std::hint::black_box(data.to_vec());
    }

    #[test]
    #[should_panic(expected = "held")]
    fn an_input_that_holds_more_than_the_budget_is_a_finding() {
        run_checked(
            Target {
                name: "hog",
                run: hog,
            },
            b"x",
        );
    }

    #[test]
    fn the_peak_is_what_the_input_held() {
        let peak = run_checked(
            Target {
                name: "modest",
                run: modest,
            },
            &[7; 1000],
        );
        assert!((1000..1000 + 4096).contains(&peak), "peak {peak}");
    }
}
