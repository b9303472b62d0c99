//! The seed's trigger examples, one for one, through the library and through
//! `fnhost event TYPE | fnhost invoke testplugin.XTest`, with good and
//! malformed events.
// Tests: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use fnhost::{FunctionConfig, Outcome, Runtime};
use fnhost_api::events::{samples, ApigEvent, ApigResponse, TimerEvent};
use fnhost_e2e::{assert_log_prefix, cache_dir, fnhost_bin, plugin_dir, runtime};
use serde_json::Value;

const EXAMPLES: [(&str, &str); 8] = [
    ("apig", "ApigTest"),
    ("timer", "TimerTest"),
    ("kafka", "KafkaTest"),
    ("smn", "SmnTest"),
    ("dis", "DisTest"),
    ("cts", "CtsTest"),
    ("dds", "DdsTest"),
    ("lts", "LtsTest"),
];

fn invoke(rt: &Runtime, handler: &str, payload: &[u8]) -> fnhost::InvokeResult {
    rt.load(FunctionConfig::new(
        format!("testplugin.{handler}"),
        plugin_dir(),
    ))
    .unwrap()
    .invoke(payload)
    .unwrap()
}

#[test]
fn every_example_handles_its_sample_event_through_the_library() {
    let rt = runtime();
    for (kind, handler) in EXAMPLES {
        let event = samples::sample(kind).unwrap();
        let r = invoke(&rt, handler, event.as_bytes());
        let Outcome::Success(body) = &r.outcome else {
            panic!("{handler}: {:?}", r.outcome)
        };
        let body = String::from_utf8(body.bytes.clone()).unwrap();
        match kind {
            "apig" => {
                let resp: ApigResponse = serde_json::from_str(&body).unwrap();
                assert_eq!(resp.status_code, 200);
                assert_eq!(resp.headers["content-type"], "application/json");
                let echoed: ApigEvent = serde_json::from_str(&resp.body).unwrap();
                assert_eq!(echoed, event.parse::<ApigEvent>().unwrap());
            }
            "timer" => {
                let echoed: TimerEvent = body.parse().unwrap();
                assert_eq!(echoed, event.parse::<TimerEvent>().unwrap());
                assert!(r.log.is_empty(), "TimerTest does not log");
            }
            _ => assert_eq!(body, "ok", "{handler}"),
        }
        if kind != "timer" {
            let line = r
                .log
                .lines()
                .next()
                .unwrap_or_else(|| panic!("{handler} logged nothing"));
            assert_log_prefix(line, &r.request_id);
            let logged = line.split_once(" payload:").unwrap().1;
            let logged: Value = serde_json::from_str(logged).unwrap();
            let original: Value = serde_json::from_str(event).unwrap();
            assert_eq!(logged, original, "{handler} logs the event's JSON");
        }
    }
}

#[test]
fn malformed_events_are_function_errors_naming_the_event_type() {
    let rt = runtime();
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "ApigTest",
            br#"{"path": "/no-method"}"#,
            "not a valid ApigEvent: missing field `httpMethod`",
        ),
        ("TimerTest", b"[1, 2, 3]", "not a valid TimerEvent"),
        ("DisTest", b"{\"ShardID\": \"s\"", "not a valid DisEvent"),
        ("LtsTest", b"\xff\xfe binary", "not a valid LtsEvent"),
    ];
    for (handler, payload, expected) in cases {
        let r = invoke(&rt, handler, payload);
        let e = r
            .outcome
            .error()
            .unwrap_or_else(|| panic!("{handler} accepted a malformed event"));
        assert_eq!(e.error_type, "FunctionReturnError");
        assert!(e.message.contains(expected), "{handler}: {}", e.message);
    }
}

#[test]
fn a_binary_apig_body_survives_the_round_trip() {
    let rt = runtime();
    let bytes: Vec<u8> = (0..=255u8).collect();
    let event = ApigEvent::new("PUT", "/blob").with_raw_body(&bytes);
    let r = invoke(&rt, "ApigTest", event.to_string().as_bytes());
    let resp: ApigResponse = serde_json::from_slice(&r.outcome.body_bytes()).unwrap();
    let echoed: ApigEvent = serde_json::from_str(&resp.body).unwrap();
    assert_eq!(echoed.raw_body().unwrap().as_ref(), &bytes[..]);
}

fn fnhost(args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new(fnhost_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn fnhost_event_pipes_into_fnhost_invoke_for_every_example() {
    let dir = plugin_dir();
    let cache = cache_dir();
    for (kind, handler) in EXAMPLES {
        let event = fnhost(&["event", kind], b"");
        assert_eq!(event.status.code(), Some(0));
        assert_eq!(
            String::from_utf8_lossy(&event.stdout),
            samples::sample(kind).unwrap()
        );
        let entry = format!("testplugin.{handler}");
        let out = fnhost(
            &[
                "invoke",
                &entry,
                "--code-dir",
                dir.to_str().unwrap(),
                "--cache-dir",
                cache.to_str().unwrap(),
                "--json",
            ],
            &event.stdout,
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{handler}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["result"].is_string(), "{handler}: {v}");
    }
    let out = fnhost(&["event", "obs"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: apig, timer"));

    let out = fnhost(
        &[
            "invoke",
            "testplugin.KafkaTest",
            "--code-dir",
            dir.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--json",
        ],
        br#"{"records": "not a list"}"#,
    );
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["error"]["errorMessage"]
        .as_str()
        .unwrap()
        .contains("not a valid KafkaEvent"));
}
