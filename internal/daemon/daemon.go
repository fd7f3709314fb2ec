// Package daemon assembles one MIMI provider process
// (draft-ralston-mimi-protocol-02): the projections state machine
// (package projections) replicated by a Raft node (package raftnode), the
// provider roles (package provider), the federation endpoints over
// mutually authenticated HTTPS (packages httpapi/transport and
// httpapi/federation, Section 4.1 and 5), the /notify fanout worker
// (package fanout, Section 5.5), health, readiness and Prometheus metrics,
// and optionally the admin API (package httpapi/admin).
//
// # Layout of the data directory
//
//	state/         projections (Pebble; projections.Open(DataDir/state))
//	raft/          Raft log (Pebble) and snapshots
//	hub-key.pem    the hub signing key, generated on first start
//	dev-ca/        dev mode: the dev CA (unless Config.DevCADir)
//	tls/           dev mode: issued certificates
//	admin.token    dev mode with the admin API and no credential configured
//	tmp/           scratch space of admin audits
//
// # What is wired
//
//   - Raft applies committed batches to the projections through one
//     adapter (Machine.ApplyBatch: one synced Pebble batch per Raft batch),
//     with projections.ResultCodec for results forwarded from the leader.
//   - The provider writes through a wrapper of the Raft node that times
//     every append (mimi_raft_apply_duration_seconds) and refuses writes
//     after a storage failure (below).
//   - Peers are reached with a transport.Client (federation.Client as the
//     provider's Remote); the federation handler is served by the
//     transport's HTTP/2 mutual-TLS server, counted per endpoint and
//     status.
//   - The fanout engine delivers /notify bodies it builds itself from the
//     projections' queues (fanout.NewMachineStore) and posts them with
//     fanout.NewTransportSender over the same transport.Client; it
//     acknowledges through the Raft wrapper (fanout.NewRaftAcker). It sends
//     only while this node is the Raft leader; the state machine wakes
//     the workers of the destinations an applied command queued messages
//     for, on every node, so the leader's engine learns of writes that
//     reached another node too (no scan of every destination per
//     message); its periodic scan finds any other backlog, and a Raft
//     leader observation (plus a 1 s poll) calls KickAll on leadership
//     changes. provider.ResolveDelivery and
//     federation.Client.Notify are an equivalent second path that is not
//     used here.
//
// # Health
//
// /healthz answers 200 while the process serves. /readyz answers 200 when
// the node is not shutting down, its state machine has not failed, a Raft
// leader is known and Raft has dispatched every committed entry to the
// state machine; otherwise 503 with the reason.
//
// # Storage failures
//
// A command whose application reports projections.ErrStorage (or
// ErrCorruptState) was not recorded as applied, so the node must not apply
// anything after it. The daemon then (1) latches the failure in the state
// machine adapter, which refuses every later command and snapshot without
// touching the store, (2) logs it at error level once, (3) reports
// unready on /readyz and mimi_storage_failed=1, and (4) refuses every
// later write and read barrier of the provider and of the fanout acker
// with ErrStorageFailed, which the provider reports as
// provider.ErrUnavailable (HTTP 503 with Retry-After on the federation
// endpoints). The process keeps running so operators can inspect it; a
// restart resumes from the last durably applied command (Raft replays the
// rest, or installs a snapshot).
package daemon

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/openmimi/mimi/httpapi/clientapi"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/fanout"
	"github.com/openmimi/mimi/httpapi/federation"
	"github.com/openmimi/mimi/httpapi/transport"
	"github.com/openmimi/mimi/internal/devpki"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/raftnode"
)

