// Package kafka is the Kafka (DMS for Kafka) trigger's event.
package kafka

import "huaweicloud.com/go-runtime/internal/flex"

// KAFKATriggerEvent is a batch of messages.
type KAFKATriggerEvent struct {
	InstanceId   string        `json:"instance_id"`
	Records      []KAFKARecord `json:"records"`
	TriggerType  string        `json:"trigger_type"`
	Region       string        `json:"region"`
	EventTime    int64         `json:"event_time"`
	EventVersion string        `json:"event_version"`
}

// KAFKARecord is the messages of one topic.
type KAFKARecord struct {
	Messages []string `json:"messages"`
	TopicId  string   `json:"topic_id"`
}

// String is the event as JSON.
func (e KAFKATriggerEvent) String() string { return flex.JSON(e) }
