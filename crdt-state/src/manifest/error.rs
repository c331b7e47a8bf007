//! What manifest reading reports: errors that reject the input, warnings that don't.

use std::fmt;

/// One finding about one field of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based index of the document in the input (`---`-separated YAML
    /// documents, or the single JSON value); 0 when the input as a whole is at fault.
    pub document: usize,
    /// Field path in the document, like `spec.template.spec.containers[0].image`
    /// (empty for the document itself).
    pub path: String,
    /// 1-based source line, when the parser knows it.
    pub line: Option<usize>,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl Diagnostic {
    fn write(&self, f: &mut fmt::Formatter<'_>, severity: &str) -> fmt::Result {
        let mut place = Vec::new();
        if self.document > 0 {
            place.push(format!("doc {}", self.document));
        }
        if !self.path.is_empty() {
            place.push(self.path.clone());
        }
        match (place.is_empty(), self.line) {
            (true, Some(line)) => place.push(format!("line {line}")),
            (false, Some(line)) => place.push(format!("(line {line})")),
            (_, None) => {}
        }
        if place.is_empty() {
            write!(f, "{severity}: {}", self.message)
        } else {
            write!(f, "{severity}: {}: {}", place.join(" "), self.message)
        }
    }
}

/// Something accepted but worth knowing: an ignored field, a renamed id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestWarning(pub Diagnostic);

impl fmt::Display for ManifestWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f, "warning")
    }
}

/// A problem that makes the input unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestProblem(pub Diagnostic);

impl fmt::Display for ManifestProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f, "error")
    }
}

/// The input was rejected. Lists every problem found in every document (not
/// just the first), plus the warnings gathered on the way, so one run of
/// `shoal validate` shows everything to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    pub problems: Vec<ManifestProblem>,
    pub warnings: Vec<ManifestWarning>,
}

impl ManifestError {
    /// True when some problem names `path` exactly.
    pub fn has_problem_at(&self, path: &str) -> bool {
        self.problems.iter().any(|p| p.0.path == path)
    }
}

impl fmt::Display for ManifestError {
    /// One `error: ...` line per problem (warnings are not included).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_read_as_one_line_each_with_doc_path_and_line() {
        let err = ManifestError {
            problems: vec![
                ManifestProblem(Diagnostic {
                    document: 1,
                    path: "spec.selector".into(),
                    line: Some(7),
                    message: "does not match".into(),
                }),
                ManifestProblem(Diagnostic {
                    document: 0,
                    path: String::new(),
                    line: Some(3),
                    message: "invalid YAML".into(),
                }),
            ],
            warnings: vec![],
        };
        assert_eq!(
            err.to_string(),
            "error: doc 1 spec.selector (line 7): does not match\nerror: line 3: invalid YAML"
        );
        assert!(err.has_problem_at("spec.selector"));
    }

    #[test]
    fn warnings_say_warning() {
        let w = ManifestWarning(Diagnostic {
            document: 2,
            path: "status".into(),
            line: None,
            message: "ignored".into(),
        });
        assert_eq!(w.to_string(), "warning: doc 2 status: ignored");
    }
}
