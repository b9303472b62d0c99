package apig

import (
	"encoding/json"
	"testing"
)

func TestRawBodyAndBase64Response(t *testing.T) {
	var e APIGTriggerEvent
	if err := json.Unmarshal([]byte(`{"isBase64Encoded":true,"body":"aGk=","headers":null}`), &e); err != nil {
		t.Fatal(err)
	}
	if raw, err := e.GetRawBody(); err != nil || string(raw) != "hi" {
		t.Fatalf("GetRawBody: %q %v", raw, err)
	}
	e.IsBase64Encoded = false
	e.Body = "plain"
	if raw, _ := e.GetRawBody(); string(raw) != "plain" {
		t.Fatalf("a plain body is returned as it is: %q", raw)
	}
	r := APIGTriggerResponse{StatusCode: 200}
	r.SetBase64EncodedBody("hi")
	if r.Body != "aGk=" || !r.IsBase64Encoded {
		t.Fatalf("%+v", r)
	}
	if r.String() != `{"body":"aGk=","headers":null,"statusCode":200,"isBase64Encoded":true}` {
		t.Fatal(r.String())
	}
}