// Daemon is one running provider process: one provider domain
// (draft-ralston-mimi-protocol-02, Section 3) serving the federation
// endpoints of Section 5 over the transport of Section 4.1. Its methods
// are safe for concurrent use.
type Daemon struct {
	cfg  Config
	log  *slog.Logger
	info Info

	machine *projections.Machine
	hubKey  *hubKey
	// hubKeyCheck is the outcome of comparing hubKey with the key
	// declared in the replicated log (checkHubKey): nil until checked,
	// then "" if equal or the reason the node is unready.
	hubKeyCheck atomic.Pointer[string]
	// caughtUp is set once a read barrier after start succeeded: every
	// entry committed before the start is applied (settleOnce).
	caughtUp atomic.Bool
	sm       *stateMachine
	node     *raftnode.Node[projections.Result]
	repl     *replicator
	prov     *provider.Provider
	tclient  *transport.Client
	engine   *fanout.Engine
	metrics  *metrics
	// kickEngine is engine for the state machine's goroutine, which
	// applies the log (kickApplied) before the engine exists.
	kickEngine atomic.Pointer[fanout.Engine]
	// pokedAt: per peer domain, when this node last passed a "peer
	// reachable" hint to the leader (unix nanoseconds, *atomic.Int64).
	pokedAt sync.Map

	fedSrv     *http.Server
	fedCancel  context.CancelFunc
	metricsSrv *http.Server
	clientSrv  *http.Server
	clientAPI  *clientapi.Service
	admin      AdminServer

	fanoutCancel context.CancelFunc
	fanoutDone   chan struct{}
	watchStop    chan struct{}
	watchDone    chan struct{}
	observer     *raft.Observer
	serving      sync.WaitGroup

	closing   atomic.Bool
	fatalOnce sync.Once
	fatalCh   chan struct{}
	fatalErr  error
	closeOnce sync.Once
	closeErr  error
}

// Info describes a started daemon: where it listens and the files it
// uses, for printing at startup.
type Info struct {
	Domain string
	// FederationAddr is the federation listener's address; DirectoryURL
	// the public URL of the directory (Section 5.1).
	FederationAddr string
	DirectoryURL   string
	// MetricsAddr, AdminAddr and ClientAPIAddr are empty when disabled.
	MetricsAddr   string
	AdminAddr     string
	ClientAPIAddr string
	// DevCACert is the dev CA certificate file peers should trust (dev
	// mode only); DevCACreated reports whether this start created it.
	DevCACert    string
	DevCACreated bool
	// HubKeyFile is the hub signing key; HubKeyCreated reports whether
	// this start generated it. HubCipherSuite is its suite.
	HubKeyFile     string
	HubKeyCreated  bool
	HubCipherSuite uint16
	// AdminTokenFile is the admin bearer token file, if one is used.
	AdminTokenFile string
	// RaftID and RaftAddr identify the Raft node; Clustered reports
	// whether it uses the network transport.
	RaftID    string
	RaftAddr  string
	Clustered bool
}

