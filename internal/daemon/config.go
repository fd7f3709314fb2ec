package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/openmimi/mimi/httpapi/clientapi"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/provider"
)

// Defaults of Config.
const (
	// DefaultListen is the federation listen address
	// (draft-ralston-mimi-protocol-02, Section 4.1: HTTPS).
	DefaultListen = ":8443"
	// DefaultDevListen is the federation listen address in dev mode
	// (loopback only).
	DefaultDevListen = "127.0.0.1:8443"
	// DefaultShutdownTimeout bounds the drain of in-flight requests.
	DefaultShutdownTimeout = 15 * time.Second
	// DefaultHubSuite is the cipher suite of a newly generated hub key
	// (RFC 9420, Section 17.1: MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
	// the mandatory-to-implement suite).
	DefaultHubSuite = 1
)

// Names inside the data directory.
const (
	// StateDir holds the projections (package projections).
	StateDir = "state"
	// RaftDir holds the Raft log and snapshots (package raftnode).
	RaftDir = "raft"
	// DevCADir is the dev CA directory when Config.DevCADir is empty.
	DevCADir = "dev-ca"
	// TLSDir holds the certificates dev mode issues.
	TLSDir = "tls"
	// HubKeyFile is the hub signing key when Config.HubKeyFile is empty.
	HubKeyFile = "hub-key.pem"
	// AdminTokenFile is the admin bearer token dev mode generates.
	AdminTokenFile = "admin.token"
	// ScratchDir is where the admin API's audits build temporary stores.
	ScratchDir = "tmp"
)

