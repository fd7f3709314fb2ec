package projections

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"github.com/openmimi/mimi/eventlog"
)

// MaxIDLen bounds identifiers that become part of keys (room IDs, URIs,
// domains, KeyPackageRefs, hashes).
const MaxIDLen = 4096

// tx is one command's (or one replay's) view of the state: the batch its
// writes go to, the reader behind it, and the log appender writing into the
// batch.
//
// Point reads go through a write-through cache of the keys this tx has
// read or written (map lookups only, so determinism is unaffected), then
// to r. Apply uses an indexed batch as r, so range reads see the tx's own
// writes; replay uses a plain batch and the DB as r, and commits before any
// event whose application needs a range read (see needsRangeRead).
//
// Only the key classes that are point-read (get, has, load) go through
// the cache. The others are write-only for the tx: p/grp, p/prop, p/memb,
// p/ucl, p/kpa, p/kpx, p/ntfq, p/fq and p/iq are never point-read while
// applying (the read APIs and the range reads go to the DB or the batch),
// and are written with setBlind, putBlind and delBlind, straight to the
// batch, so that the caches keep the records that are read again. Such a
// key must never be read with get: the caches do not know its writes.
//
// The fanout and inbox cursors (p/fcur, p/icur), moved by every enqueue
// and acknowledgement, are read with cursor and written with putCursor,
// which keeps the latest value in cursorWrites; finish writes each
// written cursor to the batch once, whatever the number of events that
// moved it. A rejected command never reaches finish, so its cursor writes
// are dropped with the rest of its writes.
type tx struct {
	b      *pebble.Batch
	r      pebble.Reader
	logR   pebble.Reader // where log records are read (r, or a replay's source)
	dryLog bool          // the appender writes nothing (ReplayProjections)
	app    *eventlog.Appender
	cache  map[string]cached
	rooms  map[string]*Room           // decoded room records, kept in step with cache
	events map[uint64]*eventlog.Event // appended in this tx, by seq
	base   *stateCache                // committed state shared across Applies, or nil
	// cursorWrites are the fanout and inbox cursors this tx wrote (by
	// key), with their latest values: written to the batch by finish, and
	// for Machine.cursors once committed.
	cursorWrites map[string]*Cursor
	enc          *encoder // encodes the records this tx writes
	// clientsChanged: the tx wrote a client record (Machine.clients must
	// be invalidated once it is committed).
	clientsChanged bool
}

// stateCache holds committed values across Applies: values read from the
// DB (filled as read, since a key the tx has not written has no pending
// write) and the writes of committed commands (merged after the commit).
// A rejected command's writes never reach it. It only saves reads: every
// value in it equals the DB's.
type stateCache struct {
	vals      map[string]cached
	rooms     map[string]*Room
	head      eventlog.Head
	roomHeads map[string]uint64
}

// maxStateCache bounds the shared cache; it is emptied when it grows past.
const maxStateCache = 1 << 18

func newStateCache(r pebble.Reader) (*stateCache, error) {
	h, err := eventlog.ReadHead(r)
	if err != nil {
		return nil, storageErr("read log head", err)
	}
	return &stateCache{vals: make(map[string]cached), rooms: make(map[string]*Room), head: h,
		roomHeads: make(map[string]uint64)}, nil
}

// newApplyTx starts an Apply tx on the indexed batch b over the shared
// cache base, encoding with enc.
func newApplyTx(b *pebble.Batch, base *stateCache, enc *encoder) *tx {
	app := eventlog.NewAppenderAt(b, base.head, func(room string) (uint64, error) {
		if s, ok := base.roomHeads[room]; ok {
			return s, nil
		}
		// The Appender asks only about rooms it has not appended to, whose
		// heads the batch has not changed.
		s, err := eventlog.RoomHead(b, room)
		if err == nil {
			base.roomHeads[room] = s
		}
		return s, err
	})
	return &tx{b: b, r: b, logR: b, app: app, cache: make(map[string]cached), rooms: make(map[string]*Room),
		events: make(map[uint64]*eventlog.Event), base: base, enc: enc}
}

// publish merges a committed tx into the shared cache.
func (t *tx) publish() {
	base := t.base
	if base == nil {
		return
	}
	if len(base.vals)+len(t.cache) > maxStateCache || len(base.roomHeads) > maxStateCache {
		clear(base.vals)
		clear(base.rooms)
		clear(base.roomHeads)
	}
	for k, c := range t.cache {
		base.vals[k] = c
	}
	for id, r := range t.rooms {
		base.rooms[id] = r
	}
	for room, s := range t.app.RoomHeads() {
		base.roomHeads[room] = s
	}
	base.head = t.app.Head()
}

type cached struct {
	v  []byte
	ok bool
}

// newTx starts a tx writing to b and reading through r (b itself if b is
// indexed).
func newTx(b *pebble.Batch, r pebble.Reader) (*tx, error) {
	app, err := eventlog.NewAppender(r, b)
	if err != nil {
		return nil, storageErr("open log appender", err)
	}
	return &tx{b: b, r: r, logR: r, app: app, cache: make(map[string]cached), rooms: make(map[string]*Room),
		events: make(map[uint64]*eventlog.Event), enc: new(encoder)}, nil
}

// newDryLogTx starts a tx that writes projections to b but does not write
// the log: positions and chain hashes are computed, and log reads go to
// logR.
func newDryLogTx(b *pebble.Batch, r, logR pebble.Reader) (*tx, error) {
	t, err := newTx(b, r)
	if err != nil {
		return nil, err
	}
	if t.app, err = eventlog.NewAppender(r, nil); err != nil {
		return nil, storageErr("open log appender", err)
	}
	t.logR, t.dryLog = logR, true
	return t, nil
}

// maxCached bounds the cache a long-lived (replay) tx keeps.
const maxCached = 1 << 20

