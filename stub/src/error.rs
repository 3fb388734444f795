//! The one error type of request handlers, answered as a JSON [`ApiError`] body.

use std::io;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use opencode_remote_protocol::{ApiError, ErrorDetail, ErrorKind, PermissionRequest};

/// A failed request: its kind decides the HTTP status. Boxed: handlers return it in every
/// `Result`, and the detail (with a permission request) is large.
#[derive(Debug)]
pub struct ApiErr(pub Box<ErrorDetail>);

impl ApiErr {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiErr(Box::new(ErrorDetail {
            kind,
            message: message.into(),
            permission: None,
        }))
    }

    /// 403: ask the user.
    pub fn permission(request: PermissionRequest) -> Self {
        ApiErr(Box::new(ErrorDetail {
            kind: ErrorKind::PermissionRequired,
            message: format!(
                "{} is outside the workspace root and needs approval",
                request.path
            ),
            permission: Some(request),
        }))
    }

    /// Maps an I/O error to the closest kind; `what` says what was being done.
    pub fn io(err: io::Error, what: &str) -> Self {
        let kind = match err.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::IsADirectory => ErrorKind::IsDirectory,
            io::ErrorKind::NotADirectory => ErrorKind::NotDirectory,
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => ErrorKind::BadRequest,
            _ => ErrorKind::Io,
        };
        ApiErr::new(kind, format!("{what}: {err}"))
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&ApiError { error: *self.0 }).unwrap_or_default();
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}
