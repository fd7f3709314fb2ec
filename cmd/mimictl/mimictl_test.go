package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/openmimi/mimi/eventlog"
	adminv1 "github.com/openmimi/mimi/gen/mimi/admin/v1"
	"github.com/openmimi/mimi/httpapi/admin/admintest"
)

// mimictl runs the CLI in-process and returns its exit status and output.
func mimictl(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestMimictl(t *testing.T) {
	f := admintest.New(t, admintest.Options{})
	h := f.History
	files := f.WriteFiles()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"-addr", f.URL, "-cacert", files.CACert, "-token-file", files.Token}
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return mimictl(t, ctx, append(append([]string(nil), base...), args...)...)
	}
	ok := func(args ...string) string {
		t.Helper()
		code, out, errs := cli(args...)
		if code != 0 {
			t.Fatalf("mimictl %v: exit %d: %s", args, code, errs)
		}
		return out
	}
	contains := func(what, out string, subs ...string) {
		t.Helper()
		for _, s := range subs {
			if !strings.Contains(out, s) {
				t.Errorf("%s output lacks %q:\n%s", what, s, out)
			}
		}
	}

	t.Run("rooms", func(t *testing.T) {
		out := ok("rooms")
		contains("rooms", out, "ROOM", "EPOCH", admintest.RoomA, admintest.RoomB, "2 room(s)")
		var resp adminv1.ListRoomsResponse
		if err := protojson.Unmarshal([]byte(ok("-json", "rooms")), &resp); err != nil || len(resp.GetRooms()) != 2 {
			t.Errorf("rooms -json: %v %v", err, &resp)
		}
		out = ok("rooms", "-limit", "1")
		contains("rooms -limit 1", out, "1 room(s)")
	})

	t.Run("room", func(t *testing.T) {
		out := ok("room", admintest.RoomA)
		contains("room", out, "epoch:", "2", admintest.AliceClient, "policy (from group_info)", "canSendMessage",
			"participants (from group_info)", admintest.AliceUser, "cached proposals (1)", "add", "age 59m",
			fmt.Sprintf("set at seq %d", h.RemoveCommit))
		var resp adminv1.GetRoomResponse
		if err := protojson.Unmarshal([]byte(ok("-json", "room", admintest.RoomA, "-raw")), &resp); err != nil || len(resp.GetRoom().GetGroupInfoRaw()) == 0 {
			t.Errorf("room -raw -json: %v", err)
		}
		code, _, errs := cli("room", "mimi://hub.example/r/none")
		if code != exitFailure || !strings.Contains(errs, "not_found") {
			t.Errorf("unknown room: exit %d %s", code, errs)
		}
	})

	t.Run("events", func(t *testing.T) {
		out := ok("events")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if uint64(len(lines)) != h.Last+1 || !strings.HasPrefix(lines[0], "SEQ") {
			t.Fatalf("events printed %d lines, want %d:\n%s", len(lines), h.Last+1, out)
		}
		contains("events", lines[h.AddCommit], "CommitAccepted", admintest.RoomA, "epoch=1")
		out = ok("-json", "events", "-room", admintest.RoomA, "-from", fmt.Sprint(h.AddCommit), "-limit", "2", "-raw")
		lines = strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("events -json -limit 2:\n%s", out)
		}
		var ev adminv1.Event
		if err := protojson.Unmarshal([]byte(lines[0]), &ev); err != nil || ev.GetSeq() != h.AddCommit || len(ev.GetRaw()) == 0 {
			t.Errorf("first JSON event: %v %v", err, &ev)
		}
	})

	t.Run("events -follow", func(t *testing.T) {
		type result struct {
			code     int
			out, err string
		}
		done := make(chan result, 1)
		next := h.Last + 1
		go func() {
			code, out, errs := cli("events", "-follow", "-from", fmt.Sprint(next), "-limit", "1")
			done <- result{code, out, errs}
		}()
		time.Sleep(200 * time.Millisecond) // let the stream start waiting
		res := f.Apply(admintest.Op("", &eventlog.ClientRegistered{User: admintest.AliceUser, Client: "mimi://hub.example/d/alice-laptop"}))
		select {
		case r := <-done:
			if r.code != 0 || !strings.Contains(r.out, "ClientRegistered") || !strings.Contains(r.out, fmt.Sprint(res.Events[0].Seq)) {
				t.Errorf("follow: exit %d out %q err %q", r.code, r.out, r.err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("events -follow did not return the new event")
		}
	})

	t.Run("fanout", func(t *testing.T) {
		out := ok("fanout")
		contains("fanout", out, "DESTINATION", admintest.Remote, "no fanout worker attached")
	})

	t.Run("verify", func(t *testing.T) {
		out := ok("verify")
		contains("verify", out, "log integrity: OK", "projection replay: OK", admintest.RoomA, "verify: OK")
		out = ok("verify", "-room", admintest.RoomB, "-skip-replay")
		contains("verify -room", out, "projection replay: skipped", admintest.RoomB)
		if strings.Contains(out, admintest.RoomA) {
			t.Errorf("verify -room %s mentions room A:\n%s", admintest.RoomB, out)
		}
	})

	t.Run("cluster", func(t *testing.T) {
		out := ok("cluster")
		contains("cluster", out, "state:", "Leader", "local", "Voter")
		code, _, errs := cli("cluster", "add", "n2", "127.0.0.1:7401")
		if code != exitFailure || !strings.Contains(errs, "standalone") {
			t.Errorf("cluster add on standalone: exit %d %s", code, errs)
		}
		code, _, errs = cli("cluster", "remove", "n2")
		if code != exitFailure || !strings.Contains(errs, "failed_precondition") {
			t.Errorf("cluster remove on standalone: exit %d %s", code, errs)
		}
	})

	t.Run("credentials", func(t *testing.T) {
		// Admin client certificate instead of a token.
		code, out, errs := mimictl(t, ctx, "-addr", f.URL, "-cacert", files.CACert, "-cert", files.Cert, "-key", files.Key, "rooms")
		if code != 0 || !strings.Contains(out, admintest.RoomA) {
			t.Errorf("certificate: exit %d %s", code, errs)
		}
		// Token from the environment.
		t.Setenv("MIMICTL_TOKEN", admintest.Token)
		if code, _, errs := mimictl(t, ctx, "-addr", f.URL, "-cacert", files.CACert, "cluster"); code != 0 {
			t.Errorf("env token: exit %d %s", code, errs)
		}
		t.Setenv("MIMICTL_TOKEN", "")
		code, _, errs = mimictl(t, ctx, "-addr", f.URL, "-cacert", files.CACert, "-token", "wrong-token-but-long-enough", "rooms")
		if code != exitFailure || !strings.Contains(errs, "unauthenticated") {
			t.Errorf("wrong token: exit %d %s", code, errs)
		}
		// An untrusted server certificate fails.
		code, _, errs = mimictl(t, ctx, "-addr", f.URL, "-token", admintest.Token, "rooms")
		if code != exitFailure || !strings.Contains(errs, "certificate") {
			t.Errorf("untrusted server: exit %d %s", code, errs)
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"-addr", f.URL, "-cacert", files.CACert, "rooms"},                            // no credential
			{"-addr", strings.Replace(f.URL, "https", "http", 1), "-token", "x", "rooms"}, // plaintext
			append(append([]string(nil), base...), "frobnicate"),
			append(append([]string(nil), base...), "room"),
			append(append([]string(nil), base...), "cluster", "add", "n2"),
			append(append([]string(nil), base...), "events", "-from", "x"),
			base,
		} {
			if code, _, _ := mimictl(t, ctx, args...); code != exitUsage {
				t.Errorf("mimictl %v: exit %d, want %d", args, code, exitUsage)
			}
		}
	})

	t.Run("verify finds a corrupted event", func(t *testing.T) {
		f.Close()
		admintest.CorruptEvent(t, f.StateDir(), h.RemoveProposal, func(rec []byte) int { return len(rec) - 1 }, 0x20)
		f.ReopenWithoutRaft()
		code, out, _ := mimictl(t, ctx, "-addr", f.URL, "-cacert", files.CACert, "-token-file", files.Token, "verify")
		if code != exitFailure {
			t.Errorf("verify of a corrupted log: exit %d", code)
		}
		contains("verify (corrupted)", out, fmt.Sprintf("corrupt seqs: %d\n", h.RemoveProposal), "hash mismatch", "verify: FAILED")
	})
}
