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

// KAFKARecord is the messages of one topic. fnhost's OPENSOURCEKAFKA
// trigger gives one record per message, with its Id (topic/partition/offset,
// the itemIdentifier of a partial-batch answer), partition, offset and key;
// FunctionGraph's events have none of these.
type KAFKARecord struct {
	Messages     []string           `json:"messages"`
	TopicId      string             `json:"topic_id"`
	Id           string             `json:"id,omitempty"`
	Partition    *int32             `json:"partition,omitempty"`
	Offset       *int64             `json:"offset,omitempty"`
	Key          *string            `json:"key,omitempty"`
	DataEncoding string             `json:"data_encoding,omitempty"`
	Headers      map[string]*string `json:"headers,omitempty"`
}

// String is the event as JSON.
func (e KAFKATriggerEvent) String() string { return flex.JSON(e) }
