//go:build tools

// Package tools records the command this module builds so `go mod tidy` keeps its
// dependencies; it is never compiled.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
