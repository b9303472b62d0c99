// The function {{name}}: a FunctionGraph Go handler. Build it with
// `fnhost build` (go build -buildmode=c-shared -o {{lib}}.so) and try it
// with `fnhost invoke --data '{"name": "fnhost"}'`.
package main

import (
	"encoding/json"
	"fmt"

	"huaweicloud.com/go-runtime/go-api/context"
	"huaweicloud.com/go-runtime/pkg/runtime"
)

type request struct {
	Name string `json:"name"`
}

// Handler greets the name in the payload.
func Handler(payload []byte, ctx context.RuntimeContext) (interface{}, error) {
	var req request
	if err := json.Unmarshal(payload, &req); err != nil {
		return nil, fmt.Errorf("the payload is not a JSON object with a name: %w", err)
	}
	if req.Name == "" {
		req.Name = "world"
	}
	ctx.GetLogger().Logf("greeting %s", req.Name)
	return map[string]interface{}{
		"message":      fmt.Sprintf("%s, %s", ctx.GetUserData("GREETING"), req.Name),
		"request_id":   ctx.GetRequestID(),
		"remaining_ms": ctx.GetRemainingTimeInMilliSeconds(),
	}, nil
}

func main() {
	runtime.Register(Handler)
}
