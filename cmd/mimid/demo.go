package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/client/local"
	"github.com/openmimi/mimi/internal/daemon"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/provider"
)

// The demo's cast (draft-ralston-mimi-protocol-02, Section 3): the room
// clubhouse hosted by a.example, and the users of the three providers.
const (
	demoRoom  = "mimi://a.example/r/clubhouse"
	demoHub   = "a.example"
	demoAlice = "mimi://a.example/u/alice"
	demoBob   = "mimi://b.example/u/bob"
	demoCathy = "mimi://c.example/u/cathy"
	demoSuite = cipher.X25519_AES128GCM_SHA256_Ed25519

	// DefaultDemoTimeout bounds a whole `mimid demo` run.
	DefaultDemoTimeout = 2 * time.Minute
	// demoPoll is the pause between two rounds of syncing the clients.
	demoPoll = 20 * time.Millisecond
)

var demoDomains = []string{"a.example", "b.example", "c.example"}

// demoPolicy is the clubhouse's base policy (Section 3.1). The draft's
// example has only admin = [canAddUser, canRemoveUser, canSetUserRole]
// and lets Bob add Cathy without saying how he may; our hub enforces
// canAddUser and canSendMessage (docs/codepoints.md), so Bob and Cathy
// join as "member", which may add users and send messages, and admin may
// also send.
func demoPolicy() mimi.Policy {
	return mimi.Policy{RoomID: demoRoom, Roles: []mimi.Role{
		{Name: "admin", Permissions: []mimi.Permission{mimi.CanAddUser, mimi.CanRemoveUser, mimi.CanSetUserRole, mimi.CanSendMessage}},
		{Name: "member", Permissions: []mimi.Permission{mimi.CanAddUser, mimi.CanSendMessage}},
	}}
}

// demoOptions are the flags of `mimid demo`.
type demoOptions struct {
	keep    bool
	verbose bool
	timeout time.Duration
}

