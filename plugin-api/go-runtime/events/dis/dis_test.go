package dis

import (
	"encoding/json"
	"testing"
)

func TestSequenceNumbersAsStringsOrNumbers(t *testing.T) {
	in := `{"ShardID":"s","Message":{"next_partition_cursor":null,"records":[
		{"partition_key":"a","data":"d2VsY29tZQ==","sequence_number":"7"},
		{"partition_key":"b","data":"","sequence_number":8}],"millis_behind_latest":12},
		"Tag":"latest","StreamName":"clicks"}`
	var e DISTriggerEvent
	if err := json.Unmarshal([]byte(in), &e); err != nil {
		t.Fatal(err)
	}
	if e.Message.Records[0].SequenceNumber != "7" || e.Message.Records[1].SequenceNumber != "8" {
		t.Fatalf("sequence numbers: %+v", e.Message.Records)
	}
	if e.Message.MillisBehindLatest != "12" {
		t.Fatalf("millis_behind_latest: %q", e.Message.MillisBehindLatest)
	}
	raw, err := e.Message.Records[0].GetRawData()
	if err != nil || string(raw) != "welcome" {
		t.Fatalf("GetRawData: %q %v", raw, err)
	}
	var bad DISTriggerEvent
	if json.Unmarshal([]byte(`{"Message":{"records":[{"sequence_number":{}}]}}`), &bad) == nil {
		t.Fatal("an object as a sequence number is refused")
	}
}