// Start opens the state in cfg.DataDir, starts the Raft node, the
// provider, the federation server, the fanout engine and the optional
// metrics and admin listeners, and returns the running daemon. ctx bounds
// startup only; stop the daemon with Close. On error everything started
// is stopped again.
func Start(ctx context.Context, cfg Config) (_ *Daemon, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, fatalCh: make(chan struct{})}
	d.info.Domain = cfg.Domain
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
			for _, ln := range []net.Listener{cfg.Listener, cfg.MetricsListener, cfg.AdminListener} {
				if ln != nil {
					_ = ln.Close()
				}
			}
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("daemon: data directory: %w", err)
	}

	// Certificates and trust anchors.
	pki, err := d.loadPKI()
	if err != nil {
		return nil, err
	}

	// The hub key (RFC 9420, Section 12.1.8.1). Every node of a cluster
	// signs with the same key (it is in every room's external_senders), so
	// only the node bootstrapping the cluster may generate it.
	if cfg.Raft.Clustered() && !cfg.Raft.Bootstrap {
		if _, err := os.Stat(cfg.HubKeyFile); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist; a clustered node that does not bootstrap the cluster must use the cluster's hub key (copy it from the bootstrapping node, -hub-key)", ErrHubKey, cfg.HubKeyFile)
		}
	}
	hk, created, err := loadOrCreateHubKey(cfg.HubKeyFile, cfg.HubCipherSuite)
	if err != nil {
		return nil, err
	}
	d.hubKey = hk
	d.info.HubKeyFile, d.info.HubKeyCreated, d.info.HubCipherSuite = cfg.HubKeyFile, created, uint16(hk.suite)
	if created {
		d.log.Info("generated the hub signing key", "file", cfg.HubKeyFile, "cipher_suite", uint16(hk.suite))
	}

	// State machine and Raft.
	d.machine, err = projections.Open(filepath.Join(cfg.DataDir, StateDir))
	if err != nil {
		return nil, fmt.Errorf("daemon: open projections: %w", err)
	}
	undo = append(undo, func() { _ = d.machine.Close() })
	var msm machineSM = d.machine
	if cfg.testWrapSM != nil {
		msm = cfg.testWrapSM(msm)
	}
	d.sm = &stateMachine{m: msm, onFail: d.storageFailed, onApplied: d.kickApplied}
	d.metrics = newMetrics(d.raftStatus, func() bool { ok, _ := d.Ready(); return ok }, func() bool { return d.sm.fault() != nil })
	rc, err := d.raftConfig(pki)
	if err != nil {
		return nil, err
	}
	d.node, err = raftnode.Open[projections.Result](rc, d.sm, projections.ResultCodec{})
	if err != nil {
		return nil, fmt.Errorf("daemon: open raft: %w", err)
	}
	undo = append(undo, func() { _ = d.node.Shutdown() })
	d.info.RaftID, d.info.RaftAddr, d.info.Clustered = d.node.ID(), d.node.Addr(), cfg.Raft.Clustered()
	d.repl = &replicator{node: d.node, sm: d.sm, observe: d.metrics.observeApply}

	// Federation client, fanout engine, provider.
	d.tclient, err = transport.NewClient(transport.ClientConfig{
		Source:      cfg.Domain,
		Certificate: pki.fedCert,
		RootCAs:     pki.peers,
		Resolver:    resolver(cfg.Resolve),
	})
	if err != nil {
		return nil, fmt.Errorf("daemon: federation client: %w", err)
	}
	undo = append(undo, d.tclient.CloseIdleConnections)
	d.engine, err = fanout.New(fanout.Config{
		Store:    fanout.NewMachineStore(d.machine),
		Acker:    fanout.NewRaftAcker(d.repl),
		Sender:   fanout.NewTransportSender(d.tclient),
		IsLeader: d.node.IsLeader,
		Logger:   d.log.With("component", "fanout"),
		Metrics:  d.metrics.fanout(),

		MaxConcurrent: cfg.Fanout.MaxConcurrent,
		Limits:        fanout.Limits{MaxMessages: cfg.Fanout.MaxBatchMessages, MaxBytes: cfg.Fanout.MaxBatchBytes},
		BackoffBase:   time.Duration(cfg.Fanout.BackoffBase),
		BackoffCap:    time.Duration(cfg.Fanout.BackoffCap),
		MaxRetryAfter: time.Duration(cfg.Fanout.MaxRetryAfter),
		ScanInterval:  time.Duration(cfg.Fanout.ScanInterval),
		SendTimeout:   time.Duration(cfg.Fanout.SendTimeout),
		AckTimeout:    time.Duration(cfg.Fanout.AckTimeout),
		Now:           cfg.Clock,
	})
	if err != nil {
		return nil, fmt.Errorf("daemon: fanout: %w", err)
	}
	d.kickEngine.Store(d.engine)
	d.prov, err = provider.New(provider.Config{
		Domain:           cfg.Domain,
		Raft:             d.repl,
		Machine:          d.machine,
		Remote:           federation.NewClient(d.tclient),
		HubSignaturePriv: hk.priv,
		HubSender:        wire.ExternalSender{SignatureKey: hk.pub, Credential: provider.HubCredential(cfg.Domain)},
		Logger:           d.log.With("component", "provider"),
		Consent:          cfg.Consent,
		Clock:            cfg.Clock,
		ApplyTimeout:     time.Duration(cfg.ApplyTimeout),
	})
	if err != nil {
		return nil, fmt.Errorf("daemon: provider: %w", err)
	}

	// Federation server (Section 4.1: HTTPS, mutual TLS).
	tsrv, err := transport.NewServer(transport.ServerConfig{
		Domains:      []transport.Domain{{Name: cfg.Domain, Certificate: pki.fedCert, BaseURL: cfg.BaseURL}},
		ClientCAs:    pki.peers,
		MaxBodyBytes: cfg.MaxBodyBytes,
		RateLimit: transport.RateLimit{Disabled: cfg.PeerRateLimit.Disabled,
			PerSecond: cfg.PeerRateLimit.PerSecond, Burst: cfg.PeerRateLimit.Burst},
		OnRefuse: func(r *http.Request, status int, reason error) {
			d.log.Debug("federation request refused", "status", status, "path", r.URL.Path, "remote", r.RemoteAddr, "reason", reason)
		},
		// A peer that reaches us is up: a delivery to it waiting out a
		// backoff after a connection failure is retried now.
		OnPeer: d.peerReachable,
	})
	if err != nil {
		return nil, fmt.Errorf("daemon: federation server: %w", err)
	}
	fh, err := federation.NewHandler(d.prov, tsrv, d.log.With("component", "federation"))
	if err != nil {
		return nil, fmt.Errorf("daemon: federation handler: %w", err)
	}
	fedLn, err := listen(cfg.Listener, cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("daemon: federation listener: %w", err)
	}
	undo = append(undo, func() { _ = fedLn.Close() })
	d.info.FederationAddr = fedLn.Addr().String()
	d.info.DirectoryURL = trimSlash(cfg.BaseURL) + mimi.WellKnownDirectory
	var fedCtx context.Context
	fedCtx, d.fedCancel = context.WithCancel(context.Background())
	undo = append(undo, d.fedCancel)
	d.fedSrv = tsrv.HTTPServer(d.metrics.instrument(fh))
	d.fedSrv.BaseContext = func(net.Listener) context.Context { return fedCtx }
	d.fedSrv.ErrorLog = slog.NewLogLogger(d.log.With("component", "federation").Handler(), slog.LevelDebug)

	// Metrics, health and readiness.
	var metricsLn net.Listener
	if cfg.MetricsListen != "" || cfg.MetricsListener != nil {
		metricsLn, err = listen(cfg.MetricsListener, cfg.MetricsListen)
		if err != nil {
			return nil, fmt.Errorf("daemon: metrics listener: %w", err)
		}
		undo = append(undo, func() { _ = metricsLn.Close() })
		d.info.MetricsAddr = metricsLn.Addr().String()
		d.metricsSrv = &http.Server{
			Handler:           d.opsHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
		}
	}

	// Admin API.
	var adminLn net.Listener
	if cfg.Admin.Enabled() || cfg.AdminListener != nil {
		deps, err := d.adminDeps(pki)
		if err != nil {
			return nil, err
		}
		factory := cfg.AdminFactory
		if factory == nil {
			factory = DefaultAdmin
		}
		d.admin, err = factory(deps)
		if err != nil {
			return nil, fmt.Errorf("daemon: admin API: %w", err)
		}
		undo = append(undo, func() { _ = d.admin.Shutdown(context.Background()) })
		adminLn, err = listen(cfg.AdminListener, cfg.Admin.Listen)
		if err != nil {
			return nil, fmt.Errorf("daemon: admin listener: %w", err)
		}
		undo = append(undo, func() { _ = adminLn.Close() })
		d.info.AdminAddr = adminLn.Addr().String()
	}

	// The provider's client API.
	var clientLn net.Listener
	if cfg.ClientAPI.Enabled() || cfg.ClientListener != nil {
		d.clientAPI, err = clientapi.New(d.prov, clientapi.Config{
			Registration: cfg.ClientAPI.policy(cfg.Dev),
			Applied:      d.node,
			Logger:       d.log.With("component", "clientapi"),
		})
		if err != nil {
			return nil, fmt.Errorf("daemon: client API: %w", err)
		}
		undo = append(undo, d.clientAPI.Close)
		path, h := d.clientAPI.Handler()
		mux := http.NewServeMux()
		mux.Handle(path, h)
		d.clientSrv = &http.Server{
			Handler:           mux,
			TLSConfig:         clientapi.TLSConfig(pki.fedCert),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(d.log.With("component", "clientapi").Handler(), slog.LevelDebug),
		}
		clientLn, err = listen(cfg.ClientListener, cfg.ClientAPI.Listen)
		if err != nil {
			return nil, fmt.Errorf("daemon: client API listener: %w", err)
		}
		undo = append(undo, func() { _ = clientLn.Close() })
		d.info.ClientAPIAddr = clientLn.Addr().String()
	}

	// Everything is built: start serving. Nothing below fails.
	d.serve("federation", func() error { return d.fedSrv.ServeTLS(fedLn, "", "") })
	if d.metricsSrv != nil {
		d.serve("metrics", func() error { return d.metricsSrv.Serve(metricsLn) })
	}
	if d.admin != nil {
		d.serve("admin", func() error { return d.admin.Serve(adminLn) })
	}
	if d.clientSrv != nil {
		d.serve("client API", func() error { return d.clientSrv.ServeTLS(clientLn, "", "") })
	}
	var fctx context.Context
	fctx, d.fanoutCancel = context.WithCancel(context.Background())
	d.fanoutDone = make(chan struct{})
	go func() {
		defer close(d.fanoutDone)
		var pruner sync.WaitGroup
		pruner.Go(func() { d.runHousekeeping(fctx) })
		pruner.Go(func() { d.checkHubKey(fctx) })
		defer pruner.Wait()
		if err := d.engine.Run(fctx); err != nil {
			d.fail(fmt.Errorf("daemon: fanout: %w", err))
		}
	}()
	d.watchLeadership()

	d.log.Info("provider started",
		"domain", cfg.Domain, "federation", d.info.FederationAddr, "directory", d.info.DirectoryURL,
		"metrics", d.info.MetricsAddr, "admin", d.info.AdminAddr, "client_api", d.info.ClientAPIAddr,
		"raft_id", d.info.RaftID, "raft_addr", d.info.RaftAddr, "clustered", d.info.Clustered,
		"dev_ca", d.info.DevCACert, "data", cfg.DataDir)
	return d, nil
}

