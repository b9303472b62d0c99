//! {{name}}: an fnhost handler behind an APIG (HTTP) trigger. `fnhost.toml`
//! describes the function and its route; `cargo build --release` builds it;
//! `fnhost event apig | fnhost invoke` runs it with a sample request.

use fnhost_api::events::{ApigEvent, ApigResponse};
use fnhost_api::{Context, HandlerError};
use serde_json::json;

/// Answers every request with what it was: method, path, query, and the
/// `GREETING` user data (default `hello`).
pub fn handler(event: ApigEvent, ctx: &Context) -> Result<ApigResponse, HandlerError> {
    // Both loggers write into the invocation's log.
    ctx.logger()
        .info(format_args!("{} {}", event.http_method, event.path));
    log::info!("{} query parameters", event.query_string_parameters.len());
    let body = json!({
        "greeting": ctx.user_data("GREETING").unwrap_or("hello"),
        "method": event.http_method,
        "path": event.path,
        "query": event.query_string_parameters,
        "request_id": ctx.request_id(),
    });
    Ok(ApigResponse::new(200)
        .with_header("content-type", "application/json")
        .with_body(body.to_string()))
}

/// Runs once per instance, before its first call.
pub fn init(ctx: &Context) -> Result<(), HandlerError> {
    ctx.logger().info("{{name}} initialized");
    Ok(())
}

fnhost_api::export_plugin! {
    handlers: { "Handler" => handler },
    initializers: { "Init" => init },
}

#[cfg(test)]
mod tests {
    use fnhost_api::testing::TestContext;

    use super::*;

    #[test]
    fn answers_with_the_request_it_got() {
        let test = TestContext::new();
        let event = ApigEvent::new("GET", "/{{name}}").with_query("q", "1");
        let response = handler(event, test.context()).unwrap();
        assert_eq!(response.status_code, 200);
        let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(body["query"]["q"], "1");
        assert!(test.log().contains("GET /{{name}}"), "{}", test.log());
    }
}
