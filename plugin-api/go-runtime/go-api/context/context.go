// Package context is the invocation context a FunctionGraph Go handler
// receives: func Handler(payload []byte, ctx context.RuntimeContext) (interface{}, error).
//
// A RuntimeContext is valid while its handler call runs. After the handler
// returns, its methods return zero values (a goroutine that outlives the call
// reads nothing of the host).
package context

import "huaweicloud.com/go-runtime/pkg/runtime/common"

// RuntimeContext is the context of one invocation, with the method set of
// FunctionGraph's Go runtime SDK.
type RuntimeContext interface {
	// GetRequestID is the invocation's request id.
	GetRequestID() string
	// GetRemainingTimeInMilliSeconds is the time left before the timeout,
	// floored at 0.
	GetRemainingTimeInMilliSeconds() int
	// GetAccessKey is the delegated access key. Deprecated by FunctionGraph.
	GetAccessKey() string
	// GetSecretKey is the delegated secret key. Deprecated by FunctionGraph.
	GetSecretKey() string
	// GetSecurityAccessKey is the delegated temporary access key.
	GetSecurityAccessKey() string
	// GetSecuritySecretKey is the delegated temporary secret key.
	GetSecuritySecretKey() string
	// GetSecurityToken is the delegated security token.
	GetSecurityToken() string
	// GetFunctionName is the function's name.
	GetFunctionName() string
	// GetUserData is the configured environment value of key, "" if unset.
	GetUserData(string) string
	// GetLogger writes into the invocation's log.
	GetLogger() common.RuntimeLogger
	// GetRunningTimeInSeconds is the configured timeout in seconds.
	GetRunningTimeInSeconds() int
	// GetVersion is the version invoked ("latest" for the head).
	GetVersion() string
	// GetMemorySize is the configured memory in MB.
	GetMemorySize() int
	// GetCPUNumber is the CPU share in millicores.
	GetCPUNumber() int
	// GetProjectID is the project id.
	GetProjectID() string
	// GetPackage is the function's package (group).
	GetPackage() string
	// GetToken is the delegated token.
	GetToken() string
	// GetAlias is the alias invoked, "" when none.
	GetAlias() string
}

// TraceContext is what a fnhost context adds to FunctionGraph's: the W3C
// trace the invocation belongs to. It is an interface of its own, so that
// fakes of RuntimeContext in handler authors' tests keep compiling; read it
// with TraceID.
type TraceContext interface {
	// GetTraceID is the invocation's W3C trace id (32 lowercase hex
	// digits): the caller's traceparent, or one the host started.
	GetTraceID() string
}

// TraceID is ctx's trace id, or "" when ctx carries none (a fake, or a host
// older than ABI 1.2).
func TraceID(ctx RuntimeContext) string {
	if t, ok := ctx.(TraceContext); ok {
		return t.GetTraceID()
	}
	return ""
}

// HostCaller is what a fnhost context adds from ABI 1.5: host functions,
// which the program running the handler offers by name (registered by an
// embedding program, or offered by fnhost serve). An interface of its own,
// like TraceContext; call it with CallHost.
type HostCaller interface {
	// CallHost calls the host function name with input and answers its
	// output, or a *HostCallError.
	CallHost(name string, input []byte) ([]byte, error)
}

// HostCallError is a host call's typed failure: the host's own
// (HostFunctionNotFound, HostCallInputTooLarge, HostCallLimitExceeded,
// HostCallDepthExceeded, HostFunctionPanicked, HostFunctionUnavailable,
// timeout) or the host function's. A handler that returns it reports the
// same errorType.
type HostCallError struct {
	Type    string
	Message string
}

func (e *HostCallError) Error() string { return e.Type + ": " + e.Message }

// ErrorType is the errorType a handler returning e reports.
func (e *HostCallError) ErrorType() string { return e.Type }

// CallHost calls ctx's host function name with input. A context that has
// none (a fake, or a host older than ABI 1.5) answers a *HostCallError of
// type HostFunctionsUnsupported.
func CallHost(ctx RuntimeContext, name string, input []byte) ([]byte, error) {
	if h, ok := ctx.(HostCaller); ok {
		return h.CallHost(name, input)
	}
	return nil, &HostCallError{Type: "HostFunctionsUnsupported", Message: "this context has no host functions"}
}

// CancelContext is what a fnhost context adds from ABI 1.5: whether the
// invocation's caller cancelled it (its result will be discarded). Read it
// with IsCancelled.
type CancelContext interface {
	IsCancelled() bool
}

// IsCancelled reports whether ctx's caller cancelled the invocation: a
// handler that checks it in a long loop can stop early. False for a
// context without it (a fake, or a host older than ABI 1.5).
func IsCancelled(ctx RuntimeContext) bool {
	if c, ok := ctx.(CancelContext); ok {
		return c.IsCancelled()
	}
	return false
}