// pki is the certificate material of a daemon.
type pki struct {
	fedCert tls.Certificate
	peers   *x509.CertPool
	dev     *devpki.CA // dev mode only
}

// loadPKI loads (or in dev mode creates) the federation certificate and
// the peer trust anchors.
func (d *Daemon) loadPKI() (*pki, error) {
	cfg := &d.cfg
	p := &pki{}
	certFile, keyFile := cfg.TLS.CertFile, cfg.TLS.KeyFile
	var extra []*x509.Certificate
	if cfg.Dev {
		ca, created, err := devpki.LoadOrCreate(cfg.DevCADir, "mimid dev CA")
		if err != nil {
			return nil, err
		}
		p.dev = ca
		d.info.DevCACert, d.info.DevCACreated = ca.CertPath(), created
		extra = append(extra, ca.Cert)
		if certFile == "" {
			certFile = filepath.Join(cfg.DataDir, TLSDir, cfg.Domain+".pem")
			keyFile = filepath.Join(cfg.DataDir, TLSDir, cfg.Domain+"-key.pem")
			if _, err := ca.EnsureLeaf(certFile, keyFile, cfg.Domain); err != nil {
				return nil, err
			}
		}
	}
	var err error
	if p.fedCert, err = loadPair(certFile, keyFile); err != nil {
		return nil, err
	}
	if p.peers, err = loadPool(cfg.TLS.CAFiles, cfg.TLS.SystemRoots, extra...); err != nil {
		return nil, err
	}
	return p, nil
}

