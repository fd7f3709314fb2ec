package projections

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"

	"github.com/openmimi/mimi/eventlog"
)

// sampleResults is one Result of each shape: events, claims and every
// kind of rejection.
func sampleResults() []Result {
	ev := eventlog.New("mimi://a.example/r/clubhouse", 1234, &eventlog.ClientRegistered{})
	if b, ok := ev.Body.(*eventlog.ClientRegistered); ok {
		b.User, b.Client = "mimi://a.example/u/alice", "mimi://a.example/d/a1"
	}
	ev.Seq, ev.RoomSeq = 7, 3
	kp := KeyPackage{Ref: []byte{1, 2}, Client: "mimi://b.example/d/b1", CipherSuite: 1, NotAfter: 99, Data: []byte{9}, Claimed: true, Claimer: "mimi://a.example/u/alice"}
	return []Result{
		{},
		{Duplicate: true},
		{Events: []eventlog.Event{ev}, Claims: []ClaimResult{{Client: "mimi://b.example/d/b1", Found: true, KeyPackage: kp, Seq: 7}, {Client: "mimi://b.example/d/b2"}}},
		{Err: &WrongEpochError{Room: "r", Current: 5, Proposed: 4}},
		{Err: fmt.Errorf("condition 0: %w", &RoomSeqError{Room: "r", Current: 2, Expected: 1})},
		{Err: fmt.Errorf("claim: %w", ErrKeyPackageClaimed)},
		{Err: errors.New("something else")},
	}
}

func TestResultCodecRoundTrip(t *testing.T) {
	results := sampleResults()
	kp := results[2].Claims[0].KeyPackage
	var c ResultCodec
	for i, r := range results {
		b, err := c.EncodeResult(r)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		got, err := c.DecodeResult(b)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if got.Duplicate != r.Duplicate || len(got.Events) != len(r.Events) || len(got.Claims) != len(r.Claims) {
			t.Fatalf("%d: got %+v", i, got)
		}
		if (got.Err == nil) != (r.Err == nil) || (r.Err != nil && got.Err.Error() != r.Err.Error() && !errors.As(r.Err, new(*RoomSeqError))) {
			t.Fatalf("%d: err %v, want %v", i, got.Err, r.Err)
		}
	}
	got, _ := c.DecodeResult(mustEncode(t, results[2]))
	if got.Events[0].Seq != 7 || got.Events[0].RoomSeq != 3 || got.Claims[0].KeyPackage.Claimer != kp.Claimer || !got.Claims[0].Found {
		t.Fatalf("fields lost: %+v", got)
	}
	got, _ = c.DecodeResult(mustEncode(t, results[3]))
	var we *WrongEpochError
	if !errors.As(got.Err, &we) || we.Current != 5 || !errors.Is(got.Err, ErrWrongEpoch) {
		t.Fatalf("wrong epoch lost: %v", got.Err)
	}
	got, _ = c.DecodeResult(mustEncode(t, results[5]))
	if !errors.Is(got.Err, ErrKeyPackageClaimed) {
		t.Fatalf("sentinel lost: %v", got.Err)
	}
	if _, err := c.DecodeResult([]byte{0, 0, 0, 9}); err == nil {
		t.Fatal("bad error kind accepted")
	}
}

// TestResultCodecCarriesEverySentinel: every sentinel error the package
// declares survives the trip from the leader to a forwarding follower, so
// that callers there can branch on it with errors.Is. The list is read
// from errors.go, so a new sentinel fails here until it is added to
// resultSentinels (or named below as one no Result carries).
func TestResultCodecCarriesEverySentinel(t *testing.T) {
	notInResults := map[string]bool{
		"ErrReplayDiverged": true, // replay and audit reports
		"ErrBadSnapshot":    true, // Restore
	}
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	// name -> message of every `ErrX = errors.New("...")`.
	declared := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.VAR {
			continue
		}
		for _, sp := range g.Specs {
			vs := sp.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Err") || notInResults[n.Name] || i >= len(vs.Values) {
					continue
				}
				call, ok := vs.Values[i].(*ast.CallExpr)
				if !ok || len(call.Args) != 1 {
					continue
				}
				lit, ok := call.Args[0].(*ast.BasicLit)
				if !ok {
					continue
				}
				msg, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				declared[n.Name] = msg
			}
		}
	}
	if len(declared) < 20 {
		t.Fatalf("read only %d sentinels from errors.go", len(declared))
	}
	var c ResultCodec
	carried := map[string]bool{}
	for _, s := range resultSentinels {
		got, err := c.DecodeResult(mustEncode(t, Result{Err: fmt.Errorf("context: %w", s)}))
		if err != nil || !errors.Is(got.Err, s) {
			t.Fatalf("%v does not survive the trip: %v, %v", s, got.Err, err)
		}
		carried[s.Error()] = true
	}
	for name, msg := range declared {
		if !carried[msg] {
			t.Errorf("%s is not in resultSentinels: a follower forwarding a command would lose it", name)
		}
	}
}

func mustEncode(t testing.TB, r Result) []byte {
	t.Helper()
	b, err := ResultCodec{}.EncodeResult(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzDecodeResult: a result forwarded by the Raft leader (raftnode's
// forwarding protocol; another cluster node's bytes) decodes without
// panicking, and what decodes re-encodes to exactly the input (the
// encoding is canonical).
func FuzzDecodeResult(f *testing.F) {
	for _, r := range sampleResults() {
		b := mustEncode(f, r)
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c ResultCodec
		r, err := c.DecodeResult(b)
		if err != nil {
			return
		}
		out, err := c.EncodeResult(r)
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs (%v):\n in %x\nout %x", err, b, out)
		}
	})
}