// Config configures one provider process: one provider domain
// (draft-ralston-mimi-protocol-02, Section 3) served by one Raft node.
// The zero value of every optional field is a working default; the
// embedded default is a standalone single-node Raft needing only Domain,
// DataDir and TLS material (or Dev).
//
// The JSON form (mimid serve -config) uses the json tags below; durations
// are strings such as "15s".
type Config struct {
	// Domain is the provider domain, e.g. "a.example" (Section 3).
	Domain string `json:"domain"`
	// DataDir holds everything the process persists: the projections
	// (DataDir/state), the Raft log and snapshots (DataDir/raft), the hub
	// signing key and, in dev mode, the certificates. Required.
	DataDir string `json:"data_dir"`

	// Listen is the federation HTTPS listen address (Section 4.1);
	// default DefaultListen, or DefaultDevListen in dev mode.
	Listen string `json:"listen,omitempty"`
	// BaseURL is the public https URL the directory's endpoint URLs are
	// built on (Section 5.1); default "https://" + Domain. Its host must
	// be Domain or a subdomain of it.
	BaseURL string `json:"base_url,omitempty"`
	// TLS is the federation certificate and the peers' trust anchors.
	TLS TLSFiles `json:"tls"`
	// MaxBodyBytes caps federation request bodies; 0 means
	// transport.DefaultMaxBodyBytes.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`
	// Resolve overrides where peer domains are dialed: domain -> host:port
	// (loopback deployments; the certificate is still checked for the
	// domain). Other domains go through DNS.
	Resolve map[string]string `json:"resolve,omitempty"`

	// Dev turns on dev mode: a local CA (DevCADir) is created once and
	// issues the federation certificate (and the Raft and admin
	// certificates when those are enabled without files), and it is added
	// to the trust anchors. Explicit TLS files still win.
	Dev bool `json:"dev,omitempty"`
	// DevCADir is the dev CA directory; default DataDir/dev-ca. Point
	// several local providers at one directory so they trust each other.
	DevCADir string `json:"dev_ca_dir,omitempty"`

	// Raft configures replication; the zero value is a standalone node.
	Raft RaftConfig `json:"raft"`
	// Fanout tunes delivery to follower providers; the zero value takes
	// package fanout's defaults.
	Fanout FanoutConfig `json:"fanout"`
	// ApplyTimeout bounds how long a request waits for the replicated log
	// (provider.Config.ApplyTimeout; default provider.DefaultApplyTimeout):
	// without a Raft quorum, requests fail with 503 after it.
	ApplyTimeout Duration `json:"apply_timeout,omitempty"`
	// PeerRateLimit is the per-peer request rate limit of the federation
	// endpoints: past it a peer gets 429 with Retry-After (RFC 6585,
	// Section 4). The zero value takes package transport's defaults.
	PeerRateLimit RateLimitConfig `json:"peer_rate_limit"`
	// NotifyRetention is how long this provider, as a follower, remembers
	// each FanoutMessage it took, to acknowledge and ignore a hub's
	// re-send (Section 5.5); default DefaultNotifyRetention. It must far
	// exceed any hub's retry schedule: a hub that re-sends a message after
	// it was forgotten delivers it twice.
	NotifyRetention Duration `json:"notify_retention,omitempty"`

	// MetricsListen is the plain-HTTP listen address of /healthz,
	// /readyz and /metrics; empty disables it.
	MetricsListen string `json:"metrics_listen,omitempty"`
	// Admin configures the admin API; off unless Admin.Listen is set.
	Admin AdminConfig `json:"admin"`
	// ClientAPI configures the provider's own client API (package
	// httpapi/clientapi); off unless ClientAPI.Listen is set.
	ClientAPI ClientAPIConfig `json:"client_api"`

	// HubKeyFile is the hub's signature key (RFC 9420, Section 12.1.8.1:
	// its external_senders entry; draft Section 5.6: GroupInfo
	// signatures), generated on first start if absent; default
	// DataDir/hub-key.pem.
	HubKeyFile string `json:"hub_key_file,omitempty"`
	// HubCipherSuite is the cipher suite of a newly generated hub key
	// (default DefaultHubSuite). An existing key keeps its suite; a
	// conflicting non-zero value is an error.
	HubCipherSuite uint16 `json:"hub_cipher_suite,omitempty"`

	// ShutdownTimeout bounds how long Close waits for in-flight
	// requests; default DefaultShutdownTimeout.
	ShutdownTimeout Duration `json:"shutdown_timeout,omitempty"`

	// Logger receives structured logs; default slog.Default().
	Logger *slog.Logger `json:"-"`
	// Clock is the time source of hub timestamps, KeyPackage expiry and
	// fanout retry dates (tests, clock-skew drills); default time.Now.
	Clock func() time.Time `json:"-"`
	// Consent authorizes key material claims (provider.Config.Consent);
	// nil allows every request.
	Consent provider.ConsentFunc `json:"-"`
	// Listener, MetricsListener and AdminListener, if set, are used
	// instead of listening on the corresponding address (tests, socket
	// activation). Close closes them.
	Listener        net.Listener `json:"-"`
	MetricsListener net.Listener `json:"-"`
	ClientListener  net.Listener `json:"-"`
	AdminListener   net.Listener `json:"-"`
	// RaftDialContext, if set, opens this node's connections to its
	// cluster peers (raftnode.TLSConfig.DialContext): a proxy, or a test
	// partitioning the cluster.
	RaftDialContext func(ctx context.Context, network, addr string) (net.Conn, error) `json:"-"`
	// AdminFactory builds the admin API server; nil means DefaultAdmin
	// (package httpapi/admin).
	AdminFactory AdminFactory `json:"-"`

	// testWrapSM lets internal tests wrap the state machine (storage
	// failure injection).
	testWrapSM func(machineSM) machineSM
}

// TLSFiles names PEM files of a certificate, its key and trust anchors
// (RFC 7468).
type TLSFiles struct {
	// CertFile is the certificate chain, leaf first; KeyFile its private
	// key. For federation the leaf must authenticate the domain by a
	// DNS-ID and carry serverAuth and clientAuth (Section 4.1).
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// CAFiles are trust anchors: for federation, the CAs that issue peer
	// providers' certificates, used both to verify their client
	// certificates and their server certificates.
	CAFiles []string `json:"ca_files,omitempty"`
	// SystemRoots adds the system's trust anchors to CAFiles.
	SystemRoots bool `json:"system_roots,omitempty"`
}

