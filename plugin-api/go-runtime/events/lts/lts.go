// Package lts is the Log Tank Service (LTS) trigger's event.
package lts

import (
	"encoding/base64"

	"huaweicloud.com/go-runtime/internal/flex"
)

// LTSTriggerEvent carries log data, base64-encoded.
type LTSTriggerEvent struct {
	Lts LTSBody `json:"lts"`
}

// LTSBody holds the data.
type LTSBody struct {
	Data string `json:"data"`
}

// GetRawData is the log data, base64-decoded.
func (b *LTSBody) GetRawData() ([]byte, error) {
	return base64.StdEncoding.DecodeString(b.Data)
}

// GetRawData is the event's log data, base64-decoded.
func (e *LTSTriggerEvent) GetRawData() ([]byte, error) { return e.Lts.GetRawData() }

// String is the event as JSON.
func (e LTSTriggerEvent) String() string { return flex.JSON(e) }
