// The function {{name}}: an HTTP handler behind an APIG trigger. Build it
// with `fnhost build` and try it with `fnhost event apig | fnhost invoke`.
package main

import (
	"encoding/json"
	"fmt"

	"huaweicloud.com/go-runtime/events/apig"
	"huaweicloud.com/go-runtime/go-api/context"
	"huaweicloud.com/go-runtime/pkg/runtime"
)

// Handler answers the request with what it received.
func Handler(payload []byte, ctx context.RuntimeContext) (interface{}, error) {
	var event apig.APIGTriggerEvent
	if err := json.Unmarshal(payload, &event); err != nil {
		return nil, fmt.Errorf("not an APIG event: %w", err)
	}
	body, err := event.GetRawBody()
	if err != nil {
		return nil, err
	}
	ctx.GetLogger().Logf("%s %s, %d bytes", event.HttpMethod, event.Path, len(body))
	answer, _ := json.Marshal(map[string]interface{}{
		"greeting": ctx.GetUserData("GREETING"),
		"method":   event.HttpMethod,
		"path":     event.Path,
		"bytes":    len(body),
	})
	return apig.APIGTriggerResponse{
		StatusCode: 200,
		Headers:    map[string]string{"content-type": "application/json"},
		Body:       string(answer),
	}, nil
}

func main() {
	runtime.Register(Handler)
}