// rebind continues the tx into a new batch after the previous one was
// committed. Only valid when r is the DB (not the old batch).
func (t *tx) rebind(b *pebble.Batch) error {
	if !t.dryLog {
		if err := t.app.Reset(b); err != nil {
			return storageErr("rebind", err)
		}
	}
	t.b = b
	clear(t.events)
	// finish wrote the cursors; replay does not keep them for
	// Machine.cursors (it reloads the table).
	clear(t.cursorWrites)
	if len(t.cache) > maxCached {
		clear(t.cache)
		clear(t.rooms)
	}
	return nil
}

// needsRangeRead reports whether applying ev iterates over keys (rather
// than reading single keys).
func needsRangeRead(ev *eventlog.Event) bool {
	switch ev.Type() {
	case eventlog.TypeClientRemoved, eventlog.TypeCommitAccepted, eventlog.TypeNotifyDedupPruned, eventlog.TypeKeyPackagesExpired,
		eventlog.TypeClientCallAccepted:
		return true
	}
	return false
}

// finish writes the cursors and the log heads into the batch.
func (t *tx) finish() error {
	if err := t.flushCursors(); err != nil {
		return err
	}
	if err := t.app.Flush(); err != nil {
		return storageErr("flush log head", err)
	}
	return nil
}

// get returns the value of k as of this tx (the slice must not be
// modified).
func (t *tx) get(k []byte) ([]byte, bool, error) {
	if c, hit := t.cache[string(k)]; hit {
		return c.v, c.ok, nil
	}
	fill := t.cache
	if t.base != nil {
		if c, hit := t.base.vals[string(k)]; hit {
			return c.v, c.ok, nil
		}
		// Not written by this tx, so r holds the committed value.
		fill = t.base.vals
	}
	v, ok, err := getCopy(t.r, k, "get")
	if err != nil {
		return nil, false, err
	}
	fill[string(k)] = cached{v: v, ok: ok}
	return v, ok, nil
}

// getCopy returns a copy of k's value in r, and whether k exists; what
// names the read in a storage error.
func getCopy(r pebble.Reader, k []byte, what string) ([]byte, bool, error) {
	v, closer, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, storageErr(what, err)
	}
	v = append([]byte{}, v...)
	closer.Close()
	return v, true, nil
}

func (t *tx) has(k []byte) (bool, error) {
	_, ok, err := t.get(k)
	return ok, err
}

// event returns the event at seq, from this tx if it appended it.
func (t *tx) event(seq uint64) (eventlog.Event, error) {
	if ev, ok := t.events[seq]; ok {
		return *ev, nil
	}
	return eventlog.Get(t.logR, seq)
}

func getRec(r pebble.Reader, k []byte, field string, rec record) (bool, error) {
	v, closer, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, storageErr("get "+field, err)
	}
	defer closer.Close()
	if err := decode(v, field, rec); err != nil {
		return false, err
	}
	return true, nil
}

func has(r pebble.Reader, k []byte) (bool, error) {
	_, closer, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, storageErr("get", err)
	}
	closer.Close()
	return true, nil
}

func (t *tx) load(k []byte, field string, rec record) (bool, error) {
	v, ok, err := t.get(k)
	if err != nil || !ok {
		return false, err
	}
	if err := decode(v, field, rec); err != nil {
		return false, err
	}
	return true, nil
}

func (t *tx) put(k []byte, rec record) error {
	v, err := t.enc.encode(rec)
	if err != nil {
		return err
	}
	return t.set(k, v)
}

func (t *tx) set(k, v []byte) error {
	if err := t.b.Set(k, v, nil); err != nil {
		return storageErr("set", err)
	}
	t.cache[string(k)] = cached{v: append([]byte{}, v...), ok: true}
	return nil
}

func (t *tx) del(k []byte) error {
	if err := t.b.Delete(k, nil); err != nil {
		return storageErr("delete", err)
	}
	t.cache[string(k)] = cached{}
	return nil
}

// setBlind, putBlind and delBlind write a key of a write-only class (see
// tx) to the batch only.
func (t *tx) setBlind(k, v []byte) error {
	if err := t.b.Set(k, v, nil); err != nil {
		return storageErr("set", err)
	}
	return nil
}

func (t *tx) putBlind(k []byte, rec record) error {
	v, err := t.enc.encode(rec)
	if err != nil {
		return err
	}
	return t.setBlind(k, v)
}

func (t *tx) delBlind(k []byte) error {
	if err := t.b.Delete(k, nil); err != nil {
		return storageErr("delete", err)
	}
	return nil
}

// appended records an event appended in this tx.
func (t *tx) appended(ev *eventlog.Event) {
	e := *ev
	t.events[ev.Seq] = &e
}

// scan returns copies of every key/value under prefix, in key order.
func (t *tx) scan(prefix []byte) (keys, vals [][]byte, err error) {
	return t.scanRange(prefix, eventlog.PrefixEnd(prefix))
}

// scanRange is scan over the keys in [lower, upper).
func (t *tx) scanRange(lower, upper []byte) (keys, vals [][]byte, err error) {
	it, err := t.r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, nil, storageErr("iterate", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		keys = append(keys, append([]byte(nil), it.Key()...))
		vals = append(vals, append([]byte(nil), it.Value()...))
	}
	if err := it.Error(); err != nil {
		it.Close()
		return nil, nil, storageErr("iterate", err)
	}
	if err := it.Close(); err != nil {
		return nil, nil, storageErr("iterate", err)
	}
	return keys, vals, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidEvent, fmt.Sprintf(format, args...))
}

func checkID(what, s string, required bool) error {
	if required && s == "" {
		return invalid("%s is empty", what)
	}
	if len(s) > MaxIDLen {
		return invalid("%s is %d bytes long", what, len(s))
	}
	return nil
}

