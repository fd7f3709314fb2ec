package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/openmimi/mimi/gen/mimi/admin/v1"
	"github.com/openmimi/mimi/gen/mimi/admin/v1/adminv1connect"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// errUsage marks command-line mistakes (exit status 2).
var errUsage = errors.New("usage")

// errVerifyFailed: verify ran and found a problem (exit status 1).
var errVerifyFailed = errors.New("verification failed")

const usageText = `usage: mimictl [flags] <command> [args]

commands:
  rooms [-after ID] [-limit N]        list rooms
  room <id> [-raw]                    show one room
  events [-from N] [-room R] [-follow] [-raw] [-limit N]
                                      stream the event log
  fanout                              fanout queues per destination
  verify [-room R]... [-skip-replay] [-skip-signatures]
                                      forensic audit of the log
  cluster                             Raft status
  cluster add <id> <addr>             add a voter
  cluster remove <id>                 remove a member

flags:
`

// cli is one invocation.
type cli struct {
	stdout, stderr io.Writer
	json           bool
	timeout        time.Duration
	client         adminv1connect.AdminServiceClient
}

// run executes mimictl with args, writing to stdout and stderr, and returns
// the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	err := c.main(ctx, args)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "mimictl:", err)
		return exitUsage
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	default:
		fmt.Fprintln(stderr, "mimictl:", err)
		return exitFailure
	}
}

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

func (c *cli) main(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("mimictl", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprint(c.stderr, usageText)
		fs.PrintDefaults()
	}
	addr := fs.String("addr", os.Getenv("MIMICTL_ADDR"), "admin API base URL, https://host:port (env MIMICTL_ADDR)")
	token := fs.String("token", "", "bearer token (prefer -token-file or env MIMICTL_TOKEN)")
	tokenFile := fs.String("token-file", "", "file holding the bearer token")
	caFile := fs.String("cacert", "", "PEM CA bundle verifying the server (default: system roots)")
	certFile := fs.String("cert", "", "PEM admin client certificate")
	keyFile := fs.String("key", "", "PEM key of the admin client certificate")
	serverName := fs.String("servername", "", "expected server name (default: the -addr host)")
	fs.BoolVar(&c.json, "json", false, "print protobuf JSON instead of tables")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Minute, "deadline of each call (not of a followed event stream)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return usagef("no command")
	}
	tok, err := loadToken(*token, *tokenFile)
	if err != nil {
		return err
	}
	hc, base, err := httpClient(*addr, *caFile, *certFile, *keyFile, *serverName, tok)
	if err != nil {
		return err
	}
	c.client = adminv1connect.NewAdminServiceClient(hc, base)

	cmd, cargs := rest[0], rest[1:]
	switch cmd {
	case "rooms":
		return c.rooms(ctx, cargs)
	case "room":
		return c.room(ctx, cargs)
	case "events":
		return c.events(ctx, cargs)
	case "fanout":
		return c.fanout(ctx, cargs)
	case "verify":
		return c.verify(ctx, cargs)
	case "cluster":
		return c.cluster(ctx, cargs)
	}
	return usagef("unknown command %q", cmd)
}

// loadToken picks the token from the flag, the file or MIMICTL_TOKEN.
func loadToken(flagTok, file string) (string, error) {
	if flagTok != "" && file != "" {
		return "", usagef("-token and -token-file are exclusive")
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read token: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if flagTok != "" {
		return flagTok, nil
	}
	return os.Getenv("MIMICTL_TOKEN"), nil
}

// bearer adds the Authorization header to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// httpClient builds the TLS HTTP client for the admin API.
func httpClient(addr, caFile, certFile, keyFile, serverName, token string) (*http.Client, string, error) {
	if addr == "" {
		return nil, "", usagef("-addr is required")
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return nil, "", usagef("-addr %q is not a URL", addr)
	}
	if u.Scheme != "https" {
		return nil, "", usagef("-addr must be an https:// URL (the admin API is served over TLS only)")
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, "", fmt.Errorf("read CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("no certificate in %s", caFile)
		}
		tc.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, "", usagef("-cert and -key go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, "", fmt.Errorf("load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if token == "" && certFile == "" {
		return nil, "", usagef("no credential: give -token-file, -token, MIMICTL_TOKEN or -cert/-key")
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second}
	var rt http.RoundTripper = tr
	if token != "" {
		rt = &bearer{token: token, next: tr}
	}
	return &http.Client{Transport: rt}, strings.TrimRight(u.String(), "/"), nil
}

// call bounds a unary call by -timeout.
func (c *cli) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// printJSON writes a message as protobuf JSON.
func (c *cli) printJSON(m proto.Message, multiline bool) error {
	o := protojson.MarshalOptions{UseProtoNames: true}
	if multiline {
		o.Indent = "  "
	}
	b, err := o.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.stdout, string(b))
	return err
}

// subFlags parses a subcommand's flags, allowing them after positional
// arguments too ("room X -raw").
func subFlags(name string, args []string, stderr io.Writer, define func(fs *flag.FlagSet)) ([]string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	define(fs)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (c *cli) rooms(ctx context.Context, args []string) error {
	var after string
	var limit uint
	pos, err := subFlags("rooms", args, c.stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&after, "after", "", "list rooms after this ID")
		fs.UintVar(&limit, "limit", 0, "maximum number of rooms (0: all)")
	})
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("rooms takes no arguments")
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	all := &adminv1.ListRoomsResponse{}
	for {
		req := &adminv1.ListRoomsRequest{After: after}
		if limit > 0 {
			req.Limit = uint32(min(limit-uint(len(all.Rooms)), 1000))
		}
		resp, err := c.client.ListRooms(ctx, connect.NewRequest(req))
		if err != nil {
			return err
		}
		all.Rooms = append(all.Rooms, resp.Msg.Rooms...)
		all.NextAfter = resp.Msg.NextAfter
		if resp.Msg.NextAfter == "" || (limit > 0 && uint(len(all.Rooms)) >= limit) {
			break
		}
		after = resp.Msg.NextAfter
	}
	if c.json {
		return c.printJSON(all, true)
	}
	return printRooms(c.stdout, all)
}

func (c *cli) room(ctx context.Context, args []string) error {
	var raw bool
	pos, err := subFlags("room", args, c.stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&raw, "raw", false, "include the GroupInfo and ratchet tree bytes")
	})
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("room takes one room ID")
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.client.GetRoom(ctx, connect.NewRequest(&adminv1.GetRoomRequest{Room: pos[0], IncludeRaw: raw}))
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(resp.Msg, true)
	}
	return printRoom(c.stdout, resp.Msg.GetRoom())
}

