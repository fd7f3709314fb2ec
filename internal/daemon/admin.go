package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"

	"github.com/openmimi/mimi/fanout"
	"github.com/openmimi/mimi/httpapi/admin"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/raftnode"
)

// AdminServer is an admin API server the daemon runs on its admin
// listener (Config.Admin). *admin.Server (package httpapi/admin)
// implements it.
type AdminServer interface {
	// Serve serves on ln until Shutdown, then returns
	// http.ErrServerClosed.
	Serve(ln net.Listener) error
	// Shutdown stops accepting and waits for in-flight calls until ctx
	// ends.
	Shutdown(ctx context.Context) error
}

// AdminDeps is what an admin API server is built from: the running parts
// of the daemon and the admin credentials from the configuration.
type AdminDeps struct {
	Domain   string
	Provider *provider.Provider
	Machine  *projections.Machine
	Node     *raftnode.Node[projections.Result]
	Fanout   *fanout.Engine
	// Token is the bearer token ("" for none); ClientCAs the admin CAs
	// (nil for none). At least one is set.
	Token     string
	ClientCAs *x509.CertPool
	// TLS carries the admin server certificate.
	TLS *tls.Config
	// ScratchDir is a directory on the data volume for temporary stores.
	ScratchDir string
	Logger     *slog.Logger
}

// AdminFactory builds the admin API server (Config.AdminFactory).
type AdminFactory func(AdminDeps) (AdminServer, error)

// DefaultAdmin is the AdminFactory serving mimi.admin.v1.AdminService
// (package httpapi/admin) over the daemon's projections, Raft node and
// fanout engine.
func DefaultAdmin(d AdminDeps) (AdminServer, error) {
	svc, err := admin.NewService(admin.ServiceConfig{
		Backend:    admin.ForNode(d.Machine, d.Node, fanoutStatus{d.Fanout}),
		ScratchDir: d.ScratchDir,
		Logger:     d.Logger,
	})
	if err != nil {
		return nil, err
	}
	srv, err := admin.NewServer(admin.ServerConfig{
		Service:   svc,
		Token:     d.Token,
		ClientCAs: d.ClientCAs,
		TLS:       d.TLS,
		Logger:    d.Logger,
	})
	if err != nil {
		svc.Close()
		return nil, err
	}
	return srv, nil
}

// fanoutStatus adapts the fanout engine to admin.FanoutStatusSource
// (draft-ralston-mimi-protocol-02, Section 5.5).
type fanoutStatus struct{ e *fanout.Engine }

// Status implements admin.FanoutStatusSource.
func (f fanoutStatus) Status() []admin.FanoutDestinationStatus {
	if f.e == nil {
		return nil
	}
	sts, err := f.e.Status()
	if err != nil {
		return nil
	}
	out := make([]admin.FanoutDestinationStatus, 0, len(sts))
	for _, s := range sts {
		out = append(out, admin.FanoutDestinationStatus{
			Destination:         s.Destination,
			Enqueued:            s.Enqueued,
			Acked:               s.Acked,
			LastError:           s.LastError,
			LastAttempt:         s.LastAttempt,
			LastSuccess:         s.LastSuccess,
			NextRetry:           s.NextRetry,
			ConsecutiveFailures: uint32(min(max(s.Attempts, 0), 1<<31)),
		})
	}
	return out
}

var _ AdminServer = (*admin.Server)(nil)
