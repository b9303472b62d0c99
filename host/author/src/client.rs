//! The HTTP client of a FunctionGraph-compatible server, for `fnhost deploy`
//! and the other commands that talk to one: one HTTP/1.1 request at a time
//! over hyper's client connection, signed with `SDK-HMAC-SHA256` as the SDKs
//! sign (when keys are given), every step under a deadline and the answer's
//! size bounded.

use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::Request;

/// Request and answer headers (hyper's), their names and values.
pub use hyper::header::{HeaderName, HeaderValue};
pub use hyper::HeaderMap;
/// HTTP methods (hyper's).
pub use hyper::Method;
use hyper_util::rt::TokioIo;

use fnhost_signing::{sdk_date, sign, SignedRequest};

/// The largest answer read (a code package's listing is the largest one).
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole request may take (a deploy runs the pre-flight and the
/// initializer on the server).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://HOST:PORT`.
    #[error("`{0}` is not a server URL: use http://HOST:PORT")]
    Url(String),
    /// Nothing answered.
    #[error("no answer from {url}: {reason}")]
    NoAnswer {
        /// The server.
        url: String,
        /// What happened.
        reason: String,
    },
}

/// An answer: status, headers, body.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// FunctionGraph's `error_msg` of an error answer, else the body as text.
    pub fn error_message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error_msg"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned())
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// A server and the keys to sign with.
#[derive(Debug, Clone)]
pub struct Client {
    url: String,
    authority: String,
    keys: Option<(String, String)>,
    request_timeout: Duration,
}

impl Client {
    /// A client of the server at `url` (`http://HOST:PORT`), signing with
    /// `keys` (access key, secret key) when given.
    pub fn new(url: &str, keys: Option<(String, String)>) -> Result<Client, ClientError> {
        let rest = url
            .trim_end_matches('/')
            .strip_prefix("http://")
            .ok_or_else(|| ClientError::Url(url.to_owned()))?;
        if rest.is_empty() || rest.contains('/') || rest.contains('@') {
            return Err(ClientError::Url(url.to_owned()));
        }
        let authority = if rest.contains(':') {
            rest.to_owned()
        } else {
            format!("{rest}:80")
        };
        Ok(Client {
            url: url.trim_end_matches('/').to_owned(),
            authority,
            keys,
            request_timeout: REQUEST_TIMEOUT,
        })
    }

    /// The client with a shorter (or longer) bound on a whole request than
    /// [`REQUEST_TIMEOUT`].
    pub fn with_request_timeout(mut self, timeout: Duration) -> Client {
        self.request_timeout = timeout;
        self
    }

    /// Sends one request (`path` percent-encoded, `query` without `?`) with
    /// `headers` and `body`; blocks until the answer, at most
    /// [`REQUEST_TIMEOUT`].
    pub fn send(
        &self,
        method: Method,
        path: &str,
        query: &str,
        mut headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<Answer, ClientError> {
        let no_answer = |reason: String| ClientError::NoAnswer {
            url: self.url.clone(),
            reason,
        };
        self.sign_into(
            method.as_str(),
            path,
            query,
            &mut headers,
            &body,
            SystemTime::now(),
        )?;
        let target = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let mut request = Request::builder()
            .method(method)
            .uri(target)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| no_answer(e.to_string()))?;
        *request.headers_mut() = headers;
        let executor = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| no_answer(e.to_string()))?;
        executor.block_on(async {
            let stream = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio::net::TcpStream::connect(&self.authority),
            )
            .await
            .map_err(|_| no_answer(format!("connecting took over {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| no_answer(e.to_string()))?;
            let exchange = async {
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .map_err(|e| no_answer(e.to_string()))?;
                let driver = tokio::spawn(connection);
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| no_answer(e.to_string()))?;
                let status = response.status().as_u16();
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, MAX_ANSWER_BYTES)
                    .collect()
                    .await
                    .map_err(|e| no_answer(format!("reading the answer: {e}")))?
                    .to_bytes()
                    .to_vec();
                driver.abort();
                Ok(Answer {
                    status,
                    headers: parts.headers,
                    body,
                })
            };
            let limit = self.request_timeout;
            tokio::time::timeout(limit, exchange)
                .await
                .map_err(|_| no_answer(format!("no answer within {limit:?}")))?
        })
    }

    /// The server's URL (`http://HOST:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether requests are signed (keys were given).
    pub fn signs(&self) -> bool {
        self.keys.is_some()
    }

    /// Adds what a request to this server carries beyond its own headers:
    /// `Host`, and with keys `X-Sdk-Date` (of `now`) and the
    /// `Authorization` that signs the method, `path`, `query`, every header
    /// and the body. [`send`](Self::send) does this; `fnhost sign` prints it.
    pub fn sign_into(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &mut HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), ClientError> {
        let invalid = |reason: String| ClientError::NoAnswer {
            url: self.url.clone(),
            reason,
        };
        let host = HeaderValue::from_str(&self.authority).map_err(|e| invalid(e.to_string()))?;
        headers.insert(hyper::header::HOST, host);
        if let Some((ak, sk)) = &self.keys {
            let date = HeaderValue::from_str(&sdk_date(now)).map_err(|e| invalid(e.to_string()))?;
            headers.insert(HeaderName::from_static("x-sdk-date"), date);
            let authorization = sign(
                ak,
                sk,
                &SignedRequest {
                    method,
                    path,
                    query,
                    headers,
                    body,
                },
            );
            let value =
                HeaderValue::from_str(&authorization).map_err(|e| invalid(e.to_string()))?;
            headers.insert(hyper::header::AUTHORIZATION, value);
        }
        Ok(())
    }

    /// [`send`](Self::send) with a JSON body (or none, for `Null`).
    pub fn json(
        &self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Answer, ClientError> {
        let mut headers = HeaderMap::new();
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            headers.insert(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            body.to_string().into_bytes()
        };
        self.send(method, path, "", headers, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_of_a_server_are_taken() {
        for bad in [
            "127.0.0.1:8000",
            "https://x",
            "http://",
            "http://a/b",
            "http://u@h:1",
        ] {
            assert!(Client::new(bad, None).is_err(), "{bad}");
        }
        assert_eq!(
            Client::new("http://127.0.0.1:8000/", None)
                .unwrap()
                .authority,
            "127.0.0.1:8000"
        );
    }

    #[test]
    fn a_server_that_does_not_listen_is_no_answer() {
        // A port just released: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
        let e = client
            .json(Method::GET, "/healthz", &serde_json::Value::Null)
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("no answer from http://127.0.0.1:"),
            "{e}"
        );
    }
}
