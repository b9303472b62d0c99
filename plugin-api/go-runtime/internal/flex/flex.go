// Package flex reads JSON values that real event producers send in more
// than one shape.
package flex

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// String reads a JSON string, number or null as a string ("" for null or
// absent): DIS sequence numbers and DDS sizes arrive both ways.
func String(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", fmt.Errorf("expected a string or a number, got %s", raw)
	}
	return n.String(), nil
}

// Object reads a JSON object, or a JSON string holding one, into v.
func Object(raw json.RawMessage, v interface{}) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		raw = []byte(s)
	}
	return json.Unmarshal(raw, v)
}

// JSON is v encoded, for the events' String methods.
func JSON(v interface{}) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}
