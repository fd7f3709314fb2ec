package projections

import "github.com/cockroachdb/pebble/v2"

// DBForTest exposes the underlying Pebble DB to tests.
func (m *Machine) DBForTest() *pebble.DB { return m.db }
