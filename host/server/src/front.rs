//! The server's front service: synchronous invocations, the hot path, are
//! matched here ahead of axum's router; everything else goes to the router.
//!
//! On a busy server the router's work for an invocation (trying the API's
//! routes, storing and deserializing path parameters, the body-limit layer)
//! measured about a tenth of the request's CPU (see the book's performance
//! section). The shortcut does the same things the routed handler and its
//! layers do: the same body limit, signature check, request log and
//! response ([`invoke::sync_invoke`]). A request it does not recognize
//! exactly goes through the router, which also serves the same path, so a
//! miss only costs speed.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::http::{Method, Version};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::{Service, ServiceExt as _};

use super::error::ApiError;
use super::gate::{classify, Class};
use super::invoke::{self, InvokeOptions};
use super::link::{Link, Mode};
use super::state::Shared;

/// The front service of a connection.
#[derive(Clone)]
pub(crate) struct Front {
    state: Shared,
    router: Router,
    log: bool,
    /// The client's address, for the router's `ConnectInfo`.
    peer: Option<SocketAddr>,
    /// The connection's link: an invocation may block its task (see
    /// [`super::link`]), and its timeouts follow the requests.
    link: Option<Arc<Link>>,
    /// How the connection is served (beyond the connection cap, only
    /// health checks and management calls are answered).
    mode: Mode,
}

impl Front {
    /// A front service for connections without a [`Link`] (each call runs
    /// on a task or thread of its own).
    pub(crate) fn new(state: Shared, router: Router) -> Front {
        Front {
            state,
            router,
            log: log::log_enabled!(target: "fnhost::http", log::Level::Info),
            peer: None,
            link: None,
            mode: Mode::Normal,
        }
    }

    /// The front service of one accepted connection.
    pub(crate) fn for_connection(&self, peer: SocketAddr, link: Arc<Link>, mode: Mode) -> Front {
        Front {
            peer: Some(peer),
            link: Some(link),
            mode,
            ..self.clone()
        }
    }
}

impl Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let link = self.link.clone();
        if let Some(link) = &link {
            link.begin_request();
        }
        // RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request
        // without a Host header (or with several).
        if request.version() == Version::HTTP_11
            && request
                .headers()
                .get_all(axum::http::header::HOST)
                .iter()
                .count()
                != 1
        {
            return Box::pin(async move {
                if let Some(link) = link {
                    link.end_request();
                }
                Ok(
                    ApiError::bad_request("an HTTP/1.1 request needs exactly one Host header")
                        .into_response(),
                )
            });
        }
        let invocation =
            request.method() == Method::POST && invocation_urn(request.uri().path()).is_some();
        if self.mode == Mode::Priority
            && (invocation || !classify(request.method(), request.uri().path()).has_priority())
        {
            return Box::pin(async move {
                if let Some(link) = link {
                    link.end_request();
                }
                Ok(at_capacity())
            });
        }
        if invocation {
            let state = Shared::clone(&self.state);
            let log = self.log;
            return Box::pin(async move {
                // Only an HTTP/1 connection can be answered from another thread.
                let caller = link
                    .as_ref()
                    .filter(|_| request.version() <= Version::HTTP_11);
                let response = sync(state, request, log, caller.cloned()).await;
                if let Some(link) = link {
                    link.end_request();
                }
                Ok(response)
            });
        }
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let routed = self.router.clone().oneshot(request);
        Box::pin(async move {
            let response = routed.await;
            if let Some(link) = link {
                link.end_request();
            }
            response
        })
    }
}

/// The answer to traffic on a connection beyond the connection cap.
fn at_capacity() -> Response {
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "FSS.0503",
        "the server is at its connection limit; retry later",
    )
    .into_response();
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

async fn sync(state: Shared, request: Request, log: bool, link: Option<Arc<Link>>) -> Response {
    // (The clock is read only for the request log.)
    let started = log.then(std::time::Instant::now);
    let (parts, body) = request.into_parts();
    let response = answer(&state, &parts, body, link.as_ref()).await;
    if let Some(started) = started {
        crate::access_log::log_response(&parts.method, parts.uri.path(), &response, started);
    }
    response
}

