//! [`Logger`]: lines into the invocation's log (FunctionGraph's
//! `GetLogger().Logf`).

use core::fmt;

use crate::abi::level;
use crate::Context;

/// Writes lines into the invocation's log. The host prefixes each line with
/// `<RFC3339 UTC time with ms> <request id> `, keeps the last 4 KB for the
/// caller and writes every line to its own log.
///
/// ```
/// # let test = fnhost_api::testing::TestContext::new().request_id("req-1");
/// # let ctx = test.context();
/// ctx.logger().info(format_args!("payload {} bytes", 42));
/// ctx.logger().logf(format_args!("done"));
/// assert_eq!(test.log(), "payload 42 bytes\ndone\n");
/// ```
#[derive(Clone, Copy)]
pub struct Logger<'a> {
    ctx: &'a Context,
}

impl<'a> Logger<'a> {
    pub(crate) fn new(ctx: &'a Context) -> Logger<'a> {
        Logger { ctx }
    }

    /// Logs at `level` (one of [`crate::abi::level`]).
    pub fn log(&self, level: u32, message: impl fmt::Display) {
        // Format once; a plain `&str` argument is written without copying.
        match format_args!("{message}").as_str() {
            Some(s) => self.ctx.write_log(level, s),
            None => self.ctx.write_log(level, &message.to_string()),
        }
    }

    /// Go's `Logf`: an informational line.
    pub fn logf(&self, message: fmt::Arguments<'_>) {
        match message.as_str() {
            Some(s) => self.ctx.write_log(level::INFO, s),
            None => self.ctx.write_log(level::INFO, &message.to_string()),
        }
    }

    /// An informational line.
    pub fn info(&self, message: impl fmt::Display) {
        self.log(level::INFO, message)
    }

    /// A warning.
    pub fn warn(&self, message: impl fmt::Display) {
        self.log(level::WARN, message)
    }

    /// An error line.
    pub fn error(&self, message: impl fmt::Display) {
        self.log(level::ERROR, message)
    }

    /// A debug line.
    pub fn debug(&self, message: impl fmt::Display) {
        self.log(level::DEBUG, message)
    }
}

impl Context {
    /// The invocation's logger (`GetLogger`).
    pub fn logger(&self) -> Logger<'_> {
        Logger::new(self)
    }
}
