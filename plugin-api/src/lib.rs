//! # fnhost-api
//!
//! What a handler author depends on to build an fnhost function: a `cdylib`
//! that exports handlers with [`export_plugin!`], each a plain function of the
//! payload and a [`Context`].
//!
//! ```
//! use fnhost_api::{Context, HandlerError, Json};
//!
//! fn handler(payload: &[u8], ctx: &Context) -> Result<Json<serde_json::Value>, HandlerError> {
//!     ctx.logger().info(format_args!("payload {} bytes", payload.len()));
//!     log::info!("the log crate works too");
//!     Ok(Json(serde_json::json!({
//!         "request": ctx.request_id(),
//!         "user": ctx.user_data("NAME"),
//!     })))
//! }
//!
//! fn init(ctx: &Context) -> Result<(), HandlerError> {
//!     ctx.logger().info("warming up");
//!     Ok(())
//! }
//!
//! // In the plugin's crate root (crate-type = ["cdylib"]):
//! // fnhost_api::export_plugin! {
//! //     handlers: { "Handler" => handler },
//! //     initializers: { "Init" => init },
//! // }
//! # let test = fnhost_api::testing::TestContext::new().user_data("NAME", "x");
//! # let out = handler(b"{}", test.context()).unwrap();
//! # assert_eq!(out.0["user"], "x");
//! # init(test.context()).unwrap();
//! ```
//!
//! The ABI underneath is a plain C ABI ([`abi`], `include/fnhost.h`), so the
//! host checks a plugin's version and type layouts before calling it, and
//! plugins can be written in any language with a C FFI.

pub mod abi;
pub mod alloc;
mod context;
mod current;
mod error;
pub mod events;
mod export;
mod log;
mod logger;
mod macros;
mod output;
mod payload;
pub mod testing;

pub use context::Context;
pub use error::{ErrorType, HandlerError, HostCallError, IntoHandlerError, FUNCTION_RETURN_ERROR};
pub use export::{Handler, RawPayload, TypedPayload};
pub use logger::Logger;
pub use output::{IntoOutput, Json, Output};

/// Identifies this SDK in a plugin's descriptor.
pub const SDK_ID: &str = concat!("fnhost-api ", env!("CARGO_PKG_VERSION"));

#[doc(hidden)]
pub mod __private {
    pub use crate::export::{event_of, run_handler, run_initializer};
}
