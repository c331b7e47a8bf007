//! What a simulated machine leaves on the real host, found by name and
//! removed: processes (`/proc`), mounts (`/proc/mounts`), cgroups, Linux
//! bridges and containerd shim sockets. Every function here is handed the
//! name or path of something the tests created and touches nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One live (not zombie) process as `/proc` shows it.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// `/proc/PID/comm`: the executable's name, cut at 15 bytes.
    pub comm: String,
    /// Arguments joined by spaces.
    pub cmdline: String,
}

/// Every live process of the host, zombies left out (they hold nothing).
pub fn processes() -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let (head, tail) = stat.rsplit_once(')')?;
            let mut fields = tail.split_whitespace();
            if fields.next()? == "Z" {
                return None;
            }
            let ppid = fields.next()?.parse().ok()?;
            let comm = head.split_once('(')?.1.to_owned();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            Some(Proc {
                pid,
                ppid,
                comm,
                cmdline,
            })
        })
        .collect()
}

/// `roots` and every process below them in `procs`.
pub fn with_descendants(procs: &[Proc], roots: impl IntoIterator<Item = u32>) -> BTreeSet<u32> {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut out = BTreeSet::new();
    let mut stack: Vec<u32> = roots.into_iter().collect();
    while let Some(pid) = stack.pop() {
        if out.insert(pid) {
            stack.extend(children.get(&pid).into_iter().flatten());
        }
    }
    out
}

pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// SIGKILLs `pids` (gone ones are ignored).
pub fn kill9(pids: &BTreeSet<u32>) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-KILL")
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Paths of the unix sockets process `pid` holds open (a containerd shim
/// listens on `/run/containerd/s/<hash>`, which outlives a SIGKILL).
pub fn unix_socket_paths(pid: u32) -> Vec<PathBuf> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let t = target.to_str()?;
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (inode, path) = (cols.get(6)?, cols.get(7)?);
            inodes.contains(*inode).then(|| PathBuf::from(path))
        })
        .collect()
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let prefix = dir.to_string_lossy().into_owned();
    let table = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut out: Vec<PathBuf> = table
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        // /proc/mounts escapes spaces and tabs as \040 and \011.
        .map(|m| m.replace("\\040", " ").replace("\\011", "\t"))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .map(PathBuf::from)
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    out.dedup();
    out
}

/// Unmounts everything at or below `dir` (lazily when busy), stacked mounts included.
pub fn unmount_all_under(dir: &Path) {
    for _ in 0..10 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        for m in mounts {
            if !quiet("umount", &[m.as_os_str()]) {
                quiet("umount", &[std::ffi::OsStr::new("-l"), m.as_os_str()]);
            }
        }
    }
}

/// Directories of cgroup `name` (a top-level group), one per v1 hierarchy,
/// or the one of the unified (v2) hierarchy.
pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join(name))
        .collect();
    dirs.push(root.join(name));
    dirs.retain(|d| d.is_dir());
    dirs
}

/// Names of the top-level cgroups of every hierarchy.
pub fn top_cgroups() -> BTreeSet<String> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = subdirs(root);
    for hierarchy in subdirs(root) {
        dirs.extend(subdirs(&hierarchy));
    }
    dirs.iter()
        .filter_map(|d| d.file_name()?.to_str().map(str::to_owned))
        .collect()
}

/// Processes in cgroup `name` or below it, in any hierarchy.
pub fn cgroup_pids(name: &str) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for dir in cgroup_dirs(name) {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            out.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
            stack.extend(subdirs(&d));
        }
    }
    out
}

/// Removes the (empty) cgroups below `name`, and `name` itself unless `keep_top`.
pub fn remove_cgroups(name: &str, keep_top: bool) {
    for dir in cgroup_dirs(name) {
        remove_cgroup_tree(&dir, keep_top);
    }
}

fn remove_cgroup_tree(dir: &Path, keep_top: bool) {
    for sub in subdirs(dir) {
        remove_cgroup_tree(&sub, false);
    }
    if !keep_top {
        // A cgroup is removed with rmdir; its control files go with it.
        let _ = std::fs::remove_dir(dir);
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// The alias (`ip link set dev NAME alias ...`) of interface `name`, if it exists.
pub fn link_alias(name: &str) -> Option<String> {
    let alias = std::fs::read_to_string(format!("/sys/class/net/{name}/ifalias")).ok()?;
    Some(alias.trim().to_owned())
}

/// Creates bridge `name` labelled `alias`, with address `cidr`, up.
pub fn create_bridge(name: &str, alias: &str, cidr: &str) {
    let steps: [&[&str]; 4] = [
        &["link", "add", name, "type", "bridge"],
        &["link", "set", "dev", name, "alias", alias],
        &["addr", "add", cidr, "dev", name],
        &["link", "set", "dev", name, "up"],
    ];
    for args in steps {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(
            out.status.success(),
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Deletes interface `name` if its alias is `alias` (never one the tests did not make).
pub fn delete_link_if_alias(name: &str, alias: &str) {
    if link_alias(name).as_deref() == Some(alias) {
        quiet("ip", &["link", "del", name]);
    }
}

/// Routes of this host that overlap `cidr` (the default route left out).
pub fn overlapping_routes(cidr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for how in ["match", "root"] {
        let listed = Command::new("ip")
            .args(["-4", "route", "show", how, cidr])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.extend(
            listed
                .lines()
                .filter(|l| !l.starts_with("default"))
                .map(str::to_owned),
        );
    }
    out.sort();
    out.dedup();
    out
}

/// Runs `program args`, output discarded; whether it succeeded.
pub fn quiet<S: AsRef<std::ffi::OsStr>>(program: &str, args: &[S]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
