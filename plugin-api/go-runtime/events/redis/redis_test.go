package redis

import (
	"encoding/json"
	"os"
	"testing"
)

// The sample fnhost's server delivers (the Rust SDK's) parses here.
func TestTheServersSampleParses(t *testing.T) {
	raw, err := os.ReadFile("../../../src/events/samples/redis.json")
	if err != nil {
		t.Fatal(err)
	}
	var e RedisTriggerEvent
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	if e.TriggerType != "REDIS" || e.Stream != "orders" || len(e.Records) != 1 || e.Records[0].Fields["order"] != "7" {
		t.Fatalf("%+v", e)
	}
}
