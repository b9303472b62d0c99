// One Go handler that does, on request, each thing the Go tests check: the
// payload names the case (a JSON string, or the bare word).
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"huaweicloud.com/go-runtime/go-api/context"
	"huaweicloud.com/go-runtime/pkg/runtime"
)

type quotaError struct{}

func (quotaError) Error() string     { return "quota exhausted" }
func (quotaError) ErrorType() string { return "QuotaError" }

// BUILD is replaced by the hot-swap test to tell two builds apart.
var BUILD = "1"

var leaked context.RuntimeContext

func Cases(payload []byte, ctx context.RuntimeContext) (interface{}, error) {
	switch strings.Trim(strings.TrimSpace(string(payload)), `"`) {
	case "error":
		return "ignored", errors.New("the order was not found")
	case "typed-error":
		return nil, quotaError{}
	case "panic":
		panic("handler gave up")
	case "nil-deref":
		var m *map[string]int
		return (*m)["x"], nil
	case "println":
		fmt.Println("from fmt.Println")
		fmt.Fprintln(os.Stderr, "from stderr")
		ctx.GetLogger().Logf("from Logf %d", 7)
		return "printed", nil
	case "context":
		return map[string]interface{}{
			"request_id": ctx.GetRequestID(), "remaining_ms": ctx.GetRemainingTimeInMilliSeconds(),
			"running_s": ctx.GetRunningTimeInSeconds(), "function": ctx.GetFunctionName(),
			"version": ctx.GetVersion(), "alias": ctx.GetAlias(), "package": ctx.GetPackage(),
			"project": ctx.GetProjectID(), "memory": ctx.GetMemorySize(), "cpu": ctx.GetCPUNumber(),
			"user": ctx.GetUserData("GREETING"), "missing": ctx.GetUserData("NOPE"),
			"token": ctx.GetToken(), "security_token": ctx.GetSecurityToken(),
			"security_access_key": ctx.GetSecurityAccessKey(), "security_secret_key": ctx.GetSecuritySecretKey(),
			"access_key": ctx.GetAccessKey(), "secret_key": ctx.GetSecretKey(),
			"trace_id": context.TraceID(ctx),
		}, nil
	case "callhost":
		out, err := context.CallHost(ctx, ctx.GetUserData("HOST_FUNCTION"), []byte("k1"))
		if err != nil {
			return nil, err
		}
		return string(out), nil
	case "bytes":
		return []byte{0, 1, 2, 255}, nil
	case "nil":
		return nil, nil
	case "unencodable":
		return make(chan int), nil
	case "sleep":
		time.Sleep(30 * time.Second)
		return "woke", nil
	// Every line written before the end reaches the call's log.
	case "log-then-timeout", "log-then-crash", "log-then-oom":
		ctx.GetLogger().Logf("logged before the end")
		fmt.Println("printed before the end")
		fmt.Fprintln(os.Stderr, "on stderr before the end")
		switch strings.Trim(strings.TrimSpace(string(payload)), `"`) {
		case "log-then-timeout":
			time.Sleep(30 * time.Second)
		case "log-then-crash":
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Second)
		case "log-then-oom":
			var held [][]byte
			for {
				block := make([]byte, 16<<20)
				for i := range block {
					block[i] = 1
				}
				held = append(held, block)
			}
		}
		return "survived", nil
	case "leak":
		leaked = ctx
		return "kept", nil
	case "use-leaked":
		// A context kept past its call reads nothing of the host.
		if leaked == nil {
			return "none", nil
		}
		leaked.GetLogger().Logf("late")
		return "[" + leaked.GetRequestID() + "]", nil
	case "build":
		return BUILD, nil
	// The escape suite's Go equivalents (tests/sandbox.rs): in a sandboxed
	// worker each fails.
	case "kill-parent":
		parent := os.Getppid()
		return fmt.Sprintf("kill(%d, SIGKILL): %v", parent, syscall.Kill(parent, syscall.SIGKILL)), nil
	case "environment":
		return os.Environ(), nil
	}
	if word := strings.Trim(strings.TrimSpace(string(payload)), `"`); strings.HasPrefix(word, "read:") {
		path := strings.TrimPrefix(word, "read:")
		data, err := os.ReadFile(path)
		if err != nil {
			return err.Error(), nil
		}
		return fmt.Sprintf("read %d bytes", len(data)), nil
	}
	switch strings.Trim(strings.TrimSpace(string(payload)), `"`) {
	case "goroutine-panic":
		// Nothing closes done: the handler waits until the panic ends
		// the process (a deferred close raced the process's end with
		// the handler's answer).
		done := make(chan struct{})
		go func() { panic("in a goroutine of its own") }()
		<-done
		return "unreachable", nil
	}
	return map[string]string{"echo": string(payload)}, nil
}

func main() {
	runtime.Register(Cases)
}