// RateLimitConfig is a per-peer token bucket (package transport's
// RateLimit): PerSecond requests per second sustained, bursts of Burst.
// Zero fields take transport.DefaultRatePerSecond and DefaultRateBurst.
type RateLimitConfig struct {
	// Disabled turns the limit off.
	Disabled bool `json:"disabled,omitempty"`
	// PerSecond is the sustained rate in requests per second.
	PerSecond float64 `json:"per_second,omitempty"`
	// Burst is the bucket size.
	Burst int `json:"burst,omitempty"`
}

// FanoutConfig tunes the hub's delivery of its rooms' messages to follower
// providers (package fanout; draft-ralston-mimi-protocol-02, Section 5.5:
// retries "respecting any guidance provided by the server in HTTP header
// fields such as Retry-After"). Zero fields take fanout's defaults.
type FanoutConfig struct {
	// MaxConcurrent bounds the destinations served at once.
	MaxConcurrent int `json:"max_concurrent,omitempty"`
	// MaxBatchMessages bounds the deliveries a destination is sent at
	// once (one /notify body per room, sent together: fanout.Round), and
	// MaxBatchBytes one body.
	MaxBatchMessages int `json:"max_batch_messages,omitempty"`
	MaxBatchBytes    int `json:"max_batch_bytes,omitempty"`
	// BackoffBase and BackoffCap shape the exponential backoff with full
	// jitter between failed attempts.
	BackoffBase Duration `json:"backoff_base,omitempty"`
	BackoffCap  Duration `json:"backoff_cap,omitempty"`
	// MaxRetryAfter caps the delay a follower may ask for.
	MaxRetryAfter Duration `json:"max_retry_after,omitempty"`
	// ScanInterval is the period of the backlog and leadership scan.
	ScanInterval Duration `json:"scan_interval,omitempty"`
	// SendTimeout bounds one POST /notify; AckTimeout the replicated
	// acknowledgement that follows a 201.
	SendTimeout Duration `json:"send_timeout,omitempty"`
	AckTimeout  Duration `json:"ack_timeout,omitempty"`
}

// RaftConfig configures the Raft node (package raftnode). With Bind empty
// the node is standalone: a single voter on an in-memory transport.
type RaftConfig struct {
	// NodeID is the Raft server ID, unique in the cluster for all time;
	// required when clustered (default "local" standalone).
	NodeID string `json:"node_id,omitempty"`
	// Bind is the cluster TCP listen address; set it to cluster.
	Bind string `json:"bind,omitempty"`
	// Advertise is the address peers dial; default Bind's.
	Advertise string `json:"advertise,omitempty"`
	// Peers are the other initial voters, used with Bootstrap.
	Peers []RaftPeer `json:"peers,omitempty"`
	// Bootstrap makes a node without Raft state bootstrap a new cluster
	// of itself and Peers (see raftnode.Config.Bootstrap).
	Bootstrap bool `json:"bootstrap,omitempty"`
	// TLS is the cluster certificate (serverAuth and clientAuth) and the
	// cluster CA. Required when clustered, except in dev mode, where the
	// federation certificate and the dev CA are used.
	TLS TLSFiles `json:"tls"`
	// AllowedNames, if set, restricts peers to certificates carrying one
	// of these DNS or URI names (raftnode.AllowPeerNames).
	AllowedNames []string `json:"allowed_names,omitempty"`

	// Timing (zero: Raft's defaults when clustered, fast timeouts
	// standalone, where no network is involved).
	HeartbeatTimeout Duration `json:"heartbeat_timeout,omitempty"`
	ElectionTimeout  Duration `json:"election_timeout,omitempty"`
	// SnapshotInterval and SnapshotThreshold (zero: Raft's defaults).
	SnapshotInterval  Duration `json:"snapshot_interval,omitempty"`
	SnapshotThreshold uint64   `json:"snapshot_threshold,omitempty"`
	// TrailingLogs is how many log entries a snapshot leaves behind
	// (zero: Raft's default, 10240): a peer further behind than that
	// catches up by installing a snapshot.
	TrailingLogs uint64 `json:"trailing_logs,omitempty"`
}

// Clustered reports whether the node uses the network transport.
func (r *RaftConfig) Clustered() bool { return r.Bind != "" }

