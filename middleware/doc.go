// Package middleware holds the gateway's HTTP middleware: request ids and the
// access log, panic recovery, auth, metrics, body limits and deadlines.
package middleware
