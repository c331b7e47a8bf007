//! How large and how deep a manifest may be, and what to say when it is not.
//!
//! The YAML parser refuses pathological input (document storms, alias bombs,
//! runaway nesting) by counting against a budget. Its own report of a breach
//! (`budget breached: Documents { documents: 1025 }`) names neither the limit
//! nor a way out, so each breach is turned into a sentence here. The limits
//! are spelled out (they are the parser's defaults) so that the sentence and
//! the parser agree by construction.

use serde_saphyr::budget::BudgetBreach;

/// The parser budgets a manifest is read under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseLimits {
    /// `---`-separated YAML documents in one input.
    pub documents: usize,
    /// Lists and mappings nested inside each other.
    pub depth: usize,
    /// Scalars, lists and mappings in the whole input.
    pub nodes: usize,
    /// Parser events (every node start and end) in the whole input.
    pub events: usize,
    /// Bytes of all scalar values together.
    pub scalar_bytes: usize,
    /// Anchors (`&name`) defined.
    pub anchors: usize,
    /// Aliases (`*name`) used.
    pub aliases: usize,
    /// Merge keys (`<<`) used.
    pub merge_keys: usize,
    /// Aliases allowed per anchor, checked once there are this many aliases:
    /// many aliases to few anchors is the shape of a "billion laughs" bomb.
    pub aliases_per_anchor: usize,
    pub ratio_checked_from: usize,
}

impl ParseLimits {
    /// What `shoal validate`, `shoal apply` and the API read manifests under.
    pub const DEFAULT: ParseLimits = ParseLimits {
        documents: 1_024,
        depth: 64,
        nodes: 250_000,
        events: 1_000_000,
        scalar_bytes: 64 * 1024 * 1024,
        anchors: 50_000,
        aliases: 50_000,
        merge_keys: 10_000,
        aliases_per_anchor: 10,
        ratio_checked_from: 100,
    };

    /// The parser's budget with these limits.
    pub(crate) fn budget(&self) -> serde_saphyr::Budget {
        let mut budget = serde_saphyr::Budget::default();
        budget.max_documents = self.documents;
        budget.max_depth = self.depth;
        budget.max_nodes = self.nodes;
        budget.max_events = self.events;
        budget.max_total_scalar_bytes = self.scalar_bytes;
        budget.max_anchors = self.anchors;
        budget.max_aliases = self.aliases;
        budget.max_merge_keys = self.merge_keys;
        budget.enforce_alias_anchor_ratio = true;
        budget.alias_anchor_ratio_multiplier = self.aliases_per_anchor;
        budget.alias_anchor_min_aliases = self.ratio_checked_from;
        budget
    }

