// Package appsync implements MLS Application State Synchronization
// (draft-ralston-mimi-protocol-02, Section 7): the application_states
// GroupContext extension, which binds application state into the MLS key
// schedule, and the AppSync proposal, which changes it. Each application
// state has one of four shapes (irreducible, map, unorderedList,
// orderedArray); an AppSync carries the operations for its shape, applied in
// the order the draft gives.
//
// The draft leaves the interpretation of a few corner cases open; this
// package decides them as documented on each function and in docs/appsync.md.
package appsync

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// StateType (draft-ralston-mimi-protocol-02, Section 7).
type StateType uint8

// The four state types (draft-ralston-mimi-protocol-02, Section 7).
const (
	Irreducible   StateType = 0
	Map           StateType = 1
	UnorderedList StateType = 2
	OrderedArray  StateType = 3
)

func (t StateType) String() string {
	switch t {
	case Irreducible:
		return "irreducible"
	case Map:
		return "map"
	case UnorderedList:
		return "unorderedList"
	case OrderedArray:
		return "orderedArray"
	}
	return fmt.Sprintf("StateType(%d)", uint8(t))
}

// Errors a caller may branch on. Every error from Apply and Check wraps one.
var (
	ErrStateTypeMismatch  = errors.New("appsync: AppSync state type differs from the application state's")
	ErrIndexOutOfRange    = errors.New("appsync: index out of range")
	ErrDuplicateIndex     = errors.New("appsync: index listed twice")
	ErrNoSuchKey          = errors.New("appsync: removed key not in map")
	ErrDuplicateKey       = errors.New("appsync: key listed twice")
	ErrDuplicateAppID     = errors.New("appsync: more than one AppSync for an applicationId in a commit")
	ErrAppSyncWithGCE     = errors.New("appsync: AppSync and GroupContextExtensions in one proposal list")
	ErrDuplicateState     = errors.New("appsync: application_states lists an applicationId twice")
	ErrUnknownStateType   = errors.New("appsync: unknown state type")
	ErrMapNotCanonical    = errors.New("appsync: map entries not in ascending key order")
	ErrStatesNotCanonical = errors.New("appsync: application states not in ascending applicationId order")
)

// MapEntry is OpaqueMapElement (draft-ralston-mimi-protocol-02, Section 7).
type MapEntry struct {
	Name  []byte
	Value []byte
}

// IndexedElement is ElementWithIndex (draft-ralston-mimi-protocol-02,
// Section 7).
type IndexedElement struct {
	Index   uint32
	Element []byte
}

// ApplicationState (draft-ralston-mimi-protocol-02, Section 7). Which field
// is meaningful depends on Type: State for irreducible, Entries for map,
// Elements for unorderedList and orderedArray.
//
// Map entries are kept sorted by name so that the encoding, and so the
// GroupContext every member hashes, is deterministic.
type ApplicationState struct {
	ApplicationID uint32
	Type          StateType
	State         []byte
	Entries       []MapEntry
	Elements      [][]byte
}

// AppSync is the AppSync proposal body (draft-ralston-mimi-protocol-02,
// Section 7).
type AppSync struct {
	ApplicationID uint32
	Type          StateType

	NewState []byte // irreducible

	RemovedKeys          [][]byte   // map
	NewOrUpdatedElements []MapEntry // map

	RemovedIndices []uint32 // unorderedList, orderedArray
	AddedEntries   [][]byte // unorderedList

	ReplacedElements []IndexedElement // orderedArray
	InsertedElements []IndexedElement // orderedArray
	AppendedEntries  [][]byte         // orderedArray
}

// Clone returns a deep copy.
func (s *ApplicationState) Clone() *ApplicationState {
	c := &ApplicationState{ApplicationID: s.ApplicationID, Type: s.Type, State: bytes.Clone(s.State)}
	for _, e := range s.Entries {
		c.Entries = append(c.Entries, MapEntry{bytes.Clone(e.Name), bytes.Clone(e.Value)})
	}
	for _, e := range s.Elements {
		c.Elements = append(c.Elements, bytes.Clone(e))
	}
	return c
}

