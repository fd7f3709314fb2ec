package projections

import (
	"bytes"
	"sort"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// cursorTable is an in-memory copy of every fanout cursor and every inbox
// cursor (the p/fcur/ and p/icur/ keys, draft-ralston-mimi-protocol-02,
// Section 5.5), kept in step with the committed state so that
// FanoutDestinations, FanoutCursor and InboxCursor do not read Pebble. The
// cursor keys are rewritten by every command that enqueues or
// acknowledges, so the memtable holds many versions of each, and an
// iteration over the prefix has to step over all of them.
//
// It is loaded from the DB whenever the cross-Apply cache is (re)built
// (Open, Restore, replay), which happens with no Apply running. Committed
// commands merge their cursor writes into it after their batch commit.
// After a commit failure (the node must stop anyway) it is marked invalid
// and the read APIs fall back to the DB until the next reload.
type cursorTable struct {
	mu    sync.RWMutex
	valid bool
	m     map[string]Cursor // destination -> fanout cursor
	in    map[string]Cursor // client -> inbox cursor
}

// loadCursors reads every cursor under prefix.
func loadCursors(r pebble.Reader, prefix []byte) (map[string]Cursor, error) {
	m := make(map[string]Cursor)
	err := eachUnder(r, prefix, nil, func(k, v []byte) (bool, error) {
		d, err := componentAt(k, prefix, 0)
		if err != nil {
			return false, err
		}
		var cur Cursor
		if err := decode(v, "cursor", &cur); err != nil {
			return false, err
		}
		m[d] = cur
		return true, nil
	})
	return m, err
}

// load replaces the table with the cursors stored in r.
func (c *cursorTable) load(r pebble.Reader) error {
	m, err := loadCursors(r, pFanCursor)
	var in map[string]Cursor
	if err == nil {
		in, err = loadCursors(r, pInCursor)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.valid, c.m, c.in = false, nil, nil
		return err
	}
	c.valid, c.m, c.in = true, m, in
	return nil
}

// invalidate makes the read APIs go to the DB.
func (c *cursorTable) invalidate() {
	c.mu.Lock()
	c.valid, c.m, c.in = false, nil, nil
	c.mu.Unlock()
}

// merge records committed cursor writes (keyed by p/fcur/ or p/icur/
// key).
func (c *cursorTable) merge(w map[string]*Cursor) {
	if len(w) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.valid {
		return
	}
	for k, cur := range w {
		prefix, m := pFanCursor, c.m
		if bytes.HasPrefix([]byte(k), pInCursor) {
			prefix, m = pInCursor, c.in
		}
		d, err := componentAt([]byte(k), prefix, 0)
		if err != nil {
			// Cannot happen for keys built by fanCursorKey and
			// inCursorKey; be safe.
			c.valid, c.m, c.in = false, nil, nil
			return
		}
		m[d] = *cur
	}
}

// list returns every destination with its cursor, sorted, and whether the
// table is valid.
func (c *cursorTable) list() ([]Destination, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.valid {
		return nil, false
	}
	out := make([]Destination, 0, len(c.m))
	for d, cur := range c.m {
		out = append(out, Destination{Destination: d, Cursor: cur})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out, true
}

// get returns dest's fanout cursor (zero if none) and whether the table
// is valid.
func (c *cursorTable) get(dest string) (Cursor, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.valid {
		return Cursor{}, false
	}
	return c.m[dest], true
}

// getInbox returns client's inbox cursor (zero if none) and whether the
// table is valid.
func (c *cursorTable) getInbox(client string) (Cursor, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.valid {
		return Cursor{}, false
	}
	return c.in[client], true
}

// cursor returns the fanout or inbox cursor at k as of this tx, and
// whether it exists.
func (t *tx) cursor(k []byte, field string) (Cursor, bool, error) {
	if c, ok := t.cursorWrites[string(k)]; ok {
		return *c, true, nil
	}
	var cur Cursor
	found, err := t.load(k, field, &cur)
	return cur, found, err
}

// putCursor sets the fanout or inbox cursor at k; finish writes it.
func (t *tx) putCursor(k []byte, cur Cursor) {
	if c, ok := t.cursorWrites[string(k)]; ok {
		*c = cur
		return
	}
	if t.cursorWrites == nil {
		t.cursorWrites = make(map[string]*Cursor)
	}
	c := new(Cursor)
	*c = cur
	t.cursorWrites[string(k)] = c
}

// flushCursors writes the cursors set by putCursor to the batch (and the
// cache), in key order.
func (t *tx) flushCursors() error {
	if len(t.cursorWrites) == 0 {
		return nil
	}
	keys := make([]string, 0, len(t.cursorWrites))
	for k := range t.cursorWrites {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := t.put([]byte(k), t.cursorWrites[k]); err != nil {
			return err
		}
	}
	return nil
}

// takeCursors moves the tx's cursor writes into dst.
func (t *tx) takeCursors(dst map[string]*Cursor) {
	for k, c := range t.cursorWrites {
		dst[k] = c
	}
	clear(t.cursorWrites)
}
