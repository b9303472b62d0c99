package rabbitmq

import (
	"encoding/json"
	"os"
	"testing"
)

// The sample fnhost's server delivers (the Rust SDK's) parses here.
func TestTheServersSampleParses(t *testing.T) {
	raw, err := os.ReadFile("../../../src/events/samples/rabbitmq.json")
	if err != nil {
		t.Fatal(err)
	}
	var e RabbitMQTriggerEvent
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	if e.TriggerType != "RABBITMQ" || len(e.Records) != 1 || e.Records[0].TopicId != "orders" ||
		e.Records[0].Messages[0] != `{"order": 41, "state": "paid"}` || *e.Records[0].MessageId != "m-41" {
		t.Fatalf("%+v", e)
	}
}
