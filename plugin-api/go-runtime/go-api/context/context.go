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