    /// One sentence for a breach: what is too large, the limit, what to do.
    pub(crate) fn explain(&self, breach: &BudgetBreach) -> String {
        const SPLIT: &str = "split it into several files and apply each";
        match breach {
            BudgetBreach::Documents { .. } => format!(
                "the input holds more than {} YAML documents (separated by `---`), the most one manifest may hold; {SPLIT}, or group ReplicationControllers as `items` of a `kind: List`",
                thousands(self.documents)
            ),
            BudgetBreach::Depth { .. } => format!(
                "lists and mappings are nested more than {} levels deep, the most a manifest may nest (a ReplicationController needs about 10); look for runaway indentation or unclosed brackets",
                self.depth
            ),
            BudgetBreach::Nodes { .. } => format!(
                "the input holds more than {} values (scalars, lists and mappings together), the most one manifest may hold; {SPLIT}",
                thousands(self.nodes)
            ),
            BudgetBreach::Events { .. } => format!(
                "the input is too large to parse: more than {} parser events (about two per list or mapping, one per scalar); {SPLIT}",
                thousands(self.events)
            ),
            BudgetBreach::ScalarBytes { .. } => format!(
                "the text values add up to more than {}, the most one manifest may hold; {SPLIT}, and keep large data out of manifests",
                bytes(self.scalar_bytes)
            ),
            BudgetBreach::Anchors { .. } => format!(
                "the input defines more than {} anchors (`&name`), the most one manifest may define; write values out or {SPLIT}",
                thousands(self.anchors)
            ),
            BudgetBreach::Aliases { .. } => format!(
                "the input uses more than {} aliases (`*name`), the most one manifest may use; write values out or {SPLIT}",
                thousands(self.aliases)
            ),
            BudgetBreach::AliasAnchorRatio { aliases, anchors } => format!(
                "the input uses {aliases} aliases (`*name`) for {anchors} anchors (`&name`): more than {} per anchor once there are {} aliases, which is how YAML \"billion laughs\" bombs look; write the repeated values out",
                self.aliases_per_anchor, self.ratio_checked_from
            ),
            BudgetBreach::MergeKeys { .. } => format!(
                "the input uses more than {} merge keys (`<<`), the most one manifest may use; write the merged mappings out or {SPLIT}",
                thousands(self.merge_keys)
            ),
            BudgetBreach::RecordedAnchorEvents { .. }
            | BudgetBreach::RecordedAnchorBytes { .. } => {
                format!(
                    "anchored values (`&name`) are too large to repeat where they are aliased; write the repeated values out or {SPLIT}"
                )
            }
            BudgetBreach::SequenceUnbalanced => {
                "the input closes a list or mapping it never opened; it is cut short or malformed"
                    .to_owned()
            }
            other => format!("the input exceeds a YAML parser limit ({other:?}); {SPLIT}"),
        }
    }
}