func (c *cli) events(ctx context.Context, args []string) error {
	var from, limit uint64
	var room string
	var follow, raw bool
	pos, err := subFlags("events", args, c.stderr, func(fs *flag.FlagSet) {
		fs.Uint64Var(&from, "from", 1, "first sequence number")
		fs.StringVar(&room, "room", "", "only this room's events")
		fs.BoolVar(&follow, "follow", false, "keep streaming new events")
		fs.BoolVar(&raw, "raw", false, "include each event's encoding (with -json)")
		fs.Uint64Var(&limit, "limit", 0, "stop after this many events (0: no limit)")
	})
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("events takes no arguments")
	}
	cancel := context.CancelFunc(func() {})
	if !follow {
		ctx, cancel = c.call(ctx)
	}
	defer cancel()
	stream, err := c.client.StreamEvents(ctx, connect.NewRequest(&adminv1.StreamEventsRequest{
		FromSeq: from, Room: room, Follow: follow, IncludeRaw: raw, Limit: limit,
	}))
	if err != nil {
		return err
	}
	defer stream.Close()
	if !c.json {
		fmt.Fprintf(c.stdout, "%-8s %-8s %-24s %-26s %-28s %s\n", "SEQ", "ROOMSEQ", "TIME", "TYPE", "ROOM", "SUMMARY")
	}
	for stream.Receive() {
		ev := stream.Msg().GetEvent()
		if c.json {
			if err := c.printJSON(ev, false); err != nil {
				return err
			}
			continue
		}
		rs := "-"
		if ev.GetRoomSeq() != 0 {
			rs = strconv.FormatUint(ev.GetRoomSeq(), 10)
		}
		fmt.Fprintf(c.stdout, "%-8d %-8s %-24s %-26s %-28s %s\n", ev.GetSeq(), rs, fmtTime(ev.GetTimestamp()), ev.GetType(), dash(ev.GetRoom()), ev.GetSummary())
	}
	if err := stream.Err(); err != nil {
		if follow && ctx.Err() != nil {
			return nil // interrupted by the user
		}
		return err
	}
	return nil
}

func (c *cli) fanout(ctx context.Context, args []string) error {
	if len(args) != 0 {
		return usagef("fanout takes no arguments")
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.client.FanoutStatus(ctx, connect.NewRequest(&adminv1.FanoutStatusRequest{}))
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(resp.Msg, true)
	}
	return printFanout(c.stdout, resp.Msg)
}

// multiFlag collects a repeated string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func (c *cli) verify(ctx context.Context, args []string) error {
	var rooms multiFlag
	var skipReplay, skipSigs bool
	pos, err := subFlags("verify", args, c.stderr, func(fs *flag.FlagSet) {
		fs.Var(&rooms, "room", "re-verify signatures only for this room (repeatable)")
		fs.BoolVar(&skipReplay, "skip-replay", false, "skip the projection rebuild")
		fs.BoolVar(&skipSigs, "skip-signatures", false, "skip the MLS signature re-verification")
	})
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("verify takes no arguments")
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.client.ReplayVerify(ctx, connect.NewRequest(&adminv1.ReplayVerifyRequest{Rooms: rooms, SkipReplay: skipReplay, SkipSignatures: skipSigs}))
	if err != nil {
		return err
	}
	if c.json {
		err = c.printJSON(resp.Msg, true)
	} else {
		err = printVerify(c.stdout, resp.Msg)
	}
	if err != nil {
		return err
	}
	if !resp.Msg.GetOk() {
		return errVerifyFailed
	}
	return nil
}

func (c *cli) cluster(ctx context.Context, args []string) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	var st *adminv1.ClusterStatus
	switch {
	case len(args) == 0:
		resp, err := c.client.ClusterStatus(ctx, connect.NewRequest(&adminv1.ClusterStatusRequest{}))
		if err != nil {
			return err
		}
		st = resp.Msg.GetStatus()
	case args[0] == "add":
		if len(args) != 3 {
			return usagef("cluster add takes <id> <addr>")
		}
		resp, err := c.client.AddNode(ctx, connect.NewRequest(&adminv1.AddNodeRequest{Id: args[1], Addr: args[2]}))
		if err != nil {
			return err
		}
		st = resp.Msg.GetStatus()
	case args[0] == "remove":
		if len(args) != 2 {
			return usagef("cluster remove takes <id>")
		}
		resp, err := c.client.RemoveNode(ctx, connect.NewRequest(&adminv1.RemoveNodeRequest{Id: args[1]}))
		if err != nil {
			return err
		}
		st = resp.Msg.GetStatus()
	default:
		return usagef("unknown cluster command %q", args[0])
	}
	if c.json {
		return c.printJSON(st, true)
	}
	return printCluster(c.stdout, st)
}