// append validates ev against the state, applies it to the projections and
// appends it to the log.
func (t *tx) append(ev eventlog.Event) (eventlog.Event, error) {
	if ev.Body == nil {
		return ev, invalid("event has no body")
	}
	ev.Version = eventlog.SchemaVersion
	seq, roomSeq, err := t.app.Next(ev.Room)
	if err != nil {
		return ev, storageErr("log head", err)
	}
	ev.Seq, ev.RoomSeq = seq, roomSeq
	if err := t.applyEvent(&ev); err != nil {
		return ev, err
	}
	if err := t.app.Append(&ev); err != nil {
		return ev, storageErr("append", err)
	}
	t.appended(&ev)
	return ev, nil
}

// applyEvent updates every projection for ev (whose Seq and RoomSeq are
// set), or rejects it. It is the single definition of the projections as a
// function of the log: Apply and replay both use it.
func (t *tx) applyEvent(ev *eventlog.Event) error {
	if err := checkID("room", ev.Room, false); err != nil {
		return err
	}
	switch b := ev.Body.(type) {
	case *eventlog.ClientRegistered:
		return t.clientRegistered(ev, b)
	case *eventlog.ClientRemoved:
		return t.clientRemoved(b)
	case *eventlog.KeyPackagesUploaded:
		return t.keyPackagesUploaded(ev, b)
	case *eventlog.KeyPackageClaimed:
		return t.keyPackageClaimed(ev, b)
	case *eventlog.KeyPackageRouted:
		return t.keyPackageRouted(ev, b)
	case *eventlog.RoomCreated:
		return t.roomCreated(ev, b)
	case *eventlog.RoomStateUpdated:
		return t.roomStateUpdated(ev, b)
	case *eventlog.RoomClosed:
		return t.roomClosed(ev)
	case *eventlog.ProposalAccepted:
		return t.proposalAccepted(ev, b)
	case *eventlog.CommitAccepted:
		return t.commitAccepted(ev, b)
	case *eventlog.ApplicationMessageAccepted:
		return t.applicationMessageAccepted(ev, b)
	case *eventlog.NotifyAccepted:
		return t.notifyAccepted(ev, b)
	case *eventlog.GroupBound:
		return t.groupBound(ev, b)
	case *eventlog.NotifyDedupPruned:
		return t.pruneNotifyDedup(b)
	case *eventlog.KeyPackagesExpired:
		return t.keyPackagesExpired(b)
	case *eventlog.HubKeyDeclared:
		return t.hubKeyDeclared(b)
	case *eventlog.ClientCallAccepted:
		return t.clientCallAccepted(b)
	case *eventlog.FanoutEnqueued:
		return t.enqueue(ev, b.Destinations, b.Back, b.Part, 0, false)
	case *eventlog.FanoutDelivered:
		if err := checkID("destination", b.Destination, true); err != nil {
			return err
		}
		return t.ack(&queueKeys{inbox: false}, b.Destination, b.UpTo)
	case *eventlog.ClientEnqueued:
		return t.enqueue(ev, b.Clients, b.Back, b.Part, b.Index, true)
	case *eventlog.ClientDelivered:
		if err := checkID("client", b.Client, true); err != nil {
			return err
		}
		return t.ack(&queueKeys{inbox: true}, b.Client, b.UpTo)
	default:
		return invalid("unsupported event type %s", ev.Type())
	}
}

func (t *tx) clientRegistered(ev *eventlog.Event, b *eventlog.ClientRegistered) error {
	if err := checkID("user", b.User, true); err != nil {
		return err
	}
	if err := checkID("client", b.Client, true); err != nil {
		return err
	}
	var c Client
	found, err := t.load(clientKey(b.Client), "client", &c)
	if err != nil {
		return err
	}
	if found && c.User != b.User {
		return fmt.Errorf("%w: %q belongs to %q", ErrClientExists, b.Client, c.User)
	}
	if !found {
		c = Client{Client: b.Client, User: b.User, RegisteredAt: ev.Timestamp}
	}
	c.SignatureKey, c.Credential, c.Seq = b.SignatureKey, b.Credential, ev.Seq
	t.clientsChanged = true
	if err := t.put(clientKey(b.Client), &c); err != nil {
		return err
	}
	return t.setBlind(userClientKey(b.User, b.Client), nil)
}

func (t *tx) clientRemoved(b *eventlog.ClientRemoved) error {
	var c Client
	found, err := t.load(clientKey(b.Client), "client", &c)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: %q", ErrUnknownClient, b.Client)
	}
	t.clientsChanged = true
	if err := t.del(clientKey(b.Client)); err != nil {
		return err
	}
	if err := t.delBlind(userClientKey(c.User, b.Client)); err != nil {
		return err
	}
	// Withdraw the unclaimed KeyPackages.
	_, refs, err := t.scan(key(pAvailable, b.Client))
	if err != nil {
		return err
	}
	if err := t.withdrawKeyPackages(refs, "availability"); err != nil {
		return err
	}
	// Drop the inbox, keeping the cursor so positions are never reused.
	q := queueKeys{inbox: true}
	q.reset(b.Client)
	cur, found, err := t.cursor(q.cursor, "inbox cursor")
	if err != nil || !found {
		return err
	}
	for n := cur.Acked + 1; n <= cur.Enqueued; n++ {
		if err := t.delBlind(q.entryKey(n)); err != nil {
			return err
		}
	}
	cur.Acked = cur.Enqueued
	t.putCursor(q.cursor, cur)
	return nil
}

func (t *tx) keyPackagesUploaded(ev *eventlog.Event, b *eventlog.KeyPackagesUploaded) error {
	if err := checkID("client", b.Client, true); err != nil {
		return err
	}
	if ok, err := t.has(clientKey(b.Client)); err != nil || !ok {
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: %q", ErrUnknownClient, b.Client)
	}
	if len(b.KeyPackages) == 0 {
		return invalid("no KeyPackages")
	}
	if len(b.KeyPackages) > math.MaxUint32 {
		return invalid("too many KeyPackages")
	}
	for i := range b.KeyPackages {
		kp := &b.KeyPackages[i]
		if err := checkID("KeyPackageRef", string(kp.Ref), true); err != nil {
			return err
		}
		if ok, err := t.has(kpKey(kp.Ref)); err != nil || ok {
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: %x", ErrKeyPackageExists, kp.Ref)
		}
		rec := KeyPackage{Ref: kp.Ref, Client: b.Client, CipherSuite: kp.CipherSuite, NotAfter: kp.NotAfter,
			Data: kp.Data, UploadSeq: ev.Seq, UploadIndex: uint32(i)}
		if err := t.put(kpKey(kp.Ref), &rec); err != nil {
			return err
		}
		if err := t.setBlind(availKey(&rec), kp.Ref); err != nil {
			return err
		}
		if err := t.setBlind(expiryKey(&rec), nil); err != nil {
			return err
		}
	}
	return nil
}

