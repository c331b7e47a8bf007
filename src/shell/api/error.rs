//! The API's one error type: every failure becomes `{"error", "status", ...}`
//! JSON with a message a person can act on, never axum's plain-text default.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use shoal_crdt_state::manifest::{Diagnostic, ManifestError};

use crate::peer::CommandError;
use crate::shell::handle::HandleError;
use shoal_crdt_state::StateError;

/// One manifest finding, as JSON: where (document, field path, line) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemJson {
    pub document: usize,
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

impl From<&Diagnostic> for ProblemJson {
    fn from(d: &Diagnostic) -> Self {
        ProblemJson {
            document: d.document,
            path: d.path.clone(),
            line: d.line,
            message: d.message.clone(),
        }
    }
}

/// The body of every error response. `problems` and `warnings` are only
/// filled for rejected manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ProblemJson>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A failed request: a status and a message, plus manifest findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub problems: Vec<ProblemJson>,
    pub warnings: Vec<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// A request body over the API's limit; `size` when the request declared it.
    pub fn too_large(size: Option<u64>) -> ApiError {
        const MIB: u64 = 1024 * 1024;
        let size = match size {
            Some(bytes) if bytes >= MIB => format!(" ({:.1} MiB)", bytes as f64 / MIB as f64),
            Some(bytes) => format!(" ({bytes} bytes)"),
            None => String::new(),
        };
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body{size} is larger than the API's limit of {} MiB; \
                 split the manifest into several files and apply each",
                super::MAX_BODY_BYTES as u64 / MIB
            ),
        )
    }

    /// A rejected manifest. Text that is not YAML/JSON at all is a 400; a
    /// well-formed document describing an invalid RC is a 422.
    pub fn manifest(err: &ManifestError) -> ApiError {
        let syntax = err
            .problems
            .iter()
            .any(|p| p.0.document == 0 && p.0.path.is_empty());
        let status = if syntax {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let n = err.problems.len();
        let plural = if n == 1 { "" } else { "s" };
        ApiError {
            status,
            message: format!(
                "{err}\nthe manifest has {n} error{plural}; nothing was applied (fix them and apply again; `shoal validate -f FILE` checks offline)"
            ),
            problems: err
                .problems
                .iter()
                .map(|p| ProblemJson::from(&p.0))
                .collect(),
            warnings: err.warnings.iter().map(ToString::to_string).collect(),
        }
    }
}

impl From<HandleError> for ApiError {
    fn from(err: HandleError) -> ApiError {
        match err {
            HandleError::Closed => ApiError::unavailable(
                "the peer is shutting down; retry against another peer or after `shoal up` restarts",
            ),
            HandleError::Command(e) => e.into(),
            e @ HandleError::NotDurable(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
            e @ HandleError::NotReplicated(_) => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("{e}; it keeps spreading, check with `shoal get rc` at another peer"),
            ),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(err: CommandError) -> ApiError {
        let status = match err {
            CommandError::NotFound(_)
            | CommandError::NoSuchNode(_)
            | CommandError::ServiceNotFound(_) => StatusCode::NOT_FOUND,
            CommandError::NodeAlive { .. }
            | CommandError::ServiceRejected(_)
            | CommandError::RcRejected(_) => StatusCode::CONFLICT,
            CommandError::Rollout(StateError::UnknownRevision { .. }) => StatusCode::NOT_FOUND,
            CommandError::Rollout(_) => StatusCode::CONFLICT,
            CommandError::Token(StateError::UnknownToken { .. }) => StatusCode::NOT_FOUND,
            CommandError::Token(StateError::TokenExists { .. }) => StatusCode::CONFLICT,
            CommandError::Token(_) => StatusCode::UNPROCESSABLE_ENTITY,
            CommandError::NoSuchContainer { .. }
            | CommandError::InvalidImage { .. }
            | CommandError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let message = match &err {
            CommandError::NotFound(_) => format!("{err}; `shoal get rc` lists them"),
            CommandError::NoSuchContainer { .. } => {
                format!("{err}; `shoal describe rc NAME` lists its containers")
            }
            // Named like a manifest problem: the request field, then what is wrong.
            CommandError::InvalidImage { image, reason } => {
                format!("image: {image:?} is not a valid image reference: {reason}")
            }
            CommandError::NoSuchNode(_) => format!("{err}; `shoal get nodes` lists them"),
            CommandError::ServiceNotFound(_) => format!("{err}; `shoal get svc` lists them"),
            CommandError::ServiceRejected(_) | CommandError::RcRejected(_) => err.to_string(),
            CommandError::NodeAlive { .. }
            | CommandError::Invalid(_)
            | CommandError::Rollout(_)
            | CommandError::Token(_) => err.to_string(),
        };
        ApiError::new(status, message)
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> ApiError {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::too_large(None);
        }
        ApiError::new(status, format!("cannot read the request body: {rejection}"))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        let status = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => return ApiError::too_large(None),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(
            status,
            format!("invalid JSON body: {}", rejection.body_text()),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            status: self.status.as_u16(),
            problems: self.problems,
            warnings: self.warnings,
        };
        (self.status, Json(body)).into_response()
    }
}
