// Package rabbitmq is the RABBITMQ trigger's event: a batch of messages of
// one queue, in the shape of FunctionGraph's DMS events
// (records[].messages[], topic_id), one record per message with fnhost's
// id and AMQP metadata beside.
package rabbitmq

import "huaweicloud.com/go-runtime/internal/flex"

// RabbitMQTriggerEvent is a batch of messages of one queue.
type RabbitMQTriggerEvent struct {
	EventVersion string           `json:"event_version"`
	EventTime    int64            `json:"event_time"`
	TriggerType  string           `json:"trigger_type"`
	Region       string           `json:"region"`
	InstanceId   string           `json:"instance_id"`
	Records      []RabbitMQRecord `json:"records"`
}

// RabbitMQRecord is one message. Messages holds its body: text, or base64
// when DataEncoding is "base64". Id is the itemIdentifier of a partial-batch
// answer (events/batch).
type RabbitMQRecord struct {
	Messages     []string               `json:"messages"`
	TopicId      string                 `json:"topic_id"`
	Id           string                 `json:"id"`
	DataEncoding string                 `json:"data_encoding"`
	Exchange     string                 `json:"exchange"`
	RoutingKey   string                 `json:"routing_key"`
	Redelivered  bool                   `json:"redelivered"`
	MessageId    *string                `json:"message_id"`
	Headers      map[string]interface{} `json:"headers"`
}

// String is the event as JSON.
func (e RabbitMQTriggerEvent) String() string { return flex.JSON(e) }
