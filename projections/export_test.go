package projections

import "github.com/cockroachdb/pebble/v2"

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
