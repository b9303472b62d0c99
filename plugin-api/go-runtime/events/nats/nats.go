// Package nats is fnhost's NATS trigger's event: a batch of messages of a
// JetStream stream, read by a durable pull consumer (fnhost's own trigger
// type).
package nats

import "huaweicloud.com/go-runtime/internal/flex"

// NatsTriggerEvent is a batch of messages, in stream order.
type NatsTriggerEvent struct {
	TriggerType string       `json:"trigger_type"`
	EventTime   string       `json:"event_time"`
	Stream      string       `json:"stream"`
	Consumer    string       `json:"consumer"`
	Records     []NatsRecord `json:"records"`
}

// NatsRecord is one message. Data is text, or base64 when DataEncoding is
// "base64".
type NatsRecord struct {
	Id            string            `json:"id"`
	Subject       string            `json:"subject"`
	Data          string            `json:"data"`
	DataEncoding  string            `json:"data_encoding"`
	Headers       map[string]string `json:"headers"`
	DeliveryCount uint64            `json:"delivery_count"`
}

// String is the event as JSON.
func (e NatsTriggerEvent) String() string { return flex.JSON(e) }
