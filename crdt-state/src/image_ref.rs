//! Image references, checked against the grammar Docker and registries use
//! (`distribution/reference`), so that a typo is refused where it is typed
//! instead of surfacing later as a replica that can never start.
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [ domain "/" ] path-component [ "/" path-component ]*
//! domain           := host [ ":" port-number ]
//! host             := domain-component [ "." domain-component ]* | "[" IPv6 "]"
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! path-component   := [a-z0-9]+ ( separator [a-z0-9]+ )*
//! separator        := "." | "_" | "__" | "-"+
//! tag              := [\w][\w.-]{0,127}
//! digest           := algorithm ":" hex
//! ```
//!
//! What Docker adds on top, and so do we: the first component is a registry
//! only if it contains `.` or `:` or is `localhost` (otherwise it is a path
//! component and must be lowercase; `a_b.c/d`, not a host, is all path too,
//! as the grammar allows); a whole name (registry and path) is at
//! most 255 characters; a bare 64-hex string is an image ID, not a name; and
//! a digest must use an algorithm the engine verifies (sha256, sha384,
//! sha512) with exactly its length of lowercase hex digits.

/// Longest name (registry and path, without tag or digest) a registry accepts.
pub const MAX_NAME_LEN: usize = 255;

/// Longest tag.
pub const MAX_TAG_LEN: usize = 128;

/// A valid reference, split into its parts (all borrowed from the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// The registry, `host[:port]`, when the name starts with one.
    pub domain: Option<&'a str>,
    /// The repository path, e.g. `shoal-test/hello`.
    pub path: &'a str,
    pub tag: Option<&'a str>,
    /// `algorithm:hex`, without the `@`.
    pub digest: Option<&'a str>,
}

/// Why an image reference was refused: what is wrong and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("the image reference is empty; give one like \"shoal-test/hello:1.0\"")]
    Empty,
    #[error(
        "character {character:?} (position {position}) cannot appear in an image reference; \
         use lowercase letters, digits, '.', '_', '-' and '/' in the name, then \":TAG\" \
         or \"@sha256:DIGEST\" (e.g. \"shoal-test/hello:1.0\")"
    )]
    BadCharacter { character: char, position: usize },
    #[error(
        "{reference:?} is a 64-hex image ID, not a name; give a repository name and tag (e.g. \"shoal-test/hello:1.0\")"
    )]
    ImageId { reference: String },
    #[error(
        "there is no repository name before the ':' or '@'; put one first (e.g. \"shoal-test/hello:1.0\")"
    )]
    NoName,
    #[error("repository name must be lowercase: use {suggestion:?}")]
    Uppercase { suggestion: String },
    #[error(
        "the name is {len} characters long; registry and repository together may have at most {MAX_NAME_LEN}"
    )]
    NameTooLong { len: usize },
    #[error(
        "{name:?} has an empty path component (a leading, trailing or doubled '/'); \
         separate components with single slashes, as in \"shoal-test/hello\""
    )]
    EmptyComponent { name: String },
    #[error(
        "path component {component:?} is not valid: components are lowercase letters and \
         digits, joined by '.', '_', '__' or dashes, starting and ending with a letter or \
         digit (e.g. \"my-app\")"
    )]
    BadComponent { component: String },
    #[error("registry {domain:?} is not a valid host[:port]: {why}")]
    BadDomain { domain: String, why: &'static str },
    #[error(
        "tag {tag:?} is not valid: {why}; a tag is 1 to {MAX_TAG_LEN} letters, digits, '_', '.' \
         or '-', not starting with '.' or '-' (e.g. \"1.0\")"
    )]
    BadTag { tag: String, why: String },
    #[error(
        "digest {digest:?} is not valid: {why}; write it as \"@sha256:\" and 64 lowercase hex digits"
    )]
    BadDigest { digest: String, why: String },
}

