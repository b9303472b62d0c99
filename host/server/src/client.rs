//! A client of this API, for `fnhost deploy` and `fnhost invoke --url`: one
//! HTTP/1.1 request at a time over hyper's client connection, signed with
//! `SDK-HMAC-SHA256` as the SDKs sign (when keys are given), every step
//! under a deadline and the answer's size bounded.

use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::Request;

/// Request and answer headers (hyper's).
pub use hyper::HeaderMap;
/// HTTP methods (hyper's).
pub use hyper::Method;
use hyper_util::rt::TokioIo;

use crate::auth::{sdk_date, sign, SignedRequest};

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
        let host = HeaderValue::from_str(&self.authority).map_err(|e| no_answer(e.to_string()))?;
        headers.insert(hyper::header::HOST, host);
        if let Some((ak, sk)) = &self.keys {
            let date = HeaderValue::from_str(&sdk_date(SystemTime::now()))
                .map_err(|e| no_answer(e.to_string()))?;
            headers.insert(HeaderName::from_static("x-sdk-date"), date);
            let authorization = sign(
                ak,
                sk,
                &SignedRequest {
                    method: method.as_str(),
                    path,
                    query,
                    headers: &headers,
                    body: &body,
                },
            );
            let value =
                HeaderValue::from_str(&authorization).map_err(|e| no_answer(e.to_string()))?;
            headers.insert(hyper::header::AUTHORIZATION, value);
        }
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

/// Why a deploy did not happen (or did not finish).
#[derive(Debug, thiserror::Error)]
pub enum DeployFailure {
    /// The server did not answer.
    #[error(transparent)]
    NoAnswer(#[from] ClientError),
    /// The server refused the request's signature (or its absence).
    #[error("the server refused the signature ({status}): {message}; check FNHOST_ACCESS_KEY and FNHOST_SECRET_KEY")]
    Refused {
        /// 401 or 403.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The server refused the package or the configuration.
    #[error("the server refused {what} ({status}): {message}")]
    Rejected {
        /// What was sent.
        what: &'static str,
        /// The status.
        status: u16,
        /// The server's message.
        message: String,
    },
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    /// The function's URN.
    pub urn: String,
    /// Whether it was created (else updated).
    pub created: bool,
    /// Triggers created (the manifest's that did not exist yet).
    pub triggers_created: usize,
}

/// The base path of project `project`'s functions.
fn functions_path(project: &str) -> String {
    format!(
        "/v2/{}/fgs/functions",
        crate::auth::encode(project.as_bytes())
    )
}

fn check(answer: Answer, what: &'static str) -> Result<Answer, DeployFailure> {
    match answer.status {
        200..=299 => Ok(answer),
        status @ (401 | 403) => Err(DeployFailure::Refused {
            status,
            message: answer.error_message(),
        }),
        status => Err(DeployFailure::Rejected {
            what,
            status,
            message: answer.error_message(),
        }),
    }
}

/// The configuration fields of `manifest` in the API's shape.
fn config_body(manifest: &fnhost_manifest::Manifest) -> serde_json::Value {
    let user_data = if manifest.user_data.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&manifest.user_data).unwrap_or_default()
    };
    serde_json::json!({
        "handler": manifest.handler,
        "memory_size": manifest.memory_mb,
        "timeout": manifest.timeout_s,
        "user_data": user_data,
        "initializer_handler": manifest.initializer_entry().unwrap_or_default(),
        "initializer_timeout": manifest.initializer_timeout_s.unwrap_or(0),
        "isolation": manifest.isolation.unwrap_or_default(),
        "sandbox": manifest.sandbox.clone().unwrap_or_default(),
        "concurrent_num": manifest.concurrency.per_instance,
    })
}

/// The manifest's triggers in the API's shape: `(type, event_data)`.
fn trigger_bodies(manifest: &fnhost_manifest::Manifest) -> Vec<(&'static str, serde_json::Value)> {
    manifest
        .triggers
        .iter()
        .filter_map(|t| match t {
            fnhost_manifest::Trigger::Apig { path, method } => Some((
                "APIG",
                serde_json::json!({"path": path, "req_method": method}),
            )),
            fnhost_manifest::Trigger::Timer {
                schedule,
                user_event,
            } => {
                let (kind, rest) = fnhost_manifest::split_schedule(schedule)?;
                Some((
                    "TIMER",
                    serde_json::json!({
                        "schedule_type": kind,
                        "schedule": rest,
                        "user_event": user_event.clone().unwrap_or_default(),
                    }),
                ))
            }
        })
        .collect()
}

