// Package dds is the Document Database Service (DDS) trigger's event.
package dds

import (
	"encoding/json"

	"huaweicloud.com/go-runtime/internal/flex"
)

// DDSTriggerEvent is a batch of change-stream records.
type DDSTriggerEvent struct {
	Records []DDSRecord `json:"records"`
}

// DDSRecord is one change.
type DDSRecord struct {
	EventName     string  `json:"event_name"`
	EventVersion  string  `json:"event_version"`
	EventSource   string  `json:"event_source"`
	Region        string  `json:"region"`
	DDS           DDSBody `json:"dds"`
	EventSourceID string  `json:"event_source_id"`
}

// DDSBody is the change itself.
type DDSBody struct {
	SizeBytes    string       `json:"size_bytes"`
	Token        string       `json:"token"`
	FullDocument string       `json:"full_document"`
	Ns           DDSNamespace `json:"ns"`
}

// DDSNamespace is a database and collection.
type DDSNamespace struct {
	Db   string `json:"db"`
	Coll string `json:"coll"`
}

// UnmarshalJSON accepts size_bytes as a string or a number and ns as an
// object or a JSON string holding one (producers send both).
func (b *DDSBody) UnmarshalJSON(data []byte) error {
	var raw struct {
		SizeBytes    json.RawMessage `json:"size_bytes"`
		Token        string          `json:"token"`
		FullDocument string          `json:"full_document"`
		Ns           json.RawMessage `json:"ns"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	size, err := flex.String(raw.SizeBytes)
	if err != nil {
		return err
	}
	var ns DDSNamespace
	if err := flex.Object(raw.Ns, &ns); err != nil {
		return err
	}
	*b = DDSBody{SizeBytes: size, Token: raw.Token, FullDocument: raw.FullDocument, Ns: ns}
	return nil
}

// String is the event as JSON.
func (e DDSTriggerEvent) String() string { return flex.JSON(e) }
