package mimi

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/codec"
)

// Application identifiers under which a MIMI room's state rides in the MLS
// group's application_states extension (draft-ralston-mimi-protocol-02,
// Sections 5.3 and 7). The draft names them but assigns no values; ours are
// in a private range and listed with every other codepoint in
// docs/codepoints.md.
const (
	AppIDRoomPolicy      uint32 = 0xF0000001 // mimiRoomPolicy, irreducible
	AppIDParticipantList uint32 = 0xF0000002 // mimiParticipantList, map
)

// Permission is a right a role grants (draft-ralston-mimi-protocol-02,
// Section 3.1 names canAddUser, canRemoveUser and canSetUserRole).
type Permission uint16

// Permissions. Values are ours (docs/codepoints.md).
const (
	CanAddUser     Permission = 1
	CanRemoveUser  Permission = 2
	CanSetUserRole Permission = 3
	CanSendMessage Permission = 4
	CanSetPolicy   Permission = 5
)

var permissionNames = map[Permission]string{
	CanAddUser: "canAddUser", CanRemoveUser: "canRemoveUser", CanSetUserRole: "canSetUserRole",
	CanSendMessage: "canSendMessage", CanSetPolicy: "canSetPolicy",
}

func (p Permission) String() string {
	if n, ok := permissionNames[p]; ok {
		return n
	}
	return fmt.Sprintf("Permission(%d)", uint16(p))
}

// Errors from room state decoding, change sets and authorization.
var (
	ErrInvalidRoomState = errors.New("mimi: invalid room state")
	ErrInvalidChange    = errors.New("mimi: invalid participant list change")
	ErrNotAllowed       = errors.New("mimi: not allowed by the room policy")
)

// Role is a named set of permissions.
type Role struct {
	Name        string
	Permissions []Permission // ascending, no duplicates
}

// Has reports whether the role grants p.
func (r *Role) Has(p Permission) bool {
	_, ok := slices.BinarySearch(r.Permissions, p)
	return ok
}

// Policy is the room's base policy (draft-ralston-mimi-protocol-02,
// Section 4.3.1): the room ID and its roles. It is the irreducible state
// under AppIDRoomPolicy, encoded as
//
//	struct { opaque name<V>; uint16 permissions<V>; } Role;
//	struct { opaque room_id<V>; Role roles<V>; } RoomPolicy;
//
// with roles in ascending name order and permissions ascending.
type Policy struct {
	RoomID string
	Roles  []Role
}

// Role returns the named role, or nil.
func (p *Policy) Role(name string) *Role {
	for i := range p.Roles {
		if p.Roles[i].Name == name {
			return &p.Roles[i]
		}
	}
	return nil
}

// Normalize sorts roles and permissions into the canonical order.
func (p *Policy) Normalize() {
	sort.Slice(p.Roles, func(i, j int) bool { return p.Roles[i].Name < p.Roles[j].Name })
	for i := range p.Roles {
		slices.Sort(p.Roles[i].Permissions)
		p.Roles[i].Permissions = slices.Compact(p.Roles[i].Permissions)
	}
}

// MarshalMLS implements codec.Marshaler.
func (p *Policy) MarshalMLS(w *codec.Writer) {
	w.Opaque([]byte(p.RoomID))
	w.Vector(func(w *codec.Writer) {
		for _, r := range p.Roles {
			w.Opaque([]byte(r.Name))
			w.Vector(func(w *codec.Writer) {
				for _, perm := range r.Permissions {
					w.U16(uint16(perm))
				}
			})
		}
	})
}

// UnmarshalMLS implements codec.Unmarshaler, enforcing the canonical order.
func (p *Policy) UnmarshalMLS(r *codec.Reader) {
	*p = Policy{}
	p.RoomID = readURIKind(r, "RoomPolicy.room_id", KindRoom)
	r.Vector("RoomPolicy.roles", func(r *codec.Reader) {
		var role Role
		role.Name = string(r.Opaque("Role.name"))
		r.Vector("Role.permissions", func(r *codec.Reader) {
			perm := Permission(r.U16("Role.permissions"))
			if n := len(role.Permissions); n > 0 && role.Permissions[n-1] >= perm {
				r.Fail("Role.permissions", fmt.Errorf("%w: permissions not strictly ascending", codec.ErrInvalidValue))
			}
			role.Permissions = append(role.Permissions, perm)
		})
		if n := len(p.Roles); r.Err() == nil && (role.Name == "" || n > 0 && p.Roles[n-1].Name >= role.Name) {
			r.Fail("Role.name", fmt.Errorf("%w: role names empty or not strictly ascending", codec.ErrInvalidValue))
		}
		p.Roles = append(p.Roles, role)
	})
}