// RaftPeer names another voter: its Raft server ID and cluster address.
type RaftPeer struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// AdminConfig configures the admin API listener (package httpapi/admin).
// The API never runs without a credential: a bearer token and/or an
// admin client CA.
type AdminConfig struct {
	// Listen is the admin TLS listen address; empty turns the API off.
	Listen string `json:"listen,omitempty"`
	// TokenFile holds the bearer token (whitespace trimmed). In dev mode,
	// with neither a token nor a client CA, DataDir/admin.token is
	// generated and used.
	TokenFile string `json:"token_file,omitempty"`
	// Token is the bearer token itself (prefer TokenFile).
	Token string `json:"token,omitempty"`
	// ClientCAFiles are the admin CAs: a client certificate chaining to
	// one authenticates a caller.
	ClientCAFiles []string `json:"client_ca_files,omitempty"`
	// CertFile and KeyFile are the admin server certificate; default the
	// federation certificate, or in dev mode one for localhost and the
	// loopback addresses issued by the dev CA.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
}

// Enabled reports whether the admin API is configured.
func (a *AdminConfig) Enabled() bool { return a.Listen != "" }

// Duration is a time.Duration written as a string ("15s") in JSON.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	*d = Duration(v)
	return nil
}

// ErrConfig is returned (wrapped) by Start for an unusable Config.
var ErrConfig = errors.New("daemon: invalid configuration")

// withDefaults validates c and returns a copy with defaults filled in.
func (c Config) withDefaults() (Config, error) {
	bad := func(format string, a ...any) (Config, error) {
		return c, fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	if err := mimi.ValidateDomain(c.Domain); err != nil {
		return bad("domain %q: %v", c.Domain, err)
	}
	if c.DataDir == "" {
		return bad("a data directory is required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Listen == "" && c.Listener == nil {
		c.Listen = DefaultListen
		if c.Dev {
			c.Listen = DefaultDevListen
		}
	}
	if c.BaseURL == "" {
		c.BaseURL = "https://" + c.Domain
	}
	if c.Dev && c.DevCADir == "" {
		c.DevCADir = filepath.Join(c.DataDir, DevCADir)
	}
	if c.HubKeyFile == "" {
		c.HubKeyFile = filepath.Join(c.DataDir, HubKeyFile)
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = Duration(DefaultShutdownTimeout)
	}
	if c.NotifyRetention < 0 {
		return bad("negative notify_retention")
	}
	if c.NotifyRetention == 0 {
		c.NotifyRetention = Duration(DefaultNotifyRetention)
	}
	if c.MaxBodyBytes < 0 {
		return bad("negative body size limit")
	}
	if c.ApplyTimeout < 0 {
		return bad("negative apply_timeout")
	}
	if c.PeerRateLimit.PerSecond < 0 || c.PeerRateLimit.Burst < 0 {
		return bad("peer_rate_limit: negative rate or burst")
	}
	if f := &c.Fanout; f.MaxConcurrent < 0 || f.MaxBatchMessages < 0 || f.MaxBatchBytes < 0 ||
		f.BackoffBase < 0 || f.BackoffCap < 0 || f.MaxRetryAfter < 0 || f.ScanInterval < 0 || f.SendTimeout < 0 || f.AckTimeout < 0 {
		return bad("fanout: negative limit or duration")
	} else if f.BackoffCap != 0 && f.BackoffCap < f.BackoffBase {
		return bad("fanout: backoff_cap below backoff_base")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return bad("tls: cert_file and key_file go together")
	}
	if !c.Dev && c.TLS.CertFile == "" {
		return bad("tls: a certificate (cert_file, key_file) is required outside dev mode")
	}
	if !c.Dev && len(c.TLS.CAFiles) == 0 && !c.TLS.SystemRoots {
		return bad("tls: trust anchors for peers (ca_files or system_roots) are required outside dev mode")
	}
	for d, a := range c.Resolve {
		if err := mimi.ValidateDomain(strings.ToLower(d)); err != nil {
			return bad("resolve: domain %q: %v", d, err)
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return bad("resolve: %s: address %q: %v", d, a, err)
		}
	}
	r := &c.Raft
	if r.Clustered() {
		if r.NodeID == "" {
			return bad("raft: a clustered node needs node_id")
		}
		if (r.TLS.CertFile == "") != (r.TLS.KeyFile == "") {
			return bad("raft.tls: cert_file and key_file go together")
		}
		if !c.Dev && (r.TLS.CertFile == "" || (len(r.TLS.CAFiles) == 0 && !r.TLS.SystemRoots)) {
			return bad("raft.tls: a clustered node needs a certificate and the cluster CA outside dev mode")
		}
		for _, p := range r.Peers {
			if p.ID == "" || p.Addr == "" {
				return bad("raft: peer %+v needs id and addr", p)
			}
		}
	} else if len(r.Peers) > 0 || r.Bootstrap || r.Advertise != "" {
		return bad("raft: peers, bootstrap and advertise need a cluster bind address")
	}
	a := &c.Admin
	if a.Enabled() || c.AdminListener != nil {
		if (a.CertFile == "") != (a.KeyFile == "") {
			return bad("admin: cert_file and key_file go together")
		}
		if !c.Dev && a.Token == "" && a.TokenFile == "" && len(a.ClientCAFiles) == 0 {
			return bad("admin: a token (token_file) or client_ca_files is required")
		}
	}
	return c, nil
}

// loadPool reads PEM CA files into a pool (with the system roots if
// system is set).
func loadPool(files []string, system bool, extra ...*x509.Certificate) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if system {
		sp, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("daemon: system roots: %w", err)
		}
		pool = sp
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("daemon: trust anchors: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("daemon: trust anchors: %s holds no PEM certificate", f)
		}
	}
	for _, c := range extra {
		pool.AddCert(c)
	}
	return pool, nil
}

