//! Whether a function's triggers and its handler agree: an APIG trigger hands
//! its handler an HTTP event (`ApigEvent`), and a handler that declares it
//! takes something else (a JSON document of its own, a timer's event) would
//! get that event as its payload: ignored fields, a parse error, an answer
//! that is not HTTP. The handler's event comes from its descriptor (ABI 1.3);
//! a handler that takes bytes, or does not say, may parse the event itself,
//! and gets no warning.

use fnhost_manifest::{Manifest, Trigger};

/// One warning per APIG trigger of `manifest` whose handler declares an
/// event other than `apig`; `handler_events` is the library's table of
/// `(handler, event)`.
pub fn trigger_warnings(manifest: &Manifest, handler_events: &[(String, String)]) -> Vec<String> {
    let handler = manifest.handler.rsplit('.').next().unwrap_or_default();
    let Some((_, event)) = handler_events.iter().find(|(name, _)| name == handler) else {
        return Vec::new();
    };
    if matches!(event.as_str(), "apig" | "bytes" | "") {
        return Vec::new();
    }
    manifest
        .triggers
        .iter()
        .filter_map(|t| match t {
            Trigger::Apig { path, method } => Some(format!(
                "the APIG trigger {method} {path} calls {}, which takes {} (not an APIG event): \
                 it would be handed the HTTP request as a JSON event. Make the handler take \
                 fnhost_api::events::ApigEvent and answer an ApigResponse (`fnhost new --template apig`), \
                 or declare FNHOST_EVENT_APIG in C",
                manifest.handler,
                describe(event)
            )),
            Trigger::Timer { .. }
            | Trigger::Redis { .. }
            | Trigger::Nats { .. }
            | Trigger::Mqtt { .. }
            | Trigger::Rabbitmq { .. }
            | Trigger::Kafka { .. } => None,
        })
        .collect()
}

fn describe(event: &str) -> String {
    match event {
        "json" => "a JSON document of its own type".to_owned(),
        other => format!("a {other} event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(handler: &str, triggers: &str) -> Manifest {
        let text = format!("name = \"orders\"\nhandler = \"{handler}\"\n{triggers}");
        Manifest::parse(&text, std::path::Path::new("fnhost.toml")).unwrap()
    }

    const APIG: &str = "[[triggers]]\ntype = \"APIG\"\npath = \"/orders\"\nmethod = \"POST\"\n";
    const TIMER: &str = "[[triggers]]\ntype = \"TIMER\"\nschedule = \"Rate 5m\"\n";

    fn events(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn an_apig_trigger_on_a_json_handler_is_a_warning() {
        let m = manifest("orders.Handler", APIG);
        let w = trigger_warnings(&m, &events(&[("Handler", "json")]));
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with(
                "the APIG trigger POST /orders calls orders.Handler, which takes a JSON document"
            ),
            "{}",
            w[0]
        );
        let w = trigger_warnings(&m, &events(&[("Other", "apig"), ("Handler", "timer")]));
        assert!(w[0].contains("which takes a timer event"), "{w:?}");
    }

    #[test]
    fn handlers_that_take_apig_bytes_or_say_nothing_agree() {
        let m = manifest("orders.Handler", APIG);
        for event in ["apig", "bytes", ""] {
            assert!(
                trigger_warnings(&m, &events(&[("Handler", event)])).is_empty(),
                "{event}"
            );
        }
        // A timer trigger hands over a timer event: no APIG warning.
        let m = manifest("orders.Handler", TIMER);
        assert!(trigger_warnings(&m, &events(&[("Handler", "json")])).is_empty());
        // A handler the table lacks is the build's error, not this warning.
        let m = manifest("orders.Missing", APIG);
        assert!(trigger_warnings(&m, &events(&[("Handler", "json")])).is_empty());
    }
}
