package projections

import (
	"encoding/binary"
	"slices"

	"github.com/openmimi/mimi/eventlog"
)

// Key prefixes. See the package documentation for the layout.
var (
	prefixProjections = []byte("p/")
	keyApplied        = []byte("m/applied")

	pRoom       = []byte("p/room/")  // + c(room)
	pGroup      = []byte("p/grp/")   // + c(room)
	pProposal   = []byte("p/prop/")  // + c(room) + be32(i)
	pPropRef    = []byte("p/pref/")  // + c(room) + c(ref): cached proposal by ProposalRef
	pMember     = []byte("p/memb/")  // + c(client) + c(room)
	pClient     = []byte("p/cli/")   // + c(client)
	pUserClient = []byte("p/ucl/")   // + c(user) + c(client)
	pKeyPackage = []byte("p/kp/")    // + c(ref)
	pAvailable  = []byte("p/kpa/")   // + c(client) + be16(suite) + be64(notAfter) + be64(uploadSeq) + be32(i)
	pExpiry     = []byte("p/kpx/")   // + be64(notAfter) + c(ref): unclaimed KeyPackages by expiry
	pHubRoute   = []byte("p/hrt/")   // + c(ref)
	pNotify     = []byte("p/ntf/")   // + c(hub) + c(hash)
	pNotifyAge  = []byte("p/ntfq/")  // + be64(seq) + c(hub) + c(hash): dedup entries in acceptance order
	pMessage    = []byte("p/amsg/")  // + c(room) + be64(epoch) + c(hash)
	pGroupRoom  = []byte("p/fgrp/")  // + c(hub) + c(group ID): followed room of a group
	pRoomGroup  = []byte("p/frg/")   // + c(room): group of a followed room
	pFanCursor  = []byte("p/fcur/")  // + c(dest)
	pFanQueue   = []byte("p/fq/")    // + c(dest) + be64(n)
	pInCursor   = []byte("p/icur/")  // + c(client)
	pInQueue    = []byte("p/iq/")    // + c(client) + be64(n)
	keyHubKey   = []byte("p/hubkey") // be16(suite) + SignaturePublicKey, once declared
	pCall       = []byte("p/call/")  // + c(digest): a client API call taken (value be64(expiry))
	pCallExpiry = []byte("p/callx/") // + be64(expiry) + c(digest): the same by expiry
)

func key(prefix []byte, comps ...string) []byte {
	n := len(prefix)
	for _, c := range comps {
		n += len(c) + 4
	}
	k := append(make([]byte, 0, n+16), prefix...)
	for _, c := range comps {
		k = eventlog.AppendKeyString(k, c)
	}
	return k
}

func be16(k []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(k, v) }
func be32(k []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(k, v) }
func be64(k []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(k, v) }

func roomKey(room string) []byte  { return key(pRoom, room) }
func groupKey(room string) []byte { return key(pGroup, room) }
func proposalKey(room string, i uint32) []byte {
	return be32(key(pProposal, room), i)
}
func propRefKey(room string, ref []byte) []byte { return key(pPropRef, room, string(ref)) }
func memberKey(client, room string) []byte      { return key(pMember, client, room) }
func clientKey(client string) []byte            { return key(pClient, client) }
func userClientKey(user, client string) []byte {
	return key(pUserClient, user, client)
}
func kpKey(ref []byte) []byte { return key(pKeyPackage, string(ref)) }
func availKey(k *KeyPackage) []byte {
	return be32(be64(be64(be16(key(pAvailable, k.Client), k.CipherSuite), k.NotAfter), k.UploadSeq), k.UploadIndex)
}
func expiryKey(k *KeyPackage) []byte {
	return eventlog.AppendKeyString(be64(append([]byte(nil), pExpiry...), k.NotAfter), string(k.Ref))
}
func callKey(digest []byte) []byte { return key(pCall, string(digest)) }
func callExpiryKey(expiry uint64, digest []byte) []byte {
	return eventlog.AppendKeyString(be64(append([]byte(nil), pCallExpiry...), expiry), string(digest))
}
func hubRouteKey(ref []byte) []byte            { return key(pHubRoute, string(ref)) }
func notifyKey(hub string, hash []byte) []byte { return key(pNotify, hub, string(hash)) }
func notifyAgeKey(seq uint64, hub string, hash []byte) []byte {
	return eventlog.AppendKeyString(eventlog.AppendKeyString(be64(append([]byte(nil), pNotifyAge...), seq), hub), string(hash))
}
func messageKey(room string, epoch uint64, hash []byte) []byte {
	return eventlog.AppendKeyString(be64(key(pMessage, room), epoch), string(hash))
}
func groupRoomKey(hub string, gid []byte) []byte { return key(pGroupRoom, hub, string(gid)) }
func roomGroupKey(room string) []byte            { return key(pRoomGroup, room) }
func fanCursorKey(dest string) []byte            { return key(pFanCursor, dest) }
func inCursorKey(client string) []byte           { return key(pInCursor, client) }

// queueKeys builds the keys of one delivery queue at a time, a fanout
// queue (p/fcur, p/fq) or an inbox (p/icur, p/iq), in buffers reused from
// target to target: every enqueue touches them for each of its targets.
type queueKeys struct {
	inbox bool
	comp  []byte // c(target)
	// cursor is target's cursor key and client (inboxes only) its client
	// key, valid until the next reset.
	cursor, client []byte
	entry          []byte // p/fq/ or p/iq/ + c(target), with room for be64(n)
}

// reset points q at target's queue.
func (q *queueKeys) reset(target string) {
	cp, ep := pFanCursor, pFanQueue
	if q.inbox {
		cp, ep = pInCursor, pInQueue
	}
	q.comp = eventlog.AppendKeyString(q.comp[:0], target)
	if q.inbox {
		q.client = append(append(q.client[:0], pClient...), q.comp...)
	}
	q.cursor = append(append(q.cursor[:0], cp...), q.comp...)
	q.entry = slices.Grow(append(append(q.entry[:0], ep...), q.comp...), 8)
}

// entryKey returns the key of entry n of the queue, valid until the next
// entryKey or reset.
func (q *queueKeys) entryKey(n uint64) []byte { return be64(q.entry, n) }
