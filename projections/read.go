package projections

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/openmimi/mimi/eventlog"
)

// view runs f with the DB under the read lock.
func (m *Machine) view(f func(r pebble.Reader) error) error {
	m.dbMu.RLock()
	defer m.dbMu.RUnlock()
	db, err := m.reader()
	if err != nil {
		return err
	}
	return f(db)
}

// snapshotView runs f against a consistent point-in-time view, for reads
// that touch several keys.
func (m *Machine) snapshotView(f func(r pebble.Reader) error) error {
	m.dbMu.RLock()
	defer m.dbMu.RUnlock()
	db, err := m.reader()
	if err != nil {
		return err
	}
	snap := db.NewSnapshot()
	defer snap.Close()
	return f(snap)
}

// eachUnder calls f for each key/value under prefix from start (inclusive,
// nil for the prefix's start), stopping when f returns false.
func eachUnder(r pebble.Reader, prefix, start []byte, f func(k, v []byte) (bool, error)) error {
	lo := prefix
	if start != nil {
		lo = start
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: eventlog.PrefixEnd(prefix)})
	if err != nil {
		return storageErr("iterate", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		more, err := f(it.Key(), it.Value())
		if err != nil {
			it.Close()
			return err
		}
		if !more {
			break
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return storageErr("iterate", err)
	}
	if err := it.Close(); err != nil {
		return storageErr("iterate", err)
	}
	return nil
}

// componentAt decodes the key component at position skip after prefix.
func componentAt(k, prefix []byte, skip int) (string, error) {
	rest := k[len(prefix):]
	for i := 0; ; i++ {
		c, r, err := eventlog.ReadKeyComponent(rest)
		if err != nil {
			return "", fmt.Errorf("%w: key %x", ErrCorruptState, k)
		}
		if i == skip {
			return string(c), nil
		}
		rest = r
	}
}

// Room returns a room's state, including its latest GroupInfo and ratchet
// tree (draft-ralston-mimi-protocol-02, Sections 5.6 and 6.1), or
// ErrNoSuchRoom.
func (m *Machine) Room(id string) (*Room, error) {
	var out *Room
	err := m.snapshotView(func(r pebble.Reader) error {
		var room Room
		found, err := getRec(r, roomKey(id), "room", &room)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: %q", ErrNoSuchRoom, id)
		}
		var g groupState
		if _, err := getRec(r, groupKey(id), "group", &g); err != nil {
			return err
		}
		room.GroupInfo, room.RatchetTree = g.GroupInfo, g.RatchetTree
		out = &room
		return nil
	})
	return out, err
}

// Rooms returns the IDs of all rooms (closed ones included), sorted.
func (m *Machine) Rooms() ([]string, error) {
	var out []string
	err := m.view(func(r pebble.Reader) error {
		return eachUnder(r, pRoom, nil, func(k, _ []byte) (bool, error) {
			id, err := componentAt(k, pRoom, 0)
			out = append(out, id)
			return true, err
		})
	})
	return out, err
}

// RoomProposals returns the proposals cached for the room's current epoch,
// in acceptance order.
func (m *Machine) RoomProposals(id string) ([]Proposal, error) {
	var out []Proposal
	err := m.snapshotView(func(r pebble.Reader) error {
		var room Room
		found, err := getRec(r, roomKey(id), "room", &room)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: %q", ErrNoSuchRoom, id)
		}
		p := key(pProposal, id)
		return eachUnder(r, p, nil, func(_, v []byte) (bool, error) {
			var pr Proposal
			if err := decode(v, "proposal", &pr); err != nil {
				return false, err
			}
			out = append(out, pr)
			return true, nil
		})
	})
	return out, err
}

// ClientRooms returns the rooms whose member list includes client, sorted.
func (m *Machine) ClientRooms(client string) ([]string, error) {
	return m.namesUnder(key(pMember, client))
}