// noticePoke prefixes the peer domain in a "peer reachable" hint passed
// to the Raft leader (raftnode.Node.NoticeLeader).
const noticePoke = "poke\n"

// pokeForwardInterval bounds how often a node that is not the leader
// passes "peer reachable" hints for one peer to the leader.
const pokeForwardInterval = time.Second

// peerReachable is called for every authenticated federation request: the
// peer is up, so a delivery to it that is waiting out a backoff after a
// failure without an HTTP answer is retried now (fanout.Engine.Poke;
// draft-ralston-mimi-protocol-02, Section 5.5). Only the Raft leader
// delivers, and a peer's requests may reach any node of the cluster: a
// node that is not the leader passes the hint on, at most once per
// pokeForwardInterval and peer.
func (d *Daemon) peerReachable(peer string) {
	if d.node.IsLeader() {
		if e := d.kickEngine.Load(); e != nil {
			e.Poke(peer)
		}
		return
	}
	v, _ := d.pokedAt.LoadOrStore(peer, new(atomic.Int64))
	last := v.(*atomic.Int64)
	now, prev := time.Now().UnixNano(), last.Load()
	if now-prev < int64(pokeForwardInterval) || !last.CompareAndSwap(prev, now) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.node.NoticeLeader(ctx, []byte(noticePoke+peer)); err != nil {
			d.log.Debug("could not pass a reachable peer on to the Raft leader", "peer", peer, "err", err)
		}
	}()
}

// onNotice receives, on the Raft leader, the hints other nodes pass on.
func (d *Daemon) onNotice(payload []byte) {
	if peer, ok := strings.CutPrefix(string(payload), noticePoke); ok {
		if e := d.kickEngine.Load(); e != nil {
			e.Poke(peer)
		}
	}
}