/// `250000` → `250,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `67108864` → `64 MiB`; sizes that are not whole MiB or KiB in bytes.
fn bytes(n: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{} bytes", thousands(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_manifests;
    use crate::manifest::tree::parse_documents_within;

    /// Small limits, so each breach takes a few lines of input.
    const SMALL: ParseLimits = ParseLimits {
        documents: 3,
        depth: 4,
        nodes: 20,
        events: 30,
        scalar_bytes: 64,
        anchors: 2,
        aliases: 5,
        merge_keys: 1,
        aliases_per_anchor: 2,
        ratio_checked_from: 4,
    };

    fn refusal(text: &str, limits: &ParseLimits) -> String {
        let err = parse_documents_within(text, limits).expect_err("over a limit");
        assert!(err.over_limit, "{err:?}");
        assert!(!err.message.contains("budget breached"), "{}", err.message);
        err.message
    }

    fn assert_says(message: &str, parts: &[&str]) {
        for part in parts {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }
    }

    #[test]
    fn too_many_documents_names_the_limit_and_how_to_split() {
        let documents = |n: usize| vec!["a: 1\n"; n].join("---\n");
        let msg = refusal(&documents(4), &SMALL);
        assert_says(
            &msg,
            &["more than 3 YAML documents", "split it", "kind: List"],
        );
        assert_eq!(
            parse_documents_within(&documents(3), &SMALL).unwrap().len(),
            3
        );
    }

    #[test]
    fn a_manifest_of_1025_documents_says_1024_in_words() {
        let one = "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: a}\n---\n";
        let err = parse_manifests(&one.repeat(1_025)).unwrap_err();
        let text = err.to_string();
        assert_says(
            &text,
            &[
                "more than 1,024 YAML documents",
                "split it into several files",
            ],
        );
        assert!(!text.contains("budget breached"), "{text}");
    }

    #[test]
    fn deep_nesting_names_the_depth() {
        let msg = refusal("a: {b: {c: {d: {e: 1}}}}\n", &SMALL);
        assert_says(&msg, &["more than 4 levels deep", "indentation"]);
        let deep = format!("{}1{}\n", "[".repeat(65), "]".repeat(65));
        let msg = refusal(&deep, &ParseLimits::DEFAULT);
        assert_says(&msg, &["more than 64 levels deep"]);
    }

    #[test]
    fn too_many_values_names_the_count() {
        let items: Vec<String> = (0..25).map(|i| i.to_string()).collect();
        let text = format!("a: [{}]\n", items.join(", "));
        let limits = ParseLimits {
            events: 1_000,
            ..SMALL
        };
        assert_says(
            &refusal(&text, &limits),
            &["more than 20 values", "split it"],
        );
    }

    #[test]
    fn too_many_events_names_the_count() {
        let text = "a: [[], [], [], [], [], [], [], [], [], [], [], [], [], [], []]\n";
        let limits = ParseLimits {
            nodes: 1_000,
            ..SMALL
        };
        assert_says(&refusal(text, &limits), &["more than 30 parser events"]);
    }

    #[test]
    fn too_much_text_names_the_size() {
        let text = format!("a: {}\n", "x".repeat(100));
        assert_says(&refusal(&text, &SMALL), &["more than 64 bytes", "split it"]);
    }

    #[test]
    fn too_many_anchors_names_the_count() {
        let msg = refusal("a: &x 1\nb: &y 2\nc: &z 3\n", &SMALL);
        assert_says(&msg, &["more than 2 anchors", "`&name`"]);
    }

    #[test]
    fn too_many_aliases_names_the_count() {
        let text = "a: &x 1\nb: &y 2\nl: [*x, *y, *x, *y, *x, *y]\n";
        let limits = ParseLimits {
            aliases_per_anchor: 10,
            ..SMALL
        };
        assert_says(&refusal(text, &limits), &["more than 5 aliases", "`*name`"]);
    }

    #[test]
    fn an_alias_bomb_is_called_one() {
        let text = "a: &x 1\nl: [*x, *x, *x, *x]\n";
        let msg = refusal(text, &SMALL);
        assert_says(&msg, &["4 aliases", "1 anchors", "billion laughs"]);
    }

    #[test]
    fn too_many_merge_keys_names_the_count() {
        let text = "base: &b {x: 1}\nm: {<<: *b, y: 2}\nn: {<<: *b, z: 3}\n";
        let limits = ParseLimits {
            aliases_per_anchor: 10,
            ..SMALL
        };
        assert_says(&refusal(text, &limits), &["more than 1 merge keys", "`<<`"]);
    }

    #[test]
    fn json_over_a_limit_is_refused_as_yaml_is() {
        let text = format!("{{\"a\": {}1{}}}", "[".repeat(5), "]".repeat(5));
        assert_says(&refusal(&text, &SMALL), &["more than 4 levels deep"]);
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1_024), "1,024");
        assert_eq!(thousands(250_000), "250,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(bytes(64 * 1024 * 1024), "64 MiB");
        assert_eq!(bytes(2048), "2 KiB");
        assert_eq!(bytes(100), "100 bytes");
    }

    #[test]
    fn the_default_limits_are_the_parsers_defaults() {
        let ours = ParseLimits::DEFAULT.budget();
        let theirs = serde_saphyr::Budget::default();
        assert_eq!(ours.max_documents, theirs.max_documents);
        assert_eq!(ours.max_depth, theirs.max_depth);
        assert_eq!(ours.max_nodes, theirs.max_nodes);
        assert_eq!(ours.max_events, theirs.max_events);
        assert_eq!(ours.max_total_scalar_bytes, theirs.max_total_scalar_bytes);
        assert_eq!(ours.max_anchors, theirs.max_anchors);
        assert_eq!(ours.max_aliases, theirs.max_aliases);
        assert_eq!(ours.max_merge_keys, theirs.max_merge_keys);
        assert_eq!(
            ours.alias_anchor_ratio_multiplier,
            theirs.alias_anchor_ratio_multiplier
        );
        assert_eq!(
            ours.alias_anchor_min_aliases,
            theirs.alias_anchor_min_aliases
        );
    }
}
