package projections

import "github.com/cockroachdb/pebble/v2"

// DBForTest exposes the underlying Pebble DB to tests.
func (m *Machine) DBForTest() *pebble.DB { return m.db }

// FanoutDestinationsFromDBForTest lists the fanout cursors by scanning the
// DB, bypassing the in-memory table.
func (m *Machine) FanoutDestinationsFromDBForTest() ([]Destination, error) {
	var out []Destination
	err := m.view(func(r pebble.Reader) error {
		return eachUnder(r, pFanCursor, nil, func(k, v []byte) (bool, error) {
			d, err := componentAt(k, pFanCursor, 0)
			if err != nil {
				return false, err
			}
			var c Cursor
			if err := decode(v, "cursor", &c); err != nil {
				return false, err
			}
			out = append(out, Destination{Destination: d, Cursor: c})
			return true, nil
		})
	})
	return out, err
}

// InboxCursorFromDBForTest reads a client's inbox cursor from the DB,
// bypassing the in-memory table.
func (m *Machine) InboxCursorFromDBForTest(client string) (Cursor, error) {
	var c Cursor
	err := m.view(func(r pebble.Reader) error {
		_, err := getRec(r, inCursorKey(client), "cursor", &c)
		return err
	})
	return c, err
}
