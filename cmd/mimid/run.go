package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/openmimi/mimi/internal/daemon"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version = ""

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// DefaultMetricsListen is the metrics listener of `mimid serve` unless
// configured otherwise ("" disables it).
const DefaultMetricsListen = "127.0.0.1:9464"

// readyTimeout is how long serve waits for readiness before warning.
const readyTimeout = 60 * time.Second

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "demo":
		return demo(ctx, args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "mimid: unknown command %q\n", args[0])
		usage(stderr)
		return exitUsage
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  mimid serve [flags]   run a MIMI provider (mimid serve -h lists the flags)
  mimid demo [flags]    run the Section 3 example flow on three local providers
  mimid version         print the version

quick start (dev mode: local CA, standalone Raft, no other setup):
  go run ./cmd/mimid serve -dev -domain a.example -data ./data/a
`)
}

// versionString describes the binary.
func versionString() string {
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = " " + s.Value[:12]
			}
		}
	}
	return fmt.Sprintf("mimid %s%s (%s %s/%s)", v, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// fileConfig is the JSON configuration file: the daemon's Config plus the
// logging settings of the command.
type fileConfig struct {
	daemon.Config
	// LogFormat is "text" (default) or "json".
	LogFormat string `json:"log_format,omitempty"`
	// LogLevel is "debug", "info" (default), "warn" or "error".
	LogLevel string `json:"log_level,omitempty"`
}

// errHelp is returned by parseServe for -h.
var errHelp = flag.ErrHelp

// parseServe builds the configuration from the defaults, the -config file
// and the flags, in that order of precedence (flags win).
func parseServe(args []string, stderr io.Writer) (*fileConfig, error) {
	fs := flag.NewFlagSet("mimid serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var pending []func(*fileConfig) error
	reset := map[string]bool{}
	// set registers a flag whose value is applied after the config file.
	set := func(name, usage string, apply func(c *fileConfig, v string) error) {
		fs.Func(name, usage, func(v string) error {
			pending = append(pending, func(c *fileConfig) error {
				if err := apply(c, v); err != nil {
					return fmt.Errorf("-%s: %w", name, err)
				}
				return nil
			})
			return nil
		})
	}
	boolean := func(name, usage string, apply func(c *fileConfig, v bool)) {
		fs.BoolFunc(name, usage, func(v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return err
			}
			pending = append(pending, func(c *fileConfig) error { apply(c, b); return nil })
			return nil
		})
	}
	// list registers a repeatable flag: its first occurrence replaces the
	// file's list, later ones append.
	list := func(name, usage string, field func(c *fileConfig) *[]string) {
		set(name, usage, func(c *fileConfig, v string) error {
			p := field(c)
			if !reset[name] {
				*p, reset[name] = nil, true
			}
			*p = append(*p, v)
			return nil
		})
	}
	str := func(name, usage string, field func(c *fileConfig) *string) {
		set(name, usage, func(c *fileConfig, v string) error { *field(c) = v; return nil })
	}
	configFile := fs.String("config", "", "JSON configuration `file` (see cmd/mimid/example-config.json); flags override it")

	str("domain", "provider `domain`, e.g. a.example (required)", func(c *fileConfig) *string { return &c.Domain })
	str("data", "data `directory` (required): projections, Raft log, hub key, dev certificates", func(c *fileConfig) *string { return &c.DataDir })
	str("listen", "federation HTTPS listen `address` (default "+daemon.DefaultListen+", dev "+daemon.DefaultDevListen+")", func(c *fileConfig) *string { return &c.Listen })
	str("base-url", "public https `URL` of the federation endpoints in the directory (default https://<domain>)", func(c *fileConfig) *string { return &c.BaseURL })
	str("cert", "federation certificate chain PEM `file` (must name the domain; serverAuth+clientAuth)", func(c *fileConfig) *string { return &c.TLS.CertFile })
	str("key", "federation private key PEM `file`", func(c *fileConfig) *string { return &c.TLS.KeyFile })
	list("ca", "trust anchor PEM `file` for peer providers (repeatable)", func(c *fileConfig) *[]string { return &c.TLS.CAFiles })
	boolean("system-roots", "also trust the system's root CAs for peers", func(c *fileConfig, v bool) { c.TLS.SystemRoots = v })
	set("max-body", "federation request body limit in `bytes` (default 4 MiB)", func(c *fileConfig, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid byte count %q", v)
		}
		c.MaxBodyBytes = n
		return nil
	})
	set("peer", "resolver override `domain=host:port` for a peer provider (repeatable; loopback deployments)", func(c *fileConfig, v string) error {
		d, a, ok := strings.Cut(v, "=")
		if !ok || d == "" || a == "" {
			return fmt.Errorf("want domain=host:port, got %q", v)
		}
		if !reset["peer"] {
			c.Resolve, reset["peer"] = nil, true
		}
		if c.Resolve == nil {
			c.Resolve = map[string]string{}
		}
		c.Resolve[d] = a
		return nil
	})

	boolean("dev", "dev mode: create a local CA and the domain's certificate in the data directory", func(c *fileConfig, v bool) { c.Dev = v })
	str("dev-ca", "dev CA `directory` (default <data>/dev-ca); share it between local providers so they trust each other", func(c *fileConfig) *string { return &c.DevCADir })

	str("raft-id", "Raft node `ID` (required to cluster)", func(c *fileConfig) *string { return &c.Raft.NodeID })
	str("raft-bind", "Raft cluster listen `address`; empty runs a standalone node", func(c *fileConfig) *string { return &c.Raft.Bind })
	str("raft-advertise", "Raft `address` peers dial (default the bind address)", func(c *fileConfig) *string { return &c.Raft.Advertise })
	set("raft-peer", "initial voter `id=host:port` (repeatable; with -raft-bootstrap)", func(c *fileConfig, v string) error {
		id, a, ok := strings.Cut(v, "=")
		if !ok || id == "" || a == "" {
			return fmt.Errorf("want id=host:port, got %q", v)
		}
		if !reset["raft-peer"] {
			c.Raft.Peers, reset["raft-peer"] = nil, true
		}
		c.Raft.Peers = append(c.Raft.Peers, daemon.RaftPeer{ID: id, Addr: a})
		return nil
	})
	boolean("raft-bootstrap", "bootstrap a new cluster of this node and the -raft-peer voters", func(c *fileConfig, v bool) { c.Raft.Bootstrap = v })
	str("raft-cert", "Raft cluster certificate PEM `file` (default in dev mode: the federation certificate)", func(c *fileConfig) *string { return &c.Raft.TLS.CertFile })
	str("raft-key", "Raft cluster private key PEM `file`", func(c *fileConfig) *string { return &c.Raft.TLS.KeyFile })
	list("raft-ca", "Raft cluster CA PEM `file` (repeatable; default in dev mode: the dev CA)", func(c *fileConfig) *[]string { return &c.Raft.TLS.CAFiles })

	str("metrics-listen", "plain-HTTP `address` of /healthz, /readyz and /metrics (empty disables)", func(c *fileConfig) *string { return &c.MetricsListen })
	str("admin-listen", "admin API TLS listen `address` (off unless set)", func(c *fileConfig) *string { return &c.Admin.Listen })
	str("admin-token-file", "admin bearer token `file` (dev mode generates <data>/admin.token if no credential is set)", func(c *fileConfig) *string { return &c.Admin.TokenFile })
	list("admin-ca", "admin client CA PEM `file` (repeatable)", func(c *fileConfig) *[]string { return &c.Admin.ClientCAFiles })
	str("admin-cert", "admin server certificate PEM `file` (default: dev certificate for localhost, else the federation certificate)", func(c *fileConfig) *string { return &c.Admin.CertFile })
	str("admin-key", "admin server private key PEM `file`", func(c *fileConfig) *string { return &c.Admin.KeyFile })

	str("client-listen", "client API TLS listen `address` (Connect; off unless set)", func(c *fileConfig) *string { return &c.ClientAPI.Listen })
	boolean("client-open-registration", "let anyone register devices through the client API (the default in dev mode; otherwise registration is closed)", func(c *fileConfig, v bool) { c.ClientAPI.OpenRegistration = v })

	str("hub-key", "hub signing key `file`, generated if absent (default <data>/hub-key.pem)", func(c *fileConfig) *string { return &c.HubKeyFile })
	set("hub-suite", "MLS cipher `suite` of a newly generated hub key (default 1)", func(c *fileConfig, v string) error {
		n, err := strconv.ParseUint(v, 0, 16)
		if err != nil {
			return fmt.Errorf("invalid cipher suite %q", v)
		}
		c.HubCipherSuite = uint16(n)
		return nil
	})
	set("shutdown-timeout", "how long to drain in-flight requests on shutdown (`duration`, default 15s)", func(c *fileConfig, v string) error {
		return c.ShutdownTimeout.UnmarshalText([]byte(v))
	})
	str("log-format", "log `format`: text or json", func(c *fileConfig) *string { return &c.LogFormat })
	str("log-level", "log `level`: debug, info, warn or error", func(c *fileConfig) *string { return &c.LogLevel })

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	c := &fileConfig{}
	c.MetricsListen = DefaultMetricsListen
	if *configFile != "" {
		if err := loadConfigFile(*configFile, c); err != nil {
			return nil, err
		}
	}
	for _, p := range pending {
		if err := p(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// loadConfigFile decodes a JSON configuration file into c (unknown fields
// are an error). Relative paths in it are relative to the working
// directory.
func loadConfigFile(path string, c *fileConfig) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if dec.More() {
		return fmt.Errorf("config %s: trailing data after the JSON object", path)
	}
	return nil
}

// newLogger builds the slog logger of the command.
func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if level == "" {
		level = "info"
	}
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("-log-format: want text or json, got %q", format)
	}
}

// serve runs `mimid serve`.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseServe(args, stderr)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "mimid serve: %v\n", err)
		return exitUsage
	}
	logger, err := newLogger(c.LogFormat, c.LogLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "mimid serve: %v\n", err)
		return exitUsage
	}
	cfg := c.Config
	cfg.Logger = logger
	if cfg.Domain == "" || cfg.DataDir == "" {
		fmt.Fprintln(stderr, "mimid serve: -domain and -data are required")
		return exitUsage
	}
	d, err := daemon.Start(ctx, cfg)
	if errors.Is(err, daemon.ErrConfig) {
		fmt.Fprintf(stderr, "mimid serve: %v\n", err)
		return exitUsage
	}
	if err != nil {
		logger.Error("start failed", "err", err)
		return exitFail
	}
	printInfo(stdout, d.Info())

	code := exitOK
	readyCtx, cancel := context.WithTimeout(ctx, readyTimeout)
	readyDone := make(chan struct{})
	go func() {
		defer close(readyDone)
		if err := d.WaitReady(readyCtx); err != nil {
			if ctx.Err() == nil && d.Err() == nil {
				logger.Warn("not ready yet", "err", err)
			}
			return
		}
		fmt.Fprintf(stdout, "mimid: %s is ready\n", d.Info().Domain)
	}()
	select {
	case <-ctx.Done():
		logger.Info("signal received, shutting down")
	case <-d.Done():
		logger.Error("stopping after a fatal error", "err", d.Err())
		code = exitFail
	}
	cancel()
	<-readyDone
	if err := d.Close(); err != nil {
		code = exitFail
	}
	return code
}

// printInfo writes the startup summary.
func printInfo(w io.Writer, in daemon.Info) {
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	fmt.Fprintf(w, "mimid: serving %s\n", in.Domain)
	fmt.Fprintf(w, "  federation  https://%s (HTTP/2, mutual TLS)\n", in.FederationAddr)
	fmt.Fprintf(w, "  directory   %s\n", in.DirectoryURL)
	if in.MetricsAddr != "" {
		fmt.Fprintf(w, "  metrics     http://%s/metrics  (also /healthz, /readyz)\n", in.MetricsAddr)
	}
	if in.AdminAddr != "" {
		fmt.Fprintf(w, "  admin       https://%s", in.AdminAddr)
		if in.AdminTokenFile != "" {
			fmt.Fprintf(w, "  (token: %s)", abs(in.AdminTokenFile))
		}
		fmt.Fprintln(w)
	}
	if in.ClientAPIAddr != "" {
		fmt.Fprintf(w, "  client API  https://%s (Connect; clients sign requests with their MLS keys)\n", in.ClientAPIAddr)
	}
	if in.Clustered {
		fmt.Fprintf(w, "  raft        node %s at %s\n", in.RaftID, in.RaftAddr)
	} else {
		fmt.Fprintf(w, "  raft        standalone node %s\n", in.RaftID)
	}
	hub := "loaded"
	if in.HubKeyCreated {
		hub = "generated"
	}
	fmt.Fprintf(w, "  hub key     %s (%s, cipher suite %d)\n", abs(in.HubKeyFile), hub, in.HubCipherSuite)
	if in.DevCACert != "" {
		state := "existing"
		if in.DevCACreated {
			state = "new"
		}
		fmt.Fprintf(w, "  dev CA      %s (%s; peers trust it with -ca %s, or share its directory with -dev-ca %s)\n",
			abs(in.DevCACert), state, abs(in.DevCACert), abs(filepath.Dir(in.DevCACert)))
	}
}
