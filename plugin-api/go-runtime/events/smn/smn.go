// Package smn is the Simple Message Notification (SMN) trigger's event.
package smn

import (
	"encoding/json"

	"huaweicloud.com/go-runtime/internal/flex"
)

// SMNTriggerEvent is a batch of notifications.
type SMNTriggerEvent struct {
	Record []SMNRecord `json:"record"`
}

// SMNRecord is one notification.
type SMNRecord struct {
	EventVersion         string  `json:"event_version"`
	EventSubscriptionUrn string  `json:"event_subscription_urn"`
	EventSource          string  `json:"event_source"`
	Smn                  SMNBody `json:"smn"`
}

// SMNBody is the message.
type SMNBody struct {
	TopicUrn          string          `json:"topic_urn"`
	TimeStamp         string          `json:"timestamp"`
	MessageAttributes json.RawMessage `json:"message_attributes,omitempty"`
	Message           string          `json:"message"`
	Type              string          `json:"type"`
	MessageId         string          `json:"message_id"`
	Subject           string          `json:"subject,omitempty"`
}

// String is the event as JSON.
func (e SMNTriggerEvent) String() string { return flex.JSON(e) }