func parseDemo(args []string, stderr io.Writer) (*demoOptions, error) {
	o := &demoOptions{}
	fs := flag.NewFlagSet("mimid demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: mimid demo [-keep] [-v] [-timeout 2m]

Runs the example flow of draft-ralston-mimi-protocol-02, Section 3 on three
providers (a.example, the hub; b.example; c.example) started in this
process on loopback ports, federating over mutual TLS with a fresh dev CA,
with SDK clients attached to them in process. Exits 0 only if every check
passes.

`)
		fs.PrintDefaults()
	}
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (data directories, dev CA) at exit")
	fs.BoolVar(&o.verbose, "v", false, "print the daemons' logs on stderr")
	fs.DurationVar(&o.timeout, "timeout", DefaultDemoTimeout, "bound on the whole run, including every wait for fanout")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("-timeout must be positive, got %v", o.timeout)
	}
	return o, nil
}

// demo runs `mimid demo`.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseDemo(args, stderr)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "mimid demo: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	r := &demoRun{
		o: o, out: stdout, stderr: stderr,
		nodes:   map[string]*demoNode{},
		clients: map[string]*demoClient{},
		calls:   &callLog{},
		http:    &http.Client{Timeout: 10 * time.Second},
	}
	err = r.run(ctx)
	if cerr := r.shutdown(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%w (the whole run is bounded by -timeout %v)", err, o.timeout)
		}
		fmt.Fprintf(stderr, "mimid demo: FAILED: %v\n", err)
		if !o.verbose {
			fmt.Fprintln(stderr, "mimid demo: run with -v to see the providers' logs")
		}
		return exitFail
	}
	fmt.Fprintf(stdout, "\nmimid demo: all %d checks passed: %s\n", r.checks, r.final)
	return exitOK
}

// demoRun is one run of the demo.
type demoRun struct {
	o           *demoOptions
	out, stderr io.Writer
	dir         string
	caCert      string
	nodes       map[string]*demoNode
	clients     map[string]*demoClient
	calls       *callLog
	http        *http.Client
	step        int
	checks      int
	final       string
}

// demoNode is one provider daemon.
type demoNode struct {
	domain      string
	d           *daemon.Daemon
	metricsAddr string
	// seen is the last scrape of its federation request counters:
	// "endpoint code" -> count.
	seen map[string]float64
}

// demoClient is one SDK client.
type demoClient struct {
	name string // ClientA1
	c    *client.Client
}

func (r *demoRun) printf(format string, args ...any) { fmt.Fprintf(r.out, format, args...) }

// check counts a passed check, or returns the failure.
func (r *demoRun) check(err error) error {
	if err != nil {
		return fmt.Errorf("check failed: %w", err)
	}
	r.checks++
	return nil
}

func (r *demoRun) run(ctx context.Context) error {
	r.printf("mimid demo: the example flow of draft-ralston-mimi-protocol-02, Section 3,\n")
	r.printf("on three providers federating over mutual TLS on loopback\n\n")
	if err := r.startProviders(ctx); err != nil {
		return err
	}
	if err := r.makeClients(ctx); err != nil {
		return err
	}
	r.printPolicy()
	for i, s := range []struct {
		title string
		f     func(context.Context) error
	}{
		{"Alice creates a room (Section 3.1)", r.createRoom},
		{"Alice adds Bob to the room (Section 3.2)", r.addBob},
		{"Bob adds Cathy to the room, through the hub (Section 3.3)", r.addCathy},
		{"Cathy sends a message (Section 3.4)", r.cathySends},
		{"Bob leaves the room (Section 3.5)", r.bobLeaves},
		{"Cathy adds a new device (Section 3.6)", r.newDevice},
	} {
		r.step = i + 1
		r.printf("\n== %d/6  %s ==\n", r.step, s.title)
		if err := r.snapshot(ctx); err != nil {
			return fmt.Errorf("step %d: %w", r.step, err)
		}
		r.calls.take()
		if err := s.f(ctx); err != nil {
			return fmt.Errorf("step %d (%s): %w", r.step, s.title, err)
		}
	}
	return nil
}

// startProviders starts a.example, b.example and c.example: full daemons
// with their own data directories, one fresh dev CA, loopback listeners
// and resolver overrides so that they reach each other over mutual TLS
// (Section 4.1).
func (r *demoRun) startProviders(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "mimid-demo-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	r.dir = dir
	logger := slog.New(slog.DiscardHandler)
	if r.o.verbose {
		logger = slog.New(slog.NewTextHandler(r.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	resolve := map[string]string{}
	lns := map[string][2]net.Listener{}
	defer func() { // listeners not handed to a daemon
		for _, l := range lns {
			l[0].Close()
			l[1].Close()
		}
	}()
	for _, d := range demoDomains {
		fl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("listen for %s: %w", d, err)
		}
		ml, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fl.Close()
			return fmt.Errorf("listen for %s metrics: %w", d, err)
		}
		lns[d] = [2]net.Listener{fl, ml}
		resolve[d] = fl.Addr().String()
	}
	for _, d := range demoDomains {
		l := lns[d]
		delete(lns, d)
		dd, err := daemon.Start(ctx, daemon.Config{
			Domain: d, DataDir: filepath.Join(dir, d), Dev: true, DevCADir: filepath.Join(dir, "dev-ca"),
			Listener: l[0], MetricsListener: l[1], Resolve: resolve,
			ShutdownTimeout: daemon.Duration(5 * time.Second),
			Logger:          logger.With("provider", d),
		})
		if err != nil {
			l[0].Close()
			l[1].Close()
			return fmt.Errorf("starting %s: %w", d, err)
		}
		r.nodes[d] = &demoNode{domain: d, d: dd, metricsAddr: dd.Info().MetricsAddr}
		if r.caCert == "" {
			r.caCert = dd.Info().DevCACert
		}
	}
	for _, d := range demoDomains {
		if err := r.nodes[d].d.WaitReady(ctx); err != nil {
			return fmt.Errorf("%s did not become ready: %w", d, err)
		}
	}
	r.printf("providers (each a full mimid daemon: projections, standalone Raft, federation, fanout, metrics)\n")
	for _, d := range demoDomains {
		in := r.nodes[d].d.Info()
		role := ""
		if d == demoHub {
			role = "  hub of the room"
		}
		r.printf("  %-10s federation https://%s  metrics http://%s/metrics%s\n", d, in.FederationAddr, in.MetricsAddr, role)
	}
	r.printf("  dev CA     %s (fresh; all three trust it)\n", r.caCert)
	keep := "removed at exit; -keep keeps it"
	if r.o.keep {
		keep = "kept at exit: -keep"
	}
	r.printf("  data       %s (%s)\n", dir, keep)
	return nil
}

// makeClients creates the SDK clients, attached in process through
// package client/local: ClientA1 of Alice at a.example, ClientB1 and
// ClientB2 of Bob at b.example, ClientC1 and ClientC2 of Cathy at
// c.example; each registers and publishes KeyPackages (Section 4.3.1).
func (r *demoRun) makeClients(ctx context.Context) error {
	r.printf("\nclients (the Go SDK, package client, attached in process through package client/local;\n")
	r.printf("bodies cross in their wire encoding; [[ ]] marks client-to-provider steps as in the draft)\n")
	for _, c := range []struct {
		name, user string
		kps        int
	}{
		{"ClientA1", demoAlice, 1},
		{"ClientB1", demoBob, 2},
		{"ClientB2", demoBob, 2},
		{"ClientC1", demoCathy, 2},
		{"ClientC2", demoCathy, 2},
	} {
		if _, err := r.newClient(ctx, c.name, c.user, c.kps, true); err != nil {
			return err
		}
	}
	return nil
}

// newClient creates, registers and (kps > 0) publishes KeyPackages for the
// client mimi://<user's domain>/d/<name>, and prints it as a line of the
// client list (announce) or as a step.
func (r *demoRun) newClient(ctx context.Context, name, user string, kps int, announce bool) (*demoClient, error) {
	u, err := mimi.ParseURIKind(user, mimi.KindUser)
	if err != nil {
		return nil, err
	}
	n := r.nodes[u.Provider]
	uri := mimi.URI{Kind: mimi.KindClient, Provider: u.Provider, ID: name}.String()
	p := &tracingProvider{
		Provider: local.New(n.d.Provider(), &local.Options{Isolate: true}),
		name:     name, domain: u.Provider, log: r.calls,
	}
	c, err := client.New(user, uri, demoSuite, p, nil)
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", name, err)
	}
	if err := c.Enroll(ctx, kps); err != nil {
		return nil, err
	}
	dc := &demoClient{name: name, c: c}
	r.clients[name] = dc
	if announce {
		r.printf("  %-9s %-28s of %-25s at %s, %s published\n", name, uri, user, u.Provider, plural(kps, "KeyPackage"))
	} else {
		r.printf("%s (%s of %s) registers at %s\n", name, uri, user, u.Provider)
	}
	return dc, nil
}

func (r *demoRun) printPolicy() {
	p := demoPolicy()
	r.printf("\nroom %s, base policy (Section 4.3.1):\n", demoRoom)
	for _, role := range p.Roles {
		var perms []string
		for _, x := range role.Permissions {
			perms = append(perms, x.String())
		}
		r.printf("  %-6s = [%s]\n", role.Name, strings.Join(perms, ", "))
	}
	r.printf("  The draft's example has only admin = [canAddUser, canRemoveUser, canSetUserRole]\n")
	r.printf("  and lets Bob add Cathy without saying how; our hub enforces canAddUser and\n")
	r.printf("  canSendMessage, so Bob and Cathy join as \"member\", which may add users and\n")
	r.printf("  send messages.\n")
}

// ---- The six flows ----

func (r *demoRun) createRoom(ctx context.Context) error {
	a1 := r.clients["ClientA1"]
	r.printf("ClientA1 creates %s (MLS group %s) with participants [alice: admin],\n", demoRoom, groupURI())
	r.printf("then claims key material for Alice's clients so that her other clients become members\n")
	r.printf("(she has only ClientA1, so nobody is added; creation is local to the hub, Section 3.1)\n")
	if err := a1.c.CreateRoom(ctx, demoRoom, demoPolicy(), []mimi.Participant{{User: demoAlice, Role: "admin"}}); err != nil {
		return fmt.Errorf("ClientA1 creates the room: %w", err)
	}
	r.printCalls()
	ri, err := r.settle(ctx, "the room's creation", []string{"ClientA1"}, []string{"ClientA1"}, nil)
	if err != nil {
		return err
	}
	if err := r.check(expect(string(ri.GroupID) == groupURI(), "group ID %q, want %q", ri.GroupID, groupURI())); err != nil {
		return err
	}
	return r.finish(ctx, ri, []string{"ClientA1"}, map[string]string{demoAlice: "admin"}, nil, nil)
}

func (r *demoRun) addBob(ctx context.Context) error {
	r.printf("ClientA1 adds bob (%s) as member: key material for his clients, then one Commit\n", demoBob)
	r.printf("of an AppSync (+bob) and Adds, with the Welcome, GroupInfo and ratchet tree\n")
	if err := r.clients["ClientA1"].c.AddUser(ctx, demoRoom, demoBob, "member"); err != nil {
		return fmt.Errorf("ClientA1 adds bob: %w", err)
	}
	r.printCalls()
	evs := map[string][]client.Event{}
	ri, err := r.settle(ctx, "Bob's clients to join", []string{"ClientA1", "ClientB1", "ClientB2"}, []string{"ClientA1", "ClientB1", "ClientB2"}, func(e map[string][]client.Event) error {
		evs = e
		return joined(e, "ClientB1", "ClientB2")
	})
	if err != nil {
		return err
	}
	r.printJoins(evs, "ClientB1", "ClientB2")
	return r.finish(ctx, ri, []string{"ClientA1", "ClientB1", "ClientB2"},
		map[string]string{demoAlice: "admin", demoBob: "member"},
		map[string][]string{"b.example": {"keyMaterial 200", "notify 201"}}, nil)
}

func (r *demoRun) addCathy(ctx context.Context) error {
	r.printf("ClientB1 adds cathy (%s) as member; b.example is not the hub, so the\n", demoCathy)
	r.printf("key material request and the commit go through a.example\n")
	if err := r.clients["ClientB1"].c.AddUser(ctx, demoRoom, demoCathy, "member"); err != nil {
		return fmt.Errorf("ClientB1 adds cathy: %w", err)
	}
	r.printCalls()
	all := []string{"ClientA1", "ClientB1", "ClientB2", "ClientC1", "ClientC2"}
	var evs map[string][]client.Event
	ri, err := r.settle(ctx, "Cathy's clients to join and the others to see the commit", all, all, func(e map[string][]client.Event) error {
		evs = e
		if err := joined(e, "ClientC1", "ClientC2"); err != nil {
			return err
		}
		for _, n := range []string{"ClientA1", "ClientB2"} {
			ev := find(e[n], client.EventParticipants)
			if ev == nil {
				return fmt.Errorf("%s has not seen the participant change", n)
			}
			if ev.Changes == nil || len(ev.Changes.Add) != 1 || ev.Changes.Add[0].User != demoCathy || ev.Sender == nil || ev.Sender.Client != clientURI("ClientB1") {
				return fmt.Errorf("%s saw an unexpected participant change: %+v", n, ev)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.printJoins(evs, "ClientC1", "ClientC2")
	for _, n := range []string{"ClientA1", "ClientB2"} {
		ev := find(evs[n], client.EventMembers)
		r.printf("%s processed the commit by %s: +cathy, members added %s\n", n, name(ev.Sender), names(ev.Added))
	}
	return r.finish(ctx, ri, all,
		map[string]string{demoAlice: "admin", demoBob: "member", demoCathy: "member"},
		map[string][]string{
			"a.example": {"keyMaterial 200", "update 200"},
			"b.example": {"notify 201"},
			"c.example": {"keyMaterial 200", "notify 201"},
		}, nil)
}

func (r *demoRun) cathySends(ctx context.Context) error {
	const text = "Hello, clubhouse!"
	r.printf("ClientC1 sends %q as an MLS PrivateMessage; c.example submits it to the hub\n", text)
	if _, err := r.clients["ClientC1"].c.Send(ctx, demoRoom, []byte(text)); err != nil {
		return fmt.Errorf("ClientC1 sends: %w", err)
	}
	r.printCalls()
	all := []string{"ClientA1", "ClientB1", "ClientB2", "ClientC1", "ClientC2"}
	var evs map[string][]client.Event
	ri, err := r.settle(ctx, "every other client to decrypt the message", all, all, func(e map[string][]client.Event) error {
		evs = e
		return received(e, text, "ClientC1", "ClientA1", "ClientB1", "ClientB2", "ClientC2")
	})
	if err != nil {
		return err
	}
	if err := r.check(expect(find(evs["ClientC1"], client.EventMessage) == nil, "ClientC1 got its own message back as an event")); err != nil {
		return err
	}
	r.printMessages(evs, "ClientA1", "ClientB1", "ClientB2", "ClientC2")
	return r.finish(ctx, ri, all,
		map[string]string{demoAlice: "admin", demoBob: "member", demoCathy: "member"},
		map[string][]string{
			"a.example": {"submitMessage 200"},
			"b.example": {"notify 201"},
			"c.example": {"notify 201"},
		}, nil)
}

func (r *demoRun) bobLeaves(ctx context.Context) error {
	hub := r.nodes[demoHub].d
	before, err := hub.Machine().Room(demoRoom)
	if err != nil {
		return err
	}
	r.printf("ClientB1 leaves: it proposes Remove for both of Bob's clients and an AppSync (-bob);\n")
	r.printf("a client cannot commit its own removal, so the hub caches the proposals\n")
	if err := r.clients["ClientB1"].c.Leave(ctx, demoRoom); err != nil {
		return fmt.Errorf("ClientB1 leaves: %w", err)
	}
	r.printCalls()
	rec, err := hub.Machine().Room(demoRoom)
	if err != nil {
		return err
	}
	st, err := provider.RoomState(rec)
	if err != nil {
		return err
	}
	_, bobThere := st.Participant(demoBob)
	if err := r.check(expect(rec.Epoch == before.Epoch && rec.Proposals == 3 && !bobThere,
		"after the leave proposals the hub is at epoch %d (was %d) with %d cached proposals, bob a participant: %v; want the same epoch, 3 proposals, bob gone from the room state",
		rec.Epoch, before.Epoch, rec.Proposals, bobThere)); err != nil {
		return err
	}
	r.printf("hub: epoch still %d, %d proposals cached, room state already without bob (Section 6.1): %s\n",
		rec.Epoch, rec.Proposals, participantsString(st.Participants))
	stay := []string{"ClientA1", "ClientB2", "ClientC1", "ClientC2"}
	if _, err := r.settle(ctx, "the leave proposals to reach every client", stay, stay, func(e map[string][]client.Event) error {
		for _, n := range stay {
			k := 0
			for _, ev := range e[n] {
				if ev.Type == client.EventProposal && ev.Sender != nil && ev.Sender.Client == clientURI("ClientB1") {
					k++
				}
			}
			if k != 3 {
				return fmt.Errorf("%s has %d of ClientB1's 3 proposals", n, k)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	r.printf("ClientA1, ClientB2, ClientC1 and ClientC2 received and cached the 3 proposals\n")
	r.printf("ClientC1 commits the cached proposals (the hub requires the next commit to include them)\n")
	if err := r.clients["ClientC1"].c.Commit(ctx, demoRoom); err != nil {
		return fmt.Errorf("ClientC1 commits: %w", err)
	}
	r.printCalls()
	rest := []string{"ClientA1", "ClientC1", "ClientC2"}
	var evs map[string][]client.Event
	ri, err := r.settle(ctx, "Bob's clients to see their removal", []string{"ClientA1", "ClientB1", "ClientB2", "ClientC1", "ClientC2"}, rest, func(e map[string][]client.Event) error {
		evs = e
		for _, n := range []string{"ClientB1", "ClientB2"} {
			if find(e[n], client.EventRemoved) == nil {
				return fmt.Errorf("%s has not seen its removal", n)
			}
		}
		for _, n := range []string{"ClientA1", "ClientC2"} {
			ev := find(e[n], client.EventParticipants)
			if ev == nil || ev.Changes == nil || !slices.Equal(ev.Changes.Remove, []string{demoBob}) {
				return fmt.Errorf("%s has not seen bob's removal", n)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range []string{"ClientB1", "ClientB2"} {
		if err := r.check(expect(len(r.clients[n].c.Rooms()) == 0, "%s still has rooms %v", n, r.clients[n].c.Rooms())); err != nil {
			return err
		}
		r.printf("%s processed the commit: removed from the room (it forgets the room)\n", n)
	}
	for _, n := range []string{"ClientA1", "ClientC2"} {
		ev := find(evs[n], client.EventMembers)
		if ev == nil {
			return r.check(fmt.Errorf("%s saw no member change", n))
		}
		r.printf("%s processed the commit by %s: -bob, members removed %s\n", n, name(ev.Sender), names(ev.Removed))
	}
	return r.finish(ctx, ri, rest,
		map[string]string{demoAlice: "admin", demoCathy: "member"},
		map[string][]string{
			"a.example": {"update 200"},
			"b.example": {"notify 201"},
			"c.example": {"notify 201"},
		}, func(m map[string]map[string]float64) error {
			if k := m["a.example"]["update 200"]; k < 2 {
				return fmt.Errorf("the hub answered %v /update requests with 200, want 2 (the proposals and the commit)", k)
			}
			return nil
		})
}

func (r *demoRun) newDevice(ctx context.Context) error {
	r.printf("Cathy's new client ClientC3 joins by external commit: it fetches the hub-signed\n")
	r.printf("GroupInfo and ratchet tree, then commits itself into the group\n")
	c3, err := r.newClient(ctx, "ClientC3", demoCathy, 0, false)
	if err != nil {
		return err
	}
	if err := c3.c.JoinNewDevice(ctx, demoRoom); err != nil {
		return fmt.Errorf("ClientC3 joins: %w", err)
	}
	r.printCalls()
	rest := []string{"ClientA1", "ClientC1", "ClientC2", "ClientC3"}
	var evs map[string][]client.Event
	ri, err := r.settle(ctx, "the others to see ClientC3's external commit", rest, rest, func(e map[string][]client.Event) error {
		evs = e
		for _, n := range []string{"ClientA1", "ClientC1", "ClientC2"} {
			ev := find(e[n], client.EventMembers)
			if ev == nil || !slices.Equal(ev.Added, []string{clientURI("ClientC3")}) || ev.Sender == nil || ev.Sender.Client != clientURI("ClientC3") {
				return fmt.Errorf("%s has not seen ClientC3's external commit", n)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range []string{"ClientA1", "ClientC1", "ClientC2"} {
		ev := find(evs[n], client.EventMembers)
		r.printf("%s processed the external commit by %s: members added %s\n", n, name(ev.Sender), names(ev.Added))
	}
	const text = "Hi from my new device"
	r.printf("ClientC3 sends %q\n", text)
	if _, err := c3.c.Send(ctx, demoRoom, []byte(text)); err != nil {
		return fmt.Errorf("ClientC3 sends: %w", err)
	}
	r.printCalls()
	ri, err = r.settle(ctx, "the others to decrypt ClientC3's message", rest, rest, func(e map[string][]client.Event) error {
		evs = e
		return received(e, text, "ClientC3", "ClientA1", "ClientC1", "ClientC2")
	})
	if err != nil {
		return err
	}
	r.printMessages(evs, "ClientA1", "ClientC1", "ClientC2")
	if err := r.finish(ctx, ri, rest,
		map[string]string{demoAlice: "admin", demoCathy: "member"},
		map[string][]string{
			"a.example": {"groupInfo 200", "update 200", "submitMessage 200"},
			"c.example": {"notify 201"},
		}, nil); err != nil {
		return err
	}
	r.final = fmt.Sprintf("%s and the hub %s agree on epoch %d (epoch authenticator %s), participants %s, members %s",
		strings.Join(rest, ", "), demoHub, ri.Epoch, short(ri.EpochAuthenticator), participantsString(ri.Participants), memberString(ri))
	return nil
}

// ---- Waiting, checking, printing ----

// settle syncs the clients in syncs until cond (if any) accepts the
// events they produced and every client in inRoom holds the room at the
// hub's epoch, then waits for the hubs' fanout queues to drain (Section
// 5.5). An event of type EventError fails at once. It returns the room
// as the first client of inRoom holds it.
func (r *demoRun) settle(ctx context.Context, what string, syncs, inRoom []string, cond func(map[string][]client.Event) error) (*client.RoomInfo, error) {
	evs := map[string][]client.Event{}
	for {
		for _, n := range syncs {
			got, err := r.clients[n].c.Sync(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s syncs: %w", n, err)
			}
			for _, ev := range got {
				if ev.Type == client.EventError {
					return nil, fmt.Errorf("%s could not process a message (inbox position %d): %w", n, ev.Seq, ev.Err)
				}
			}
			evs[n] = append(evs[n], got...)
		}
		if err := r.failed(); err != nil {
			return nil, err
		}
		waiting := r.converged(inRoom)
		if waiting == nil && cond != nil {
			waiting = cond(evs)
		}
		if waiting == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s: %w; still waiting: %v", what, ctx.Err(), waiting)
		case <-time.After(demoPoll):
		}
	}
	if err := r.drain(ctx); err != nil {
		return nil, err
	}
	return r.clients[inRoom[0]].c.Room(demoRoom)
}

// failed returns the fatal error of a daemon that stopped, if any.
func (r *demoRun) failed() error {
	for _, d := range demoDomains {
		select {
		case <-r.nodes[d].d.Done():
			return fmt.Errorf("%s failed: %w", d, r.nodes[d].d.Err())
		default:
		}
	}
	return nil
}

// converged reports why the clients do not all hold the room at the hub's
// epoch yet, or nil.
func (r *demoRun) converged(names []string) error {
	rec, err := r.nodes[demoHub].d.Machine().Room(demoRoom)
	if err != nil {
		return fmt.Errorf("the hub's room: %w", err)
	}
	for _, n := range names {
		e, err := r.clients[n].c.Epoch(demoRoom)
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		if e != rec.Epoch {
			return fmt.Errorf("%s is at epoch %d, the hub at %d", n, e, rec.Epoch)
		}
	}
	return nil
}

// drain waits until every provider's fanout engine has delivered and had
// acknowledged everything queued (Section 5.5), so that the request
// counters are final for the step.
func (r *demoRun) drain(ctx context.Context) error {
	for {
		var pending []string
		for _, d := range demoDomains {
			st, err := r.nodes[d].d.Fanout().Status()
			if err != nil {
				return fmt.Errorf("fanout status of %s: %w", d, err)
			}
			for _, s := range st {
				if s.Backlog > 0 {
					pending = append(pending, fmt.Sprintf("%s -> %s: %d (last status %d %s)", d, s.Destination, s.Backlog, s.LastStatus, s.LastError))
				}
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if err := r.failed(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the fanout to drain: %w; pending %s", ctx.Err(), strings.Join(pending, "; "))
		case <-time.After(demoPoll):
		}
	}
}

// finish checks and prints the end of a step: the federation requests each
// provider served (with the ones the step must have produced), the room
// state, and the agreement of the clients in room with each other and with
// the hub's room projection on the epoch, epoch authenticator, policy,
// participants and members.
func (r *demoRun) finish(ctx context.Context, ri *client.RoomInfo, inRoom []string, wantParticipants map[string]string, wantRequests map[string][]string, more func(map[string]map[string]float64) error) error {
	deltas, err := r.requests(ctx)
	if err != nil {
		return err
	}
	r.printf("MIMI endpoints (federation requests each provider served in this step, from its /metrics):\n")
	served := false
	for _, d := range demoDomains {
		if len(deltas[d]) == 0 {
			continue
		}
		served = true
		r.printf("  %-9s <- %s\n", d, requestsString(deltas[d]))
	}
	if !served {
		r.printf("  none: every operation of this step was local to the hub\n")
	}
	for _, d := range demoDomains {
		for _, want := range wantRequests[d] {
			if err := r.check(expect(deltas[d][want] >= 1, "%s served no %s in this step (served: %s)", d, want, requestsString(deltas[d]))); err != nil {
				return err
			}
		}
	}
	if wantRequests == nil {
		if err := r.check(expect(!served, "federation requests in a step local to the hub")); err != nil {
			return err
		}
	}
	if more != nil {
		if err := r.check(more(deltas)); err != nil {
			return err
		}
	}
	if hub := wantRequests[demoHub]; len(hub) > 0 {
		answered := map[string]float64{}
		for _, k := range hub {
			answered[k] = deltas[demoHub][k]
		}
		r.printf("the hub %s answered %s\n", demoHub, requestsString(answered))
	}

	r.printf("room: epoch %d; participants %s; members %s\n", ri.Epoch, participantsString(ri.Participants), memberString(ri))
	// The expected participant list.
	var want []mimi.Participant
	for u, role := range wantParticipants {
		want = append(want, mimi.Participant{User: u, Role: role})
	}
	sort.Slice(want, func(i, j int) bool { return want[i].User < want[j].User })
	if err := r.check(expect(slices.Equal(ri.Participants, want), "participants %s, want %s", participantsString(ri.Participants), participantsString(want))); err != nil {
		return err
	}
	return r.agree(inRoom)
}

// agree checks that the clients and the hub's room projection hold the
// same room (Sections 4.3 and 6.1): epoch, epoch authenticator (RFC 9420,
// Section 8.7; clients only), policy, participants and members, with no
// proposals left pending at the hub.
func (r *demoRun) agree(names []string) error {
	rec, err := r.nodes[demoHub].d.Machine().Room(demoRoom)
	if err != nil {
		return r.check(fmt.Errorf("the hub's room: %w", err))
	}
	hub, err := provider.RoomState(rec)
	if err != nil {
		return r.check(fmt.Errorf("the hub's room state: %w", err))
	}
	if err := r.check(expect(rec.Proposals == 0, "the hub still caches %d proposals", rec.Proposals)); err != nil {
		return err
	}
	var ref *client.RoomInfo
	for _, n := range names {
		ri, err := r.clients[n].c.Room(demoRoom)
		if err != nil {
			return r.check(fmt.Errorf("%s: %w", n, err))
		}
		if err := r.check(expect(ri.Epoch == rec.Epoch, "%s is at epoch %d, the hub at %d", n, ri.Epoch, rec.Epoch)); err != nil {
			return err
		}
		if err := r.check(expect(slices.Equal(ri.Participants, hub.Participants),
			"%s has participants %s, the hub %s", n, participantsString(ri.Participants), participantsString(hub.Participants))); err != nil {
			return err
		}
		if err := r.check(expect(policyString(ri.Policy) == policyString(hub.Policy), "%s has policy %s, the hub %s", n, policyString(ri.Policy), policyString(hub.Policy))); err != nil {
			return err
		}
		if err := r.check(expect(slices.Equal(memberURIs(ri), rec.Members), "%s has members %v, the hub %v", n, memberURIs(ri), rec.Members)); err != nil {
			return err
		}
		if ref == nil {
			ref = ri
			continue
		}
		if err := r.check(expect(bytes.Equal(ri.EpochAuthenticator, ref.EpochAuthenticator),
			"%s's epoch authenticator %x differs from %s's %x", n, ri.EpochAuthenticator, names[0], ref.EpochAuthenticator)); err != nil {
			return err
		}
	}
	r.printf("check: %s and the hub agree: epoch %d, epoch authenticator %s, %s, %s  [ok]\n",
		strings.Join(names, ", "), rec.Epoch, short(ref.EpochAuthenticator), plural(len(hub.Participants), "participant"), plural(len(rec.Members), "member"))
	return nil
}

// snapshot records every provider's federation request counters.
func (r *demoRun) snapshot(ctx context.Context) error {
	for _, d := range demoDomains {
		m, err := r.scrape(ctx, r.nodes[d])
		if err != nil {
			return err
		}
		r.nodes[d].seen = m
	}
	return nil
}

// requests returns, per provider, the federation requests served since
// the last snapshot ("endpoint code" -> count), and takes a new snapshot.
func (r *demoRun) requests(ctx context.Context) (map[string]map[string]float64, error) {
	out := map[string]map[string]float64{}
	for _, d := range demoDomains {
		n := r.nodes[d]
		m, err := r.scrape(ctx, n)
		if err != nil {
			return nil, err
		}
		delta := map[string]float64{}
		for k, v := range m {
			if dv := v - n.seen[k]; dv > 0 {
				delta[k] = dv
			}
		}
		out[d] = delta
		n.seen = m
	}
	return out, nil
}

// scrape reads a daemon's mimi_federation_requests_total counters from
// its /metrics (Prometheus text format).
func (r *demoRun) scrape(ctx context.Context, n *demoNode) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.metricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", n.domain, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics of %s: HTTP %d", n.domain, resp.StatusCode)
	}
	return parseRequestCounters(resp.Body)
}

// parseRequestCounters extracts the mimi_federation_requests_total samples
// of a Prometheus text exposition as "endpoint code" -> value.
func parseRequestCounters(rd io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	prefix := daemon.MetricRequests + "{"
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		labels, value, ok := strings.Cut(line[len(prefix):], "} ")
		if !ok {
			return nil, fmt.Errorf("metrics: malformed sample %q", line)
		}
		var endpoint, code string
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			v = strings.Trim(v, `"`)
			switch k {
			case "endpoint":
				endpoint = v
			case "code":
				code = v
			}
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil || endpoint == "" || code == "" {
			return nil, fmt.Errorf("metrics: malformed sample %q", line)
		}
		out[endpoint+" "+code] += f
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return out, nil
}

// printCalls prints the client-to-provider calls made since the last call.
func (r *demoRun) printCalls() {
	for _, l := range r.calls.take() {
		r.printf("%s\n", l)
	}
}

func (r *demoRun) printJoins(evs map[string][]client.Event, names ...string) {
	for _, n := range names {
		ev := find(evs[n], client.EventJoined)
		r.printf("%s joined by the Welcome the hub fanned out to its provider (epoch %d)\n", n, ev.Epoch)
	}
}

func (r *demoRun) printMessages(evs map[string][]client.Event, names ...string) {
	for _, n := range names {
		ev := find(evs[n], client.EventMessage)
		r.printf("%s decrypted %q from %s\n", n, ev.Data, name(ev.Sender))
	}
}

// shutdown closes the daemons and removes the temporary directory unless
// -keep.
func (r *demoRun) shutdown() error {
	// Closed concurrently: each graceful shutdown waits for its peers'
	// connections to go away.
	errs := make([]error, len(demoDomains))
	var wg sync.WaitGroup
	for i, d := range demoDomains {
		if n := r.nodes[d]; n != nil && n.d != nil {
			wg.Go(func() {
				if err := n.d.Close(); err != nil {
					errs[i] = fmt.Errorf("closing %s: %w", d, err)
				}
			})
		}
	}
	wg.Wait()
	r.http.CloseIdleConnections()
	if r.dir != "" {
		if r.o.keep {
			fmt.Fprintf(r.out, "\nkept %s (data directories of the three providers and the dev CA)\n", r.dir)
		} else if err := os.RemoveAll(r.dir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", r.dir, err))
		}
	}
	return errors.Join(errs...)
}

// ---- Helpers ----

func expect(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, args...)
}

