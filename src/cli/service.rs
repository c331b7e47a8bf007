//! `shoal install-service` / `uninstall-service`: start the peer at boot
//! with systemd, with its settings in /etc/shoal/shoal.yaml.
//!
//! The unit and the default config are the repository's
//! (`packaging/shoal.service`, `packaging/shoal.yaml`, also what the .deb
//! ships); the unit's ExecStart names the binary that installs it. Each
//! command is first a list of [`Step`]s (pure, tested), then carried out,
//! or only printed with `--dry-run`. `--root DIR` installs into another
//! root (an image being built, a test): systemctl then only links the unit
//! (`systemctl --root`), which needs no running systemd.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::Args;

use crate::shell::addresses::AdvertiseAddr;

/// The unit, as the repository and the .deb ship it.
pub const UNIT: &str = include_str!("../../packaging/shoal.service");
/// The default /etc/shoal/shoal.yaml.
pub const DEFAULT_CONFIG: &str = include_str!("../../packaging/shoal.yaml");
/// Where the unit's ExecStart finds the binary in the shipped unit.
const SHIPPED_BINARY: &str = "/usr/bin/shoal";
const UNIT_NAME: &str = "shoal.service";
const UNIT_DIR: &str = "etc/systemd/system";
const CONFIG_PATH: &str = "etc/shoal/shoal.yaml";

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Print what would be written and run; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Install under this directory instead of / (no daemon-reload; the
    /// unit is enabled with `systemctl --root`).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Binary the unit runs [default: this one].
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Start the peer now too (`systemctl enable --now`).
    #[arg(long)]
    pub now: bool,
    /// Replace an existing /etc/shoal/shoal.yaml (it is kept otherwise).
    #[arg(long)]
    pub force: bool,
    /// Written into the config: a member of the cluster to join; repeatable.
    #[arg(long)]
    pub join: Vec<SocketAddr>,
    /// Written into the config (readable by root only): the cluster's join token.
    #[arg(
        long,
        env = "SHOAL_JOIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub join_token: Option<String>,
    /// Written into the config: the address other machines reach this one on.
    #[arg(long, value_name = "IP[:PORT]")]
    pub advertise: Option<AdvertiseAddr>,
    /// Written into the config: the node's name.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Print what would be removed and run; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Uninstall from under this directory instead of /.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

/// One thing an install or uninstall does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Write {
        path: PathBuf,
        contents: String,
        mode: u32,
    },
    /// A file left as it is, and why.
    Keep {
        path: PathBuf,
        why: String,
    },
    Remove {
        path: PathBuf,
    },
    Run {
        argv: Vec<String>,
    },
}

/// What the machine looks like, as far as a plan needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub config_exists: bool,
    pub unit_exists: bool,
}

/// The unit with ExecStart running `binary`.
pub fn unit_for(binary: &Path) -> anyhow::Result<String> {
    let shown = binary.display().to_string();
    if !binary.is_absolute() || shown.chars().any(char::is_whitespace) {
        bail!("--binary {shown:?} must be an absolute path without spaces (systemd runs it)");
    }
    let from = format!("ExecStart={SHIPPED_BINARY} ");
    Ok(UNIT.replace(&from, &format!("ExecStart={shown} ")))
}

/// The default config plus the settings given to `install-service`.
pub fn config_for(args: &InstallArgs) -> String {
    let quoted = |s: &str| serde_json::Value::from(s).to_string();
    let mut lines = Vec::new();
    if !args.join.is_empty() {
        let seeds: Vec<String> = args.join.iter().map(|a| quoted(&a.to_string())).collect();
        lines.push(format!("join: [{}]", seeds.join(", ")));
    }
    if let Some(token) = &args.join_token {
        lines.push(format!("join-token: {}", quoted(token)));
    }
    if let Some(advertise) = &args.advertise {
        lines.push(format!("advertise: {}", quoted(&advertise.to_string())));
    }
    if let Some(name) = &args.name {
        lines.push(format!("name: {}", quoted(name)));
    }
    if lines.is_empty() {
        return DEFAULT_CONFIG.to_owned();
    }
    format!(
        "{DEFAULT_CONFIG}\n# Given to `shoal install-service`:\n{}\n",
        lines.join("\n")
    )
}