// withdrawKeyPackages deletes unclaimed KeyPackages, named by refs read
// from the index called index, and their index entries.
func (t *tx) withdrawKeyPackages(refs [][]byte, index string) error {
	for _, ref := range refs {
		var kp KeyPackage
		found, err := t.load(kpKey(ref), "key package", &kp)
		if err != nil {
			return err
		}
		if !found || kp.Claimed {
			return fmt.Errorf("%w: %s index names KeyPackage %x (found %v)", ErrCorruptState, index, ref, found)
		}
		if err := t.del(kpKey(kp.Ref)); err != nil {
			return err
		}
		if err := t.delBlind(availKey(&kp)); err != nil {
			return err
		}
		if err := t.delBlind(expiryKey(&kp)); err != nil {
			return err
		}
	}
	return nil
}

// keyPackagesExpired withdraws at most b.Limit unclaimed KeyPackages whose
// not_after is before b.Now, oldest first.
func (t *tx) keyPackagesExpired(b *eventlog.KeyPackagesExpired) error {
	if b.Limit == 0 || b.Limit > maxPruneLimit {
		return invalid("expiry limit %d outside 1..%d", b.Limit, maxPruneLimit)
	}
	var refs [][]byte
	err := eachUnder(t.r, pExpiry, nil, func(k, _ []byte) (bool, error) {
		if len(k) < len(pExpiry)+8 {
			return false, fmt.Errorf("%w: expiry key %x", ErrCorruptState, k)
		}
		if !expired(binary.BigEndian.Uint64(k[len(pExpiry):]), b.Now) {
			return false, nil
		}
		ref, err := componentAt(k[len(pExpiry)+8:], nil, 0)
		if err != nil {
			return false, err
		}
		refs = append(refs, []byte(ref))
		return len(refs) < int(b.Limit), nil
	})
	if err != nil {
		return err
	}
	return t.withdrawKeyPackages(refs, "expiry")
}

func (t *tx) keyPackageClaimed(ev *eventlog.Event, b *eventlog.KeyPackageClaimed) error {
	if err := checkID("claimer", b.Claimer, true); err != nil {
		return err
	}
	var kp KeyPackage
	found, err := t.load(kpKey(b.Ref), "key package", &kp)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: %x", ErrKeyPackageUnknown, b.Ref)
	}
	if kp.Client != b.Client {
		return invalid("KeyPackage %x belongs to %q, not %q", b.Ref, kp.Client, b.Client)
	}
	if kp.Claimed {
		return fmt.Errorf("%w: %x (claimed at seq %d)", ErrKeyPackageClaimed, b.Ref, kp.ClaimSeq)
	}
	if kp.Expired(ev.Timestamp) {
		return fmt.Errorf("%w: %x (not_after %d)", ErrKeyPackageExpired, b.Ref, kp.NotAfter)
	}
	if err := t.delBlind(availKey(&kp)); err != nil {
		return err
	}
	if err := t.delBlind(expiryKey(&kp)); err != nil {
		return err
	}
	kp.Claimed, kp.Claimer, kp.Room, kp.ClaimedAt, kp.ClaimSeq = true, b.Claimer, ev.Room, ev.Timestamp, ev.Seq
	return t.put(kpKey(b.Ref), &kp)
}

func (t *tx) keyPackageRouted(ev *eventlog.Event, b *eventlog.KeyPackageRouted) error {
	if err := checkID("KeyPackageRef", string(b.Ref), true); err != nil {
		return err
	}
	if err := checkID("provider", b.Provider, true); err != nil {
		return err
	}
	return t.put(hubRouteKey(b.Ref), &HubRoute{Ref: b.Ref, Provider: b.Provider, User: b.User, Room: ev.Room, Seq: ev.Seq})
}

// normalizeMembers returns the sorted, duplicate-free member list.
func normalizeMembers(ms []string) ([]string, error) {
	out := append([]string(nil), ms...)
	sort.Strings(out)
	for i, m := range out {
		if err := checkID("member", m, true); err != nil {
			return nil, err
		}
		if i > 0 && out[i-1] == m {
			return nil, invalid("member %q listed twice", m)
		}
	}
	return out, nil
}

// room returns a copy of the room's record (the caller may modify it and
// store it with putRoom).
func (t *tx) room(id string) (*Room, error) {
	if id == "" {
		return nil, invalid("event needs a room")
	}
	if r, ok := t.rooms[id]; ok {
		c := *r
		return &c, nil
	}
	k := roomKey(id)
	_, written := t.cache[string(k)]
	if t.base != nil && !written {
		if r, ok := t.base.rooms[id]; ok {
			c := *r
			return &c, nil
		}
	}
	var r Room
	found, err := t.load(k, "room", &r)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchRoom, id)
	}
	c := r
	if t.base != nil && !written {
		t.base.rooms[id] = &c
	} else {
		t.rooms[id] = &c
	}
	return &r, nil
}

// putRoom stores a room record. Slices in r must not be modified later.
func (t *tx) putRoom(r *Room) error {
	if err := t.put(roomKey(r.ID), r); err != nil {
		return err
	}
	c := *r
	t.rooms[r.ID] = &c
	return nil
}

func (t *tx) openRoom(id string) (*Room, error) {
	r, err := t.room(id)
	if err != nil {
		return nil, err
	}
	if r.Closed {
		return nil, fmt.Errorf("%w: %q", ErrRoomClosed, id)
	}
	return r, nil
}

