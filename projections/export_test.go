package projections

import (
	"bytes"

	"github.com/cockroachdb/pebble/v2"
)

// DBForTest exposes the underlying Pebble DB to tests.
func (m *Machine) DBForTest() *pebble.DB { return m.db }

// FanoutDestinationsFromDBForTest lists the fanout cursors by scanning the
// DB, bypassing the in-memory table.
func (m *Machine) FanoutDestinationsFromDBForTest() ([]Destination, error) {
	var out []Destination
	err := m.view(func(r pebble.Reader) (err error) {
		out, err = readFanoutCursors(r)
		return err
	})
	return out, err
}

// InboxCursorFromDBForTest reads a client's inbox cursor from the DB,
// bypassing the in-memory table.
func (m *Machine) InboxCursorFromDBForTest(client string) (Cursor, error) {
	return m.cursor(inCursorKey(client), func() (Cursor, bool) { return Cursor{}, false })
}

// writeOnlyPrefixes are the key classes the apply path writes blind (see
// tx).
var writeOnlyPrefixes = [][]byte{pGroup, pProposal, pMember, pUserClient, pAvailable, pExpiry, pNotifyAge, pFanQueue, pInQueue}

// WriteOnlyKeysCachedForTest returns the keys of the write-only classes
// held by the cross-command cache. A tx reading one of them (which it
// must not) would leave it there.
func (m *Machine) WriteOnlyKeysCachedForTest() []string {
	if m.cache == nil {
		return nil
	}
	var out []string
	for k := range m.cache.vals {
		for _, p := range writeOnlyPrefixes {
			if bytes.HasPrefix([]byte(k), p) {
				out = append(out, k)
			}
		}
	}
	return out
}
