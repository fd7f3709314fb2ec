//go:build !linux

package chaos

import "net"

// nameDiallers: without /proc, the dialler of a connection cannot be
// named, so Cluster.CutRaft cannot cut one node's connections.
const nameDiallers = false

// socketOwner cannot name a connection's dialler here.
func socketOwner(net.Conn, map[int]string) string { return "" }
