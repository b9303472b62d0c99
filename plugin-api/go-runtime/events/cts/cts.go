// Package cts is the Cloud Trace Service (CTS) trigger's event.
package cts

import (
	"encoding/json"

	"huaweicloud.com/go-runtime/internal/flex"
)

// CTSTriggerEvent is one audit trace.
type CTSTriggerEvent struct {
	CTS CTS `json:"cts"`
}

// CTS is the trace.
type CTS struct {
	Time         int64           `json:"time"`
	User         CTSUser         `json:"user"`
	Request      json.RawMessage `json:"request,omitempty"`
	Response     json.RawMessage `json:"response,omitempty"`
	Code         int             `json:"code"`
	ServiceType  string          `json:"service_type"`
	ResourceType string          `json:"resource_type"`
	ResourceName string          `json:"resource_name,omitempty"`
	ResourceId   string          `json:"resource_id,omitempty"`
	TraceName    string          `json:"trace_name"`
	TraceType    string          `json:"trace_type"`
	RecordTime   int64           `json:"record_time"`
	TraceId      string          `json:"trace_id"`
	TraceStatus  string          `json:"trace_status"`
}

// CTSUser is who acted.
type CTSUser struct {
	Name   string    `json:"name"`
	Id     string    `json:"id"`
	Domain CTSDomain `json:"domain"`
}

// CTSDomain is the user's account.
type CTSDomain struct {
	Name string `json:"name"`
	Id   string `json:"id"`
}

// String is the event as JSON.
func (e CTSTriggerEvent) String() string { return flex.JSON(e) }
