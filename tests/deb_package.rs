//! The .deb of `scripts/build-deb.sh`, installed on this machine with
//! `dpkg -i`: `/usr/bin/shoal --version` runs, the installed unit verifies,
//! and `dpkg -r` then `dpkg -P` leave nothing behind. The package is built
//! from the test's own binary (`--fast`: seconds). Runs only where it can
//! restore the machine as it found it: as root, with no shoal package,
//! /usr/bin/shoal, /etc/shoal or /var/lib/shoal already there (else it
//! says why and skips).
#![cfg(feature = "shell")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn installed() -> bool {
    let out = run("dpkg-query", &["-W", "-f=${Status}", "shoal"]);
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("installed")
}

/// Why this machine cannot take the test, if it cannot.
fn unsuitable() -> Option<String> {
    if run("id", &["-u"]).stdout != b"0\n" {
        return Some("dpkg -i needs root".into());
    }
    if Command::new("dpkg-deb").arg("--version").output().is_err() {
        return Some("no dpkg-deb (not a Debian machine)".into());
    }
    if run("dpkg-query", &["-W", "shoal"]).status.success() {
        return Some("a shoal package is already known to dpkg; not touching it".into());
    }
    ["/usr/bin/shoal", "/etc/shoal", "/var/lib/shoal"]
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| format!("{p} exists; not touching it"))
}

/// Purges the package if the test installed it, also when it fails.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        if run("dpkg-query", &["-W", "shoal"]).status.success() {
            let _ = run("dpkg", &["--purge", "shoal"]);
        }
    }
}

#[test]
fn the_deb_installs_runs_and_removes_cleanly() {
    if let Some(why) = unsuitable() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let out_dir = std::env::temp_dir().join(format!("shoal-deb-{}", std::process::id()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-deb.sh");
    let built = ok(&run(
        "bash",
        &[
            script.to_str().unwrap(),
            "--binary",
            env!("CARGO_BIN_EXE_shoal"),
            "--out",
            out_dir.to_str().unwrap(),
            "--fast",
        ],
    ));
    let deb = PathBuf::from(built.trim());
    let deb_path = deb.to_str().unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let file_name = deb.file_name().unwrap().to_str().unwrap();
    assert!(
        file_name.starts_with(&format!("shoal_{version}_")) && file_name.ends_with(".deb"),
        "{file_name}"
    );

    let contents = ok(&run("dpkg-deb", &["--contents", deb_path]));
    for file in [
        "./usr/bin/shoal",
        "./usr/lib/systemd/system/shoal.service",
        "./etc/shoal/shoal.yaml",
    ] {
        assert!(
            contents.contains(file),
            "{file} not in the package:\n{contents}"
        );
    }
    let conffiles = ok(&run("dpkg-deb", &["--info", deb_path, "conffiles"]));
    assert_eq!(conffiles.trim(), "/etc/shoal/shoal.yaml");

    let _purge = Purge;
    ok(&run("dpkg", &["-i", deb_path]));
    assert!(installed());
    let said = ok(&run("/usr/bin/shoal", &["--version"]));
    assert_eq!(said.trim(), format!("shoal {version}"));
    if let Ok(out) = Command::new("systemd-analyze")
        .args(["verify", "/usr/lib/systemd/system/shoal.service"])
        .output()
    {
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "the installed unit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Remove keeps the (conf)file an admin may have edited; purge drops it.
    ok(&run("dpkg", &["-r", "shoal"]));
    assert!(!Path::new("/usr/bin/shoal").exists());
    assert!(!Path::new("/usr/lib/systemd/system/shoal.service").exists());
    assert!(Path::new("/etc/shoal/shoal.yaml").exists());
    ok(&run("dpkg", &["-P", "shoal"]));
    assert!(!Path::new("/etc/shoal").exists());
    assert!(!run("dpkg-query", &["-W", "shoal"]).status.success());
    let _ = std::fs::remove_dir_all(&out_dir);
}