async fn answer(state: &Shared, parts: &Parts, body: Body, link: Option<&Arc<Link>>) -> Response {
    let body = match state.gate.admit(parts, body, Class::Invoke).await {
        Ok(admitted) => admitted.body,
        Err(e) => return e.into_response(),
    };
    let urn = invocation_urn(parts.uri.path()).unwrap_or_default();
    let options = InvokeOptions::from_headers(&parts.headers);
    invoke::sync_invoke(state, &urn, options, body, link)
        .await
        .into_response()
}

/// The URN of `/v2/{project_id}/fgs/functions/{urn}/invocations`,
/// percent-decoded, when `path` is exactly that shape (non-empty segments).
fn invocation_urn(path: &str) -> Option<Cow<'_, str>> {
    let rest = path.strip_prefix("/v2/")?;
    let (project, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("fgs/functions/")?;
    let urn = rest.strip_suffix("/invocations")?;
    if project.is_empty() || urn.is_empty() || urn.contains('/') {
        return None;
    }
    percent_encoding::percent_decode_str(urn).decode_utf8().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServeConfig;
    use crate::router;
    use crate::state::AppState;

    /// The shortcut and the router answer an invocation request alike.
    #[tokio::test]
    async fn the_shortcut_answers_as_the_router_does() {
        for keys in [vec![], vec![("ak".to_owned(), "sk".to_owned())]] {
            let dir = tempfile::tempdir().unwrap();
            let mut config = ServeConfig::new(dir.path().join("data"));
            config.access_keys = crate::auth::AccessKeys::new(keys.clone()).unwrap();
            let runtime = fnhost::Runtime::new(fnhost::RuntimeConfig {
                cache_dir: Some(dir.path().join("cache")),
                ..fnhost::RuntimeConfig::default()
            })
            .unwrap();
            let state = Shared::new(AppState::open(&config, runtime).unwrap());
            let mut front = Front::new(Shared::clone(&state), router(Shared::clone(&state)));
            let path = "/v2/p1/fgs/functions/urn%3Afss%3Alocal%3Ap1%3Afunction%3Adefault%3Anone/invocations";
            let limit = config.limits.invoke_body_bytes;
            let oversized = vec![b'x'; limit + 1];
            for body in [b"{}".to_vec(), oversized] {
                let request = || {
                    Request::post(path)
                        .header("host", "127.0.0.1")
                        .body(Body::from(body.clone()))
                        .unwrap()
                };
                let by_front = front.call(request()).await.unwrap();
                let by_router = router(Shared::clone(&state))
                    .oneshot(request())
                    .await
                    .unwrap();
                let expected = if keys.is_empty() && body.len() > limit {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else if keys.is_empty() {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::UNAUTHORIZED
                };
                assert_eq!(by_front.status(), expected);
                assert_eq!(by_router.status(), expected);
                let read = |r: Response| axum::body::to_bytes(r.into_body(), 1 << 20);
                assert_eq!(
                    read(by_front).await.unwrap(),
                    read(by_router).await.unwrap()
                );
            }
        }
    }

    #[test]
    fn matches_only_the_exact_invocation_path() {
        let urn = |p| invocation_urn(p).map(Cow::into_owned);
        assert_eq!(
            urn("/v2/p1/fgs/functions/echo/invocations").as_deref(),
            Some("echo")
        );
        assert_eq!(
            urn("/v2/p1/fgs/functions/urn%3Afss%3Alocal%3Ap1%3Afunction%3Adefault%3Aecho%3Alatest/invocations")
                .as_deref(),
            Some("urn:fss:local:p1:function:default:echo:latest")
        );
        assert!(matches!(
            invocation_urn(
                "/v2/p1/fgs/functions/urn:fss:local:p1:function:default:echo/invocations"
            ),
            Some(Cow::Borrowed(_))
        ));
        for other in [
            "/v2/p1/fgs/functions/echo/invocations-async",
            "/v2/p1/fgs/functions/echo/invocations/",
            "/v2/p1/fgs/functions//invocations",
            "/v2//fgs/functions/echo/invocations",
            "/v2/p1/fgs/functions/a/b/invocations",
            "/v2/p1/fgs/functions/echo",
            "/v2/p1/fgs/triggers/echo/invocations",
            "/apig/echo/invocations",
            "/v2/p1/fgs/functions/%FF/invocations",
        ] {
            assert_eq!(urn(other), None, "{other}");
        }
    }
}