func groupURI() string {
	g, _ := client.GroupURI(demoRoom)
	return g
}

func clientURI(name string) string {
	d := map[byte]string{'A': "a.example", 'B': "b.example", 'C': "c.example"}[name[len("Client")]]
	return "mimi://" + d + "/d/" + name
}

func find(evs []client.Event, t client.EventType) *client.Event {
	for i := range evs {
		if evs[i].Type == t {
			return &evs[i]
		}
	}
	return nil
}

// joined reports which of the clients has not joined the room yet.
func joined(evs map[string][]client.Event, names ...string) error {
	for _, n := range names {
		if ev := find(evs[n], client.EventJoined); ev == nil || ev.Room != demoRoom {
			return fmt.Errorf("%s has not joined", n)
		}
	}
	return nil
}

// received reports which of the clients has not decrypted text from
// sender yet.
func received(evs map[string][]client.Event, text, sender string, names ...string) error {
	for _, n := range names {
		ev := find(evs[n], client.EventMessage)
		if ev == nil {
			return fmt.Errorf("%s has not received the message", n)
		}
		if string(ev.Data) != text || ev.Sender == nil || ev.Sender.Client != clientURI(sender) {
			return fmt.Errorf("%s received %q from %v, want %q from %s", n, ev.Data, ev.Sender, text, sender)
		}
	}
	return nil
}

