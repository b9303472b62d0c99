// Returns its payload: the Go handler of the benchmarks.
package main

import (
	"huaweicloud.com/go-runtime/go-api/context"
	"huaweicloud.com/go-runtime/pkg/runtime"
)

// Echo answers the payload as it is.
func Echo(payload []byte, ctx context.RuntimeContext) (interface{}, error) {
	return payload, nil
}

func main() {
	runtime.Register(Echo)
}
