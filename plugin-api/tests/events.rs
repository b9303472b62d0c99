//! Trigger event types against realistic fixtures: exact keys, round trips,
//! tolerated variants, helpers and clear parse errors.
// Tests: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Display;
use std::path::Path;

use fnhost_api::events::{
    samples, ApigEvent, ApigResponse, CtsEvent, DdsEvent, DisEvent, DisRecord, FromPayload,
    KafkaEvent, LtsEvent, RabbitMqEvent, SmnEvent, TimerEvent,
};
use fnhost_api::{IntoOutput, Json, Output};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/events")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// parse → serialize → parse gives the same value, and `Display` is that JSON.
fn round_trip<T>(json: &str) -> T
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug + Display + FromPayload,
{
    let first: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("parse: {e}\n{json}"));
    let written = serde_json::to_string(&first).unwrap();
    let second: T = serde_json::from_str(&written).unwrap();
    assert_eq!(first, second, "round trip changed the event");
    assert_eq!(first.to_string(), written, "Display is the JSON form");
    let via_payload = T::from_payload(json.as_bytes()).unwrap();
    assert_eq!(via_payload, first);
    first
}

/// The canonical samples use every key exactly as the platform spells it, so
/// writing them back yields the same JSON document.
fn exact_keys<T: DeserializeOwned + Serialize>(json: &str) {
    let original: Value = serde_json::from_str(json).unwrap();
    let typed: T = serde_json::from_str(json).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), original);
}

#[test]
fn every_sample_round_trips_with_exact_keys() {
    let s = |k| samples::sample(k).unwrap();
    round_trip::<ApigEvent>(s("apig"));
    exact_keys::<ApigEvent>(s("apig"));
    round_trip::<TimerEvent>(s("timer"));
    exact_keys::<TimerEvent>(s("timer"));
    round_trip::<KafkaEvent>(s("kafka"));
    exact_keys::<KafkaEvent>(s("kafka"));
    round_trip::<SmnEvent>(s("smn"));
    exact_keys::<SmnEvent>(s("smn"));
    round_trip::<DisEvent>(s("dis"));
    exact_keys::<DisEvent>(s("dis"));
    round_trip::<CtsEvent>(s("cts"));
    exact_keys::<CtsEvent>(s("cts"));
    round_trip::<DdsEvent>(s("dds"));
    exact_keys::<DdsEvent>(s("dds"));
    round_trip::<LtsEvent>(s("lts"));
    exact_keys::<LtsEvent>(s("lts"));
    round_trip::<RabbitMqEvent>(s("rabbitmq"));
    exact_keys::<RabbitMqEvent>(s("rabbitmq"));
    assert_eq!(samples::KINDS.len(), 12);
    assert!(samples::sample("APIG").is_some());
    assert!(samples::sample("obs").is_none());
}

#[test]
fn dis_keeps_its_capitalised_top_level_keys() {
    let e: DisEvent = round_trip(samples::sample("dis").unwrap());
    let v = serde_json::to_value(&e).unwrap();
    for key in ["ShardID", "Message", "Tag", "StreamName"] {
        assert!(v.get(key).is_some(), "{key} missing in {v}");
    }
    assert!(v.get("shard_id").is_none());
}

#[test]
fn apig_text_event_tolerates_nulls_and_unknown_fields() {
    let e: ApigEvent = round_trip(&fixture("apig_text_get.json"));
    assert_eq!(e.http_method, "GET");
    assert!(e.query_string_parameters.is_empty());
    assert_eq!(e.request_context.source_ip, None);
    assert_eq!(e.user_data, None);
    assert_eq!(e.raw_body().unwrap().as_ref(), b"");
}

#[test]
fn apig_binary_body_decodes_to_the_original_bytes() {
    let e: ApigEvent = round_trip(&fixture("apig_binary_post.json"));
    let png = e.raw_body().unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(png.len(), 70);
    assert_eq!(e.request_context.source_ip.as_deref(), Some("192.0.2.10"));
    assert_eq!(e.user_data.as_deref(), Some("{\"tenant\": \"acme\"}"));
    // Built from bytes, it matches what the platform sends.
    let rebuilt = ApigEvent::new("POST", "/images/upload").with_raw_body(&png);
    assert_eq!(rebuilt.body, e.body);
    assert!(rebuilt.is_base64_encoded);
}

#[test]
fn apig_raw_body_reports_invalid_base64() {
    let mut e = ApigEvent::new("POST", "/");
    e.body = "not base64!".into();
    e.is_base64_encoded = true;
    assert!(e
        .raw_body()
        .unwrap_err()
        .to_string()
        .contains("invalid base64"));
}