// raftConfig builds the raftnode configuration.
func (d *Daemon) raftConfig(p *pki) (raftnode.Config, error) {
	r := &d.cfg.Raft
	rc := raftnode.Config{
		OnNotice:          d.onNotice,
		DataDir:           filepath.Join(d.cfg.DataDir, RaftDir),
		Logger:            raftLogger(d.log, !r.Clustered()),
		HeartbeatTimeout:  time.Duration(r.HeartbeatTimeout),
		ElectionTimeout:   time.Duration(r.ElectionTimeout),
		SnapshotInterval:  time.Duration(r.SnapshotInterval),
		SnapshotThreshold: r.SnapshotThreshold,
		TrailingLogs:      r.TrailingLogs,
	}
	if !r.Clustered() {
		// A single voter on the in-memory transport: no network, so the
		// election can be quick.
		if rc.HeartbeatTimeout == 0 {
			rc.HeartbeatTimeout = 100 * time.Millisecond
		}
		if rc.ElectionTimeout == 0 {
			rc.ElectionTimeout = 100 * time.Millisecond
		}
		rc.LeaderLeaseTimeout = min(rc.HeartbeatTimeout, rc.ElectionTimeout) / 2
		rc.CommitTimeout = 5 * time.Millisecond
		rc.ID = r.NodeID
		return rc, nil
	}
	if hb := rc.HeartbeatTimeout; hb > 0 && hb < 500*time.Millisecond {
		rc.LeaderLeaseTimeout = hb / 2 // Raft requires lease <= heartbeat (default lease 500ms)
	}
	cert := p.fedCert
	if r.TLS.CertFile != "" {
		var err error
		if cert, err = loadPair(r.TLS.CertFile, r.TLS.KeyFile); err != nil {
			return rc, err
		}
	}
	var extra []*x509.Certificate
	if p.dev != nil {
		extra = append(extra, p.dev.Cert)
	}
	cas, err := loadPool(r.TLS.CAFiles, r.TLS.SystemRoots, extra...)
	if err != nil {
		return rc, err
	}
	rc.ID, rc.BindAddr, rc.AdvertiseAddr, rc.Bootstrap = r.NodeID, r.Bind, r.Advertise, r.Bootstrap
	for _, peer := range r.Peers {
		rc.Peers = append(rc.Peers, raftnode.Peer{ID: peer.ID, Addr: peer.Addr})
	}
	rc.TLS = &raftnode.TLSConfig{CAs: cas, Certificate: cert, DialContext: d.cfg.RaftDialContext}
	if len(r.AllowedNames) > 0 {
		rc.TLS.VerifyPeer = raftnode.AllowPeerNames(r.AllowedNames...)
	}
	return rc, nil
}

// adminDeps gathers the admin server's dependencies and credentials.
func (d *Daemon) adminDeps(p *pki) (AdminDeps, error) {
	a := &d.cfg.Admin
	deps := AdminDeps{
		Domain: d.cfg.Domain, Provider: d.prov, Machine: d.machine, Node: d.node, Fanout: d.engine,
		Token:      a.Token,
		ScratchDir: filepath.Join(d.cfg.DataDir, ScratchDir),
		Logger:     d.log.With("component", "admin"),
	}
	if err := os.MkdirAll(deps.ScratchDir, 0o700); err != nil {
		return deps, fmt.Errorf("daemon: %w", err)
	}
	if len(a.ClientCAFiles) > 0 {
		pool, err := loadPool(a.ClientCAFiles, false)
		if err != nil {
			return deps, err
		}
		deps.ClientCAs = pool
	}
	if deps.Token == "" && a.TokenFile != "" {
		t, err := readToken(a.TokenFile)
		if err != nil {
			return deps, err
		}
		deps.Token, d.info.AdminTokenFile = t, a.TokenFile
	}
	if deps.Token == "" && deps.ClientCAs == nil && d.cfg.Dev {
		path := filepath.Join(d.cfg.DataDir, AdminTokenFile)
		var raw [32]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return deps, fmt.Errorf("daemon: admin token: %w", err)
		}
		if err := createExclusive(path, []byte(base64.RawURLEncoding.EncodeToString(raw[:])+"\n"), 0o600); err != nil {
			return deps, err
		}
		t, err := readToken(path)
		if err != nil {
			return deps, err
		}
		deps.Token, d.info.AdminTokenFile = t, path
	}
	cert := p.fedCert
	switch {
	case a.CertFile != "":
		var err error
		if cert, err = loadPair(a.CertFile, a.KeyFile); err != nil {
			return deps, err
		}
	case p.dev != nil:
		names := []string{"localhost", "127.0.0.1", "::1"}
		if host, _, err := net.SplitHostPort(a.Listen); err == nil && host != "" && host != "localhost" {
			if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() && !ip.IsLoopback() {
				names = append(names, host)
			}
		}
		cf, kf := filepath.Join(d.cfg.DataDir, TLSDir, "admin.pem"), filepath.Join(d.cfg.DataDir, TLSDir, "admin-key.pem")
		if _, err := p.dev.EnsureLeaf(cf, kf, names...); err != nil {
			return deps, err
		}
		var err error
		if cert, err = loadPair(cf, kf); err != nil {
			return deps, err
		}
	}
	deps.TLS = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
	return deps, nil
}

