package appsync

import (
	"bytes"
	"fmt"

	"github.com/openmimi/mimi/mls/codec"
)

func writeElements(w *codec.Writer, els [][]byte) {
	w.Vector(func(w *codec.Writer) {
		for _, e := range els {
			w.Opaque(e)
		}
	})
}

func readElements(r *codec.Reader, field string) [][]byte {
	out := [][]byte{}
	r.Vector(field, func(r *codec.Reader) { out = append(out, r.Opaque(field)) })
	return out
}

func writeMap(w *codec.Writer, es []MapEntry) {
	w.Vector(func(w *codec.Writer) {
		for _, e := range es {
			w.Opaque(e.Name)
			w.Opaque(e.Value)
		}
	})
}

func readMap(r *codec.Reader, field string) []MapEntry {
	out := []MapEntry{}
	r.Vector(field, func(r *codec.Reader) {
		out = append(out, MapEntry{Name: r.Opaque(field + ".elementName"), Value: r.Opaque(field + ".elementValue")})
	})
	return out
}

func writeIndices(w *codec.Writer, idx []uint32) {
	w.Vector(func(w *codec.Writer) {
		for _, i := range idx {
			w.U32(i)
		}
	})
}

func readIndices(r *codec.Reader, field string) []uint32 {
	out := []uint32{}
	r.Vector(field, func(r *codec.Reader) { out = append(out, r.U32(field)) })
	return out
}

func writeIndexed(w *codec.Writer, es []IndexedElement) {
	w.Vector(func(w *codec.Writer) {
		for _, e := range es {
			w.U32(e.Index)
			w.Opaque(e.Element)
		}
	})
}

func readIndexed(r *codec.Reader, field string) []IndexedElement {
	out := []IndexedElement{}
	r.Vector(field, func(r *codec.Reader) {
		out = append(out, IndexedElement{Index: r.U32(field + ".index"), Element: r.Opaque(field + ".element")})
	})
	return out
}

func readStateType(r *codec.Reader, field string) StateType {
	t := StateType(r.U8(field))
	if r.Err() == nil && t > OrderedArray {
		r.Fail(field, fmt.Errorf("%w: %w", codec.ErrInvalidValue, ErrUnknownStateType))
	}
	return t
}

// MarshalMLS encodes ApplicationState (draft-ralston-mimi-protocol-02,
// Section 7).
func (s *ApplicationState) MarshalMLS(w *codec.Writer) {
	w.U32(s.ApplicationID)
	w.U8(uint8(s.Type))
	switch s.Type {
	case Irreducible:
		w.Opaque(s.State)
	case Map:
		writeMap(w, s.Entries)
	case UnorderedList, OrderedArray:
		writeElements(w, s.Elements)
	default:
		w.Fail(fmt.Errorf("appsync: %w: %d", ErrUnknownStateType, s.Type))
	}
}

// UnmarshalMLS decodes ApplicationState. Map entries must be in strictly
// ascending name order (our canonical form, docs/appsync.md).
func (s *ApplicationState) UnmarshalMLS(r *codec.Reader) {
	*s = ApplicationState{}
	s.ApplicationID = r.U32("ApplicationState.applicationId")
	s.Type = readStateType(r, "ApplicationState.stateType")
	if r.Err() != nil {
		return
	}
	switch s.Type {
	case Irreducible:
		s.State = r.Opaque("ApplicationState.state")
	case Map:
		s.Entries = readMap(r, "ApplicationState.mapEntries")
		for i := 1; r.Err() == nil && i < len(s.Entries); i++ {
			if bytes.Compare(s.Entries[i-1].Name, s.Entries[i].Name) >= 0 {
				r.Fail("ApplicationState.mapEntries", fmt.Errorf("%w: %w", codec.ErrInvalidValue, ErrMapNotCanonical))
			}
		}
	case UnorderedList:
		s.Elements = readElements(r, "ApplicationState.unorderedEntries")
	case OrderedArray:
		s.Elements = readElements(r, "ApplicationState.orderedEntries")
	}
}

// MarshalMLS encodes ApplicationStatesExtension.
func (st *States) MarshalMLS(w *codec.Writer) {
	w.Vector(func(w *codec.Writer) {
		for _, s := range st.States {
			s.MarshalMLS(w)
		}
	})
}

// UnmarshalMLS decodes ApplicationStatesExtension; applicationIds must be
// strictly ascending (so none is listed twice).
func (st *States) UnmarshalMLS(r *codec.Reader) {
	st.States = nil
	r.Vector("ApplicationStatesExtension.applicationStates", func(r *codec.Reader) {
		s := new(ApplicationState)
		s.UnmarshalMLS(r)
		if r.Err() == nil && len(st.States) > 0 {
			prev := st.States[len(st.States)-1].ApplicationID
			if prev == s.ApplicationID {
				r.Fail("ApplicationStatesExtension.applicationStates", fmt.Errorf("%w: %w", codec.ErrInvalidValue, ErrDuplicateState))
			} else if prev > s.ApplicationID {
				r.Fail("ApplicationStatesExtension.applicationStates", fmt.Errorf("%w: %w", codec.ErrInvalidValue, ErrStatesNotCanonical))
			}
		}
		st.States = append(st.States, s)
	})
}

// MarshalMLS encodes the AppSync proposal body.
func (p *AppSync) MarshalMLS(w *codec.Writer) {
	w.U32(p.ApplicationID)
	w.U8(uint8(p.Type))
	switch p.Type {
	case Irreducible:
		w.Opaque(p.NewState)
	case Map:
		writeElements(w, p.RemovedKeys)
		writeMap(w, p.NewOrUpdatedElements)
	case UnorderedList:
		writeIndices(w, p.RemovedIndices)
		writeElements(w, p.AddedEntries)
	case OrderedArray:
		writeIndexed(w, p.ReplacedElements)
		writeIndices(w, p.RemovedIndices)
		writeIndexed(w, p.InsertedElements)
		writeElements(w, p.AppendedEntries)
	default:
		w.Fail(fmt.Errorf("appsync: %w: %d", ErrUnknownStateType, p.Type))
	}
}

// UnmarshalMLS decodes the AppSync proposal body.
func (p *AppSync) UnmarshalMLS(r *codec.Reader) {
	*p = AppSync{}
	p.ApplicationID = r.U32("AppSync.applicationId")
	p.Type = readStateType(r, "AppSync.stateType")
	if r.Err() != nil {
		return
	}
	switch p.Type {
	case Irreducible:
		p.NewState = r.Opaque("AppSync.newState")
	case Map:
		p.RemovedKeys = readElements(r, "AppSync.removedKeys")
		p.NewOrUpdatedElements = readMap(r, "AppSync.newOrUpdatedElements")
	case UnorderedList:
		p.RemovedIndices = readIndices(r, "AppSync.removedIndices")
		p.AddedEntries = readElements(r, "AppSync.addedEntries")
	case OrderedArray:
		p.ReplacedElements = readIndexed(r, "AppSync.replacedElements")
		p.RemovedIndices = readIndices(r, "AppSync.removedIndices")
		p.InsertedElements = readIndexed(r, "AppSync.insertedElements")
		p.AppendedEntries = readElements(r, "AppSync.appendedEntries")
	}
}

// ParseStates decodes the application_states extension data.
func ParseStates(b []byte) (*States, error) {
	st := new(States)
	if err := codec.Unmarshal(b, "ApplicationStatesExtension", st); err != nil {
		return nil, err
	}
	return st, nil
}

// Bytes encodes the extension data.
func (st *States) Bytes() ([]byte, error) { return codec.Marshal(st) }
