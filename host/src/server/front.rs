//! The server's front service: synchronous invocations, the hot path, are
//! matched here ahead of axum's router; everything else goes to the router.
//!
//! On a busy server the router's work for an invocation (trying the API's
//! routes, storing and deserializing path parameters, the body-limit layer)
//! measured about a tenth of the request's CPU (see the README's performance
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
use axum::http::{Method, Version};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use axum::Router;
use tower::{Service, ServiceExt as _};

use super::invoke::{self, InvokeOptions};
use super::link::{Link, LinkedListener};
use super::Shared;

/// The front service of a connection.
#[derive(Clone)]
pub(crate) struct Front {
    state: Shared,
    router: Router,
    log: bool,
    /// The client's address, for the router's `ConnectInfo`.
    peer: Option<SocketAddr>,
    /// The connection's link: an invocation may block its task (see
    /// [`super::link`]).
    link: Option<Arc<Link>>,
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
        }
    }

    /// Makes a front service for each connection of a [`LinkedListener`].
    pub(crate) fn into_make_service(self) -> MakeFront {
        MakeFront(self)
    }
}

/// Makes a connection's [`Front`].
#[derive(Clone)]
pub(crate) struct MakeFront(Front);

impl Service<IncomingStream<'_, LinkedListener>> for MakeFront {
    type Response = Front;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Front, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, connection: IncomingStream<'_, LinkedListener>) -> Self::Future {
        let mut front = self.0.clone();
        front.peer = Some(*connection.remote_addr());
        front.link = Some(Arc::clone(connection.io().link()));
        std::future::ready(Ok(front))
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
        if request.method() == Method::POST && invocation_urn(request.uri().path()).is_some() {
            let state = Shared::clone(&self.state);
            let log = self.log;
            // Only an HTTP/1 connection can be answered from another thread.
            let link = self
                .link
                .clone()
                .filter(|_| request.version() <= Version::HTTP_11);
            return Box::pin(async move { Ok(sync(state, request, log, link).await) });
        }
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let router = self.router.clone();
        Box::pin(router.oneshot(request))
    }
}

async fn sync(state: Shared, request: Request, log: bool, link: Option<Arc<Link>>) -> Response {
    // (The clock is read only for the request log.)
    let started = log.then(std::time::Instant::now);
    let (parts, body) = request.into_parts();
    let response = answer(&state, &parts, body, link.as_ref()).await;
    if let Some(started) = started {
        super::log_response(&parts.method, parts.uri.path(), &response, started);
    }
    response
}

async fn answer(state: &Shared, parts: &Parts, body: Body, link: Option<&Arc<Link>>) -> Response {
    let body = match super::read_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    if !state.keys.is_empty() {
        if let Err(e) = super::check_signature(state, parts, &body) {
            return e.into_response();
        }
    }
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
    use crate::server::{router, AppState, ServeConfig, MAX_REQUEST_BYTES};
    use axum::http::StatusCode;

    /// The shortcut and the router answer an invocation request alike.
    #[tokio::test]
    async fn the_shortcut_answers_as_the_router_does() {
        for keys in [vec![], vec![("ak".to_owned(), "sk".to_owned())]] {
            let dir = tempfile::tempdir().unwrap();
            let mut config = ServeConfig::new(dir.path().join("data"));
            config.access_keys = crate::server::auth::AccessKeys::new(keys.clone());
            let runtime = crate::Runtime::new(crate::RuntimeConfig {
                cache_dir: Some(dir.path().join("cache")),
                ..crate::RuntimeConfig::default()
            })
            .unwrap();
            let state = Shared::new(AppState::open(&config, runtime).unwrap());
            let mut front = Front::new(Shared::clone(&state), router(Shared::clone(&state)));
            let path = "/v2/p1/fgs/functions/urn%3Afss%3Alocal%3Ap1%3Afunction%3Adefault%3Anone/invocations";
            let oversized = vec![b'x'; MAX_REQUEST_BYTES + 1];
            for body in [b"{}".to_vec(), oversized] {
                let request = || Request::post(path).body(Body::from(body.clone())).unwrap();
                let by_front = front.call(request()).await.unwrap();
                let by_router = router(Shared::clone(&state))
                    .oneshot(request())
                    .await
                    .unwrap();
                let expected = if body.len() > MAX_REQUEST_BYTES {
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