// listen returns ln, or a new TCP listener on addr.
func listen(ln net.Listener, addr string) (net.Listener, error) {
	if ln != nil {
		return ln, nil
	}
	return net.Listen("tcp", addr)
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// serve runs a server loop; an unexpected end is fatal.
func (d *Daemon) serve(name string, run func() error) {
	d.serving.Add(1)
	go func() {
		defer d.serving.Done()
		if err := run(); err != nil && !errors.Is(err, http.ErrServerClosed) && !d.closing.Load() {
			d.fail(fmt.Errorf("daemon: %s server: %w", name, err))
		}
	}()
}

// fail records a fatal error and signals Done.
func (d *Daemon) fail(err error) {
	d.fatalOnce.Do(func() {
		d.fatalErr = err
		d.log.Error("fatal error", "err", err)
		close(d.fatalCh)
	})
}

// storageFailed is the state machine's failure hook.
func (d *Daemon) storageFailed(err error) {
	d.log.Error("state machine storage failure: the node stopped applying commands, refuses writes (503) and reports unready; restart it to recover",
		"err", err, "applied_index", d.machine.AppliedIndex())
}

// kickApplied is the state machine's applied hook: on every node, it
// wakes the fanout workers of the destinations an applied command queued
// messages for (draft-ralston-mimi-protocol-02, Section 5.5). Only the
// leader's engine acts on it, whichever node proposed the command (a write
// that reached another node is forwarded to the leader and applied there
// too). Commands applied before the engine exists (the replay at start)
// are found by its first scan.
func (d *Daemon) kickApplied(res []projections.Result) {
	e := d.kickEngine.Load()
	if e == nil {
		return
	}
	for i := range res {
		if res[i].Err != nil {
			continue
		}
		for _, dest := range eventlog.FanoutDestinations(res[i].Events) {
			e.Kick(dest)
		}
	}
}

// watchLeadership calls KickAll on every leader change (Raft leader
// observations, with a 1 s poll of IsLeader as a fallback for dropped
// observations).
func (d *Daemon) watchLeadership() {
	ch := make(chan raft.Observation, 16)
	d.observer = raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	d.node.Raft().RegisterObserver(d.observer)
	d.watchStop, d.watchDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(d.watchDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		leader := d.node.IsLeader()
		if leader {
			d.engine.KickAll()
		}
		for {
			select {
			case <-d.watchStop:
				return
			case o := <-ch:
				lo, _ := o.Data.(raft.LeaderObservation)
				now := d.node.IsLeader()
				d.log.Info("raft leader changed", "leader_id", string(lo.LeaderID), "leader_addr", string(lo.LeaderAddr), "this_node_leads", now)
				leader = now
				d.engine.KickAll()
			case <-tick.C:
				if now := d.node.IsLeader(); now != leader {
					leader = now
					d.engine.KickAll()
				}
			}
		}
	}()
}

// raftStatus is the Raft node's status (for the metrics).
func (d *Daemon) raftStatus() raftnode.Status { return d.node.Status() }

// Ready reports whether the node can serve: not shutting down, no storage
// failure, a Raft leader known, every committed Raft entry dispatched to
// the state machine, a read barrier passed since the start, and its hub
// key the one declared in the replicated log (see checkHubKey). reason
// explains a false answer.
func (d *Daemon) Ready() (ok bool, reason string) {
	if ok, reason := d.replicaReady(); !ok {
		return false, reason
	}
	if !d.caughtUp.Load() {
		return false, "catching up with the log after start"
	}
	switch r := d.hubKeyCheck.Load(); {
	case r == nil:
		return false, "hub key not checked against the replicated log yet"
	case *r != "":
		return false, *r
	}
	return true, "ready"
}

// replicaReady is Ready without the hub key check.
func (d *Daemon) replicaReady() (ok bool, reason string) {
	if d.closing.Load() {
		return false, "shutting down"
	}
	if err := d.sm.fault(); err != nil {
		return false, err.Error()
	}
	if _, id := d.node.Leader(); id == "" {
		return false, "no Raft leader known"
	}
	r := d.node.Raft()
	if commit, applied := r.CommitIndex(), r.AppliedIndex(); applied < commit {
		return false, fmt.Sprintf("catching up: applied %d of %d committed", applied, commit)
	}
	return true, "ready"
}

// WaitReady waits until Ready reports true, ctx ends, or the daemon
// fails.
func (d *Daemon) WaitReady(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		ok, reason := d.Ready()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("daemon: not ready (%s): %w", reason, ctx.Err())
		case <-d.fatalCh:
			return d.fatalErr
		case <-t.C:
		}
	}
}

