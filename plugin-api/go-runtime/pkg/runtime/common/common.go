// Package common holds the types FunctionGraph's Go runtime SDK shares
// between its context and runtime packages.
package common

// RuntimeLogger writes into the running invocation's log. Each line is
// prefixed with the time (RFC 3339, milliseconds, UTC) and the request id.
type RuntimeLogger interface {
	Logf(format string, args ...interface{})
}