// lastSegment returns the name part of a MIMI URI (alice, ClientA1).
func lastSegment(uri string) string {
	if u, err := mimi.ParseURI(uri); err == nil && u.ID != "" {
		return u.ID
	}
	return uri
}

func name(id *mimi.ClientIdentity) string {
	if id == nil {
		return "the hub"
	}
	return lastSegment(id.Client)
}

func names(uris []string) string {
	out := make([]string, len(uris))
	for i, u := range uris {
		out[i] = lastSegment(u)
	}
	return strings.Join(out, " ")
}

func participantsString(ps []mimi.Participant) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = lastSegment(p.User) + " (" + p.Role + ")"
	}
	return strings.Join(out, ", ")
}

func memberURIs(ri *client.RoomInfo) []string {
	out := make([]string, len(ri.Members))
	for i, m := range ri.Members {
		out[i] = m.Client
	}
	sort.Strings(out)
	return out
}

func memberString(ri *client.RoomInfo) string { return names(memberURIs(ri)) }

func policyString(p mimi.Policy) string { return fmt.Sprint(p) }

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func short(b []byte) string {
	h := hex.EncodeToString(b)
	if len(h) > 16 {
		h = h[:16] + "..."
	}
	return h
}

// requestsString renders "endpoint code" -> count as
// "POST /update 200 x1, ...", sorted.
func requestsString(m map[string]float64) string {
	if len(m) == 0 {
		return "nothing"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		ep, code, _ := strings.Cut(k, " ")
		req := "POST /" + ep
		if ep == "directory" {
			req = "GET " + mimi.WellKnownDirectory
		}
		out[i] = fmt.Sprintf("%s %s x%g", req, code, m[k])
	}
	return strings.Join(out, ", ")
}

