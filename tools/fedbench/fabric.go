package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/internal/daemon"
	"github.com/openmimi/mimi/internal/devpki"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
)

// The three providers of the benchmark (draft-ralston-mimi-protocol-02,
// Section 3): a.example hosts the room (the hub), b.example and c.example
// follow it.
const (
	hubDomain = "a.example"
	bDomain   = "b.example"
	cDomain   = "c.example"
	roomID    = "mimi://a.example/r/fedbench"
	suite     = cipher.X25519_AES128GCM_SHA256_Ed25519
)

var domains = []string{hubDomain, bDomain, cDomain}

// node is one provider process of the fabric.
type node struct {
	domain      string
	dir         string
	certFile    string
	keyFile     string
	addr        string
	metricsAddr string
	d           *daemon.Daemon
	lp          *localProvider
}

// fabric is three internal/daemon instances on loopback sharing a fresh
// dev CA, each a standalone Raft node with its own data directory.
type fabric struct {
	dir   string
	ca    *devpki.CA
	nodes map[string]*node
	http  *http.Client
}

// startFabric creates the CA and the certificates in dir and starts the
// three providers.
func startFabric(ctx context.Context, dir string, logw io.Writer) (_ *fabric, err error) {
	ca, _, err := devpki.LoadOrCreate(filepath.Join(dir, "ca"), "fedbench dev CA")
	if err != nil {
		return nil, fmt.Errorf("dev CA: %w", err)
	}
	f := &fabric{dir: dir, ca: ca, nodes: map[string]*node{}, http: &http.Client{Timeout: 10 * time.Second}}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	resolve := map[string]string{}
	lns := map[string][2]net.Listener{}
	defer func() {
		if err != nil {
			for _, l := range lns {
				l[0].Close()
				l[1].Close()
			}
		}
	}()
	for _, d := range domains {
		n := &node{
			domain:   d,
			dir:      filepath.Join(dir, d),
			certFile: filepath.Join(dir, "certs", d+".pem"),
			keyFile:  filepath.Join(dir, "certs", d+"-key.pem"),
		}
		if err := os.MkdirAll(filepath.Dir(n.certFile), 0o700); err != nil {
			return nil, err
		}
		if _, err := ca.EnsureLeaf(n.certFile, n.keyFile, d); err != nil {
			return nil, fmt.Errorf("certificate for %s: %w", d, err)
		}
		fl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ml, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fl.Close()
			return nil, err
		}
		lns[d] = [2]net.Listener{fl, ml}
		n.addr, n.metricsAddr = fl.Addr().String(), ml.Addr().String()
		resolve[d] = n.addr
		f.nodes[d] = n
	}
	logger := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, d := range domains {
		n := f.nodes[d]
		// Every goroutine the daemon starts inherits the label, so a CPU
		// profile splits by provider (go tool pprof -tags).
		var dm *daemon.Daemon
		var err error
		pprof.Do(ctx, pprof.Labels("provider", d), func(ctx context.Context) {
			dm, err = daemon.Start(ctx, daemon.Config{
				Domain:  d,
				DataDir: n.dir,
				// Dev mode adds the dev CA as trust anchor; the explicit
				// certificate files win over dev-issued ones, so the
				// baseline can load the very same files.
				Dev:             true,
				DevCADir:        ca.Dir,
				TLS:             daemon.TLSFiles{CertFile: n.certFile, KeyFile: n.keyFile, CAFiles: []string{ca.CertPath()}},
				Listener:        lns[d][0],
				MetricsListener: lns[d][1],
				Resolve:         resolve,
				ShutdownTimeout: daemon.Duration(5 * time.Second),
				Logger:          logger.With("provider", d),
			})
		})
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", d, err)
		}
		delete(lns, d) // the daemon owns them now
		n.d = dm
		n.lp = newLocalProvider(dm.Provider())
	}
	for _, d := range domains {
		if err := f.nodes[d].d.WaitReady(ctx); err != nil {
			return nil, fmt.Errorf("%s not ready: %w", d, err)
		}
	}
	return f, nil
}

func (f *fabric) close() error {
	var errs []error
	for _, d := range domains {
		if n := f.nodes[d]; n != nil && n.d != nil {
			if err := n.d.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", d, err))
			}
		}
	}
	f.http.CloseIdleConnections()
	return errors.Join(errs...)
}

