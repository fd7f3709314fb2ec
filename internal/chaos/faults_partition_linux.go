package chaos

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// nameDiallers: socketOwner can name the process that dialled a loopback
// connection, so a Proxy can cut one cluster node's connections
// (Cluster.CutRaft).
const nameDiallers = true

// socketOwner returns the name in pids of the process holding the
// dialling end of c, a connection accepted from this machine, or "" if
// none of them does (or it closed meanwhile). It finds the dialler's
// socket in /proc/net/tcp by its address pair, then the process whose
// file descriptors include that socket.
func socketOwner(c net.Conn, pids map[int]string) string {
	remote, ok1 := c.RemoteAddr().(*net.TCPAddr)
	local, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 || remote.IP.To4() == nil || local.IP.To4() == nil {
		return ""
	}
	// /proc/net/tcp prints an IPv4 address as the hex of its 32 bits
	// read in host order, and the port in hex.
	hexAddr := func(a *net.TCPAddr) string {
		return fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(a.IP.To4()), a.Port)
	}
	// The dialler's socket: its local address is c's remote one.
	mine, theirs := hexAddr(remote), hexAddr(local)
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return ""
	}
	defer f.Close()
	inode := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 9 && fields[1] == mine && fields[2] == theirs {
			inode = fields[9]
			break
		}
	}
	if inode == "" || inode == "0" {
		return ""
	}
	want := "socket:[" + inode + "]"
	for pid, name := range pids {
		dir := "/proc/" + strconv.Itoa(pid) + "/fd"
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if link, err := os.Readlink(dir + "/" + e.Name()); err == nil && link == want {
				return name
			}
		}
	}
	return ""
}