fn gives_settings(args: &InstallArgs) -> bool {
    !args.join.is_empty()
        || args.join_token.is_some()
        || args.advertise.is_some()
        || args.name.is_some()
}

fn systemctl(root: &Path, args: &[&str]) -> Step {
    let mut argv = vec!["systemctl".to_owned()];
    if root != Path::new("/") {
        argv.push(format!("--root={}", root.display()));
    }
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    Step::Run { argv }
}

/// What `install-service` does on a machine in the state `found`.
pub fn install_plan(args: &InstallArgs, binary: &Path, found: &Found) -> anyhow::Result<Vec<Step>> {
    let root = &args.root;
    let config = root.join(CONFIG_PATH);
    let mut steps = vec![Step::Write {
        path: root.join(UNIT_DIR).join(UNIT_NAME),
        contents: unit_for(binary)?,
        mode: 0o644,
    }];
    if found.config_exists && !args.force {
        if gives_settings(args) {
            bail!(
                "{} exists and install-service was given settings for it; edit the file, or pass --force to replace it",
                config.display()
            );
        }
        steps.push(Step::Keep {
            path: config,
            why: "it exists (--force replaces it)".into(),
        });
    } else {
        // Owner-only: it may hold the join token.
        steps.push(Step::Write {
            path: config,
            contents: config_for(args),
            mode: 0o600,
        });
    }
    let live = root == Path::new("/");
    if live {
        steps.push(systemctl(root, &["daemon-reload"]));
    }
    let enable: &[&str] = if args.now && live {
        &["enable", "--now", UNIT_NAME]
    } else {
        &["enable", UNIT_NAME]
    };
    steps.push(systemctl(root, enable));
    Ok(steps)
}

/// What `uninstall-service` does; the config and the data dir stay.
pub fn uninstall_plan(args: &UninstallArgs, found: &Found) -> Vec<Step> {
    let root = &args.root;
    if !found.unit_exists {
        return Vec::new();
    }
    let live = root == Path::new("/");
    let mut steps = vec![
        systemctl(
            root,
            if live {
                &["disable", "--now", UNIT_NAME]
            } else {
                &["disable", UNIT_NAME]
            },
        ),
        Step::Remove {
            path: root.join(UNIT_DIR).join(UNIT_NAME),
        },
    ];
    if live {
        steps.push(systemctl(root, &["daemon-reload"]));
    }
    steps
}

fn found(root: &Path) -> Found {
    Found {
        config_exists: root.join(CONFIG_PATH).exists(),
        unit_exists: root.join(UNIT_DIR).join(UNIT_NAME).exists(),
    }
}

pub fn install(args: &InstallArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    let binary = match &args.binary {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("cannot tell where this shoal binary is; pass --binary")?,
    };
    let steps = install_plan(args, &binary, &found(&args.root))?;
    carry_out(&steps, args.dry_run, out)?;
    if !args.dry_run {
        writeln!(
            out,
            "installed: the peer starts at boot{}; settings in {}, logs with `journalctl -u shoal`",
            if args.now && args.root == Path::new("/") {
                " and runs now"
            } else {
                ""
            },
            Path::new("/").join(CONFIG_PATH).display()
        )?;
    }
    Ok(true)
}

pub fn uninstall(args: &UninstallArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    let steps = uninstall_plan(args, &found(&args.root));
    if steps.is_empty() {
        writeln!(
            out,
            "no {UNIT_NAME} under {}: nothing to uninstall",
            args.root.join(UNIT_DIR).display()
        )?;
        return Ok(true);
    }
    carry_out(&steps, args.dry_run, out)?;
    writeln!(
        out,
        "kept {} and the data dir (the node's identity and state); delete them to forget this node",
        args.root.join(CONFIG_PATH).display()
    )?;
    Ok(true)
}

