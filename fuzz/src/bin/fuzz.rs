//! `fuzz TARGET`: under AFL++ (built with `cargo afl build`), the fuzzing
//! loop of TARGET. Otherwise `fuzz TARGET FILE...` replays files through
//! TARGET and prints each one's peak allocation, and `fuzz seeds DIR`
//! writes the seed corpora.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let names: Vec<&str> = shoal_fuzz::TARGETS.iter().map(|t| t.name).collect();
    let usage = format!(
        "usage: fuzz TARGET [FILE...] | fuzz seeds DIR; targets: {}",
        names.join(", ")
    );
    let Some(first) = args.first() else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    if first == "seeds" {
        let Some(dir) = args.get(1) else {
            eprintln!("{usage}");
            return ExitCode::from(2);
        };
        return match shoal_fuzz::write_seeds(std::path::Path::new(dir)) {
            Ok(n) => {
                println!("wrote {n} seeds under {dir}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot write seeds under {dir}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let Some(target) = shoal_fuzz::target(first) else {
        eprintln!("unknown target {first}; {usage}");
        return ExitCode::from(2);
    };
    run(target, &args[1..])
}

#[cfg(fuzzing)]
fn run(target: shoal_fuzz::Target, _files: &[String]) -> ExitCode {
    afl::fuzz!(|data: &[u8]| {
        shoal_fuzz::run_checked(target, data);
    });
    ExitCode::SUCCESS
}

#[cfg(not(fuzzing))]
fn run(target: shoal_fuzz::Target, files: &[String]) -> ExitCode {
    for file in files {
        match std::fs::read(file) {
            Ok(data) => {
                let peak = shoal_fuzz::run_checked(target, &data);
                println!("{file}: {} bytes, peak {peak} bytes", data.len());
            }
            Err(e) => {
                eprintln!("cannot read {file}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
