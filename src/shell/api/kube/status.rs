//! Errors as Kubernetes `metav1.Status` objects: kubectl prints their
//! `message` and decides by `reason`/`code` (NotFound, AlreadyExists, ...).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusDetails};

use super::super::error::ApiError;
use crate::shell::handle::HandleError;

/// A failed Kubernetes API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeError {
    pub code: StatusCode,
    pub message: String,
    /// The resource and name the error is about, for `details`.
    pub subject: Option<(String, String)>,
    /// Kubernetes' reason word when the code alone does not say it.
    pub reason: Option<&'static str>,
}

impl KubeError {
    pub fn new(code: StatusCode, message: impl Into<String>) -> KubeError {
        KubeError {
            code,
            message: message.into(),
            subject: None,
            reason: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> KubeError {
        KubeError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn invalid(message: impl Into<String>) -> KubeError {
        KubeError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// `resource` is kubectl's plural (`replicationcontrollers`).
    pub fn not_found(resource: &str, name: &str) -> KubeError {
        KubeError {
            code: StatusCode::NOT_FOUND,
            message: format!("{resource} \"{name}\" not found"),
            subject: Some((resource.to_owned(), name.to_owned())),
            reason: None,
        }
    }

    pub fn already_exists(resource: &str, name: &str) -> KubeError {
        KubeError {
            code: StatusCode::CONFLICT,
            message: format!(
                "{resource} \"{name}\" already exists; `kubectl apply` or `kubectl replace` changes it"
            ),
            subject: Some((resource.to_owned(), name.to_owned())),
            reason: Some("AlreadyExists"),
        }
    }

    /// Kubernetes' reason word for the code: kubectl's error checks use it.
    fn reason(&self) -> &'static str {
        if let Some(reason) = self.reason {
            return reason;
        }
        match self.code {
            StatusCode::BAD_REQUEST => "BadRequest",
            StatusCode::UNAUTHORIZED => "Unauthorized",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::NOT_FOUND => "NotFound",
            StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
            StatusCode::NOT_ACCEPTABLE => "NotAcceptable",
            StatusCode::CONFLICT => "Conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLarge",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
            StatusCode::UNPROCESSABLE_ENTITY => "Invalid",
            StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
            StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
            StatusCode::GATEWAY_TIMEOUT => "Timeout",
            _ => "InternalError",
        }
    }

    pub fn to_status(&self) -> Status {
        Status {
            code: Some(i32::from(self.code.as_u16())),
            message: Some(self.message.clone()),
            reason: Some(self.reason().to_owned()),
            status: Some("Failure".to_owned()),
            details: self.subject.as_ref().map(|(kind, name)| StatusDetails {
                kind: Some(kind.clone()),
                name: Some(name.clone()),
                ..StatusDetails::default()
            }),
            ..Status::default()
        }
    }
}

impl IntoResponse for KubeError {
    fn into_response(self) -> Response {
        let mut body = serde_json::to_value(self.to_status()).unwrap_or_default();
        body["kind"] = "Status".into();
        body["apiVersion"] = "v1".into();
        body["metadata"] = serde_json::json!({});
        (self.code, Json(body)).into_response()
    }
}

/// Errors of the Shoal API (the same checks, the same messages) as Status.
impl From<ApiError> for KubeError {
    fn from(e: ApiError) -> KubeError {
        let mut message = e.message;
        for p in &e.problems {
            message.push_str(&format!("\n  {}: {}", p.path, p.message));
        }
        KubeError::new(e.status, message)
    }
}

impl From<HandleError> for KubeError {
    fn from(e: HandleError) -> KubeError {
        ApiError::from(e).into()
    }
}

impl From<crate::peer::CommandError> for KubeError {
    fn from(e: crate::peer::CommandError) -> KubeError {
        ApiError::from(e).into()
    }
}

/// Shoal has one namespace per cluster, served as `default`.
pub fn check_namespace(namespace: &str) -> Result<(), KubeError> {
    if namespace == "default" {
        Ok(())
    } else {
        Err(KubeError {
            code: StatusCode::NOT_FOUND,
            message: format!(
                "namespace \"{namespace}\" not found: a Shoal cluster has one namespace, \"default\""
            ),
            subject: Some(("namespaces".to_owned(), namespace.to_owned())),
            reason: None,
        })
    }
}
