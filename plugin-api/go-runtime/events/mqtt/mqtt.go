// Package mqtt is fnhost's MQTT trigger's event: a batch of messages of a
// QoS 1 subscription (fnhost's own trigger type).
package mqtt

import "huaweicloud.com/go-runtime/internal/flex"

// MqttTriggerEvent is a batch of messages matching the trigger's filter.
type MqttTriggerEvent struct {
	TriggerType string       `json:"trigger_type"`
	EventTime   string       `json:"event_time"`
	TopicFilter string       `json:"topic_filter"`
	Records     []MqttRecord `json:"records"`
}

// MqttRecord is one message. Payload is text, or base64 when
// PayloadEncoding is "base64".
type MqttRecord struct {
	Id              string `json:"id"`
	Topic           string `json:"topic"`
	Payload         string `json:"payload"`
	PayloadEncoding string `json:"payload_encoding"`
	Retain          bool   `json:"retain"`
	Duplicate       bool   `json:"duplicate"`
}

// String is the event as JSON.
func (e MqttTriggerEvent) String() string { return flex.JSON(e) }
