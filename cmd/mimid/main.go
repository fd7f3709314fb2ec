// Command mimid is the MIMI provider daemon (draft-ralston-mimi-protocol-02):
// one provider domain served by one process (package internal/daemon):
// the federation endpoints over mutually authenticated HTTPS (Section
// 4.1 and 5), the hub and follower roles on a Raft-replicated event log,
// the /notify fanout (Section 5.5), health, readiness and Prometheus
// metrics, and optionally the admin API.
//
// Usage:
//
//	mimid serve [flags]      run a provider until SIGINT or SIGTERM
//	mimid demo [flags]       run the example flow of the draft's Section 3 on
//	                         three providers in this process (-keep, -v, -timeout)
//	mimid version            print the version
//
// The quickest start is dev mode, which creates a local CA and the
// domain's certificate in the data directory on first start:
//
//	go run ./cmd/mimid serve -dev -domain a.example -data ./data/a
//
// Three local providers that trust each other share one dev CA and tell
// each other where they listen:
//
//	mimid serve -dev -dev-ca ./data/ca -domain a.example -data ./data/a -listen 127.0.0.1:8443 -metrics-listen 127.0.0.1:9464 \
//	    -peer b.example=127.0.0.1:8444 -peer c.example=127.0.0.1:8445
//	mimid serve -dev -dev-ca ./data/ca -domain b.example -data ./data/b -listen 127.0.0.1:8444 -metrics-listen 127.0.0.1:9465 \
//	    -peer a.example=127.0.0.1:8443 -peer c.example=127.0.0.1:8445
//	(and c.example likewise)
//
// # Configuration file
//
// Settings come from an optional JSON file (-config; unknown keys are an
// error) and are overridden by the flags given on the command line (a
// repeatable flag replaces the file's list). example-config.json beside
// this file shows every key; they are the json names of
// internal/daemon.Config plus log_format and log_level:
//
//	domain, data_dir              -domain, -data (required)
//	listen, base_url              -listen, -base-url: federation listener and the
//	                              public URL the directory's endpoints use
//	tls.cert_file, tls.key_file   -cert, -key: the domain's certificate
//	tls.ca_files, tls.system_roots  -ca, -system-roots: peers' trust anchors
//	max_body_bytes                -max-body
//	resolve {domain: host:port}   -peer domain=host:port: dial overrides
//	dev, dev_ca_dir               -dev, -dev-ca
//	raft.node_id, raft.bind, raft.advertise, raft.bootstrap, raft.peers[{id, addr}],
//	raft.tls.{cert_file,key_file,ca_files}, raft.allowed_names,
//	raft.heartbeat_timeout, raft.election_timeout, raft.snapshot_interval,
//	raft.snapshot_threshold, raft.trailing_logs
//	                              -raft-id, -raft-bind, -raft-advertise, -raft-bootstrap,
//	                              -raft-peer id=addr, -raft-cert, -raft-key, -raft-ca
//	metrics_listen                -metrics-listen (default 127.0.0.1:9464; "" disables)
//	admin.listen, admin.token_file, admin.token, admin.client_ca_files,
//	admin.cert_file, admin.key_file  -admin-listen, -admin-token-file, -admin-ca,
//	                              -admin-cert, -admin-key (admin is off unless listen is set)
//	hub_key_file, hub_cipher_suite  -hub-key, -hub-suite
//	shutdown_timeout ("15s")      -shutdown-timeout
//	log_format, log_level         -log-format text|json, -log-level debug|info|warn|error
//
// Without raft.bind the node is a standalone single-node Raft (only the
// data directory is needed). Durations are Go duration strings. Logs are structured (log/slog) on stderr,
// text by default or JSON with -log-format json; the startup summary and
// the readiness line go to stdout. The exit status is 0 after a graceful
// shutdown, 1 on a failure and 2 on a usage error.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal starts the graceful shutdown, a second one
		// kills the process (default signal handling).
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