func (t *tx) roomCreated(ev *eventlog.Event, b *eventlog.RoomCreated) error {
	if err := checkID("room", ev.Room, true); err != nil {
		return err
	}
	if err := checkID("hub", b.Hub, true); err != nil {
		return err
	}
	if ok, err := t.has(roomKey(ev.Room)); err != nil || ok {
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: %q", ErrRoomExists, ev.Room)
	}
	members, err := normalizeMembers(b.Members)
	if err != nil {
		return err
	}
	r := Room{ID: ev.Room, Hub: b.Hub, Creator: b.Creator, Epoch: b.Epoch, Policy: b.Policy,
		Participants: b.Participants, Members: members, CreatedAt: ev.Timestamp, CreatedSeq: ev.Seq}
	if err := t.putRoom(&r); err != nil {
		return err
	}
	if err := t.putBlind(groupKey(ev.Room), &groupState{Epoch: b.Epoch, GroupInfo: b.GroupInfo, RatchetTree: b.RatchetTree}); err != nil {
		return err
	}
	for _, m := range members {
		if err := t.setBlind(memberKey(m, ev.Room), nil); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) roomStateUpdated(ev *eventlog.Event, b *eventlog.RoomStateUpdated) error {
	r, err := t.openRoom(ev.Room)
	if err != nil {
		return err
	}
	if b.Participants == nil && b.Policy == nil {
		return invalid("room state update changes nothing")
	}
	if b.Participants != nil {
		r.Participants = b.Participants
	}
	if b.Policy != nil {
		r.Policy = b.Policy
	}
	return t.putRoom(r)
}

func (t *tx) roomClosed(ev *eventlog.Event) error {
	r, err := t.openRoom(ev.Room)
	if err != nil {
		return err
	}
	r.Closed = true
	return t.putRoom(r)
}

func (t *tx) proposalAccepted(ev *eventlog.Event, b *eventlog.ProposalAccepted) error {
	r, err := t.openRoom(ev.Room)
	if err != nil {
		return err
	}
	if b.Epoch != r.Epoch {
		return &WrongEpochError{Room: ev.Room, Current: r.Epoch, Proposed: b.Epoch}
	}
	if err := checkID("ProposalRef", string(b.ProposalRef), true); err != nil {
		return err
	}
	if r.Proposals == math.MaxUint32 {
		return invalid("too many proposals in epoch %d", r.Epoch)
	}
	rk := propRefKey(ev.Room, b.ProposalRef)
	if ok, err := t.has(rk); err != nil || ok {
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: %x in room %q epoch %d", ErrDuplicateProposal, b.ProposalRef, ev.Room, r.Epoch)
	}
	p := Proposal{Seq: ev.Seq, Timestamp: ev.Timestamp, Epoch: b.Epoch, Ref: b.ProposalRef, Sender: b.Sender, Message: b.Message}
	if err := t.putBlind(proposalKey(ev.Room, r.Proposals), &p); err != nil {
		return err
	}
	if err := t.set(rk, be32(nil, r.Proposals)); err != nil {
		return err
	}
	r.Proposals++
	return t.putRoom(r)
}

func (t *tx) commitAccepted(ev *eventlog.Event, b *eventlog.CommitAccepted) error {
	r, err := t.openRoom(ev.Room)
	if err != nil {
		return err
	}
	if r.Epoch == math.MaxUint64 || b.Epoch != r.Epoch+1 {
		return &WrongEpochError{Room: ev.Room, Current: r.Epoch, Proposed: b.Epoch}
	}
	if b.Welcome == nil && len(b.WelcomeRoutes) > 0 {
		return invalid("Welcome routes without a Welcome")
	}
	for _, rt := range b.WelcomeRoutes {
		if err := checkID("KeyPackageRef", string(rt.Ref), true); err != nil {
			return err
		}
		if err := checkID("provider", rt.Provider, true); err != nil {
			return err
		}
	}
	members, err := normalizeMembers(b.Members)
	if err != nil {
		return err
	}
	// The proposal cache holds the current epoch only.
	for i := uint32(0); i < r.Proposals; i++ {
		if err := t.delBlind(proposalKey(ev.Room, i)); err != nil {
			return err
		}
	}
	r.Proposals = 0
	if err := t.pruneEpoch(ev.Room, b.Epoch); err != nil {
		return err
	}
	// Member index: merge the sorted old and new lists.
	old := r.Members
	i, j := 0, 0
	for i < len(old) || j < len(members) {
		switch {
		case j == len(members) || (i < len(old) && old[i] < members[j]):
			if err := t.delBlind(memberKey(old[i], ev.Room)); err != nil {
				return err
			}
			i++
		case i == len(old) || members[j] < old[i]:
			if err := t.setBlind(memberKey(members[j], ev.Room), nil); err != nil {
				return err
			}
			j++
		default:
			i++
			j++
		}
	}
	r.Members = members
	r.Epoch = b.Epoch
	if b.Participants != nil {
		r.Participants = b.Participants
	}
	if b.Policy != nil {
		r.Policy = b.Policy
	}
	r.LastCommitAt, r.LastCommitSeq = ev.Timestamp, ev.Seq
	if err := t.putRoom(r); err != nil {
		return err
	}
	if err := t.putBlind(groupKey(ev.Room), &groupState{Epoch: b.Epoch, GroupInfo: b.GroupInfo, RatchetTree: b.RatchetTree}); err != nil {
		return err
	}
	for _, rt := range b.WelcomeRoutes {
		hr := HubRoute{Ref: rt.Ref}
		if _, err := t.load(hubRouteKey(rt.Ref), "hub route", &hr); err != nil {
			return err
		}
		hr.Provider, hr.Room, hr.Seq = rt.Provider, ev.Room, ev.Seq
		if err := t.put(hubRouteKey(rt.Ref), &hr); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) applicationMessageAccepted(ev *eventlog.Event, b *eventlog.ApplicationMessageAccepted) error {
	r, err := t.openRoom(ev.Room)
	if err != nil {
		return err
	}
	// A message from a future epoch is nonsensical
	// (draft-ralston-mimi-protocol-02, Section 5.4 notAllowed); whether
	// older epochs are acceptable is the hub's policy, expressed with a
	// RoomEpochIs condition.
	if b.Epoch > r.Epoch {
		return &WrongEpochError{Room: ev.Room, Current: r.Epoch, Proposed: b.Epoch}
	}
	// The same bytes are accepted once per epoch (a PrivateMessage names
	// its epoch, so it cannot recur in another one); an epoch's set is
	// kept for keptMessageEpochs epochs (pruneEpoch).
	h := sha256.Sum256(b.Message)
	k := messageKey(ev.Room, b.Epoch, h[:])
	var prev MessageRecord
	if found, err := t.load(k, "message", &prev); err != nil || found {
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: room %q epoch %d, accepted at seq %d", ErrDuplicateMessage, ev.Room, b.Epoch, prev.Seq)
	}
	return t.put(k, &MessageRecord{Seq: ev.Seq, Timestamp: ev.Timestamp})
}

// keptMessageEpochs is how many epochs a room's set of accepted
// application messages covers: the current one and the three before it.
const keptMessageEpochs = 4

// pruneEpoch forgets, when a commit moves a room to epoch next, the
// ProposalRefs of the cached proposals and the accepted application
// messages of the epochs before the last keptMessageEpochs. A closed
// epoch's messages stay for a few more epochs, so that a provider
// re-sending one whose answer it lost gets its first acceptance rather
// than epochTooOld (draft-ralston-mimi-protocol-02, Section 5.4), also
// when a few commits landed meanwhile. Only the keys that expire are
// read.
func (t *tx) pruneEpoch(room string, next uint64) error {
	if next >= keptMessageEpochs {
		msgs := key(pMessage, room)
		keys, _, err := t.scanRange(msgs, be64(bytes.Clone(msgs), next-keptMessageEpochs+1))
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := t.del(k); err != nil {
				return err
			}
		}
	}
	refs, _, err := t.scan(key(pPropRef, room))
	if err != nil {
		return err
	}
	for _, k := range refs {
		if err := t.del(k); err != nil {
			return err
		}
	}
	return nil
}

// groupBound binds a followed room and an MLS group to each other, once
// (draft-ralston-mimi-protocol-02, Section 5.5).
func (t *tx) groupBound(ev *eventlog.Event, b *eventlog.GroupBound) error {
	if err := checkID("room", ev.Room, true); err != nil {
		return err
	}
	if err := checkID("hub", b.Hub, true); err != nil {
		return err
	}
	if err := checkID("group ID", string(b.GroupID), true); err != nil {
		return err
	}
	var prev notifyRecord
	if found, err := t.load(groupRoomKey(b.Hub, b.GroupID), "group binding", &prev); err != nil || found {
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: group %x of hub %q is bound to room %q", ErrGroupBound, b.GroupID, b.Hub, prev.Room)
	}
	if v, found, err := t.get(roomGroupKey(ev.Room)); err != nil || found {
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: room %q is bound to group %x", ErrGroupBound, ev.Room, v)
	}
	if err := t.put(groupRoomKey(b.Hub, b.GroupID), &notifyRecord{Seq: ev.Seq, Room: ev.Room}); err != nil {
		return err
	}
	return t.set(roomGroupKey(ev.Room), b.GroupID)
}

func (t *tx) notifyAccepted(ev *eventlog.Event, b *eventlog.NotifyAccepted) error {
	if err := checkID("room", ev.Room, true); err != nil {
		return err
	}
	if err := checkID("hub", b.Hub, true); err != nil {
		return err
	}
	if !bytes.Equal(eventlog.NotifyHash(ev.Room, b.Body), b.BodyHash) {
		return invalid("notify hash does not match its room and body")
	}
	k := notifyKey(b.Hub, b.BodyHash)
	if ok, err := t.has(k); err != nil || ok {
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: hub %q body %x", ErrDuplicateNotify, b.Hub, b.BodyHash[:8])
	}
	if err := t.putBlind(notifyAgeKey(ev.Seq, b.Hub, b.BodyHash), &notifyAge{Timestamp: ev.Timestamp, Key: k}); err != nil {
		return err
	}
	return t.put(k, &notifyRecord{Seq: ev.Seq, Room: ev.Room})
}

// maxCallPrune bounds the expired call records one ClientCallAccepted
// forgets; each call adds one, so the set stays bounded by the calls of
// one validity window.
const maxCallPrune = 64

// clientCallAccepted forgets the call records expired at b.Now, then
// records b.Digest until b.Expiry, refusing a digest still recorded
// (ErrReplayedCall).
func (t *tx) clientCallAccepted(b *eventlog.ClientCallAccepted) error {
	if len(b.Digest) == 0 || len(b.Digest) > 64 || b.Expiry <= b.Now {
		return invalid("client call of %d-byte digest, expiry %d at %d", len(b.Digest), b.Expiry, b.Now)
	}
	var expired [][]byte
	err := eachUnder(t.r, pCallExpiry, nil, func(k, _ []byte) (bool, error) {
		if len(k) < len(pCallExpiry)+8 || binary.BigEndian.Uint64(k[len(pCallExpiry):]) > b.Now {
			return false, nil
		}
		expired = append(expired, append([]byte(nil), k...))
		return len(expired) < maxCallPrune, nil
	})
	if err != nil {
		return err
	}
	for _, k := range expired {
		d, err := componentAt(k[len(pCallExpiry)+8:], nil, 0)
		if err != nil {
			return err
		}
		if err := t.delBlind(k); err != nil {
			return err
		}
		if err := t.del(callKey([]byte(d))); err != nil {
			return err
		}
	}
	k := callKey(b.Digest)
	if ok, err := t.has(k); err != nil || ok {
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: digest %x", ErrReplayedCall, b.Digest[:min(8, len(b.Digest))])
	}
	if err := t.setBlind(callExpiryKey(b.Expiry, b.Digest), nil); err != nil {
		return err
	}
	return t.set(k, be64(nil, b.Expiry))
}

// hubKeyDeclared records the provider's hub signature key, once
// (RFC 9420, Section 12.1.8.1; draft-ralston-mimi-protocol-02, Section
// 5.6).
func (t *tx) hubKeyDeclared(b *eventlog.HubKeyDeclared) error {
	if b.CipherSuite == 0 || len(b.SignatureKey) == 0 || len(b.SignatureKey) > MaxIDLen {
		return invalid("hub key of suite %d, %d bytes", b.CipherSuite, len(b.SignatureKey))
	}
	if v, found, err := t.get(keyHubKey); err != nil || found {
		if err != nil {
			return err
		}
		same := len(v) >= 2 && binary.BigEndian.Uint16(v) == b.CipherSuite && bytes.Equal(v[2:], b.SignatureKey)
		return fmt.Errorf("%w (the same key: %v)", ErrHubKeyDeclared, same)
	}
	return t.set(keyHubKey, append(be16(nil, b.CipherSuite), b.SignatureKey...))
}

// maxPruneLimit bounds the work of one NotifyDedupPruned event.
const maxPruneLimit = 100_000

// pruneNotifyDedup forgets, oldest first, at most b.Limit dedup entries
// accepted before b.OlderThan; it stops at the first younger entry.
func (t *tx) pruneNotifyDedup(b *eventlog.NotifyDedupPruned) error {
	if b.Limit == 0 || b.Limit > maxPruneLimit {
		return invalid("prune limit %d outside 1..%d", b.Limit, maxPruneLimit)
	}
	var keys [][]byte
	var ages []notifyAge
	err := eachUnder(t.r, pNotifyAge, nil, func(k, v []byte) (bool, error) {
		var a notifyAge
		if err := decode(v, "notify age", &a); err != nil || a.Timestamp >= b.OlderThan {
			return false, err
		}
		keys = append(keys, append([]byte(nil), k...))
		ages = append(ages, a)
		return len(keys) < int(b.Limit), nil
	})
	if err != nil {
		return err
	}
	for i, k := range keys {
		if err := t.delBlind(k); err != nil {
			return err
		}
		if !bytes.HasPrefix(ages[i].Key, pNotify) {
			return fmt.Errorf("%w: notify age entry names key %x", ErrCorruptState, ages[i].Key)
		}
		if err := t.del(ages[i].Key); err != nil {
			return err
		}
	}
	return nil
}

// source resolves and validates the event a delivery refers to.
func (t *tx) source(ev *eventlog.Event, back uint64, part eventlog.Part) (eventlog.Event, error) {
	if back == 0 || back >= ev.Seq {
		return eventlog.Event{}, invalid("back reference %d from seq %d", back, ev.Seq)
	}
	src, err := t.event(ev.Seq - back)
	if err != nil {
		return eventlog.Event{}, storageErr("read source event", err)
	}
	if src.Room != ev.Room {
		return eventlog.Event{}, invalid("source event %d is in room %q, not %q", src.Seq, src.Room, ev.Room)
	}
	if _, err := payload(&src, part); err != nil {
		return eventlog.Event{}, err
	}
	return src, nil
}

// payload returns the bytes of part of ev.
func payload(ev *eventlog.Event, part eventlog.Part) ([]byte, error) {
	switch b := ev.Body.(type) {
	case *eventlog.ProposalAccepted:
		if part == eventlog.PartMessage {
			return b.Message, nil
		}
	case *eventlog.CommitAccepted:
		switch {
		case part == eventlog.PartMessage:
			return b.Commit, nil
		case part == eventlog.PartWelcome && b.Welcome != nil:
			return b.Welcome, nil
		}
	case *eventlog.ApplicationMessageAccepted:
		if part == eventlog.PartMessage {
			return b.Message, nil
		}
	case *eventlog.NotifyAccepted:
		if part == eventlog.PartMessage {
			return b.Body, nil
		}
	}
	return nil, invalid("event %d (%s) has no part %d", ev.Seq, ev.Type(), part)
}

func (t *tx) enqueue(ev *eventlog.Event, targets []string, back uint64, part eventlog.Part, index uint32, clients bool) error {
	if len(targets) == 0 {
		return invalid("no delivery targets")
	}
	sorted := append([]string(nil), targets...)
	sort.Strings(sorted)
	for i, s := range sorted {
		if err := checkID("delivery target", s, true); err != nil {
			return err
		}
		if i > 0 && sorted[i-1] == s {
			return invalid("delivery target %q listed twice", s)
		}
	}
	src, err := t.source(ev, back, part)
	if err != nil {
		return err
	}
	q := queueKeys{inbox: clients}
	d := Delivery{SourceSeq: src.Seq, Part: part, Index: index, Room: src.Room, EnqueueSeq: ev.Seq, Timestamp: src.Timestamp}
	for _, target := range targets {
		q.reset(target)
		if clients {
			if ok, err := t.has(q.client); err != nil || !ok {
				if err != nil {
					return err
				}
				return fmt.Errorf("%w: %q", ErrUnknownClient, target)
			}
		}
		cur, _, err := t.cursor(q.cursor, "cursor")
		if err != nil {
			return err
		}
		cur.Enqueued++
		d.N = cur.Enqueued
		if err := t.putBlind(q.entryKey(cur.Enqueued), &d); err != nil {
			return err
		}
		t.putCursor(q.cursor, cur)
	}
	return nil
}

// ack acknowledges the entries up to upTo of target's queue (q names the
// kind of queue).
func (t *tx) ack(q *queueKeys, target string, upTo uint64) error {
	q.reset(target)
	cur, found, err := t.cursor(q.cursor, "cursor")
	if err != nil {
		return err
	}
	if !found || upTo > cur.Enqueued {
		return fmt.Errorf("%w: ack %d, %d queued", ErrAckBeyondQueue, upTo, cur.Enqueued)
	}
	if upTo <= cur.Acked {
		return fmt.Errorf("%w: ack %d, already acked %d", ErrStaleAck, upTo, cur.Acked)
	}
	for n := cur.Acked + 1; n <= upTo; n++ {
		if err := t.delBlind(q.entryKey(n)); err != nil {
			return err
		}
	}
	cur.Acked = upTo
	t.putCursor(q.cursor, cur)
	return nil
}

// check evaluates a condition against the state.
func (t *tx) check(c *Condition) error {
	switch c.Kind {
	case CondRoomExists:
		ok, err := t.has(roomKey(c.Room))
		if err == nil && !ok {
			err = fmt.Errorf("%w: %q", ErrNoSuchRoom, c.Room)
		}
		return err
	case CondRoomDoesNotExist:
		ok, err := t.has(roomKey(c.Room))
		if err == nil && ok {
			err = fmt.Errorf("%w: %q", ErrRoomExists, c.Room)
		}
		return err
	case CondRoomEpochIs, CondRoomProposalsAre:
		r, err := t.room(c.Room)
		if err != nil {
			return err
		}
		if r.Epoch != c.Epoch {
			return &WrongEpochError{Room: c.Room, Current: r.Epoch, Proposed: c.Epoch}
		}
		if c.Kind == CondRoomProposalsAre && r.Proposals != c.Proposals {
			return fmt.Errorf("%w: room %q has %d proposals cached, the command expected %d", ErrProposalsChanged, c.Room, r.Proposals, c.Proposals)
		}
		return nil
	case CondRoomSeqIs:
		cur, err := t.app.RoomHead(c.Room)
		if err != nil {
			return storageErr("room head", err)
		}
		if cur != c.Seq {
			return &RoomSeqError{Room: c.Room, Current: cur, Expected: c.Seq}
		}
		return nil
	case CondKeyPackageUnclaimed:
		var kp KeyPackage
		found, err := t.load(kpKey(c.Ref), "key package", &kp)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("%w: %x", ErrKeyPackageUnknown, c.Ref)
		case kp.Claimed:
			return fmt.Errorf("%w: %x", ErrKeyPackageClaimed, c.Ref)
		case kp.Expired(c.Now):
			return fmt.Errorf("%w: %x", ErrKeyPackageExpired, c.Ref)
		}
		return nil
	case CondNotifyNotSeen:
		ok, err := t.has(notifyKey(c.Hub, c.Hash))
		if err == nil && ok {
			err = fmt.Errorf("%w: hub %q", ErrDuplicateNotify, c.Hub)
		}
		return err
	case CondClientRegistered:
		ok, err := t.has(clientKey(c.Client))
		if err == nil && !ok {
			err = fmt.Errorf("%w: %q", ErrUnknownClient, c.Client)
		}
		return err
	case CondClientNotRegistered:
		ok, err := t.has(clientKey(c.Client))
		if err == nil && ok {
			err = fmt.Errorf("%w: %q", ErrClientExists, c.Client)
		}
		return err
	}
	return fmt.Errorf("%w: condition kind %d", ErrMalformedCommand, c.Kind)
}

