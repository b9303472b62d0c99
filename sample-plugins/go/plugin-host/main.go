// The baseline of the Go benchmark: opens a Go plugin with Go's plugin
// package, looks its Handler up, and calls it N times with a 1 KiB payload
// and a context, copying each []byte result out as a host would. Prints
// nanoseconds per call.
package main

import (
	"fmt"
	"os"
	"plugin"
	"strconv"
	"time"

	"huaweicloud.com/go-runtime/go-api/context"
	"huaweicloud.com/go-runtime/pkg/runtime/common"
)

type ctx struct{ id string }

func (c *ctx) GetRequestID() string                { return c.id }
func (c *ctx) GetRemainingTimeInMilliSeconds() int { return 3000 }
func (c *ctx) GetAccessKey() string                { return "" }
func (c *ctx) GetSecretKey() string                { return "" }
func (c *ctx) GetSecurityAccessKey() string        { return "" }
func (c *ctx) GetSecuritySecretKey() string        { return "" }
func (c *ctx) GetSecurityToken() string            { return "" }
func (c *ctx) GetFunctionName() string             { return "echo" }
func (c *ctx) GetUserData(string) string           { return "" }
func (c *ctx) GetLogger() common.RuntimeLogger     { return nil }
func (c *ctx) GetRunningTimeInSeconds() int        { return 3 }
func (c *ctx) GetVersion() string                  { return "latest" }
func (c *ctx) GetMemorySize() int                  { return 128 }
func (c *ctx) GetCPUNumber() int                   { return 300 }
func (c *ctx) GetProjectID() string                { return "" }
func (c *ctx) GetPackage() string                  { return "default" }
func (c *ctx) GetToken() string                    { return "" }
func (c *ctx) GetAlias() string                    { return "" }

var _ context.RuntimeContext = (*ctx)(nil)

func main() {
	p, err := plugin.Open(os.Args[1])
	if err != nil {
		panic(err)
	}
	sym, err := p.Lookup("Handler")
	if err != nil {
		panic(err)
	}
	h := sym.(func([]byte, context.RuntimeContext) (interface{}, error))
	n, _ := strconv.Atoi(os.Args[2])
	payload := make([]byte, 1024)
	var sink []byte
	start := time.Now()
	for i := 0; i < n; i++ {
		out, err := h(payload, &ctx{id: "request"})
		if err != nil {
			panic(err)
		}
		sink = append(sink[:0], out.([]byte)...)
	}
	fmt.Println(float64(time.Since(start).Nanoseconds()) / float64(n))
	_ = sink
}