// loadPair reads a certificate chain and key.
func loadPair(certFile, keyFile string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return c, fmt.Errorf("daemon: certificate %s: %w", certFile, err)
	}
	return c, nil
}

// readToken reads a bearer token file.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("daemon: admin token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// resolver maps the overridden domains to their addresses and leaves the
// others to the URL's address (DNS).
func resolver(m map[string]string) func(context.Context, string) (string, error) {
	if len(m) == 0 {
		return nil
	}
	mm := make(map[string]string, len(m))
	for k, v := range m {
		mm[strings.ToLower(k)] = v
	}
	return func(_ context.Context, domain string) (string, error) {
		return mm[strings.ToLower(domain)], nil
	}
}

// ClientAPIConfig configures the client-to-provider API the draft leaves to
// providers (draft-ralston-mimi-protocol-02, Section 3's [[ ]] steps):
// Connect RPC over TLS with the domain's certificate, clients
// authenticated by their MLS signature keys.
type ClientAPIConfig struct {
	// Listen is the TLS listen address; empty disables the API.
	Listen string `json:"listen,omitempty"`
	// OpenRegistration lets anyone register a device for any local user.
	// It is the default in dev mode; elsewhere registration is refused
	// unless it is set (or Registration is supplied programmatically),
	// because the daemon has no account system to consult.
	OpenRegistration bool `json:"open_registration,omitempty"`
	// Registration, if set, decides registrations (an account system's
	// hook); it takes precedence over OpenRegistration.
	Registration clientapi.RegistrationPolicy `json:"-"`
}

// Enabled reports whether the client API is configured.
func (c *ClientAPIConfig) Enabled() bool { return c.Listen != "" }

// policy returns the registration policy for the daemon's mode.
func (c *ClientAPIConfig) policy(dev bool) clientapi.RegistrationPolicy {
	switch {
	case c.Registration != nil:
		return c.Registration
	case c.OpenRegistration || dev:
		return clientapi.AllowAllRegistrations
	default:
		return func(context.Context, *clientapi.RegistrationRequest) error {
			return errRegistrationClosed
		}
	}
}

// errRegistrationClosed refuses registrations when no policy is configured.
var errRegistrationClosed = errors.New("daemon: device registration is closed on this provider (no registration policy configured)")
