// Package timer is the timer trigger's event.
package timer

import "huaweicloud.com/go-runtime/internal/flex"

// TimerTriggerEvent is one firing of a timer.
type TimerTriggerEvent struct {
	Version     string `json:"version"`
	Time        string `json:"time"`
	TriggerType string `json:"trigger_type"`
	TriggerName string `json:"trigger_name"`
	UserEvent   string `json:"user_event"`
}

// String is the event as JSON.
func (e TimerTriggerEvent) String() string { return flex.JSON(e) }