/// Checks `reference` against the grammar and splits it into its parts.
pub fn parse(reference: &str) -> Result<ImageRef<'_>, ImageRefError> {
    if reference.is_empty() {
        return Err(ImageRefError::Empty);
    }
    if let Some((i, character)) = reference
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || "._-/:@[]".contains(*c)))
    {
        return Err(ImageRefError::BadCharacter {
            character,
            position: i + 1,
        });
    }
    // From here on the input is ASCII: byte offsets are character offsets.
    if reference.len() == 64 && reference.bytes().all(is_lower_hex) {
        return Err(ImageRefError::ImageId {
            reference: reference.to_owned(),
        });
    }
    let (before_digest, digest) = match reference.split_once('@') {
        Some((before, digest)) => (before, Some(digest)),
        None => (reference, None),
    };
    // A tag follows the last path component; a ':' before the last '/' is a port.
    let last_segment = before_digest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match before_digest[last_segment..].find(':') {
        Some(i) => (
            &before_digest[..last_segment + i],
            Some(&before_digest[last_segment + i + 1..]),
        ),
        None => (before_digest, None),
    };
    if name.is_empty() {
        return Err(ImageRefError::NoName);
    }
    let (domain, path) = match split_domain(name) {
        (Some(domain), path) => match check_domain(domain) {
            Ok(()) => (Some(domain), path),
            // The grammar also reads `a_b.c/d` as a path of two components.
            Err(_) if name.split('/').all(is_path_component) => (None, name),
            Err(e) => return Err(e),
        },
        (None, path) => (None, path),
    };
    check_path(path, |lowercase| {
        let mut suggestion = String::with_capacity(reference.len());
        if let Some(domain) = domain {
            suggestion.push_str(domain);
            suggestion.push('/');
        }
        suggestion.push_str(&lowercase);
        suggestion.push_str(&reference[name.len()..]);
        suggestion
    })?;
    if name.len() > MAX_NAME_LEN {
        return Err(ImageRefError::NameTooLong { len: name.len() });
    }
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    if let Some(digest) = digest {
        check_digest(digest)?;
    }
    Ok(ImageRef {
        domain,
        path,
        tag,
        digest,
    })
}

/// The first component is a registry only when it looks like a host:
/// it has a `.` or a `:port`, or it is `localhost`.
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn check_domain(domain: &str) -> Result<(), ImageRefError> {
    let bad = |why| ImageRefError::BadDomain {
        domain: domain.to_owned(),
        why,
    };
    let (host, port) = if let Some(inner) = domain.strip_prefix('[') {
        let (address, after) = inner
            .split_once(']')
            .ok_or_else(|| bad("an IPv6 address needs its closing ']'"))?;
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(bad(
                "between '[' and ']' goes an IPv6 address of hex digits and ':', e.g. [::1]",
            ));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| bad("after an IPv6 address's ']' only \":PORT\" may follow"))?,
            ),
        };
        (None, port)
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host
        && !host.split('.').all(is_domain_component)
    {
        return Err(bad(
            "a host is dot-separated labels of letters, digits and inner '-', e.g. registry.example.com",
        ));
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad("the port must be a number, e.g. localhost:5000"));
    }
    Ok(())
}

fn is_domain_component(label: &str) -> bool {
    let b = label.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
        _ => false,
    }
}

/// Checks each `/`-separated component; `suggest` turns the lowercased path
/// into the whole reference to propose when case is the only problem.
fn check_path(path: &str, suggest: impl FnOnce(String) -> String) -> Result<(), ImageRefError> {
    let components: Vec<&str> = path.split('/').collect();
    if components.iter().any(|c| c.is_empty()) {
        return Err(ImageRefError::EmptyComponent {
            name: path.to_owned(),
        });
    }
    let Some(bad) = components.iter().find(|c| !is_path_component(c)) else {
        return Ok(());
    };
    let lowercase = path.to_ascii_lowercase();
    if lowercase != path && lowercase.split('/').all(is_path_component) {
        return Err(ImageRefError::Uppercase {
            suggestion: suggest(lowercase),
        });
    }
    Err(ImageRefError::BadComponent {
        component: (*bad).to_owned(),
    })
}