// ---- Tracing the client-to-provider calls ----

// callLog collects printable lines of client-to-provider calls.
type callLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *callLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *callLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.lines
	l.lines = nil
	return out
}

// tracingProvider is a client.Provider that records the client's calls
// to its provider (the [[ double bracket ]] steps of Section 3) with the
// MIMI endpoint the provider uses for them and the response; inbox reads
// and acknowledgements are not recorded.
type tracingProvider struct {
	client.Provider
	name, domain string
	log          *callLog
}

// via says how the client's provider reaches the room's hub for ep.
func (t *tracingProvider) via(ep string) string {
	if t.domain == demoHub {
		return "decided by the hub in process"
	}
	return fmt.Sprintf("relayed: %s POST /%s -> %s", t.domain, ep, demoHub)
}

func (t *tracingProvider) prefix() string {
	return fmt.Sprintf("[[ %s -> %s ]]", t.name, t.domain)
}

func (t *tracingProvider) KeyMaterial(ctx context.Context, cl string, req *mimi.KeyMaterialRequest) (*mimi.KeyMaterialResponse, error) {
	resp, err := t.Provider.KeyMaterial(ctx, cl, req)
	target := "?"
	if req != nil {
		target = req.TargetUser
	}
	// Key material is requested through the room's hub (Section 5.2).
	route := "claimed at the hub, no MIMI request"
	if tu, e := mimi.ParseURI(target); e == nil {
		if t.domain != demoHub {
			route = fmt.Sprintf("%s POST /keyMaterial -> %s", t.domain, demoHub)
			if tu.Provider != demoHub {
				route += " POST /keyMaterial -> " + tu.Provider
			}
		} else if tu.Provider != demoHub {
			route = fmt.Sprintf("%s POST /keyMaterial -> %s", demoHub, tu.Provider)
		}
	}
	switch {
	case err != nil:
		t.log.add("%s key material for %s (%s) -> error: %v", t.prefix(), lastSegment(target), route, err)
	default:
		var got []string
		for _, c := range resp.Clients {
			if c.Status == mimi.ClientSuccess {
				got = append(got, lastSegment(c.ClientURI))
			}
		}
		t.log.add("%s key material for %s (%s) -> %s, KeyPackages of %s", t.prefix(), lastSegment(target), route, userCode(resp.UserStatus), strings.Join(got, " "))
	}
	return resp, err
}