#[test]
fn apig_response_base64_body_and_json_output() {
    let r: ApigResponse = round_trip(&fixture("apig_response_binary.json"));
    assert_eq!(r.raw_body().unwrap(), b"\x00\x01\x02\x03\x04\x05\xff");
    let mut built = ApigResponse::new(201)
        .with_header("content-type", "application/octet-stream")
        .with_header("x-object-id", "42");
    built.set_base64_encoded_body(b"\x00\x01\x02\x03\x04\x05\xff");
    assert_eq!(built, r);
    let Output::Json(json) = built.clone().into_output().unwrap() else {
        panic!("an APIG response is returned as JSON")
    };
    let back: ApigResponse = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, built);
    assert_eq!(ApigResponse::new(204).with_body("x").body, "x");
}

#[test]
fn timer_kafka_smn_variants() {
    let t: TimerEvent = round_trip(&fixture("timer_cron.json"));
    assert_eq!(t, TimerEvent::new("new-year", "2026-01-01T00:00:00Z", ""));
    let k: KafkaEvent = round_trip(&fixture("kafka_minimal.json"));
    assert_eq!(k.region, None);
    assert_eq!(k.records[1].messages.len(), 0);
    let built = KafkaEvent::new("i", "orders", vec!["m".into()]);
    assert_eq!(built.trigger_type, "KAFKA");
    let s: SmnEvent = round_trip(&fixture("smn_attributes_none.json"));
    assert_eq!(
        s.record[0].smn.message_attributes,
        Some(Value::String("None".into()))
    );
    assert_eq!(s.record[0].smn.kind, "notification");
    let built = SmnEvent::new("urn:smn:x", "subject", "body");
    assert_eq!(built.record[0].smn.subject.as_deref(), Some("subject"));
}

#[test]
fn dis_accepts_numeric_sequence_numbers_and_decodes_binary_data() {
    let e: DisEvent = round_trip(&fixture("dis_numeric_binary.json"));
    assert_eq!(e.message.records[0].sequence_number, "17");
    assert_eq!(e.message.millis_behind_latest.as_deref(), Some("0"));
    assert_eq!(e.tag, None);
    let data = e.raw_data().unwrap();
    assert_eq!(data[0], b"\x00\xff\x00\x7f\x80\x81\xfe");
    assert_eq!(data[1], b"welcome");
    let r = DisRecord::from_raw_data("sensor-1", 17, &data[0]);
    assert_eq!(r, e.message.records[0]);
}

#[test]
fn cts_keeps_nested_request_and_response_objects() {
    let e: CtsEvent = round_trip(&fixture("cts_api_call.json"));
    assert_eq!(
        e.cts.request.as_ref().unwrap()["vpc"]["cidr"],
        "192.168.0.0/16"
    );
    assert_eq!(e.cts.resource_name, None);
    assert_eq!(e.cts.user.domain.name, "acme");
}

#[test]
fn dds_namespace_may_arrive_as_a_json_string() {
    let e: DdsEvent = round_trip(&fixture("dds_ns_as_string.json"));
    assert_eq!(e.records[0].dds.ns.db, "functiongraph");
    assert_eq!(e.records[0].dds.ns.coll, "person");
    assert_eq!(e.records[0].dds.size_bytes, "100");
    // Written back as an object.
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["records"][0]["dds"]["ns"]["coll"], "person");
}

#[test]
fn lts_raw_data_is_the_decoded_bytes() {
    let e: LtsEvent = round_trip(&fixture("lts_binary.json"));
    let data = e.raw_data().unwrap();
    assert_eq!(&data[..2], b"\x1f\x8b", "gzip magic");
    assert_eq!(LtsEvent::from_raw_data(&data), e);
}

#[test]
fn malformed_events_fail_naming_the_type_and_the_problem() {
    let e = ApigEvent::from_payload(br#"{"path": "/x"}"#).unwrap_err();
    assert_eq!(e.error_type(), "FunctionReturnError");
    assert!(e.message().contains("not a valid ApigEvent"), "{e}");
    assert!(e.message().contains("missing field `httpMethod`"), "{e}");
    let e = TimerEvent::from_payload(b"not json").unwrap_err();
    assert!(e.message().contains("not a valid TimerEvent"), "{e}");
    let e =
        DisEvent::from_payload(br#"{"ShardID": 1, "Message": {"records": []}, "StreamName": "s"}"#)
            .unwrap_err();
    assert!(e.message().contains("invalid type"), "{e}");
    let e = KafkaEvent::from_payload(b"[]").unwrap_err();
    assert!(e.message().contains("KafkaEvent"), "{e}");
}

#[test]
fn json_payloads_parse_into_any_deserializable_type() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Order {
        id: u32,
    }
    let Json(order) = Json::<Order>::from_payload(br#"{"id": 7}"#).unwrap();
    assert_eq!(order, Order { id: 7 });
    let e = Json::<Order>::from_payload(br#"{"id": "x"}"#).unwrap_err();
    assert!(e.message().contains("not a valid Order"), "{e}");
}

#[test]
fn events_parse_from_str() {
    let t: TimerEvent = samples::sample("timer").unwrap().parse().unwrap();
    assert_eq!(t.trigger_name, "nightly-report");
}