/// `[a-z0-9]+ (separator [a-z0-9]+)*` with separator `.`, `_`, `__` or `-`+.
fn is_path_component(component: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let ends_ok =
        bytes.first().is_some_and(|b| alnum(*b)) && bytes.last().is_some_and(|b| alnum(*b));
    // With both ends alphanumeric, every run of other bytes sits between two
    // alphanumerics, so it only has to be one allowed separator.
    ends_ok
        && component
            .split(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            .all(|sep| matches!(sep, "" | "." | "_" | "__") || sep.bytes().all(|b| b == b'-'))
}

fn check_tag(tag: &str) -> Result<(), ImageRefError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let why = if tag.is_empty() {
        Some("it is empty (remove the ':' to mean \"latest\")".to_owned())
    } else if tag.len() > MAX_TAG_LEN {
        Some(format!("it is {} characters long", tag.len()))
    } else if let Some(c) = tag
        .bytes()
        .find(|b| !(word(*b) || *b == b'.' || *b == b'-'))
    {
        Some(format!("{:?} is not allowed in a tag", char::from(c)))
    } else if !tag.bytes().next().is_some_and(word) {
        Some("it starts with '.' or '-'".to_owned())
    } else {
        None
    };
    match why {
        Some(why) => Err(ImageRefError::BadTag {
            tag: tag.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

fn check_digest(digest: &str) -> Result<(), ImageRefError> {
    let bad = |why: String| ImageRefError::BadDigest {
        digest: digest.to_owned(),
        why,
    };
    if digest.contains('@') {
        return Err(bad("a reference has at most one '@'".into()));
    }
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(bad("it has no ':' between algorithm and hex digits".into()));
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['-', '_', '+', '.']).all(|part| {
            part.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && part.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if !algorithm_ok {
        return Err(bad(format!("{algorithm:?} is not an algorithm name")));
    }
    if hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("a digest is at least 32 hex digits".into()));
    }
    let expected = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => {
            return Err(bad(format!(
                "the engine cannot verify algorithm {algorithm:?} (it knows sha256, sha384 and sha512)"
            )));
        }
    };
    if hex.len() != expected {
        return Err(bad(format!(
            "{algorithm} has {expected} hex digits, not {}",
            hex.len()
        )));
    }
    if !hex.bytes().all(is_lower_hex) {
        return Err(bad("hex digits must be lowercase".into()));
    }
    Ok(())
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2";

    #[test]
    fn references_docker_accepts_are_accepted_and_split() {
        let digest = format!("sha256:{SHA}");
        // (input, registry, path, tag); "" where there is none.
        let cases = [
            ("busybox", "", "busybox", ""),
            ("shoal-test/hello:1.0", "", "shoal-test/hello", "1.0"),
            ("localhost:5000/a/b:tag", "localhost:5000", "a/b", "tag"),
            ("localhost/app", "localhost", "app", ""),
            (
                "registry.example.com/x_y/z__w:v1.2-rc",
                "registry.example.com",
                "x_y/z__w",
                "v1.2-rc",
            ),
            (
                "Registry.Example.COM/app",
                "Registry.Example.COM",
                "app",
                "",
            ),
            ("[::1]:5000/img", "[::1]:5000", "img", ""),
            ("[fe80::1]/img:2", "[fe80::1]", "img", "2"),
            ("127.0.0.1:5000/img", "127.0.0.1:5000", "img", ""),
            (
                "quay.io/kelseyhightower/hello",
                "quay.io",
                "kelseyhightower/hello",
                "",
            ),
            ("a---b.c_d__e/f", "", "a---b.c_d__e/f", ""),
            ("exa_mple.com/app", "", "exa_mple.com/app", ""),
            ("localhost:5000", "", "localhost", "5000"),
            ("img:_Latest-1.x", "", "img", "_Latest-1.x"),
        ];
        let some = |s: &'static str| Some(s).filter(|s| !s.is_empty());
        for (input, domain, path, tag) in cases {
            let parsed = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            let expected = ImageRef {
                domain: some(domain),
                path,
                tag: some(tag),
                digest: None,
            };
            assert_eq!(parsed, expected, "{input}");
        }
        let with_digest = format!("a@{digest}");
        assert_eq!(parse(&with_digest).unwrap().digest, Some(digest.as_str()));
        let both = format!("shoal-test/hello:1.0@{digest}");
        let parsed = parse(&both).unwrap();
        assert_eq!(
            (parsed.tag, parsed.digest),
            (Some("1.0"), Some(digest.as_str()))
        );
        let long_tag = format!("img:{}", "t".repeat(MAX_TAG_LEN));
        assert!(parse(&long_tag).is_ok());
        let long_name = "a".repeat(MAX_NAME_LEN);
        assert!(parse(&long_name).is_ok());
    }

    /// The error `input` is refused with; panics if it is accepted.
    fn refusal(input: &str) -> ImageRefError {
        match parse(input) {
            Ok(parsed) => panic!("{input:?} was accepted as {parsed:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn invalid_references_are_refused_with_the_reason() {
        let cases: Vec<(String, &str)> = vec![
            (
                "UPPER/Case:1".into(),
                "must be lowercase: use \"upper/case:1\"",
            ),
            ("Hello".into(), "must be lowercase: use \"hello\""),
            (
                "localhost:5000/Shoal-Test/Hello:1.0".into(),
                "use \"localhost:5000/shoal-test/hello:1.0\"",
            ),
            (
                "foo:::bar".into(),
                "tag \"::bar\" is not valid: ':' is not allowed",
            ),
            ("NOT a valid image!!".into(), "character ' ' (position 4)"),
            ("hello\t".into(), "character '\\t'"),
            ("héllo".into(), "character 'é' (position 2)"),
            (String::new(), "empty"),
            ("shoal-test/".into(), "empty path component"),
            ("/hello".into(), "empty path component"),
            ("a//b".into(), "empty path component"),
            ("localhost:5000/".into(), "empty path component"),
            (
                format!("img:{}", "t".repeat(129)),
                "it is 129 characters long",
            ),
            ("img:".into(), "it is empty"),
            (":1.0".into(), "no repository name"),
            (format!("@sha256:{SHA}"), "no repository name"),
            ("img:.hidden".into(), "starts with '.' or '-'"),
            ("-leading".into(), "path component \"-leading\""),
            ("trailing-".into(), "path component \"trailing-\""),
            ("a..b".into(), "path component \"a..b\""),
            ("a___b".into(), "path component \"a___b\""),
            ("a._b".into(), "path component \"a._b\""),
            ("a@sha256:short".into(), "at least 32 hex digits"),
            (
                format!("a@sha256:{}", &SHA[..32]),
                "sha256 has 64 hex digits, not 32",
            ),
            (
                format!("a@sha256:{}", SHA.to_uppercase()),
                "must be lowercase",
            ),
            (
                format!("a@md5:{}", &SHA[..32]),
                "cannot verify algorithm \"md5\"",
            ),
            (format!("a@1sha:{SHA}"), "not an algorithm name"),
            (format!("a@sha256{SHA}"), "no ':'"),
            (format!("a@sha256:{SHA}@x"), "at most one '@'"),
            ("[abcd]/img".into(), "path component \"[abcd]\""),
            ("exa_mple.com/App".into(), "registry \"exa_mple.com\""),
            ("-bad.com/app".into(), "registry \"-bad.com\""),
            ("host:port/app".into(), "the port must be a number"),
            ("[::1/app".into(), "closing ']'"),
            ("[]:5000/app".into(), "IPv6 address of hex digits"),
            ("[::1]x/app".into(), "only \":PORT\" may follow"),
            (SHA.into(), "image ID, not a name"),
            ("a".repeat(MAX_NAME_LEN + 1), "256 characters long"),
            (
                format!("registry.example.com/{}", "a".repeat(240)),
                "261 characters long",
            ),
        ];
        for (input, needle) in &cases {
            let message = refusal(input).to_string();
            assert!(
                message.contains(needle),
                "{input:?}: {message:?} lacks {needle:?}"
            );
        }
    }

    #[test]
    fn each_refusal_is_its_own_variant() {
        assert_eq!(parse(""), Err(ImageRefError::Empty));
        assert!(matches!(
            refusal("UPPER/Case:1"),
            ImageRefError::Uppercase { suggestion } if suggestion == "upper/case:1"
        ));
        assert!(
            matches!(refusal("foo:::bar"), ImageRefError::BadTag { tag, .. } if tag == "::bar")
        );
        assert!(matches!(
            refusal("NOT a valid image!!"),
            ImageRefError::BadCharacter {
                character: ' ',
                position: 4
            }
        ));
        assert!(matches!(
            refusal("a//b"),
            ImageRefError::EmptyComponent { .. }
        ));
        assert!(matches!(
            refusal("-leading"),
            ImageRefError::BadComponent { .. }
        ));
        assert!(matches!(
            refusal("a@sha256:short"),
            ImageRefError::BadDigest { .. }
        ));
        assert!(matches!(
            refusal("x_y.com/A"),
            ImageRefError::BadDomain { .. }
        ));
        assert!(matches!(
            refusal(&"a".repeat(256)),
            ImageRefError::NameTooLong { len: 256 }
        ));
    }
}
