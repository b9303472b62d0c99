// The Go echo handler as a Go plugin (-buildmode=plugin), loaded with Go's
// own plugin package: the seed's original mechanism and the benchmark's
// baseline. It imports only the context interface (the fnhost bridge in
// pkg/runtime is for c-shared libraries).
package main

import "huaweicloud.com/go-runtime/go-api/context"

// Handler answers the payload as it is.
func Handler(payload []byte, ctx context.RuntimeContext) (interface{}, error) {
	return payload, nil
}

func main() {}