/// Creates the function `manifest` describes with the code package `zip`
/// (declaring `runtime`, e.g. `Go1.x`, when it creates it), or updates its code and configuration, then its instance limits, then
/// creates the manifest's triggers the function does not have yet. An
/// update that the server keeps but cannot load (`last_update_status`
/// `Failed`) is an error with the server's reason.
pub fn deploy(
    client: &Client,
    project: &str,
    manifest: &fnhost_manifest::Manifest,
    runtime: &str,
    zip: &[u8],
) -> Result<Deployed, DeployFailure> {
    use base64::Engine as _;
    let base = functions_path(project);
    let name = crate::auth::encode(manifest.name.as_bytes());
    let file = base64::engine::general_purpose::STANDARD.encode(zip);
    let existing = client.json(
        Method::GET,
        &format!("{base}/{name}/config"),
        &serde_json::Value::Null,
    )?;
    let (record, created) = match existing.status {
        200 => {
            let code = serde_json::json!({"code_type": "zip", "func_code": {"file": file}});
            check(
                client.json(Method::PUT, &format!("{base}/{name}/code"), &code)?,
                "the code package",
            )?;
            let record = check(
                client.json(
                    Method::PUT,
                    &format!("{base}/{name}/config"),
                    &config_body(manifest),
                )?,
                "the configuration",
            )?;
            (record.json(), false)
        }
        404 => {
            let mut body = config_body(manifest);
            body["func_name"] = manifest.name.clone().into();
            body["package"] = "default".into();
            body["runtime"] = runtime.into();
            body["code_type"] = "zip".into();
            body["func_code"] = serde_json::json!({"file": file});
            body["description"] = "deployed with fnhost deploy".into();
            let record = check(client.json(Method::POST, &base, &body)?, "the function")?;
            (record.json(), true)
        }
        _ => {
            let status = existing.status;
            let message = existing.error_message();
            return Err(match check(existing, "the request") {
                Err(e) => e,
                Ok(_) => DeployFailure::Rejected {
                    what: "the request",
                    status,
                    message,
                },
            });
        }
    };
    if record["last_update_status"] == "Failed" {
        return Err(DeployFailure::Rejected {
            what: "the new code or configuration",
            status: 200,
            message: format!(
                "it is kept but does not load, and the previous version keeps serving: {}",
                record["last_update_status_reason"].as_str().unwrap_or("")
            ),
        });
    }
    let c = &manifest.concurrency;
    check(
        client.json(
            Method::PUT,
            &format!("{base}/{name}/config-max-instance"),
            &serde_json::json!({"max_instance_num": c.max_instances}),
        )?,
        "the instance limit",
    )?;
    check(
        client.json(
            Method::PUT,
            &format!("{base}/{name}/reservedinstances"),
            &serde_json::json!({"count": c.reserved}),
        )?,
        "the reserved instances",
    )?;
    let urn = record["func_urn"].as_str().unwrap_or_default().to_owned();
    let triggers_path = format!(
        "/v2/{}/fgs/triggers/{}",
        crate::auth::encode(project.as_bytes()),
        crate::auth::encode(urn.as_bytes())
    );
    let listed = check(
        client.json(Method::GET, &triggers_path, &serde_json::Value::Null)?,
        "the trigger listing",
    )?
    .json();
    let have: Vec<(String, serde_json::Value)> = listed
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["trigger_type_code"].as_str().unwrap_or("").to_owned(),
                t["event_data"].clone(),
            )
        })
        .collect();
    let mut triggers_created = 0;
    for (kind, event_data) in trigger_bodies(manifest) {
        let exists = have.iter().any(|(k, data)| {
            k == kind
                && event_data
                    .as_object()
                    .into_iter()
                    .flatten()
                    .all(|(key, value)| &data[key] == value)
        });
        if exists {
            continue;
        }
        let body = serde_json::json!({
            "trigger_type_code": kind,
            "trigger_status": "ACTIVE",
            "event_data": event_data,
        });
        check(
            client.json(Method::POST, &triggers_path, &body)?,
            "a trigger",
        )?;
        triggers_created += 1;
    }
    Ok(Deployed {
        urn,
        created,
        triggers_created,
    })
}
