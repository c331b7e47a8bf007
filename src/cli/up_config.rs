//! `shoal up --config FILE`: every `up` flag from a YAML or TOML file, so a
//! machine's settings survive reboots without a long command line.
//!
//! A key is a flag's name without the dashes (`listen`, `data-dir`,
//! `join`, `label`, `start-alone`, ...). Values are what the flag takes;
//! repeatable flags take a list (`join: [a, b]`), `label` also a mapping
//! (`label: {zone: a}`); switches take `true`/`false`. A flag given on the
//! command line (or through its environment variable) overrides the file's
//! key; for a repeatable flag the file's whole list is replaced. Unknown
//! keys are errors with their line and column and the list of valid keys.
//!
//! The file is turned into the flags it stands for and parsed by the same
//! clap definitions as the command line, so a key means exactly its flag.

use std::ffi::OsString;
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::Value;

use super::up::UpArgs;

/// `up`'s flags alone, to parse a file's flags and the command line's.
#[derive(Debug, Parser)]
#[command(name = "shoal up", no_binary_name = true)]
struct UpOnly {
    #[command(flatten)]
    args: UpArgs,
}

/// Where a key stands in the file (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// One top-level `key: value` of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub at: Position,
    pub value: Value,
}

/// Reads `path` (YAML for `.yaml`/`.yml`, TOML for `.toml`) and merges it
/// under the command line's `up` arguments (`argv` after `up`).
pub fn load(path: &Path, argv: &[OsString]) -> anyhow::Result<UpArgs> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let entries = parse(path, &text)?;
    merge(path, &entries, argv)
}

/// The file's top-level entries, in file order.
pub fn parse(path: &Path, text: &str) -> anyhow::Result<Vec<Entry>> {
    let shown = path.display();
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => parse_yaml(text).map_err(|e| anyhow::anyhow!("{shown}: {e}")),
        Some("toml") => parse_toml(text).map_err(|e| anyhow::anyhow!("{shown}: {e}")),
        _ => bail!(
            "{shown}: a config file must end in .yaml, .yml or .toml (that tells how to read it)"
        ),
    }
}

/// `file`'s flags under `argv`'s: a flag given in `argv` (or its
/// environment variable) wins over the file's key.
pub fn merge(file: &Path, entries: &[Entry], argv: &[OsString]) -> anyhow::Result<UpArgs> {
    let command = UpOnly::command();
    let given = command
        .clone()
        .try_get_matches_from(argv)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut from_file: Vec<OsString> = Vec::new();
    for entry in entries {
        let at = format!(
            "{} line {}, column {}",
            file.display(),
            entry.at.line,
            entry.at.column
        );
        let Some(arg) = command
            .get_arguments()
            .find(|a| a.get_long() == Some(entry.key.as_str()) && entry.key != "config")
        else {
            bail!(
                "{at}: unknown key `{}`; valid keys: {}",
                entry.key,
                valid_keys(&command).join(", ")
            );
        };
        let overridden = matches!(
            given.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        let flags = flags_for(arg, &entry.value).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        // Each key checked alone, so a bad value is reported at its line.
        command
            .clone()
            .try_get_matches_from(&flags)
            .map_err(|e| anyhow::anyhow!("{at}: {}", first_line(&e.to_string())))?;
        if !overridden {
            from_file.extend(flags);
        }
    }
    from_file.extend(argv.iter().cloned());
    let matches = command
        .try_get_matches_from(from_file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    Ok(UpOnly::from_arg_matches(&matches)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .args)
}

/// The flags a key's value stands for.
fn flags_for(arg: &clap::Arg, value: &Value) -> Result<Vec<OsString>, String> {
    let long = arg.get_long().unwrap_or_default();
    let flag = || OsString::from(format!("--{long}"));
    let repeatable = matches!(arg.get_action(), ArgAction::Append);
    match (arg.get_action(), value) {
        (_, Value::Null) => Ok(Vec::new()),
        (ArgAction::SetTrue, Value::Bool(on)) => Ok(if *on { vec![flag()] } else { Vec::new() }),
        (ArgAction::SetTrue, other) => Err(format!(
            "`{long}` is a switch: write `{long}: true` or `{long}: false`, not {}",
            other
        )),
        (_, Value::Array(items)) if repeatable => items
            .iter()
            .map(|item| scalar(long, item).map(|v| [flag(), v.into()]))
            .collect::<Result<Vec<_>, _>>()
            .map(|pairs| pairs.into_iter().flatten().collect()),
        (_, Value::Object(map)) if long == "label" => Ok(map
            .iter()
            .flat_map(|(k, v)| {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                [flag(), format!("{k}={v}").into()]
            })
            .collect()),
        (_, Value::Array(_)) => Err(format!("`{long}` takes one value, not a list")),
        (_, other) => scalar(long, other).map(|v| vec![flag(), v.into()]),
    }
}

fn scalar(long: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("`{long}` takes a string or a number, not {value}")),
    }
}

