package chaos

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	adminv1 "github.com/openmimi/mimi/gen/mimi/admin/v1"
)

// Files writeTrace writes into the work directory.
const (
	traceEvents  = "trace-events.txt"
	traceSubmits = "trace-submits.txt"
	traceInbox   = "trace-inbox.txt"
)

// writeTrace writes, for the diagnosis of a run whose check found
// problems, the hub log's room events (with the hub's acceptance times),
// every submission and commit the clients sent, and every client's inbox
// (with the times their Syncs read it) into dir, one line each, naming
// messages by the short hashes the problems use.
func writeTrace(dir string, evs []*adminv1.Event, entries []LogEntry, rec *recorder) error {
	at := map[uint64]time.Time{}
	for _, e := range evs {
		at[e.GetSeq()] = e.GetTimestamp().AsTime()
	}
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Format("15:04:05.000")
	}
	write := func(name string, lines func(w *bufio.Writer)) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		w := bufio.NewWriter(f)
		lines(w)
		if err := w.Flush(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	err := write(traceEvents, func(w *bufio.Writer) {
		fmt.Fprintln(w, "# accepted seq room_seq room kind epoch msg welcome sender members")
		for _, e := range entries {
			msg, welcome := "-", "-"
			if e.Message != nil {
				msg = short(e.Message)
			}
			if e.Welcome != nil {
				welcome = short(e.Welcome)
			}
			members := "-"
			if e.Kind == KindCreated || e.Kind == KindCommit {
				members = strings.Join(e.Members, ",")
			}
			fmt.Fprintf(w, "%s %d %d %s %s %d %s %s %s %s\n", stamp(at[e.Seq]), e.Seq, e.RoomSeq, e.Room, e.Kind, e.Epoch, msg, welcome, e.Sender, members)
		}
	})
	if err != nil {
		return err
	}
	err = write(traceSubmits, func(w *bufio.Writer) {
		fmt.Fprintln(w, "# sent answered kind client room msg attempts acked refusal label")
		for _, k := range []struct {
			kind EntryKind
			ss   []Submit
		}{{KindMessage, rec.Submits()}, {KindCommit, rec.Commits()}} {
			for _, s := range k.ss {
				fmt.Fprintf(w, "%s %s %s %s %s %s %d %v %q %q\n", stamp(s.Sent), stamp(s.Answered), k.kind, s.Client, s.Room, short(s.Message), s.Attempts, s.Acked, s.Refusal, s.Label)
			}
		}
	})
	if err != nil {
		return err
	}
	return write(traceInbox, func(w *bufio.Writer) {
		fmt.Fprintln(w, "# read client position room msg")
		recv := rec.Received()
		clients := make([]string, 0, len(recv))
		for c := range recv {
			clients = append(clients, c)
		}
		sort.Strings(clients)
		for _, c := range clients {
			for _, d := range recv[c] {
				fmt.Fprintf(w, "%s %s %d %s %s\n", stamp(d.Read), c, d.Pos, d.Room, short(d.Message))
			}
		}
	})
}
