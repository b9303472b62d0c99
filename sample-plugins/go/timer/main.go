// The seed's TimerTest as a program of its own: a second Go plugin,
// registered under its own name.
package main

import (
	"encoding/json"
	"fmt"

	"huaweicloud.com/go-runtime/events/timer"
	"huaweicloud.com/go-runtime/go-api/context"
	"huaweicloud.com/go-runtime/pkg/runtime"
)

func TimerTest(payload []byte, ctx context.RuntimeContext) (interface{}, error) {
	var timerEvent timer.TimerTriggerEvent
	err := json.Unmarshal(payload, &timerEvent)
	if err != nil {
		fmt.Println("Unmarshal failed")
		return "invalid data", err
	}
	return timerEvent.String(), nil
}

func main() {
	runtime.Register(TimerTest)
}
