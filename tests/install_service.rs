//! `shoal install-service` / `uninstall-service` into a scratch root: the
//! unit it writes passes `systemd-analyze verify`, is enabled for boot
//! (`systemctl --root`, no running systemd needed) and goes away again;
//! the config stays. Also checks the repository's unit itself.
#![cfg(feature = "shell")]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn shoal_bin() -> &'static str {
    env!("CARGO_BIN_EXE_shoal")
}

fn shoal(args: &[&str]) -> Output {
    Command::new(shoal_bin())
        .args(args)
        .output()
        .expect("run shoal")
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

/// `systemd-analyze verify UNIT`; `None` (with the reason printed) only
/// where the tool is not installed.
fn verify(unit: &Path) -> Option<Output> {
    match Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
    {
        Ok(out) => Some(out),
        Err(e) => {
            eprintln!(
                "SKIPPED: systemd-analyze cannot run here ({e}); .ci/run installs Debian's systemd"
            );
            None
        }
    }
}

fn scratch(name: &str) -> tempdir::Dir {
    tempdir::Dir::new(name)
}

/// A temporary directory removed on drop, also when the test fails.
mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(name: &str) -> Dir {
            let path = std::env::temp_dir().join(format!("shoal-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn installed_unit_verifies_is_enabled_and_uninstalls() {
    let dir = scratch("install-service");
    let root = dir.path().to_str().unwrap();
    let unit = dir.path().join("etc/systemd/system/shoal.service");
    let config = dir.path().join("etc/shoal/shoal.yaml");
    let wanted = dir
        .path()
        .join("etc/systemd/system/multi-user.target.wants/shoal.service");

    let dry = ok(&shoal(&["install-service", "--root", root, "--dry-run"]));
    assert!(
        dry.contains("would write") && dry.contains("would run: systemctl"),
        "{dry}"
    );
    assert!(!unit.exists() && !config.exists(), "--dry-run wrote files");

    let said = ok(&shoal(&[
        "install-service",
        "--root",
        root,
        "--join",
        "10.0.0.4:7946",
        "--name",
        "web-1",
    ]));
    assert!(said.contains("installed"), "{said}");
    let text = std::fs::read_to_string(&unit).unwrap();
    let exec = format!(
        "ExecStart={} up --config /etc/shoal/shoal.yaml",
        shoal_bin()
    );
    assert!(text.contains(&exec), "{text}");
    let settings = std::fs::read_to_string(&config).unwrap();
    assert!(settings.contains("data-dir: /var/lib/shoal"), "{settings}");
    assert!(settings.contains("join: [\"10.0.0.4:7946\"]"), "{settings}");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the config may hold the join token");
    assert_eq!(
        std::fs::read_link(&wanted).unwrap(),
        Path::new("/etc/systemd/system/shoal.service")
    );

    if let Some(out) = verify(&unit) {
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The config exists now: a second install keeps it.
    let again = ok(&shoal(&["install-service", "--root", root]));
    assert!(again.contains("kept"), "{again}");
    assert!(std::fs::read_to_string(&config).unwrap().contains("web-1"));

    let gone = ok(&shoal(&["uninstall-service", "--root", root]));
    assert!(gone.contains("removed"), "{gone}");
    assert!(!unit.exists() && !wanted.exists());
    assert!(config.exists(), "uninstall keeps the settings");
    let twice = ok(&shoal(&["uninstall-service", "--root", root]));
    assert!(twice.contains("nothing to uninstall"), "{twice}");
}

#[test]
fn the_repository_unit_verifies_once_its_binary_exists() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/shoal.service");
    let Some(out) = verify(&shipped) else { return };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if Path::new("/usr/bin/shoal").exists() {
        assert!(out.status.success() && stderr.is_empty(), "{stderr}");
    } else {
        // The only complaint allowed: the binary the .deb installs is not there.
        let problems: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            problems,
            ["shoal.service: Command /usr/bin/shoal is not executable: No such file or directory"],
            "{stderr}"
        );
    }
}
