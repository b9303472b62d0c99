//! {{name}}: an fnhost handler. `fnhost.toml` describes the function;
//! `cargo build --release` builds it; `fnhost invoke --data '{"name": "ada"}'`
//! runs it.

use fnhost_api::{Context, HandlerError, Json};
use serde::Deserialize;
use serde_json::{json, Value};

/// What the handler takes: `{"name": "..."}`, every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Request {
    /// Who to greet (default `world`).
    pub name: Option<String>,
}

/// Greets `name` with the `GREETING` user data (default `hello`).
pub fn handler(request: Json<Request>, ctx: &Context) -> Result<Json<Value>, HandlerError> {
    let name = request.0.name.unwrap_or_else(|| "world".to_owned());
    let greeting = ctx.user_data("GREETING").unwrap_or("hello");
    // Both loggers write into the invocation's log.
    ctx.logger().info(format_args!("greeting {name}"));
    log::info!("greeting from user data: {greeting}");
    Ok(Json(json!({
        "message": format!("{greeting}, {name}"),
        "request_id": ctx.request_id(),
    })))
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
    fn greets_by_name_with_the_configured_greeting() {
        let test = TestContext::new().user_data("GREETING", "hi");
        let request = Request {
            name: Some("ada".into()),
        };
        let out = handler(Json(request), test.context()).unwrap();
        assert_eq!(out.0["message"], "hi, ada");
        assert!(test.log().contains("greeting ada"), "{}", test.log());
    }
}