// claim resolves a ClaimRequest inside Apply.
func (t *tx) claim(req *ClaimRequest) (ClaimResult, *eventlog.Event, error) {
	res := ClaimResult{Client: req.Client}
	if err := checkID("client", req.Client, true); err != nil {
		return res, nil, err
	}
	ref, found, err := t.findClaimable(req.Client, req.Suites, req.Timestamp)
	if err != nil {
		return res, nil, err
	}
	if !found {
		if req.Required {
			return res, nil, fmt.Errorf("%w: client %q", ErrNoKeyPackage, req.Client)
		}
		return res, nil, nil
	}
	ev, err := t.append(eventlog.New(req.Room, req.Timestamp,
		&eventlog.KeyPackageClaimed{Ref: ref, Client: req.Client, Claimer: req.Claimer}))
	if err != nil {
		return res, nil, err
	}
	if _, err := t.load(kpKey(ref), "key package", &res.KeyPackage); err != nil {
		return res, nil, err
	}
	res.Found, res.Seq = true, ev.Seq
	return res, &ev, nil
}

// findClaimable picks the claimable KeyPackage a ClaimRequest gets. The
// availability index is ordered by (suite, not_after, upload position), so
// a seek to not_after = now skips every expired KeyPackage.
func (t *tx) findClaimable(client string, suites []uint16, now uint64) ([]byte, bool, error) {
	return findClaimable(t.r, client, suites, now)
}

