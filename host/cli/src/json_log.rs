//! `--log-format json`: the server's log as one JSON object per line,
//! `{"time", "level", "target", "message", "request_id", "trace_id", ...}`,
//! with every key-value field of the record and `request_id`/`trace_id`
//! always present (`null` on lines that belong to no invocation), for log
//! shippers. Filtering is `RUST_LOG`'s, through env_logger's filter. About
//! fifty lines over `log`'s key-values rather than a logging framework: the
//! server and runtime log through `log`, and the text format stays
//! env_logger's.

use std::io::Write as _;

use log::kv::{Key, Value, VisitSource};

struct JsonLogger {
    filter: env_filter::Filter,
}

struct Fields(serde_json::Map<String, serde_json::Value>);

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let value = match value.to_borrowed_str() {
            Some("-") | Some("") => serde_json::Value::Null,
            Some(s) => serde_json::Value::String(s.to_owned()),
            None => serde_json::Value::String(value.to_string()),
        };
        self.0.insert(key.as_str().to_owned(), value);
        Ok(())
    }
}

impl log::Log for JsonLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.filter.matches(record) {
            return;
        }
        let mut fields = Fields(serde_json::Map::new());
        let time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        fields.0.insert("time".into(), time.into());
        fields
            .0
            .insert("level".into(), record.level().as_str().into());
        fields.0.insert("target".into(), record.target().into());
        fields
            .0
            .insert("message".into(), record.args().to_string().into());
        fields
            .0
            .insert("request_id".into(), serde_json::Value::Null);
        fields.0.insert("trace_id".into(), serde_json::Value::Null);
        let _ = record.key_values().visit(&mut fields);
        let mut line = serde_json::Value::Object(fields.0).to_string();
        line.push('\n');
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the JSON logger with `RUST_LOG`'s filter (`default` when unset).
pub(crate) fn init(default: &str) {
    let mut builder = env_filter::Builder::new();
    builder.parse(&std::env::var("RUST_LOG").unwrap_or_else(|_| default.to_owned()));
    let filter = builder.build();
    log::set_max_level(filter.filter());
    let _ = log::set_boxed_logger(Box::new(JsonLogger { filter }));
}
