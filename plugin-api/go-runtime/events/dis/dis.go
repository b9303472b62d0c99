// Package dis is the Data Ingestion Service (DIS) trigger's event. Its
// top-level keys are capitalised, as DIS sends them.
package dis

import (
	"encoding/base64"
	"encoding/json"

	"huaweicloud.com/go-runtime/internal/flex"
)

// DISTriggerEvent is a batch of records polled from a stream.
type DISTriggerEvent struct {
	ShardID    string     `json:"ShardID"`
	Message    DISMessage `json:"Message"`
	Tag        string     `json:"Tag"`
	StreamName string     `json:"StreamName"`
}

// DISMessage holds the records.
type DISMessage struct {
	NextPartitionCursor string      `json:"next_partition_cursor"`
	Records             []DISRecord `json:"records"`
	MillisBehindLatest  string      `json:"millis_behind_latest"`
}

// DISRecord is one record; Data is base64.
type DISRecord struct {
	PartitionKey   string `json:"partition_key"`
	Data           string `json:"data"`
	SequenceNumber string `json:"sequence_number"`
}

// GetRawData is the record's data, base64-decoded.
func (r *DISRecord) GetRawData() ([]byte, error) {
	return base64.StdEncoding.DecodeString(r.Data)
}

// UnmarshalJSON accepts the sequence number as a string or a number.
func (r *DISRecord) UnmarshalJSON(data []byte) error {
	var raw struct {
		PartitionKey   string          `json:"partition_key"`
		Data           string          `json:"data"`
		SequenceNumber json.RawMessage `json:"sequence_number"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	seq, err := flex.String(raw.SequenceNumber)
	if err != nil {
		return err
	}
	*r = DISRecord{PartitionKey: raw.PartitionKey, Data: raw.Data, SequenceNumber: seq}
	return nil
}

// UnmarshalJSON accepts millis_behind_latest as a string or a number.
func (m *DISMessage) UnmarshalJSON(data []byte) error {
	var raw struct {
		NextPartitionCursor string          `json:"next_partition_cursor"`
		Records             []DISRecord     `json:"records"`
		MillisBehindLatest  json.RawMessage `json:"millis_behind_latest"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	behind, err := flex.String(raw.MillisBehindLatest)
	if err != nil {
		return err
	}
	*m = DISMessage{NextPartitionCursor: raw.NextPartitionCursor, Records: raw.Records, MillisBehindLatest: behind}
	return nil
}

// String is the event as JSON.
func (e DISTriggerEvent) String() string { return flex.JSON(e) }