// metrics fetches a provider's Prometheus text exposition.
func (f *fabric) metrics(ctx context.Context, d string) (promText, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+f.nodes[d].metricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics of %s: status %d", d, resp.StatusCode)
	}
	return parseProm(string(b)), nil
}

// member is one MLS client of the room with its provider.
type member struct {
	name string
	node *node
	c    *client.Client
}

// room is the benchmark room: a receiving client at each provider and
// the sending clients at the sender provider.
type room struct {
	receivers []*member // one per provider, hub first
	senders   []*member
}

// benchPolicy lets every participant send; the creator may also add.
func benchPolicy() mimi.Policy {
	return mimi.Policy{RoomID: roomID, Roles: []mimi.Role{
		{Name: "admin", Permissions: []mimi.Permission{mimi.CanAddUser, mimi.CanRemoveUser, mimi.CanSetUserRole, mimi.CanSendMessage}},
		{Name: "member", Permissions: []mimi.Permission{mimi.CanSendMessage}},
	}}
}

func (f *fabric) newMember(ctx context.Context, domain, user, device string, kps int) (*member, error) {
	n := f.nodes[domain]
	userURI := "mimi://" + domain + "/u/" + user
	c, err := client.New(userURI, "mimi://"+domain+"/d/"+device, suite, n.lp, nil)
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", device, err)
	}
	if err := c.Enroll(ctx, kps); err != nil {
		return nil, err
	}
	return &member{name: device, node: n, c: c}, nil
}

// buildRoom builds the room with the client SDK: a receiving client at
// each provider (the one at the hub creates the room) and senders
// sending clients of one user at senderDomain, all added by the
// creator's first commit (draft-ralston-mimi-protocol-02, Sections 3.1 and
// 3.2: key material claimed through the hub, Welcome fanned out by the
// hub's /notify), then joined by Sync.
func (f *fabric) buildRoom(ctx context.Context, senderDomain string, senders int) (*room, error) {
	r := &room{}
	var participants []mimi.Participant
	for i, d := range domains {
		user := "recv-" + d[:1]
		m, err := f.newMember(ctx, d, user, user+"-1", 1)
		if err != nil {
			return nil, err
		}
		r.receivers = append(r.receivers, m)
		role := "member"
		if i == 0 {
			role = "admin"
		}
		participants = append(participants, mimi.Participant{User: m.c.User(), Role: role})
	}
	for i := range senders {
		m, err := f.newMember(ctx, senderDomain, "sender", fmt.Sprintf("sender-%d", i), 1)
		if err != nil {
			return nil, err
		}
		r.senders = append(r.senders, m)
	}
	participants = append(participants, mimi.Participant{User: r.senders[0].c.User(), Role: "member"})
	creator := r.receivers[0]
	if err := creator.c.CreateRoom(ctx, roomID, benchPolicy(), participants); err != nil {
		return nil, fmt.Errorf("create room: %w", err)
	}
	joiners := append(append([]*member{}, r.receivers[1:]...), r.senders...)
	for _, m := range joiners {
		if err := waitJoined(ctx, m, 60*time.Second); err != nil {
			return nil, err
		}
	}
	ri, err := creator.c.Room(roomID)
	if err != nil {
		return nil, err
	}
	if want := len(r.receivers) + len(r.senders); len(ri.Members) != want {
		return nil, fmt.Errorf("room has %d members, want %d", len(ri.Members), want)
	}
	ea, err := creator.c.EpochAuthenticator(roomID)
	if err != nil {
		return nil, err
	}
	for _, m := range joiners {
		eb, err := m.c.EpochAuthenticator(roomID)
		if err != nil {
			return nil, err
		}
		if string(ea) != string(eb) {
			return nil, fmt.Errorf("%s disagrees with the creator on the epoch", m.name)
		}
	}
	return r, nil
}

// waitJoined syncs m until it has joined the room by the Welcome the
// hub's fanout delivers (draft-ralston-mimi-protocol-02, Section 5.5).
func waitJoined(ctx context.Context, m *member, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		evs, err := m.c.Sync(ctx)
		if err != nil {
			return fmt.Errorf("sync %s: %w", m.name, err)
		}
		for _, ev := range evs {
			if ev.Type == client.EventError {
				return fmt.Errorf("%s: %w", m.name, ev.Err)
			}
		}
		for _, r := range m.c.Rooms() {
			if r == roomID {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not join the room within %s", m.name, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
