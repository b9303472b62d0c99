package nats

import (
	"encoding/json"
	"os"
	"testing"
)

// The sample fnhost's server delivers (the Rust SDK's) parses here.
func TestTheServersSampleParses(t *testing.T) {
	raw, err := os.ReadFile("../../../src/events/samples/nats.json")
	if err != nil {
		t.Fatal(err)
	}
	var e NatsTriggerEvent
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	if e.TriggerType != "NATS" || e.Stream != "ORDERS" || len(e.Records) != 1 || e.Records[0].Subject != "orders.paid" {
		t.Fatalf("%+v", e)
	}
}