// opsHandler serves /healthz, /readyz and /metrics.
func (d *Daemon) opsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ok, reason := d.Ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write([]byte(reason + "\n"))
	})
	mux.Handle("GET /metrics", d.metrics.handler())
	return mux
}

// Done is closed when the daemon hits a fatal error (a listener failing);
// Err then returns it. Close must still be called.
func (d *Daemon) Done() <-chan struct{} { return d.fatalCh }

// Err returns the fatal error that closed Done, or nil.
func (d *Daemon) Err() error {
	select {
	case <-d.fatalCh:
		return d.fatalErr
	default:
		return nil
	}
}

// Info describes where the daemon listens and the files it uses.
func (d *Daemon) Info() Info { return d.info }

// Provider returns the provider (draft-ralston-mimi-protocol-02).
func (d *Daemon) Provider() *provider.Provider { return d.prov }

// Machine returns the projections state machine.
func (d *Daemon) Machine() *projections.Machine { return d.machine }

// Node returns the Raft node.
func (d *Daemon) Node() *raftnode.Node[projections.Result] { return d.node }

// Fanout returns the fanout engine (Section 5.5).
func (d *Daemon) Fanout() *fanout.Engine { return d.engine }

// Transport returns the federation client the daemon reaches peers with
// (Section 4.1).
func (d *Daemon) Transport() *transport.Client { return d.tclient }

// Close shuts the daemon down gracefully: readiness turns false, the
// federation and admin servers stop accepting and drain in-flight
// requests for at most Config.ShutdownTimeout (then remaining requests
// are cancelled), the fanout engine stops, Raft shuts down, the state
// machine closes, and finally the metrics listener stops. It is
// idempotent and returns the errors met on the way.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() { d.closeErr = d.shutdown() })
	return d.closeErr
}

func (d *Daemon) shutdown() error {
	d.closing.Store(true)
	d.log.Info("shutting down", "domain", d.cfg.Domain)
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(d.cfg.ShutdownTimeout))
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := d.fedSrv.Shutdown(ctx); err != nil {
			d.log.Warn("federation requests still running at the shutdown deadline; cancelling them", "err", err)
			d.fedCancel()
			_ = d.fedSrv.Close()
		}
	})
	if d.clientSrv != nil {
		wg.Go(func() {
			if err := d.clientSrv.Shutdown(ctx); err != nil {
				_ = d.clientSrv.Close()
			}
			d.clientAPI.Close()
		})
	}
	var adminErr error
	if d.admin != nil {
		wg.Go(func() {
			if err := d.admin.Shutdown(ctx); err != nil {
				adminErr = fmt.Errorf("daemon: admin shutdown: %w", err)
			}
		})
	}
	wg.Wait()
	if adminErr != nil {
		errs = append(errs, adminErr)
	}
	d.fedCancel()

	d.fanoutCancel()
	<-d.fanoutDone
	close(d.watchStop)
	<-d.watchDone
	d.node.Raft().DeregisterObserver(d.observer)

	if err := d.node.Shutdown(); err != nil {
		errs = append(errs, fmt.Errorf("daemon: raft shutdown: %w", err))
	}
	if err := d.machine.Close(); err != nil {
		errs = append(errs, fmt.Errorf("daemon: close projections: %w", err))
	}
	d.tclient.CloseIdleConnections()
	if d.metricsSrv != nil {
		mctx, mcancel := context.WithTimeout(context.Background(), time.Second)
		if err := d.metricsSrv.Shutdown(mctx); err != nil {
			_ = d.metricsSrv.Close()
		}
		mcancel()
	}
	d.serving.Wait()
	err := errors.Join(errs...)
	if err != nil {
		d.log.Error("shutdown finished with errors", "err", err)
	} else {
		d.log.Info("shut down", "domain", d.cfg.Domain)
	}
	return err
}
