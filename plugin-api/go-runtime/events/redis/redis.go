// Package redis is fnhost's REDIS trigger's event: a batch of entries of a
// Redis stream, read by a consumer group (fnhost's own trigger type;
// FunctionGraph has none).
package redis

import "huaweicloud.com/go-runtime/internal/flex"

// RedisTriggerEvent is a batch of stream entries, in stream order.
type RedisTriggerEvent struct {
	TriggerType string        `json:"trigger_type"`
	EventTime   string        `json:"event_time"`
	Stream      string        `json:"stream"`
	Group       string        `json:"group"`
	Records     []RedisRecord `json:"records"`
}

// RedisRecord is one entry. A value that is not UTF-8 is base64, its field
// named in BinaryFields.
type RedisRecord struct {
	Id            string            `json:"id"`
	Fields        map[string]string `json:"fields"`
	BinaryFields  []string          `json:"binary_fields,omitempty"`
	DeliveryCount uint64            `json:"delivery_count"`
}

// String is the event as JSON.
func (e RedisTriggerEvent) String() string { return flex.JSON(e) }