// Apply applies an AppSync to this state in place, or returns an error and
// leaves it unchanged (draft-ralston-mimi-protocol-02, Section 7):
//
//   - irreducible: State becomes NewState.
//   - map: every RemovedKeys key is removed (each must be present, none
//     twice), then every NewOrUpdatedElements entry is set (no name twice).
//   - unorderedList: the RemovedIndices (distinct, each within the list)
//     are removed together, then AddedEntries are appended.
//   - orderedArray: each ReplacedElements index (distinct, within the
//     array) is replaced; then the RemovedIndices (distinct, within the
//     array as it is then) are removed together; then InsertedElements are
//     inserted one after another, each index counted in the array as it is
//     at that insertion (0 <= index <= length); then AppendedEntries are
//     appended in order.
//
// All indices are zero-based.
func (s *ApplicationState) Apply(p *AppSync) error {
	if p.ApplicationID != s.ApplicationID {
		return fmt.Errorf("appsync: AppSync for application %d applied to state %d", p.ApplicationID, s.ApplicationID)
	}
	if p.Type != s.Type {
		return fmt.Errorf("%w: application %d is %s, AppSync is %s", ErrStateTypeMismatch, s.ApplicationID, s.Type, p.Type)
	}
	switch s.Type {
	case Irreducible:
		s.State = bytes.Clone(p.NewState)
		return nil
	case Map:
		return s.applyMap(p)
	case UnorderedList:
		next, err := removeIndices(s.Elements, p.RemovedIndices)
		if err != nil {
			return err
		}
		s.Elements = append(next, cloneAll(p.AddedEntries)...)
		return nil
	case OrderedArray:
		return s.applyOrdered(p)
	}
	return fmt.Errorf("%w: %d", ErrUnknownStateType, s.Type)
}

func (s *ApplicationState) applyMap(p *AppSync) error {
	entries := slices.Clone(s.Entries)
	seen := map[string]bool{}
	for _, k := range p.RemovedKeys {
		if seen[string(k)] {
			return fmt.Errorf("%w: removed key %x", ErrDuplicateKey, k)
		}
		seen[string(k)] = true
		i, ok := findKey(entries, k)
		if !ok {
			return fmt.Errorf("%w: %x", ErrNoSuchKey, k)
		}
		entries = slices.Delete(entries, i, i+1)
	}
	clear(seen)
	for _, e := range p.NewOrUpdatedElements {
		if seen[string(e.Name)] {
			return fmt.Errorf("%w: updated key %x", ErrDuplicateKey, e.Name)
		}
		seen[string(e.Name)] = true
		ne := MapEntry{bytes.Clone(e.Name), bytes.Clone(e.Value)}
		if i, ok := findKey(entries, e.Name); ok {
			entries[i] = ne
		} else {
			entries = slices.Insert(entries, i, ne)
		}
	}
	s.Entries = entries
	return nil
}

func (s *ApplicationState) applyOrdered(p *AppSync) error {
	arr := slices.Clone(s.Elements)
	seen := map[uint32]bool{}
	for _, r := range p.ReplacedElements {
		if seen[r.Index] {
			return fmt.Errorf("%w: replaced index %d", ErrDuplicateIndex, r.Index)
		}
		seen[r.Index] = true
		if int(r.Index) >= len(arr) {
			return fmt.Errorf("%w: replaced index %d, array length %d", ErrIndexOutOfRange, r.Index, len(arr))
		}
		arr[r.Index] = bytes.Clone(r.Element)
	}
	arr, err := removeIndices(arr, p.RemovedIndices)
	if err != nil {
		return err
	}
	for _, ins := range p.InsertedElements {
		if int(ins.Index) > len(arr) {
			return fmt.Errorf("%w: inserted index %d, array length %d", ErrIndexOutOfRange, ins.Index, len(arr))
		}
		arr = slices.Insert(arr, int(ins.Index), bytes.Clone(ins.Element))
	}
	s.Elements = append(arr, cloneAll(p.AppendedEntries)...)
	return nil
}

