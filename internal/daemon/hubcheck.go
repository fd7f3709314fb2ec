package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
)

// hubKeyRetry is the pause between attempts of checkHubKey.
const hubKeyRetry = 50 * time.Millisecond

// checkHubKey makes sure every node of the provider signs with one hub key
// (RFC 9420, Section 12.1.8.1: the rooms' external_senders entry;
// draft-ralston-mimi-protocol-02, Section 5.6: GroupInfoResponse
// signatures). Once the node is caught up, and after a read barrier (see
// settleOnce), it reads the key declared in the replicated log; if none is, it declares
// its own (eventlog.HubKeyDeclared; of two nodes racing, the log keeps the
// first). A node whose key differs reports unready for good, with both
// keys' fingerprints, and logs an error: it would sign what clients
// reject. It returns once decided or when ctx ends.
func (d *Daemon) checkHubKey(ctx context.Context) {
	t := time.NewTicker(hubKeyRetry)
	defer t.Stop()
	warned := false
	for {
		if ok, _ := d.replicaReady(); ok {
			done, err := d.settleOnce(ctx)
			if done {
				return
			}
			if err != nil && ctx.Err() == nil && !warned {
				d.log.Warn("checking the hub key against the replicated log; retrying", "err", err)
				warned = true
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// settleOnce makes one attempt at the start-up checks Ready waits for;
// done reports that both are decided.
//
// First a read barrier, once: a replica can look caught up (applied up
// to the commit index it knows) between its election and the commit of
// its first entry, before re-applying the entries a crash kept from the
// state machine; after the barrier they are applied (caughtUp). Then the
// hub key, which the barrier also makes current.
func (d *Daemon) settleOnce(ctx context.Context) (done bool, err error) {
	if !d.caughtUp.Load() {
		bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = d.repl.ReadBarrier(bctx)
		cancel()
		if err != nil {
			return false, err
		}
		d.caughtUp.Store(true)
	}
	suite, key, found, err := d.machine.HubKey()
	if err != nil {
		return false, err
	}
	own := d.hubKey
	if found {
		reason := ""
		if suite != uint16(own.suite) || !bytes.Equal(key, own.pub) {
			reason = fmt.Sprintf("hub key mismatch: this node's key (suite %d, %s) is not the provider's declared hub key (suite %d, %s); give every node the same hub key file",
				own.suite, fingerprint(own.pub), suite, fingerprint(key))
			d.log.Error("this node's hub signing key differs from the one declared in the replicated log; the node stays unready",
				"file", d.info.HubKeyFile, "own", fingerprint(own.pub), "declared", fingerprint(key))
		}
		d.hubKeyCheck.Store(&reason)
		return true, nil
	}
	cmd, err := projections.EncodeCommand(&projections.Command{Ops: []projections.Op{
		projections.EventOp("", uint64(d.now().UnixMilli()), &eventlog.HubKeyDeclared{CipherSuite: uint16(own.suite), SignatureKey: own.pub}),
	}})
	if err != nil {
		return false, err
	}
	res, err := d.repl.Apply(ctx, cmd)
	if err == nil && res.Err != nil && !errors.Is(res.Err, projections.ErrHubKeyDeclared) {
		err = res.Err
	}
	// Declared now, by this node or another: the next attempt compares.
	return false, err
}

// fingerprint names a public key in logs: the first 8 bytes of its SHA-256.
func fingerprint(pub []byte) string {
	h := sha256.Sum256(pub)
	return fmt.Sprintf("%x", h[:8])
}