// Participant is one entry of the participant list: a user and its role.
type Participant struct {
	User string // a user URI
	Role string
}

// Room is the MIMI room state carried in the MLS group
// (draft-ralston-mimi-protocol-02, Section 6.1): the base policy and the
// participant list. The participant list is the map state under
// AppIDParticipantList, user URI to role name.
type Room struct {
	Policy       Policy
	Participants []Participant // ascending by user URI
}

// Participant returns a user's role, if the user is a participant.
func (rm *Room) Participant(user string) (string, bool) {
	i, ok := slices.BinarySearchFunc(rm.Participants, user, func(p Participant, u string) int { return cmpStr(p.User, u) })
	if !ok {
		return "", false
	}
	return rm.Participants[i].Role, true
}

// ApplicationStates encodes the room as the two application states.
func (rm *Room) ApplicationStates() (*appsync.States, error) {
	pol, err := codec.Marshal(&rm.Policy)
	if err != nil {
		return nil, err
	}
	st := &appsync.States{}
	st.Set(&appsync.ApplicationState{ApplicationID: AppIDRoomPolicy, Type: appsync.Irreducible, State: pol})
	pl := &appsync.ApplicationState{ApplicationID: AppIDParticipantList, Type: appsync.Map, Entries: []appsync.MapEntry{}}
	for _, p := range rm.Participants {
		pl.Entries = append(pl.Entries, appsync.MapEntry{Name: []byte(p.User), Value: []byte(p.Role)})
	}
	st.Set(pl)
	return st, nil
}

// RoomFromStates decodes and validates a room from application states:
// both states present with the right types, a valid policy, every
// participant a user URI whose role the policy defines.
func RoomFromStates(st *appsync.States) (*Room, error) {
	ps := st.Get(AppIDRoomPolicy)
	if ps == nil || ps.Type != appsync.Irreducible {
		return nil, fmt.Errorf("%w: no irreducible mimiRoomPolicy state", ErrInvalidRoomState)
	}
	rm := &Room{}
	if err := codec.Unmarshal(ps.State, "RoomPolicy", &rm.Policy); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRoomState, err)
	}
	pl := st.Get(AppIDParticipantList)
	if pl == nil || pl.Type != appsync.Map {
		return nil, fmt.Errorf("%w: no map mimiParticipantList state", ErrInvalidRoomState)
	}
	for _, e := range pl.Entries {
		if _, err := ParseURIKind(string(e.Name), KindUser); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidRoomState, err)
		}
		if rm.Policy.Role(string(e.Value)) == nil {
			return nil, fmt.Errorf("%w: participant %s has undefined role %q", ErrInvalidRoomState, e.Name, e.Value)
		}
		rm.Participants = append(rm.Participants, Participant{User: string(e.Name), Role: string(e.Value)})
	}
	return rm, nil
}

// ChangeSet is a participant list change (draft-ralston-mimi-protocol-02,
// Section 4.3.2): users to add with their roles, users to remove, and role
// changes.
type ChangeSet struct {
	Add     []Participant
	Remove  []string
	SetRole []Participant
}

// Empty reports whether the change set changes nothing.
func (c *ChangeSet) Empty() bool { return len(c.Add)+len(c.Remove)+len(c.SetRole) == 0 }

// Validate checks the change set against the room: added users are user
// URIs not yet participants, removed and re-roled users are participants,
// every role exists, and no user appears twice.
func (c *ChangeSet) Validate(rm *Room) error {
	seen := map[string]bool{}
	once := func(u string) error {
		if seen[u] {
			return fmt.Errorf("%w: %s listed twice", ErrInvalidChange, u)
		}
		seen[u] = true
		return nil
	}
	for _, p := range c.Add {
		if _, err := ParseURIKind(p.User, KindUser); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidChange, err)
		}
		if _, ok := rm.Participant(p.User); ok {
			return fmt.Errorf("%w: %s is already a participant", ErrInvalidChange, p.User)
		}
		if rm.Policy.Role(p.Role) == nil {
			return fmt.Errorf("%w: undefined role %q", ErrInvalidChange, p.Role)
		}
		if err := once(p.User); err != nil {
			return err
		}
	}
	for _, u := range c.Remove {
		if _, ok := rm.Participant(u); !ok {
			return fmt.Errorf("%w: %s is not a participant", ErrInvalidChange, u)
		}
		if err := once(u); err != nil {
			return err
		}
	}
	for _, p := range c.SetRole {
		if _, ok := rm.Participant(p.User); !ok {
			return fmt.Errorf("%w: %s is not a participant", ErrInvalidChange, p.User)
		}
		if rm.Policy.Role(p.Role) == nil {
			return fmt.Errorf("%w: undefined role %q", ErrInvalidChange, p.Role)
		}
		if err := once(p.User); err != nil {
			return err
		}
	}
	return nil
}

