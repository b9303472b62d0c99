package mqtt

import (
	"encoding/json"
	"os"
	"testing"
)

// The sample fnhost's server delivers (the Rust SDK's) parses here.
func TestTheServersSampleParses(t *testing.T) {
	raw, err := os.ReadFile("../../../src/events/samples/mqtt.json")
	if err != nil {
		t.Fatal(err)
	}
	var e MqttTriggerEvent
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	if e.TriggerType != "MQTT" || e.TopicFilter != "orders/#" || len(e.Records) != 1 || e.Records[0].Topic != "orders/paid" {
		t.Fatalf("%+v", e)
	}
}