fn valid_keys(command: &clap::Command) -> Vec<String> {
    command
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long())
        .filter(|long| *long != "config")
        .map(str::to_owned)
        .collect()
}

fn first_line(text: &str) -> &str {
    text.lines()
        .next()
        .unwrap_or(text)
        .trim_start_matches("error: ")
}

fn parse_yaml(text: &str) -> Result<Vec<Entry>, String> {
    let options = serde_saphyr::options! { with_snippet: false, strict_booleans: true };
    let entries: Entries<serde_saphyr::Spanned<String>> =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!("line {}, column {}: ", l.line(), l.column()))
                .unwrap_or_default();
            let rendered = e.render_with_options(serde_saphyr::render_options! {
                snippets: serde_saphyr::SnippetMode::Off,
            });
            format!(
                "{at}invalid YAML: {} (a config file is one mapping of `up` flags to values, like `listen: 0.0.0.0:7946`)",
                rendered.trim()
            )
        })?;
    Ok(entries
        .0
        .into_iter()
        .map(|(key, value)| Entry {
            at: Position {
                line: usize::try_from(key.referenced.line()).unwrap_or(0),
                column: usize::try_from(key.referenced.column()).unwrap_or(0),
            },
            key: key.value,
            value,
        })
        .collect())
}

fn parse_toml(text: &str) -> Result<Vec<Entry>, String> {
    let entries: Entries<toml::Spanned<String>> = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|span| position(text, span.start))
            .map(|p| format!("line {}, column {}: ", p.line, p.column))
            .unwrap_or_default();
        format!("{at}invalid TOML: {}", e.message())
    })?;
    Ok(entries
        .0
        .into_iter()
        .map(|(key, value)| Entry {
            at: position(text, key.span().start),
            key: key.into_inner(),
            value,
        })
        .collect())
}

