package kafka

import (
	"encoding/json"
	"os"
	"testing"
)

// FunctionGraph's sample parses, and so does a record of fnhost's
// OPENSOURCEKAFKA trigger, with its id, partition, offset and key.
func TestSamplesParse(t *testing.T) {
	raw, err := os.ReadFile("../../../src/events/samples/kafka.json")
	if err != nil {
		t.Fatal(err)
	}
	var e KAFKATriggerEvent
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	if e.TriggerType != "KAFKA" || len(e.Records) != 1 || e.Records[0].TopicId != "orders" || e.Records[0].Partition != nil {
		t.Fatalf("%+v", e)
	}
	fnhost := `{"trigger_type":"KAFKA","event_time":1,"records":[{"messages":["//4="],"topic_id":"t",
		"id":"t/2/41","partition":2,"offset":41,"key":"k","data_encoding":"base64","headers":{"h":null}}]}`
	if err := json.Unmarshal([]byte(fnhost), &e); err != nil {
		t.Fatal(err)
	}
	r := e.Records[0]
	if r.Id != "t/2/41" || *r.Partition != 2 || *r.Offset != 41 || *r.Key != "k" || r.DataEncoding != "base64" {
		t.Fatalf("%+v", r)
	}
}