// findKey returns the index of name in sorted entries, or where it would go.
func findKey(entries []MapEntry, name []byte) (int, bool) {
	return slices.BinarySearchFunc(entries, name, func(e MapEntry, n []byte) int { return bytes.Compare(e.Name, n) })
}

// removeIndices removes a set of distinct, in-range indices at once,
// returning a new slice.
func removeIndices(arr [][]byte, idx []uint32) ([][]byte, error) {
	drop := make(map[uint32]bool, len(idx))
	for _, i := range idx {
		if drop[i] {
			return nil, fmt.Errorf("%w: removed index %d", ErrDuplicateIndex, i)
		}
		if int(i) >= len(arr) {
			return nil, fmt.Errorf("%w: removed index %d, length %d", ErrIndexOutOfRange, i, len(arr))
		}
		drop[i] = true
	}
	out := make([][]byte, 0, len(arr)-len(idx))
	for i, e := range arr {
		if !drop[uint32(i)] {
			out = append(out, e)
		}
	}
	return out, nil
}

func cloneAll(in [][]byte) [][]byte {
	out := make([][]byte, len(in))
	for i, e := range in {
		out[i] = bytes.Clone(e)
	}
	return out
}

// States is the content of the application_states extension
// (ApplicationStatesExtension), kept in ascending ApplicationID order.
type States struct {
	States []*ApplicationState
}

// Get returns the state for an applicationId, or nil.
func (st *States) Get(appID uint32) *ApplicationState {
	i, ok := slices.BinarySearchFunc(st.States, appID, func(s *ApplicationState, id uint32) int { return cmpU32(s.ApplicationID, id) })
	if !ok {
		return nil
	}
	return st.States[i]
}

// Set inserts or replaces a state, keeping the order.
func (st *States) Set(s *ApplicationState) {
	i, ok := slices.BinarySearchFunc(st.States, s.ApplicationID, func(s *ApplicationState, id uint32) int { return cmpU32(s.ApplicationID, id) })
	if ok {
		st.States[i] = s
		return
	}
	st.States = slices.Insert(st.States, i, s)
}

// Clone returns a deep copy.
func (st *States) Clone() *States {
	c := &States{}
	for _, s := range st.States {
		c.States = append(c.States, s.Clone())
	}
	return c
}

// CheckProposalList enforces the draft's proposal-list rules for AppSync
// (draft-ralston-mimi-protocol-02, Section 7): no AppSync together with a
// GroupContextExtensions proposal, and at most one AppSync per
// applicationId.
func CheckProposalList(appSyncs []*AppSync, hasGroupContextExtensions bool) error {
	if len(appSyncs) > 0 && hasGroupContextExtensions {
		return ErrAppSyncWithGCE
	}
	seen := map[uint32]bool{}
	for _, p := range appSyncs {
		if seen[p.ApplicationID] {
			return fmt.Errorf("%w: %d", ErrDuplicateAppID, p.ApplicationID)
		}
		seen[p.ApplicationID] = true
	}
	return nil
}

// ApplyAll applies a commit's AppSync proposals in commit order to a copy
// of st and returns it; st is never modified. An AppSync for an
// applicationId with no state yet starts from an empty state of its type.
// The proposal-list rules are checked first.
func (st *States) ApplyAll(appSyncs []*AppSync) (*States, error) {
	if err := CheckProposalList(appSyncs, false); err != nil {
		return nil, err
	}
	next := st.Clone()
	for _, p := range appSyncs {
		if p.Type > OrderedArray {
			return nil, fmt.Errorf("%w: %d", ErrUnknownStateType, p.Type)
		}
		s := next.Get(p.ApplicationID)
		if s == nil {
			s = &ApplicationState{ApplicationID: p.ApplicationID, Type: p.Type}
			next.Set(s)
		}
		if err := s.Apply(p); err != nil {
			return nil, err
		}
	}
	return next, nil
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
