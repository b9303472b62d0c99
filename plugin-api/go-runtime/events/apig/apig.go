// Package apig is the API Gateway (APIG) trigger's event and response.
package apig

import (
	"encoding/base64"

	"huaweicloud.com/go-runtime/internal/flex"
)

// APIGTriggerEvent is an HTTP request APIG passes to the function.
type APIGTriggerEvent struct {
	IsBase64Encoded       bool               `json:"isBase64Encoded"`
	HttpMethod            string             `json:"httpMethod"`
	Path                  string             `json:"path"`
	Body                  string             `json:"body"`
	PathParameters        map[string]string  `json:"pathParameters"`
	RequestContext        APIGRequestContext `json:"requestContext"`
	Headers               map[string]string  `json:"headers"`
	QueryStringParameters map[string]string  `json:"queryStringParameters"`
	UserData              string             `json:"user_data"`
}

// APIGRequestContext is the APIG configuration of the request.
type APIGRequestContext struct {
	ApiId     string `json:"apiId"`
	RequestId string `json:"requestId"`
	Stage     string `json:"stage"`
	SourceIp  string `json:"sourceIp,omitempty"`
}

// APIGTriggerResponse is what the function answers APIG with.
type APIGTriggerResponse struct {
	Body            string            `json:"body"`
	Headers         map[string]string `json:"headers"`
	StatusCode      int               `json:"statusCode"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
}

// GetRawBody is the body, base64-decoded when IsBase64Encoded.
func (e *APIGTriggerEvent) GetRawBody() ([]byte, error) {
	if !e.IsBase64Encoded {
		return []byte(e.Body), nil
	}
	return base64.StdEncoding.DecodeString(e.Body)
}

// SetRawBody sets the body from raw bytes, base64-encoded (for local tests).
func (e *APIGTriggerEvent) SetRawBody(body []byte) {
	e.Body = base64.StdEncoding.EncodeToString(body)
	e.IsBase64Encoded = true
}

// SetBase64EncodedBody sets the body to body base64-encoded and marks it so.
func (r *APIGTriggerResponse) SetBase64EncodedBody(body string) {
	r.Body = base64.StdEncoding.EncodeToString([]byte(body))
	r.IsBase64Encoded = true
}

// String is the event as JSON.
func (e APIGTriggerEvent) String() string { return flex.JSON(e) }

// String is the response as JSON.
func (r APIGTriggerResponse) String() string { return flex.JSON(r) }
