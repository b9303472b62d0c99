//! The `log` crate's backend inside a plugin: its macros, used inside a
//! handler, write into the same invocation log as the context's
//! [`Logger`](crate::Logger).

/// The `log` crate backend a plugin installs (through `export_plugin!`):
/// records logged on a thread that is running a handler go to that
/// invocation's log; others go to standard error.
pub(crate) struct InvocationLogBridge;

impl log::Log for InvocationLogBridge {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = record.level() as u32;
        let delivered = crate::current::with_current(|ctx| match record.args().as_str() {
            Some(s) => ctx.write_log(level, s),
            None => ctx.write_log(level, &record.args().to_string()),
        });
        if delivered.is_none() {
            eprintln!("[{} {}] {}", record.level(), record.target(), record.args());
        }
    }

    fn flush(&self) {}
}