// namesUnder returns the first key component after prefix of every key
// under it, in key order.
func (m *Machine) namesUnder(prefix []byte) ([]string, error) {
	var out []string
	err := m.view(func(r pebble.Reader) error {
		return eachUnder(r, prefix, nil, func(k, _ []byte) (bool, error) {
			name, err := componentAt(k, prefix, 0)
			out = append(out, name)
			return true, err
		})
	})
	return out, err
}

// lookup reads the committed record under k into rec and reports whether
// there is one.
func (m *Machine) lookup(k []byte, field string, rec record) (bool, error) {
	var found bool
	err := m.view(func(r pebble.Reader) error {
		var err error
		found, err = getRec(r, k, field, rec)
		return err
	})
	return found, err
}

// Client returns a registered client, or ErrUnknownClient.
func (m *Machine) Client(uri string) (*Client, error) {
	var c Client
	k := clientKey(uri)
	v, gen, cached := m.clients.get(k)
	if cached {
		if err := decode(v, "client", &c); err != nil {
			return nil, err
		}
		return &c, nil
	}
	var found bool
	err := m.view(func(r pebble.Reader) error {
		var err error
		if v, found, err = getCopy(r, k, "get client"); err != nil || !found {
			return err
		}
		if err := decode(v, "client", &c); err != nil {
			return err
		}
		m.clients.put(k, v, gen)
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("%w: %q", ErrUnknownClient, uri)
	}
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// UserClients returns the registered clients of a user, sorted
// (draft-ralston-mimi-protocol-02, Section 5.2: a claim covers all of a
// user's clients).
func (m *Machine) UserClients(user string) ([]string, error) {
	return m.namesUnder(key(pUserClient, user))
}

// KeyPackage returns a KeyPackage by ref, or ErrKeyPackageUnknown.
func (m *Machine) KeyPackage(ref []byte) (*KeyPackage, error) {
	var kp KeyPackage
	found, err := m.lookup(kpKey(ref), "key package", &kp)
	if err == nil && !found {
		err = fmt.Errorf("%w: %x", ErrKeyPackageUnknown, ref)
	}
	if err != nil {
		return nil, err
	}
	return &kp, nil
}

// ClaimableKeyPackages returns the client's KeyPackages that are unclaimed
// and not expired at now (milliseconds since the UNIX epoch), for cipher
// suite suite (0 for every suite), in the order claims take them
// (draft-ralston-mimi-protocol-02, Section 5.2).
func (m *Machine) ClaimableKeyPackages(client string, suite uint16, now uint64) ([]KeyPackage, error) {
	var out []KeyPackage
	prefix := key(pAvailable, client)
	err := m.snapshotView(func(r pebble.Reader) error {
		return eachUnder(r, prefix, nil, func(k, v []byte) (bool, error) {
			if len(k) != len(prefix)+22 {
				return false, fmt.Errorf("%w: availability key %x", ErrCorruptState, k)
			}
			s := binary.BigEndian.Uint16(k[len(prefix):])
			notAfter := binary.BigEndian.Uint64(k[len(prefix)+2:])
			if (suite != 0 && s != suite) || expired(notAfter, now) {
				return true, nil
			}
			var kp KeyPackage
			found, err := getRec(r, kpKey(v), "key package", &kp)
			if err == nil && !found {
				err = fmt.Errorf("%w: availability entry for missing KeyPackage %x", ErrCorruptState, v)
			}
			out = append(out, kp)
			return err == nil, err
		})
	})
	return out, err
}

// TargetRoute returns the target-side route of a claimed KeyPackageRef (the
// client it belongs to), or ErrNotFound (draft-ralston-mimi-protocol-02,
// Section 5.2).
func (m *Machine) TargetRoute(ref []byte) (*TargetRoute, error) {
	kp, err := m.KeyPackage(ref)
	if errors.Is(err, ErrKeyPackageUnknown) || (err == nil && !kp.Claimed) {
		return nil, fmt.Errorf("%w: no target route for %x", ErrNotFound, ref)
	}
	if err != nil {
		return nil, err
	}
	return &TargetRoute{Ref: kp.Ref, Client: kp.Client, Claimer: kp.Claimer, Room: kp.Room, Seq: kp.ClaimSeq}, nil
}

// HubRoute returns the hub-side route of a KeyPackageRef (the provider a
// Welcome for it goes to), or ErrNotFound (draft-ralston-mimi-protocol-02,
// Section 5.5).
func (m *Machine) HubRoute(ref []byte) (*HubRoute, error) {
	var hr HubRoute
	found, err := m.lookup(hubRouteKey(ref), "hub route", &hr)
	if err == nil && !found {
		err = fmt.Errorf("%w: no hub route for %x", ErrNotFound, ref)
	}
	if err != nil {
		return nil, err
	}
	return &hr, nil
}

// AcceptedMessage returns the acceptance of the application message whose
// encoded MLSMessage has SHA-256 hash in room's epoch, if the room
// accepted it (draft-ralston-mimi-protocol-02, Section 5.4). Only the
// current epoch's messages are remembered.
func (m *Machine) AcceptedMessage(room string, epoch uint64, hash []byte) (MessageRecord, bool, error) {
	var rec MessageRecord
	found, err := m.lookup(messageKey(room, epoch, hash), "message", &rec)
	return rec, found, err
}

// GroupRoom returns the followed room of hub an MLS group is bound to (see
// eventlog.GroupBound, draft-ralston-mimi-protocol-02, Section 5.5), or ""
// if none.
func (m *Machine) GroupRoom(hub string, gid []byte) (string, error) {
	var rec notifyRecord
	_, err := m.lookup(groupRoomKey(hub, gid), "group binding", &rec)
	return rec.Room, err
}

// HubKey returns the hub signature key declared in the log (cipher suite
// and SignaturePublicKey; see eventlog.HubKeyDeclared), and false if none
// was declared yet.
func (m *Machine) HubKey() (suite uint16, key []byte, found bool, err error) {
	err = m.view(func(r pebble.Reader) error {
		v, ok, err := getCopy(r, keyHubKey, "get hub key")
		if err != nil || !ok {
			return err
		}
		if len(v) < 3 {
			return fmt.Errorf("%w: hub key record of %d bytes", ErrCorruptState, len(v))
		}
		suite, key, found = binary.BigEndian.Uint16(v), v[2:], true
		return nil
	})
	return suite, key, found, err
}

// OldestNotifyDedup returns the acceptance timestamp of the oldest entry
// of the notify dedup set (draft-ralston-mimi-protocol-02, Section 5.5),
// and false if the set is empty; see eventlog.NotifyDedupPruned.
func (m *Machine) OldestNotifyDedup() (uint64, bool, error) {
	var a notifyAge
	var found bool
	err := m.view(func(r pebble.Reader) error {
		return eachUnder(r, pNotifyAge, nil, func(_, v []byte) (bool, error) {
			found = true
			return false, decode(v, "notify age", &a)
		})
	})
	return a.Timestamp, found, err
}

// EarliestKeyPackageExpiry returns the earliest not_after (seconds since
// the Unix epoch) of the unclaimed KeyPackages, and false if there are
// none; see eventlog.KeyPackagesExpired.
func (m *Machine) EarliestKeyPackageExpiry() (uint64, bool, error) {
	var notAfter uint64
	var found bool
	err := m.view(func(r pebble.Reader) error {
		return eachUnder(r, pExpiry, nil, func(k, _ []byte) (bool, error) {
			if len(k) < len(pExpiry)+8 {
				return false, fmt.Errorf("%w: expiry key %x", ErrCorruptState, k)
			}
			notAfter, found = binary.BigEndian.Uint64(k[len(pExpiry):]), true
			return false, nil
		})
	})
	return notAfter, found, err
}

// NotifySeen reports whether a notify body with this SHA-256 hash was
// accepted from hub (draft-ralston-mimi-protocol-02, Section 5.5).
func (m *Machine) NotifySeen(hub string, hash []byte) (bool, error) {
	var ok bool
	err := m.view(func(r pebble.Reader) error {
		var err error
		ok, err = has(r, notifyKey(hub, hash))
		return err
	})
	return ok, err
}

// Destination is a fanout destination with its cursor.
type Destination struct {
	Destination string
	Cursor      Cursor
}

// FanoutDestinations lists every destination that ever had entries queued,
// sorted, with their cursors (draft-ralston-mimi-protocol-02, Section 5.5).
// It is served from the Machine's in-memory copy of the committed cursors.
func (m *Machine) FanoutDestinations() ([]Destination, error) {
	var out []Destination
	err := m.view(func(r pebble.Reader) (err error) {
		if l, ok := m.cursors.list(); ok {
			out = l
			return nil
		}
		out, err = readFanoutCursors(r)
		return err
	})
	return out, err
}

// FanoutCursor returns a destination's fanout cursor (zero if none)
// (draft-ralston-mimi-protocol-02, Section 5.5).
func (m *Machine) FanoutCursor(dest string) (Cursor, error) {
	return m.cursor(fanCursorKey(dest), func() (Cursor, bool) { return m.cursors.get(dest) })
}

// InboxCursor returns a client's inbox cursor (zero if none). It is served
// from the Machine's in-memory copy of the committed cursors.
func (m *Machine) InboxCursor(client string) (Cursor, error) {
	return m.cursor(inCursorKey(client), func() (Cursor, bool) { return m.cursors.getInbox(client) })
}

// cursor returns the cursor under k: the in-memory copy when cached has
// one, else the stored record (zero if none).
func (m *Machine) cursor(k []byte, cached func() (Cursor, bool)) (Cursor, error) {
	var c Cursor
	err := m.view(func(r pebble.Reader) error {
		if cur, ok := cached(); ok {
			c = cur
			return nil
		}
		_, err := getRec(r, k, "cursor", &c)
		return err
	})
	return c, err
}

// readFanoutCursors scans every stored fanout cursor, sorted by
// destination.
func readFanoutCursors(r pebble.Reader) ([]Destination, error) {
	var out []Destination
	err := eachUnder(r, pFanCursor, nil, func(k, v []byte) (bool, error) {
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
	return out, err
}

// queue returns up to limit entries of the queue under prefix from
// position from on. The positions before the cursor's Acked+1 were
// deleted; seeking past them matters, since their deletion tombstones
// would otherwise be stepped over one by one.
func (m *Machine) queue(prefix []byte, from uint64, limit int) ([]Delivery, error) {
	var out []Delivery
	err := m.view(func(r pebble.Reader) error {
		return eachUnder(r, prefix, be64(append([]byte(nil), prefix...), from), func(_, v []byte) (bool, error) {
			if limit > 0 && len(out) >= limit {
				return false, nil
			}
			var d Delivery
			if err := decode(v, "delivery", &d); err != nil {
				return false, err
			}
			out = append(out, d)
			return true, nil
		})
	})
	return out, err
}

// FanoutPending returns up to limit (0: all) unacknowledged entries queued
// for a destination provider, oldest first (draft-ralston-mimi-protocol-02,
// Section 5.5). It reads the queue from the cursor's first unacknowledged
// position.
func (m *Machine) FanoutPending(dest string, limit int) ([]Delivery, error) {
	cur, err := m.FanoutCursor(dest)
	if err != nil {
		return nil, err
	}
	return m.queue(key(pFanQueue, dest), cur.Acked+1, limit)
}

// ClientInbox returns up to limit (0: all) unacknowledged inbox entries of a
// local client with position >= from, oldest first. It reads the queue
// from the later of from and the cursor's first unacknowledged position.
func (m *Machine) ClientInbox(client string, from uint64, limit int) ([]Delivery, error) {
	cur, err := m.InboxCursor(client)
	if err != nil {
		return nil, err
	}
	return m.queue(key(pInQueue, client), max(from, cur.Acked+1), limit)
}

// Event returns the event at global sequence number seq.
func (m *Machine) Event(seq uint64) (eventlog.Event, error) {
	var ev eventlog.Event
	err := m.view(func(r pebble.Reader) error {
		var err error
		ev, err = eventlog.Get(r, seq)
		return err
	})
	return ev, err
}

func collect(it *eventlog.Iterator, limit int) ([]eventlog.Event, error) {
	defer it.Close()
	var out []eventlog.Event
	for (limit <= 0 || len(out) < limit) && it.Next() {
		out = append(out, it.Event())
	}
	return out, it.Err()
}

// Events returns up to limit (0: all) events from global sequence number
// from, in order.
func (m *Machine) Events(from uint64, limit int) ([]eventlog.Event, error) {
	var out []eventlog.Event
	err := m.view(func(r pebble.Reader) error {
		it, err := eventlog.NewIterator(r, from)
		if err != nil {
			return err
		}
		out, err = collect(it, limit)
		return err
	})
	return out, err
}

// RoomEvents returns up to limit (0: all) events of room from room sequence
// number from, in order.
func (m *Machine) RoomEvents(room string, from uint64, limit int) ([]eventlog.Event, error) {
	var out []eventlog.Event
	err := m.snapshotView(func(r pebble.Reader) error {
		it, err := eventlog.NewRoomIterator(r, room, from)
		if err != nil {
			return err
		}
		out, err = collect(it, limit)
		return err
	})
	return out, err
}

// RoomHead returns the room sequence number of room's last event in the
// committed state, 0 if it has none: one point read, for a caller that
// only needs to know whether RoomEvents has anything new.
func (m *Machine) RoomHead(room string) (uint64, error) {
	var head uint64
	err := m.view(func(r pebble.Reader) error {
		var err error
		head, err = eventlog.RoomHead(r, room)
		return err
	})
	return head, err
}

// Payload returns the bytes a delivery refers to: the MLSMessage (or notify
// body, or Welcome) of its source event.
func (m *Machine) Payload(d Delivery) ([]byte, error) {
	r, err := m.Resolve(d)
	return r.Message, err
}

// Resolved is what a delivery refers to (draft-ralston-mimi-protocol-02,
// Section 5.5).
type Resolved struct {
	// Source is the type of the source event.
	Source eventlog.Type
	// Message is the part's stored bytes: an encoded MLSMessage, or for a
	// NotifyAccepted source the FanoutMessage the follower took.
	Message []byte
	// RatchetTree is, for a Welcome, the ratchet tree of the epoch its
	// commit created (the CommitAccepted event's), which the Welcome's
	// FanoutMessage carries in its RatchetTreeOption; nil otherwise.
	RatchetTree []byte
}

// Resolve reads a delivery's source event once and returns what the
// delivery refers to.
func (m *Machine) Resolve(d Delivery) (Resolved, error) {
	ev, err := m.Event(d.SourceSeq)
	if err != nil {
		return Resolved{}, err
	}
	msg, err := payload(&ev, d.Part)
	if err != nil {
		return Resolved{}, err
	}
	r := Resolved{Source: ev.Type(), Message: msg}
	if ca, ok := ev.Body.(*eventlog.CommitAccepted); ok && d.Part == eventlog.PartWelcome {
		r.RatchetTree = ca.RatchetTree
	}
	return r, nil
}

// LogHead returns the log's last sequence number and chain hash; equal
// heads mean equal logs.
func (m *Machine) LogHead() (eventlog.Head, error) {
	var h eventlog.Head
	err := m.view(func(r pebble.Reader) error {
		var err error
		h, err = eventlog.ReadHead(r)
		return err
	})
	return h, err
}

// VerifyLog runs the log integrity walk (eventlog.Verify) on a consistent
// snapshot.
func (m *Machine) VerifyLog() (*eventlog.Report, error) {
	var rep *eventlog.Report
	err := m.snapshotView(func(r pebble.Reader) error {
		var err error
		rep, err = eventlog.Verify(r)
		return err
	})
	return rep, err
}
