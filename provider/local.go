package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/publicgroup"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
)

// RegisterClient registers a local client with its MLS credential and
// signature public key. The credential must carry a MIMI client identity
// (docs/wire.md) whose user and client are at this provider
// (draft-ralston-mimi-protocol-02, Section 3). Registering again with the
// same user updates the key; a client URI registered to another user is
// refused (ErrInvalid).
func (p *Provider) RegisterClient(ctx context.Context, cred wire.Credential, sigKey []byte) (*mimi.ClientIdentity, error) {
	id, err := identityOf(&cred)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if providerOf(id.Client) != p.domain {
		return nil, fmt.Errorf("%w: client %s is not at %s", ErrInvalid, id.Client, p.domain)
	}
	if len(sigKey) == 0 {
		return nil, fmt.Errorf("%w: empty signature key", ErrInvalid)
	}
	cb, err := codec.Marshal(&cred)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	cmd := &projections.Command{Ops: []projections.Op{projections.EventOp("", p.nowMillis(),
		&eventlog.ClientRegistered{User: id.User, Client: id.Client, SignatureKey: bytes.Clone(sigKey), Credential: cb})}}
	if _, err := p.applyOK(ctx, cmd); err != nil {
		if errors.Is(err, projections.ErrClientExists) {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return nil, fmt.Errorf("provider: register %s: %w", id.Client, err)
	}
	return id, nil
}

// localClient returns a registered local client.
func (p *Provider) localClient(client string) (*projections.Client, error) {
	c, err := p.m.Client(client)
	if errors.Is(err, projections.ErrUnknownClient) {
		return nil, fmt.Errorf("%w: %s", ErrUnknownClient, client)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return c, nil
}

// localRoomHub checks that client is a registered local client and room a
// room URI, and returns the room's hub provider (draft-ralston-mimi-protocol-02,
// Section 3: the provider in the room's URI): the first step of every
// local client's room operation, decided here when the hub is this
// provider and forwarded to the hub otherwise.
func (p *Provider) localRoomHub(client, room string) (string, error) {
	if _, err := p.localClient(client); err != nil {
		return "", err
	}
	ru, err := mimi.ParseURIKind(room, mimi.KindRoom)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return ru.Provider, nil
}

// UploadKeyPackages publishes KeyPackages of a registered local client
// (draft-ralston-mimi-protocol-02, Section 4.3.1 "Server State"). Each
// must verify (RFC 9420, Section 10.1), carry the client's MIMI identity
// and a lifetime that has not ended. It returns their KeyPackageRefs.
// Uploading a stored KeyPackage of the client again is not an error and
// changes nothing (a claimed one stays claimed), so a client whose answer
// was lost can send the same upload again.
func (p *Provider) UploadKeyPackages(ctx context.Context, client string, kps []*wire.KeyPackage) ([][]byte, error) {
	if _, err := p.localClient(client); err != nil {
		return nil, err
	}
	if len(kps) == 0 {
		return nil, fmt.Errorf("%w: no KeyPackages", ErrInvalid)
	}
	nowSec := uint64(p.clock().Unix())
	body := &eventlog.KeyPackagesUploaded{Client: client}
	var refs [][]byte
	seen := map[string]bool{}
	for i, kp := range kps {
		if kp == nil {
			return nil, fmt.Errorf("%w: KeyPackage %d is nil", ErrInvalid, i)
		}
		s, err := cipher.Lookup(kp.CipherSuite)
		if err != nil {
			return nil, fmt.Errorf("%w: KeyPackage %d: %w", ErrInvalid, i, err)
		}
		if err := kp.Verify(s); err != nil {
			return nil, fmt.Errorf("%w: KeyPackage %d: %w", ErrInvalid, i, err)
		}
		id, err := identityOf(&kp.LeafNode.Credential)
		if err != nil {
			return nil, fmt.Errorf("%w: KeyPackage %d: %w", ErrInvalid, i, err)
		}
		if id.Client != client {
			return nil, fmt.Errorf("%w: KeyPackage %d belongs to %s, not %s", ErrInvalid, i, id.Client, client)
		}
		lt := kp.LeafNode.Lifetime
		if lt == nil || lt.NotAfter < nowSec || lt.NotBefore > lt.NotAfter {
			return nil, fmt.Errorf("%w: KeyPackage %d has no valid lifetime", ErrInvalid, i)
		}
		ref, err := kp.Ref(s)
		if err != nil {
			return nil, fmt.Errorf("%w: KeyPackage %d: %w", ErrInvalid, i, err)
		}
		if seen[string(ref)] {
			return nil, fmt.Errorf("%w: KeyPackage %d listed twice", ErrInvalid, i)
		}
		seen[string(ref)] = true
		data, err := codec.Marshal(kp)
		if err != nil {
			return nil, fmt.Errorf("%w: KeyPackage %d: %w", ErrInvalid, i, err)
		}
		body.KeyPackages = append(body.KeyPackages, eventlog.KeyPackage{Ref: ref, CipherSuite: uint16(kp.CipherSuite), NotAfter: lt.NotAfter, Data: data})
		refs = append(refs, ref)
	}
	all := body.KeyPackages
	for attempt := 0; ; attempt++ {
		// Idempotent: the KeyPackages this client uploaded before (the
		// answer to that upload may have been lost) are left out, claimed
		// since or not, so a client can send the same upload again.
		fresh, err := p.newKeyPackages(client, all)
		if err != nil || len(fresh) == 0 {
			return refs, err
		}
		body.KeyPackages = fresh
		cmd := &projections.Command{
			Conditions: []projections.Condition{projections.ClientIsRegistered(client)},
			Ops:        []projections.Op{projections.EventOp("", p.nowMillis(), body)},
		}
		_, err = p.applyOK(ctx, cmd)
		switch {
		case err == nil:
			return refs, nil
		case errors.Is(err, projections.ErrKeyPackageExists) && attempt == 0:
			// The same upload, concurrently: look again.
			continue
		case errors.Is(err, projections.ErrKeyPackageExists):
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		case errors.Is(err, projections.ErrUnknownClient):
			return nil, fmt.Errorf("%w: %w", ErrUnknownClient, err)
		}
		return nil, fmt.Errorf("provider: upload KeyPackages of %s: %w", client, err)
	}
}

// newKeyPackages returns those of kps that are not stored yet. One stored
// with other bytes or for another client is ErrInvalid.
func (p *Provider) newKeyPackages(client string, kps []eventlog.KeyPackage) ([]eventlog.KeyPackage, error) {
	var fresh []eventlog.KeyPackage
	for _, kp := range kps {
		prev, err := p.m.KeyPackage(kp.Ref)
		switch {
		case errors.Is(err, projections.ErrKeyPackageUnknown):
			fresh = append(fresh, kp)
		case err != nil:
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		case prev.Client != client || !bytes.Equal(prev.Data, kp.Data):
			return nil, fmt.Errorf("%w: KeyPackage %x is stored for %s with other bytes", ErrInvalid, kp.Ref, prev.Client)
		}
	}
	return fresh, nil
}

// CreateRoom creates a room hosted by this provider from the creator's
// MLS group (draft-ralston-mimi-protocol-02, Section 3.1: room creation is
// local to the hub). gi is the group's signed GroupInfo without the
// ratchet_tree extension and tree its ratchet tree. The GroupContext must
// carry application_states with a valid mimiRoomPolicy for this room ID
// and the participant list (Sections 4.3 and 7), and external_senders
// listing the hub's HubSender (Section 6.4); the hub's key must be usable
// with the group's cipher suite. Every member must be a registered local
// client whose user is a participant, and client must be one of them.
func (p *Provider) CreateRoom(ctx context.Context, client, room string, gi *wire.GroupInfo, tree wire.RatchetTree) error {
	ru, err := mimi.ParseURIKind(room, mimi.KindRoom)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if ru.Provider != p.domain {
		return fmt.Errorf("%w: room %s is not at %s", ErrInvalid, room, p.domain)
	}
	creator, err := p.localClient(client)
	if err != nil {
		return err
	}
	if gi == nil {
		return fmt.Errorf("%w: no GroupInfo", ErrInvalid)
	}
	if _, found, _ := wire.RatchetTreeExtension(gi.Extensions); found {
		return fmt.Errorf("%w: the GroupInfo must omit the ratchet_tree extension", ErrInvalid)
	}
	suite, err := cipher.Lookup(gi.GroupContext.CipherSuite)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if pub, err := suite.SignaturePublicKey(p.hubPriv); err != nil || !bytes.Equal(pub, p.hubSend.SignatureKey) {
		return fmt.Errorf("%w: the hub's signature key cannot sign for cipher suite %v", ErrInvalid, suite.ID())
	}
	v, err := publicgroup.New(suite, gi, tree)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if !hasExternalSender(v.ExternalSenders(), &p.hubSend) {
		return fmt.Errorf("%w: external_senders does not list the hub", ErrInvalid)
	}
	rm, err := mimi.RoomFromStates(v.ApplicationStates())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if rm.Policy.RoomID != room {
		return fmt.Errorf("%w: the policy names room %s", ErrInvalid, rm.Policy.RoomID)
	}
	if !isParticipant(rm, creator.User) {
		return fmt.Errorf("%w: creator %s is not a participant", ErrInvalid, creator.User)
	}
	var members []string
	seen := map[string]bool{}
	creatorMember := false
	for _, mb := range v.Members() {
		id, err := identityOf(&mb.Credential)
		if err != nil {
			return fmt.Errorf("%w: leaf %d: %w", ErrInvalid, mb.Leaf, err)
		}
		if seen[id.Client] {
			return fmt.Errorf("%w: client %s has two leaves", ErrInvalid, id.Client)
		}
		seen[id.Client] = true
		if providerOf(id.Client) != p.domain {
			return fmt.Errorf("%w: initial member %s is not a local client", ErrInvalid, id.Client)
		}
		if _, err := p.localClient(id.Client); err != nil {
			return err
		}
		if !isParticipant(rm, id.User) {
			return fmt.Errorf("%w: member %s's user %s is not a participant", ErrInvalid, id.Client, id.User)
		}
		creatorMember = creatorMember || id.Client == client
		members = append(members, id.Client)
	}
	if !creatorMember {
		return fmt.Errorf("%w: creator %s is not a member of the group", ErrInvalid, client)
	}
	pol, parts, err := encodeRoom(rm)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	gib, err := codec.Marshal(gi)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	rt := v.RatchetTree()
	rtb, err := codec.Marshal(&rt)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	hr := p.hubRoom(room)
	hr.mu.Lock()
	defer hr.mu.Unlock()
	cmd := &projections.Command{
		Conditions: []projections.Condition{projections.RoomDoesNotExist(room)},
		Ops: []projections.Op{projections.EventOp(room, p.nowMillis(), &eventlog.RoomCreated{
			Hub: p.domain, Creator: creator.User, Epoch: v.Epoch(), Policy: pol, Participants: parts,
			GroupInfo: gib, RatchetTree: rtb, Members: members,
		})},
	}
	res, err := p.applyOK(ctx, cmd)
	if err != nil {
		if errors.Is(err, projections.ErrRoomExists) {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return fmt.Errorf("provider: create room %s: %w", room, err)
	}
	v.SetClock(p.clock)
	hr.view, hr.epoch, hr.nprops = v, v.Epoch(), 0
	hr.head, hr.headKnown = res.Events[0].RoomSeq, true
	return nil
}

// localMembers returns the registered local clients among members (in
// order, without duplicates) for which keep (if set) returns true.
func (p *Provider) localMembers(members []string, keep func(*projections.Client) bool) []string {
	return p.localMembersMemo(members, keep, nil)
}

// clientMemo remembers client records read during one decision (nil
// for a client that is not registered).
type clientMemo map[string]*projections.Client

// localMembersMemo is localMembers reading client records through memo
// (if not nil).
func (p *Provider) localMembersMemo(members []string, keep func(*projections.Client) bool, memo clientMemo) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range members {
		if seen[c] || providerOf(c) != p.domain {
			continue
		}
		seen[c] = true
		rec, ok := memo[c]
		if !ok {
			var err error
			if rec, err = p.m.Client(c); err != nil {
				rec = nil
			}
			if memo != nil {
				memo[c] = rec
			}
		}
		if rec == nil || (keep != nil && !keep(rec)) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// InboxEntry is one message queued for a local client: its inbox
// position, its room, and the message as a FanoutMessage (with the hub's
// acceptance timestamp and, for a Welcome, the ratchet tree;
// draft-ralston-mimi-protocol-02, Section 5.5).
type InboxEntry struct {
	N       uint64
	Room    string
	Message mimi.FanoutMessage
}

// Inbox returns up to limit (0: all) unacknowledged messages of a local
// client from inbox position from, oldest first: the messages the hub or
// a /notify delivered for it (draft-ralston-mimi-protocol-02, Section 5.5,
// "[[ Welcome, RatchetTree? ]]" and "[[ Commit ]]" to clients). An
// unregistered client is ErrUnknownClient.
func (p *Provider) Inbox(client string, from uint64, limit int) ([]InboxEntry, error) {
	if _, err := p.localClient(client); err != nil {
		return nil, err
	}
	ds, err := p.m.ClientInbox(client, from, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	out := make([]InboxEntry, 0, len(ds))
	for _, d := range ds {
		fm, err := ResolveDelivery(p.m, d)
		if err != nil {
			return nil, err
		}
		out = append(out, InboxEntry{N: d.N, Room: d.Room, Message: *fm})
	}
	return out, nil
}

// Ack acknowledges every inbox entry of a local client up to and including
// upTo (draft-ralston-mimi-protocol-02, Section 5.5: delivery to the
// client); acknowledging nothing new is not an error, an unregistered
// client is ErrUnknownClient.
func (p *Provider) Ack(ctx context.Context, client string, upTo uint64) error {
	cmd := &projections.Command{
		Conditions: []projections.Condition{projections.ClientIsRegistered(client)},
		Ops: []projections.Op{projections.EventOp("", p.nowMillis(),
			&eventlog.ClientDelivered{Client: client, UpTo: upTo})},
	}
	_, err := p.applyOK(ctx, cmd)
	switch {
	case err == nil, errors.Is(err, projections.ErrStaleAck):
		return nil
	case errors.Is(err, projections.ErrUnknownClient):
		return fmt.Errorf("%w: %s", ErrUnknownClient, client)
	case errors.Is(err, projections.ErrAckBeyondQueue):
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return fmt.Errorf("provider: ack %s: %w", client, err)
}

// ResolveDelivery turns a queued delivery (a fanout queue entry or an inbox
// entry) into the FanoutMessage it stands for
// (draft-ralston-mimi-protocol-02, Section 5.5): the hub acceptance
// timestamp, the MLSMessage, and for a Welcome the RatchetTreeOption with
// the tree of the epoch the Welcome joins. A delivery of a NotifyAccepted
// event selects the Index-th FanoutMessage of the stored /notify body.
// Which bytes a delivery refers to is projections.Machine.Resolve's
// answer, shared with the fanout's /notify bodies (fanout.MachineStore).
func ResolveDelivery(m *projections.Machine, d projections.Delivery) (*mimi.FanoutMessage, error) {
	r, err := m.Resolve(d)
	if errors.Is(err, projections.ErrInvalidEvent) {
		return nil, fmt.Errorf("provider: delivery %d: %w", d.N, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: delivery %d: %w", ErrUnavailable, d.N, err)
	}
	if r.Source == eventlog.TypeNotifyAccepted {
		msgs, err := mimi.UnmarshalFanout(r.Message)
		if err != nil || int(d.Index) >= len(msgs) {
			return nil, fmt.Errorf("provider: delivery %d: stored notify body: %v", d.N, err)
		}
		return &msgs[d.Index], nil
	}
	fm := &mimi.FanoutMessage{Timestamp: d.Timestamp}
	if err := codec.Unmarshal(r.Message, "MLSMessage", &fm.Message); err != nil {
		return nil, fmt.Errorf("provider: delivery %d: stored message: %w", d.N, err)
	}
	if d.Part == eventlog.PartWelcome {
		var rt wire.RatchetTree
		if err := codec.Unmarshal(r.RatchetTree, "ratchet_tree", &rt); err != nil {
			return nil, fmt.Errorf("provider: delivery %d: stored tree: %w", d.N, err)
		}
		fm.RatchetTreeOption = &mimi.RatchetTreeOption{Representation: mimi.RatchetTreeFull, Tree: rt}
	}
	return fm, nil
}