func (t *tracingProvider) CreateRoom(ctx context.Context, cl, room string, gi *wire.GroupInfo, tree wire.RatchetTree) error {
	err := t.Provider.CreateRoom(ctx, cl, room, gi, tree)
	res := "created"
	if err != nil {
		res = "error: " + err.Error()
	}
	t.log.add("%s create room from the group's GroupInfo and tree (local to the hub, no MIMI request) -> %s", t.prefix(), res)
	return err
}

func (t *tracingProvider) Update(ctx context.Context, cl, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	resp, err := t.Provider.Update(ctx, cl, room, req)
	what := describeUpdate(req)
	if err != nil {
		t.log.add("%s update: %s (%s) -> error: %v", t.prefix(), what, t.via("update"), err)
	} else {
		t.log.add("%s update: %s (%s) -> %s", t.prefix(), what, t.via("update"), updateCode(resp))
	}
	return resp, err
}

func (t *tracingProvider) SubmitMessage(ctx context.Context, cl, room string, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error) {
	resp, err := t.Provider.SubmitMessage(ctx, cl, room, req)
	if err != nil {
		t.log.add("%s submit message (%s) -> error: %v", t.prefix(), t.via("submitMessage"), err)
	} else {
		t.log.add("%s submit message: an MLS PrivateMessage (%s) -> %s", t.prefix(), t.via("submitMessage"), submitCode(resp))
	}
	return resp, err
}

