// Command mimictl is the administrator's CLI for a MIMI provider
// (draft-ralston-mimi-protocol-02): it calls the admin API
// (mimi.admin.v1.AdminService, package httpapi/admin) over Connect RPC
// with TLS.
//
//	mimictl -addr https://hub.example:7443 -token-file admin.token -cacert ca.pem rooms
//	mimictl ... room <id>
//	mimictl ... events [-from N] [-room R] [-follow] [-raw] [-limit N]
//	mimictl ... fanout
//	mimictl ... verify [-room R]... [-skip-replay] [-skip-signatures]
//	mimictl ... cluster
//	mimictl ... cluster add <id> <addr>
//	mimictl ... cluster remove <id>
//
// Credentials: a bearer token (-token, -token-file, or the MIMICTL_TOKEN
// environment variable; prefer the latter two, command lines are visible to
// other users) and/or an admin client certificate (-cert, -key). -cacert
// names the PEM CA bundle that verifies the server (default: the system
// roots). Output is a readable table; -json prints the responses as
// protobuf JSON (one object per line for events). The exit status is 0 on
// success, 1 on any failure (including a verify that found a problem) and
// 2 on a usage error.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