fn carry_out(steps: &[Step], dry_run: bool, out: &mut impl Write) -> anyhow::Result<()> {
    for step in steps {
        match step {
            Step::Write {
                path,
                contents,
                mode,
            } if dry_run => {
                writeln!(out, "would write {} (mode {mode:o}):", path.display())?;
                for line in contents.lines() {
                    writeln!(out, "    {line}")?;
                }
            }
            Step::Write {
                path,
                contents,
                mode,
            } => {
                write_file(path, contents, *mode)?;
                writeln!(out, "wrote {}", path.display())?;
            }
            Step::Keep { path, why } => writeln!(out, "kept {}: {why}", path.display())?,
            Step::Remove { path } if dry_run => writeln!(out, "would remove {}", path.display())?,
            Step::Remove { path } => {
                std::fs::remove_file(path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
                writeln!(out, "removed {}", path.display())?;
            }
            Step::Run { argv } if dry_run => writeln!(out, "would run: {}", argv.join(" "))?,
            Step::Run { argv } => {
                writeln!(out, "running: {}", argv.join(" "))?;
                out.flush()?;
                let status = Command::new(&argv[0])
                    .args(&argv[1..])
                    .status()
                    .with_context(|| format!("cannot run {}: is systemd installed?", argv[0]))?;
                if !status.success() {
                    bail!(
                        "`{}` failed ({status}); is systemd running here? (to prepare another root, use --root DIR)",
                        argv.join(" ")
                    );
                }
            }
        }
    }
    Ok(())
}

fn write_file(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // An existing file keeps its old mode through open(); set ours.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    #[command(no_binary_name = true)]
    struct Install {
        #[command(flatten)]
        args: InstallArgs,
    }

    fn args(flags: &[&str]) -> InstallArgs {
        Install::try_parse_from(flags).unwrap().args
    }

    const NOTHING: Found = Found {
        config_exists: false,
        unit_exists: false,
    };

    fn written(steps: &[Step], suffix: &str) -> Option<(String, u32)> {
        steps.iter().find_map(|s| match s {
            Step::Write {
                path,
                contents,
                mode,
            } if path.ends_with(suffix) => Some((contents.clone(), *mode)),
            _ => None,
        })
    }

    fn runs(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Run { argv } => Some(argv.join(" ")),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_shipped_unit_has_what_a_boot_service_needs() {
        for line in [
            "ExecStart=/usr/bin/shoal up --config /etc/shoal/shoal.yaml",
            "Restart=always",
            "After=network-online.target docker.service",
            "Wants=network-online.target docker.service",
            "TimeoutStopSec=30s",
            "LimitNOFILE=65536",
            "StateDirectory=shoal",
            "WantedBy=multi-user.target",
        ] {
            assert!(UNIT.lines().any(|l| l == line), "{line} missing");
        }
    }

    #[test]
    fn install_writes_the_unit_for_this_binary_and_the_config_then_enables() {
        let steps = install_plan(&args(&[]), Path::new("/opt/shoal/bin/shoal"), &NOTHING).unwrap();
        let (unit, mode) = written(&steps, "etc/systemd/system/shoal.service").unwrap();
        assert_eq!(mode, 0o644);
        assert!(unit.contains("ExecStart=/opt/shoal/bin/shoal up --config /etc/shoal/shoal.yaml"));
        // Only the binary differs from the shipped unit.
        assert_eq!(unit.replace("/opt/shoal/bin/shoal", "/usr/bin/shoal"), UNIT);
        let (config, mode) = written(&steps, "etc/shoal/shoal.yaml").unwrap();
        assert_eq!((config.as_str(), mode), (DEFAULT_CONFIG, 0o600));
        assert_eq!(
            runs(&steps),
            ["systemctl daemon-reload", "systemctl enable shoal.service"]
        );
    }

    #[test]
    fn another_root_is_enabled_offline_without_daemon_reload() {
        let steps = install_plan(
            &args(&["--root", "/img", "--now"]),
            Path::new("/usr/bin/shoal"),
            &NOTHING,
        )
        .unwrap();
        assert!(written(&steps, "/img/etc/systemd/system/shoal.service").is_some());
        assert_eq!(runs(&steps), ["systemctl --root=/img enable shoal.service"]);
    }

    #[test]
    fn settings_given_go_into_the_config_and_read_back_as_flags() {
        let a = args(&[
            "--join",
            "10.0.0.4:7946",
            "--join-token",
            "shoal1.abc",
            "--advertise",
            "10.0.0.9",
            "--name",
            "web 1",
        ]);
        let steps = install_plan(&a, Path::new("/usr/bin/shoal"), &NOTHING).unwrap();
        let (config, _) = written(&steps, "shoal.yaml").unwrap();
        let path = Path::new("shoal.yaml");
        let entries = super::super::up_config::parse(path, &config).unwrap();
        let up = super::super::up_config::merge(path, &entries, &[]).unwrap();
        assert_eq!(
            up.join,
            vec!["10.0.0.4:7946".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(up.join_token.as_deref(), Some("shoal1.abc"));
        assert_eq!(
            up.advertise.map(|a| a.to_string()).as_deref(),
            Some("10.0.0.9")
        );
        assert_eq!(up.name.as_deref(), Some("web 1"));
        assert_eq!(up.data_dir, PathBuf::from("/var/lib/shoal"));
    }

    #[test]
    fn the_default_config_reads_as_a_data_dir_under_var_lib() {
        let path = Path::new("shoal.yaml");
        let entries = super::super::up_config::parse(path, DEFAULT_CONFIG).unwrap();
        let up = super::super::up_config::merge(path, &entries, &[]).unwrap();
        assert_eq!(up.data_dir, PathBuf::from("/var/lib/shoal"));
        assert!(up.join.is_empty() && up.listen.is_none() && up.advertise.is_none());
    }

    #[test]
    fn an_existing_config_is_kept_unless_forced() {
        let exists = Found {
            config_exists: true,
            unit_exists: true,
        };
        let steps = install_plan(&args(&[]), Path::new("/usr/bin/shoal"), &exists).unwrap();
        assert!(written(&steps, "shoal.yaml").is_none());
        assert!(steps.iter().any(|s| matches!(s, Step::Keep { .. })));
        let err = install_plan(
            &args(&["--join", "10.0.0.4:7946"]),
            Path::new("/usr/bin/shoal"),
            &exists,
        )
        .unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        let forced = args(&["--join", "10.0.0.4:7946", "--force"]);
        let steps = install_plan(&forced, Path::new("/usr/bin/shoal"), &exists).unwrap();
        assert!(
            written(&steps, "shoal.yaml")
                .unwrap()
                .0
                .contains("10.0.0.4:7946")
        );
    }

    #[test]
    fn a_relative_binary_is_refused() {
        let err = install_plan(&args(&[]), Path::new("target/shoal"), &NOTHING).unwrap_err();
        assert!(err.to_string().contains("absolute path"), "{err}");
    }

    #[test]
    fn uninstall_stops_disables_and_removes_only_the_unit() {
        let installed = Found {
            config_exists: true,
            unit_exists: true,
        };
        let live = UninstallArgs {
            dry_run: false,
            root: "/".into(),
        };
        let steps = uninstall_plan(&live, &installed);
        assert_eq!(
            runs(&steps),
            [
                "systemctl disable --now shoal.service",
                "systemctl daemon-reload"
            ]
        );
        let removed: Vec<&Step> = steps
            .iter()
            .filter(|s| matches!(s, Step::Remove { .. }))
            .collect();
        assert_eq!(
            removed,
            [&Step::Remove {
                path: "/etc/systemd/system/shoal.service".into()
            }]
        );
        assert!(uninstall_plan(&live, &NOTHING).is_empty());
    }
}