// AppSync encodes the change set as an AppSync on the participant list
// map: removals become removedKeys, adds and role changes
// newOrUpdatedElements, each sorted by user URI so the encoding is
// deterministic.
func (c *ChangeSet) AppSync() *appsync.AppSync {
	p := &appsync.AppSync{ApplicationID: AppIDParticipantList, Type: appsync.Map, RemovedKeys: [][]byte{}, NewOrUpdatedElements: []appsync.MapEntry{}}
	rm := slices.Clone(c.Remove)
	slices.Sort(rm)
	for _, u := range rm {
		p.RemovedKeys = append(p.RemovedKeys, []byte(u))
	}
	upd := append(slices.Clone(c.Add), c.SetRole...)
	sort.Slice(upd, func(i, j int) bool { return upd[i].User < upd[j].User })
	for _, e := range upd {
		p.NewOrUpdatedElements = append(p.NewOrUpdatedElements, appsync.MapEntry{Name: []byte(e.User), Value: []byte(e.Role)})
	}
	return p
}

// ChangeSetFromAppSync decodes a participant-list AppSync back into a
// change set, relative to the room it applies to: an updated user who is
// already a participant is a role change, otherwise an add. The result is
// validated against the room.
func ChangeSetFromAppSync(rm *Room, p *appsync.AppSync) (*ChangeSet, error) {
	if p.ApplicationID != AppIDParticipantList || p.Type != appsync.Map {
		return nil, fmt.Errorf("%w: AppSync is not a participant list map change", ErrInvalidChange)
	}
	c := &ChangeSet{}
	removed := map[string]bool{}
	for _, k := range p.RemovedKeys {
		c.Remove = append(c.Remove, string(k))
		removed[string(k)] = true
	}
	for _, e := range p.NewOrUpdatedElements {
		pp := Participant{User: string(e.Name), Role: string(e.Value)}
		if removed[pp.User] {
			return nil, fmt.Errorf("%w: %s both removed and updated", ErrInvalidChange, pp.User)
		}
		if _, ok := rm.Participant(pp.User); ok {
			c.SetRole = append(c.SetRole, pp)
		} else {
			c.Add = append(c.Add, pp)
		}
	}
	if err := c.Validate(rm); err != nil {
		return nil, err
	}
	return c, nil
}

// Apply returns the room after the change set; rm is unchanged.
func (rm *Room) Apply(c *ChangeSet) (*Room, error) {
	if err := c.Validate(rm); err != nil {
		return nil, err
	}
	next := &Room{Policy: rm.Policy}
	drop := map[string]bool{}
	for _, u := range c.Remove {
		drop[u] = true
	}
	set := map[string]string{}
	for _, p := range c.SetRole {
		set[p.User] = p.Role
	}
	for _, p := range rm.Participants {
		if drop[p.User] {
			continue
		}
		if r, ok := set[p.User]; ok {
			p.Role = r
		}
		next.Participants = append(next.Participants, p)
	}
	next.Participants = append(next.Participants, c.Add...)
	sort.Slice(next.Participants, func(i, j int) bool { return next.Participants[i].User < next.Participants[j].User })
	return next, nil
}

// Authorize checks that actor (a participant's user URI) may make the
// change under the room policy: adding needs canAddUser, removing another
// user canRemoveUser (a user may always remove itself: leaving), changing
// roles canSetUserRole. Errors wrap ErrNotAllowed.
func (rm *Room) Authorize(actor string, c *ChangeSet) error {
	roleName, ok := rm.Participant(actor)
	if !ok {
		return fmt.Errorf("%w: %s is not a participant", ErrNotAllowed, actor)
	}
	role := rm.Policy.Role(roleName)
	need := func(p Permission) error {
		if role == nil || !role.Has(p) {
			return fmt.Errorf("%w: %s (role %q) lacks %s", ErrNotAllowed, actor, roleName, p)
		}
		return nil
	}
	if len(c.Add) > 0 {
		if err := need(CanAddUser); err != nil {
			return err
		}
	}
	for _, u := range c.Remove {
		if u != actor {
			if err := need(CanRemoveUser); err != nil {
				return err
			}
		}
	}
	if len(c.SetRole) > 0 {
		if err := need(CanSetUserRole); err != nil {
			return err
		}
	}
	return nil
}

// Can reports whether a participant's role grants p.
func (rm *Room) Can(user string, p Permission) bool {
	roleName, ok := rm.Participant(user)
	if !ok {
		return false
	}
	role := rm.Policy.Role(roleName)
	return role != nil && role.Has(p)
}

func cmpStr(a, b string) int { return bytes.Compare([]byte(a), []byte(b)) }
