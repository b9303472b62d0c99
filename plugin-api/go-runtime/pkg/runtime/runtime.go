// Package runtime registers a FunctionGraph Go handler with fnhost.
//
// A program written for FunctionGraph's Go runtime calls Register from
// main(). Built with `go build -buildmode=c-shared -o NAME.so`, it is an
// fnhost plugin: this package carries the fnhost descriptor and the cgo
// trampolines. A c-shared library's main() is never called by Go itself, so
// this package runs it while the library is being loaded; its Register call
// fills in the descriptor before the host reads it. The handler then answers
// to the entry NAME.Handler and to its own name (NAME.ApigTest).
//
// Results follow FunctionGraph's rules: a []byte or a string is the body as
// it is, nil is an empty body, anything else is JSON-encoded (Content-Type:
// application/json). A non-nil error fails the invocation with
// {"errorMessage": err.Error(), "errorType": "FunctionReturnError"} (an error
// with an `ErrorType() string` method names its own type). A panic in the
// handler's goroutine is recovered and reported with errorType "panic"; a
// panic in a goroutine the handler started cannot be recovered by anyone
// and ends the process (a worker process, under process isolation).
package runtime

/*
#include "bridge.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unsafe" // go:linkname, and the host's thread argument

	"huaweicloud.com/go-runtime/go-api/context"
)

// Handler is the shape of a FunctionGraph Go handler.
type Handler = func(payload []byte, ctx context.RuntimeContext) (interface{}, error)

// How long main() may take to reach Register while the library loads.
const registerWait = 5 * time.Second

// In a worker process (process isolation) the host measures the process's
// memory itself and takes no report from the plugin: reading the Go heap
// there was the largest Go-side cost of a call, for nothing.
var inWorkerProcess = os.Getenv("FNHOST_WORKER_PROCESS") != ""

var (
	handler    atomic.Value // Handler
	registered = make(chan string, 1)
	once       sync.Once
)

// The program's main function: Go does not run it in a c-shared library.
//
//go:linkname programMain main.main
func programMain()

// Register makes h the library's handler. Like FunctionGraph's runtime it
// serves from then on and does not return (one handler per program; a
// second call is ignored).
func Register(h Handler) {
	if h == nil {
		fmt.Fprintln(os.Stderr, "go-runtime: runtime.Register(nil)")
		return
	}
	once.Do(func() {
		handler.Store(h)
		registered <- goFuncName(h)
	})
	select {}
}

// goFuncName is the plain name of a top-level function ("ApigTest" of
// main.ApigTest), "" for closures, methods and anything not an identifier.
func goFuncName(h Handler) string {
	f := goruntime.FuncForPC(funcPC(h))
	if f == nil {
		return ""
	}
	full := f.Name()
	name := full[strings.LastIndexByte(full, '.')+1:]
	if strings.Count(full[strings.LastIndexByte(full, '/')+1:], ".") != 1 || name == "Handler" {
		return ""
	}
	for i, r := range name {
		if !(r == '_' || unicode.IsLetter(r) || (i > 0 && unicode.IsDigit(r))) {
			return ""
		}
	}
	return name
}

//export fnhostGoStart
func fnhostGoStart() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				fmt.Fprintf(os.Stderr, "go-runtime: main() panicked before runtime.Register: %v\n", r)
			}
		}()
		programMain()
	}()
	var name string
	ok := false
	select {
	case name = <-registered:
		ok = true
	case <-done:
		fmt.Fprintln(os.Stderr, "go-runtime: main() returned without calling runtime.Register")
	case <-time.After(registerWait):
		fmt.Fprintln(os.Stderr, "go-runtime: main() did not call runtime.Register within 5 s")
	}
	plugin := []byte(programPath())
	cname := []byte(name)
	C.fnhost_go_publish(bytesPtr(plugin), C.size_t(len(plugin)), bytesPtr(cname), C.size_t(len(cname)), boolInt(ok))
}

func programPath() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Path != "" {
		return info.Main.Path
	}
	return "go"
}

// fnhostGoStartThread starts the thread a worker process serves this
// library's calls from (ABI 1.4's fnhost_start_thread): a goroutine locked
// to its thread for good, calling the host's entry(arg), which returns when
// the worker ends. Each call then enters Go from a thread Go created, which
// costs a fraction of entering it from a foreign one.
//
//export fnhostGoStartThread
func fnhostGoStartThread(entry C.fnhost_thread_entry, arg unsafe.Pointer) C.int32_t {
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread ends with the goroutine
		C.fnhost_go_run_entry(entry, arg)
	}()
	return 0
}

//export fnhostGoInvoke
func fnhostGoInvoke(c *C.fnhost_context, ptr *C.uint8_t, n C.size_t) (status C.int32_t) {
	ctx := &runtimeContext{c: c}
	defer ctx.end()
	defer func() {
		if r := recover(); r != nil {
			ctx.logPanic(r)
			ctx.fail("panic", fmt.Sprint(r))
			status = C.FNHOST_STATUS_ERROR
		}
	}()
	h, _ := handler.Load().(Handler)
	if h == nil {
		ctx.fail("HandledInitializationError", "the program registered no handler: main() must call runtime.Register")
		return C.FNHOST_STATUS_ERROR
	}
	payload := copyIn(ptr, n)
	if !inWorkerProcess {
		defer ctx.reportMemory() // on every return, a panic's included
	}
	result, err := h(payload, ctx)
	if err != nil {
		kind := "FunctionReturnError"
		if typed, ok := err.(interface{ ErrorType() string }); ok && typed.ErrorType() != "" {
			kind = typed.ErrorType()
		}
		ctx.fail(kind, err.Error())
		return C.FNHOST_STATUS_ERROR
	}
	switch r := result.(type) {
	case nil:
		ctx.output(C.FNHOST_OUTPUT_EMPTY, nil)
	case []byte:
		ctx.output(C.FNHOST_OUTPUT_BYTES, r)
	case string:
		ctx.output(C.FNHOST_OUTPUT_TEXT, []byte(r))
	default:
		body, err := json.Marshal(r)
		if err != nil {
			ctx.fail("FunctionReturnError", "the result cannot be encoded as JSON: "+err.Error())
			return C.FNHOST_STATUS_ERROR
		}
		ctx.output(C.FNHOST_OUTPUT_JSON, body)
	}
	return C.FNHOST_STATUS_OK
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