func (t *tracingProvider) GroupInfo(ctx context.Context, cl, room string, req *mimi.GroupInfoRequest) (*mimi.GroupInfoResponse, error) {
	resp, err := t.Provider.GroupInfo(ctx, cl, room, req)
	if err != nil {
		t.log.add("%s group info (%s) -> error: %v", t.prefix(), t.via("groupInfo"), err)
	} else {
		res := groupInfoCode(resp.Status)
		if resp.Status == mimi.GroupInfoSuccess {
			res += fmt.Sprintf(": GroupInfo of epoch %d and ratchet tree, signed by the hub", resp.GroupInfo.GroupContext.Epoch)
		}
		t.log.add("%s group info, request signed by the new client (%s) -> %s", t.prefix(), t.via("groupInfo"), res)
	}
	return resp, err
}

// describeUpdate summarizes an UpdateRequest (Section 5.3).
func describeUpdate(req *mimi.UpdateRequest) string {
	if req == nil {
		return "nothing"
	}
	fc := &req.ProposalOrCommit.Content
	switch {
	case fc.ContentType == wire.ContentCommit && fc.Commit != nil:
		var parts []string
		refs := 0
		for _, p := range fc.Commit.Proposals {
			if p.Type == wire.ProposalOrRefReference {
				refs++
				continue
			}
			if p.Proposal != nil {
				parts = append(parts, proposalName(p.Proposal.Type))
			}
		}
		kind := "Commit"
		if fc.Sender.Type == wire.SenderNewMemberCommit {
			kind = "external Commit"
		}
		what := kind + " of"
		if len(parts) > 0 {
			what += " " + strings.Join(parts, ", ")
		}
		if refs > 0 {
			if len(parts) > 0 {
				what += " and"
			}
			what += fmt.Sprintf(" %d cached proposals by reference", refs)
		}
		if len(parts) == 0 && refs == 0 {
			what += " no proposals"
		}
		if fc.Commit.Path != nil {
			what += ", with an UpdatePath"
		}
		extra := []string{"GroupInfo", "ratchet tree"}
		if req.Welcome != nil {
			extra = append([]string{"Welcome"}, extra...)
		}
		return what + "; " + strings.Join(extra, ", ")
	case fc.ContentType == wire.ContentProposal && fc.Proposal != nil:
		ps := []string{proposalName(fc.Proposal.Type)}
		for _, m := range req.MoreProposals {
			if m.Content.Proposal != nil {
				ps = append(ps, proposalName(m.Content.Proposal.Type))
			}
		}
		return "proposals " + strings.Join(ps, ", ")
	default:
		return "an unexpected message"
	}
}