func findClaimable(r pebble.Reader, client string, suites []uint16, now uint64) ([]byte, bool, error) {
	prefix := key(pAvailable, client)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: eventlog.PrefixEnd(prefix)})
	if err != nil {
		return nil, false, storageErr("iterate", err)
	}
	defer it.Close()
	nowSec := now / 1000
	try := func(suite uint16) []byte {
		sp := be16(append([]byte(nil), prefix...), suite)
		if it.SeekGE(be64(append([]byte(nil), sp...), nowSec)) && bytes.HasPrefix(it.Key(), sp) {
			return append([]byte(nil), it.Value()...)
		}
		return nil
	}
	if len(suites) > 0 {
		for _, s := range suites {
			if ref := try(s); ref != nil {
				return ref, true, nil
			}
		}
		return nil, false, it.Error()
	}
	for ok := it.First(); ok; {
		k := it.Key()
		if len(k) < len(prefix)+2 {
			return nil, false, fmt.Errorf("%w: availability key %x", ErrCorruptState, k)
		}
		suite := binary.BigEndian.Uint16(k[len(prefix):])
		if ref := try(suite); ref != nil {
			return ref, true, nil
		}
		if suite == math.MaxUint16 {
			break
		}
		ok = it.SeekGE(be16(append([]byte(nil), prefix...), suite+1))
	}
	return nil, false, it.Error()
}