/// Line and column (1-based, in characters) of a byte offset.
fn position(text: &str, offset: usize) -> Position {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// A top-level mapping whose keys keep their place in the file (`K` is the
/// format's spanned string) and whose values are plain data.
struct Entries<K>(Vec<(K, Value)>);

impl<'de, K: Deserialize<'de>> Deserialize<'de> for Entries<K> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<K>(PhantomData<K>);
        impl<'de, K: Deserialize<'de>> Visitor<'de> for EntriesVisitor<K> {
            type Value = Entries<K>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of `up` flags to values (`listen: 0.0.0.0:7946`)")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Entries<K>, E> {
                Ok(Entries(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<K>, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<K>()? {
                    entries.push((key, map.next_value::<Value>()?));
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::path::PathBuf;

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn merged(file: &str, text: &str, args: &[&str]) -> anyhow::Result<UpArgs> {
        let path = PathBuf::from(file);
        let entries = parse(&path, text)?;
        merge(&path, &entries, &argv(args))
    }

    const YAML: &str = "\
listen: 10.0.0.5:7000
data-dir: /var/lib/shoal
join: [10.0.0.6:7946, 10.0.0.7:7946]
label: {disk: ssd, zone: a}
memory: 4Gi
cpu: 2
start-alone: true
join-timeout: 2m
";

    #[test]
    fn every_kind_of_flag_comes_from_yaml() {
        let args = merged("shoal.yaml", YAML, &[]).unwrap();
        assert_eq!(args.listen, Some("10.0.0.5:7000".parse().unwrap()));
        assert_eq!(args.data_dir, PathBuf::from("/var/lib/shoal"));
        let joins: Vec<SocketAddr> = ["10.0.0.6:7946", "10.0.0.7:7946"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(args.join, joins);
        assert_eq!(
            args.labels,
            [("disk".into(), "ssd".into()), ("zone".into(), "a".into())]
        );
        assert_eq!(args.memory.as_deref(), Some("4Gi"));
        assert_eq!(args.cpu.as_deref(), Some("2"));
        assert!(args.start_alone);
        assert_eq!(args.join_timeout, std::time::Duration::from_secs(120));
    }

    #[test]
    fn toml_reads_the_same_as_yaml() {
        let toml = r#"
listen = "10.0.0.5:7000"
data-dir = "/var/lib/shoal"
join = ["10.0.0.6:7946", "10.0.0.7:7946"]
label = { disk = "ssd", zone = "a" }
memory = "4Gi"
cpu = 2
start-alone = true
join-timeout = "2m"
"#;
        let from_toml = merged("shoal.toml", toml, &[]).unwrap();
        let from_yaml = merged("shoal.yml", YAML, &[]).unwrap();
        assert_eq!(format!("{from_toml:?}"), format!("{from_yaml:?}"));
    }

    #[test]
    fn flags_override_the_file() {
        let args = merged(
            "shoal.yaml",
            YAML,
            &["--listen", "10.9.9.9:7946", "--join", "10.0.0.8:7946"],
        )
        .unwrap();
        assert_eq!(args.listen, Some("10.9.9.9:7946".parse().unwrap()));
        // A repeatable flag replaces the file's whole list.
        assert_eq!(
            args.join,
            vec!["10.0.0.8:7946".parse::<SocketAddr>().unwrap()]
        );
        // What the command line does not name still comes from the file.
        assert_eq!(args.memory.as_deref(), Some("4Gi"));
        assert!(args.start_alone);
    }

    #[test]
    fn a_file_equals_the_same_flags() {
        let from_file = merged("shoal.yaml", YAML, &[]).unwrap();
        let from_flags = UpOnly::try_parse_from([
            "--listen",
            "10.0.0.5:7000",
            "--data-dir",
            "/var/lib/shoal",
            "--join",
            "10.0.0.6:7946",
            "--join",
            "10.0.0.7:7946",
            "--label",
            "disk=ssd",
            "--label",
            "zone=a",
            "--memory",
            "4Gi",
            "--cpu",
            "2",
            "--start-alone",
            "--join-timeout",
            "2m",
        ])
        .unwrap()
        .args;
        assert_eq!(format!("{from_file:?}"), format!("{from_flags:?}"));
    }

    #[test]
    fn an_unknown_key_names_its_line_column_and_the_valid_keys() {
        let err = merged(
            "shoal.yaml",
            "listen: 10.0.0.5:7946\n  \nadvertize: 10.0.0.5\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("shoal.yaml line 3, column 1"), "{err}");
        assert!(err.contains("unknown key `advertize`"), "{err}");
        assert!(err.contains("advertise, api, data-dir"), "{err}");
        assert!(!err.contains("config"), "{err}");
        let err = merged(
            "shoal.toml",
            "listen = \"10.0.0.5:7946\"\n data_dir = \"/x\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("shoal.toml line 2, column 2: unknown key `data_dir`"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_value_is_reported_at_its_line() {
        let err = merged("shoal.yaml", "memory: 4Gi\nlisten: nowhere\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("shoal.yaml line 2, column 1"), "{err}");
        assert!(err.contains("nowhere"), "{err}");
        let err = merged("shoal.yaml", "start-alone: yes\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a switch"), "{err}");
        let err = merged("shoal.yaml", "listen: [a, b]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("takes one value"), "{err}");
    }

    #[test]
    fn syntax_errors_and_unknown_formats_say_where_and_what() {
        let err = merged("shoal.yaml", "listen: [1\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("shoal.yaml: line"), "{err}");
        assert!(err.contains("invalid YAML"), "{err}");
        let err = merged("shoal.toml", "listen = \n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("shoal.toml: line 1"), "{err}");
        let err = merged("shoal.conf", "", &[]).unwrap_err().to_string();
        assert!(err.contains(".yaml, .yml or .toml"), "{err}");
        let err = merged("shoal.yaml", "- a\n- b\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("mapping of `up` flags"), "{err}");
    }

    #[test]
    fn an_empty_file_changes_nothing() {
        let args = merged("shoal.yaml", "", &["--data-dir", "/d"]).unwrap();
        assert_eq!(args.data_dir, PathBuf::from("/d"));
        assert_eq!(args.listen, None);
    }

    #[test]
    fn the_load_balancer_limits_come_from_the_file_and_default_when_absent() {
        let text =
            "lb-max-connections-per-client: 32\nlb-connection-rate: 50\nlb-connection-burst: 10\n";
        let args = merged("shoal.yaml", text, &["--lb-connection-burst", "20"]).unwrap();
        assert_eq!(args.lb_max_connections_per_client, 32);
        assert_eq!(args.lb_connection_rate, 50);
        assert_eq!(args.lb_connection_burst, 20);
        // Off unless asked for (see `LimitSettings::LB_DEFAULT`).
        let args = merged("shoal.yaml", "", &[]).unwrap();
        assert_eq!(args.lb_max_connections_per_client, 0);
        assert_eq!(args.lb_connection_rate, 0);
        assert_eq!(args.lb_connection_burst, 400);
        let err = merged("shoal.yaml", "lb-connection-rate: -1\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