func proposalName(t wire.ProposalType) string {
	switch t {
	case wire.ProposalAdd:
		return "Add"
	case wire.ProposalUpdate:
		return "Update"
	case wire.ProposalRemove:
		return "Remove"
	case wire.ProposalPreSharedKey:
		return "PreSharedKey"
	case wire.ProposalReInit:
		return "ReInit"
	case wire.ProposalExternalInit:
		return "ExternalInit"
	case wire.ProposalGroupContextExtensions:
		return "GroupContextExtensions"
	case wire.ProposalAppSync:
		return "AppSync"
	case wire.ProposalSelfRemove:
		return "SelfRemove"
	}
	return fmt.Sprintf("proposal type 0x%04x", uint16(t))
}

func updateCode(r *mimi.UpdateRoomResponse) string {
	switch r.Code {
	case mimi.UpdateSuccess:
		return "success"
	case mimi.UpdateWrongEpoch:
		return fmt.Sprintf("wrongEpoch (hub at epoch %d)", r.CurrentEpoch)
	case mimi.UpdateNotAllowed:
		return "notAllowed: " + r.ErrorDescription
	case mimi.UpdateInvalidProposal:
		return "invalidProposal: " + r.ErrorDescription
	}
	return fmt.Sprintf("code %d", r.Code)
}

func submitCode(r *mimi.SubmitMessageResponse) string {
	switch r.Code {
	case mimi.SubmitAccepted:
		return "accepted"
	case mimi.SubmitNotAllowed:
		return "notAllowed"
	case mimi.SubmitEpochTooOld:
		return fmt.Sprintf("epochTooOld (hub at epoch %d)", r.CurrentEpoch)
	}
	return fmt.Sprintf("code %d", r.Code)
}

func groupInfoCode(c mimi.GroupInfoCode) string {
	switch c {
	case mimi.GroupInfoSuccess:
		return "success"
	case mimi.GroupInfoNotAuthorized:
		return "notAuthorized"
	case mimi.GroupInfoNoSuchRoom:
		return "noSuchRoom"
	}
	return fmt.Sprintf("code %d", c)
}

func userCode(c mimi.KeyMaterialUserCode) string {
	names := map[mimi.KeyMaterialUserCode]string{
		mimi.UserSuccess: "success", mimi.UserPartialSuccess: "partialSuccess",
		mimi.UserIncompatibleProtocol: "incompatibleProtocol", mimi.UserNoCompatibleMaterial: "noCompatibleMaterial",
		mimi.UserUnknown: "userUnknown", mimi.UserNoConsent: "noConsent",
		mimi.UserNoConsentForThisRoom: "noConsentForThisRoom", mimi.UserDeleted: "userDeleted",
	}
	if n, ok := names[c]; ok {
		return n
	}
	return fmt.Sprintf("code %d", c)
}
