package appsync

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/openmimi/mimi/mls/codec"
)

func els(s ...string) [][]byte {
	out := [][]byte{}
	for _, e := range s {
		out = append(out, []byte(e))
	}
	return out
}

func show(b [][]byte) string {
	s := "["
	for i, e := range b {
		if i > 0 {
			s += " "
		}
		s += string(e)
	}
	return s + "]"
}

func TestOrderedArray(t *testing.T) {
	tests := []struct {
		name    string
		start   []string
		p       AppSync
		want    string
		wantErr error
	}{
		{name: "empty state, append", start: nil, p: AppSync{AppendedEntries: els("a", "b")}, want: "[a b]"},
		{name: "empty state, insert at 0", start: nil, p: AppSync{InsertedElements: []IndexedElement{{0, []byte("x")}}}, want: "[x]"},
		{name: "empty state, insert at 1", start: nil, p: AppSync{InsertedElements: []IndexedElement{{1, []byte("x")}}}, wantErr: ErrIndexOutOfRange},
		{name: "empty state, remove", start: nil, p: AppSync{RemovedIndices: []uint32{0}}, wantErr: ErrIndexOutOfRange},
		{name: "replace", start: []string{"a", "b", "c"}, p: AppSync{ReplacedElements: []IndexedElement{{1, []byte("B")}}}, want: "[a B c]"},
		{name: "replace out of range", start: []string{"a"}, p: AppSync{ReplacedElements: []IndexedElement{{1, []byte("B")}}}, wantErr: ErrIndexOutOfRange},
		{name: "replace twice", start: []string{"a"}, p: AppSync{ReplacedElements: []IndexedElement{{0, []byte("x")}, {0, []byte("y")}}}, wantErr: ErrDuplicateIndex},
		{name: "remove first and last together", start: []string{"a", "b", "c", "d"}, p: AppSync{RemovedIndices: []uint32{3, 0}}, want: "[b c]"},
		{name: "remove twice", start: []string{"a", "b"}, p: AppSync{RemovedIndices: []uint32{1, 1}}, wantErr: ErrDuplicateIndex},
		{name: "insert at end", start: []string{"a", "b"}, p: AppSync{InsertedElements: []IndexedElement{{2, []byte("z")}}}, want: "[a b z]"},
		{name: "inserts are sequential", start: []string{"a", "b"}, p: AppSync{InsertedElements: []IndexedElement{{0, []byte("x")}, {3, []byte("y")}}}, want: "[x a b y]"},
		{
			// replace, then remove, then insert, then append, all relative
			// to the array as it is at that step.
			name:  "order of operations",
			start: []string{"a", "b", "c", "d"},
			p: AppSync{
				ReplacedElements: []IndexedElement{{3, []byte("D")}, {0, []byte("A")}},
				RemovedIndices:   []uint32{1},                        // removes b: [A c D]
				InsertedElements: []IndexedElement{{1, []byte("i")}}, // [A i c D]
				AppendedEntries:  els("z"),                           // [A i c D z]
			},
			want: "[A i c D z]",
		},
		{name: "remove then insert counts removed length", start: []string{"a", "b"}, p: AppSync{RemovedIndices: []uint32{0, 1}, InsertedElements: []IndexedElement{{1, []byte("x")}}}, wantErr: ErrIndexOutOfRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &ApplicationState{ApplicationID: 7, Type: OrderedArray, Elements: els(tc.start...)}
			before := show(s.Elements)
			p := tc.p
			p.ApplicationID, p.Type = 7, OrderedArray
			err := s.Apply(&p)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if show(s.Elements) != before {
					t.Fatalf("state changed on error: %s -> %s", before, show(s.Elements))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := show(s.Elements); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestUnorderedList(t *testing.T) {
	s := &ApplicationState{ApplicationID: 1, Type: UnorderedList, Elements: els("a", "b", "c")}
	if err := s.Apply(&AppSync{ApplicationID: 1, Type: UnorderedList, RemovedIndices: []uint32{0, 2}, AddedEntries: els("d")}); err != nil {
		t.Fatal(err)
	}
	if got := show(s.Elements); got != "[b d]" {
		t.Fatalf("got %s", got)
	}
	for _, idx := range [][]uint32{{2}, {0, 0}} {
		err := s.Apply(&AppSync{ApplicationID: 1, Type: UnorderedList, RemovedIndices: idx})
		if !errors.Is(err, ErrIndexOutOfRange) && !errors.Is(err, ErrDuplicateIndex) {
			t.Fatalf("remove %v: err %v", idx, err)
		}
	}
	if got := show(s.Elements); got != "[b d]" {
		t.Fatalf("state changed on error: %s", got)
	}
}

func TestMap(t *testing.T) {
	s := &ApplicationState{ApplicationID: 2, Type: Map}
	set := func(kv ...string) *AppSync {
		p := &AppSync{ApplicationID: 2, Type: Map}
		for i := 0; i < len(kv); i += 2 {
			p.NewOrUpdatedElements = append(p.NewOrUpdatedElements, MapEntry{[]byte(kv[i]), []byte(kv[i+1])})
		}
		return p
	}
	if err := s.Apply(set("b", "1", "a", "2")); err != nil {
		t.Fatal(err)
	}
	if len(s.Entries) != 2 || string(s.Entries[0].Name) != "a" {
		t.Fatalf("entries not sorted: %v", s.Entries)
	}
	// Remove first, then set: removing "a" and setting "a" in one AppSync
	// leaves the new value.
	p := set("a", "3")
	p.RemovedKeys = els("a")
	if err := s.Apply(p); err != nil {
		t.Fatal(err)
	}
	if string(s.Entries[0].Value) != "3" {
		t.Fatalf("got %s", s.Entries[0].Value)
	}
	bad := []struct {
		p    *AppSync
		want error
	}{
		{&AppSync{ApplicationID: 2, Type: Map, RemovedKeys: els("zz")}, ErrNoSuchKey},
		{&AppSync{ApplicationID: 2, Type: Map, RemovedKeys: els("a", "a")}, ErrDuplicateKey},
		{set("c", "1", "c", "2"), ErrDuplicateKey},
		{&AppSync{ApplicationID: 2, Type: OrderedArray}, ErrStateTypeMismatch},
	}
	for i, tc := range bad {
		before := fmt.Sprint(s.Entries)
		if err := s.Apply(tc.p); !errors.Is(err, tc.want) {
			t.Errorf("case %d: err %v, want %v", i, err, tc.want)
		}
		if fmt.Sprint(s.Entries) != before {
			t.Errorf("case %d: state changed on error", i)
		}
	}
}

func TestIrreducible(t *testing.T) {
	s := &ApplicationState{ApplicationID: 3, Type: Irreducible, State: []byte("old")}
	if err := s.Apply(&AppSync{ApplicationID: 3, Type: Irreducible, NewState: []byte{}}); err != nil {
		t.Fatal(err)
	}
	if len(s.State) != 0 {
		t.Fatalf("state %q", s.State)
	}
}

func TestProposalListRules(t *testing.T) {
	a := &AppSync{ApplicationID: 1, Type: Irreducible}
	b := &AppSync{ApplicationID: 1, Type: Irreducible, NewState: []byte("x")}
	c := &AppSync{ApplicationID: 2, Type: Irreducible}
	if err := CheckProposalList([]*AppSync{a, c}, false); err != nil {
		t.Fatal(err)
	}
	if err := CheckProposalList([]*AppSync{a, b}, false); !errors.Is(err, ErrDuplicateAppID) {
		t.Fatalf("err %v", err)
	}
	if err := CheckProposalList([]*AppSync{a}, true); !errors.Is(err, ErrAppSyncWithGCE) {
		t.Fatalf("err %v", err)
	}
	if err := CheckProposalList(nil, true); err != nil {
		t.Fatal(err)
	}
}

func TestApplyAllInCommitOrder(t *testing.T) {
	st := &States{}
	st.Set(&ApplicationState{ApplicationID: 5, Type: OrderedArray, Elements: els("a")})
	p1 := &AppSync{ApplicationID: 9, Type: Map, NewOrUpdatedElements: []MapEntry{{[]byte("k"), []byte("v")}}}
	p2 := &AppSync{ApplicationID: 5, Type: OrderedArray, AppendedEntries: els("b")}
	next, err := st.ApplyAll([]*AppSync{p1, p2})
	if err != nil {
		t.Fatal(err)
	}
	if show(st.Get(5).Elements) != "[a]" || st.Get(9) != nil {
		t.Fatal("ApplyAll modified its receiver")
	}
	if show(next.Get(5).Elements) != "[a b]" || next.Get(9) == nil {
		t.Fatalf("next = %v", next.States)
	}
	if next.States[0].ApplicationID != 5 || next.States[1].ApplicationID != 9 {
		t.Fatal("states not ordered by applicationId")
	}
	// A failing AppSync leaves nothing applied.
	bad := &AppSync{ApplicationID: 5, Type: OrderedArray, RemovedIndices: []uint32{4}}
	if _, err := st.ApplyAll([]*AppSync{p1, bad}); !errors.Is(err, ErrIndexOutOfRange) {
		t.Fatalf("err %v", err)
	}
	if _, err := st.ApplyAll([]*AppSync{{ApplicationID: 1, Type: 9}}); !errors.Is(err, ErrUnknownStateType) {
		t.Fatalf("err %v", err)
	}
}

func TestEncodingRoundTrip(t *testing.T) {
	st := &States{}
	st.Set(&ApplicationState{ApplicationID: 1, Type: Irreducible, State: []byte("s")})
	st.Set(&ApplicationState{ApplicationID: 2, Type: Map, Entries: []MapEntry{{[]byte("a"), []byte("1")}, {[]byte("b"), nil}}})
	st.Set(&ApplicationState{ApplicationID: 3, Type: UnorderedList, Elements: els("x", "y")})
	st.Set(&ApplicationState{ApplicationID: 4, Type: OrderedArray, Elements: els()})
	b, err := st.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseStates(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := got.Bytes()
	if !bytes.Equal(b, b2) {
		t.Fatal("re-encoding differs")
	}
	syncs := []*AppSync{
		{ApplicationID: 1, Type: Irreducible, NewState: []byte("n")},
		{ApplicationID: 2, Type: Map, RemovedKeys: els("a"), NewOrUpdatedElements: []MapEntry{{[]byte("c"), []byte("3")}}},
		{ApplicationID: 3, Type: UnorderedList, RemovedIndices: []uint32{1}, AddedEntries: els("z")},
		{ApplicationID: 4, Type: OrderedArray, ReplacedElements: []IndexedElement{{0, []byte("r")}}, RemovedIndices: []uint32{0}, InsertedElements: []IndexedElement{{0, []byte("i")}}, AppendedEntries: els("e")},
	}
	for _, p := range syncs {
		b, err := codec.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var q AppSync
		if err := codec.Unmarshal(b, "AppSync", &q); err != nil {
			t.Fatal(err)
		}
		b2, _ := codec.Marshal(&q)
		if !bytes.Equal(b, b2) {
			t.Fatalf("AppSync %s round trip differs", p.Type)
		}
	}
}

func TestDecodingRejects(t *testing.T) {
	enc := func(f func(w *codec.Writer)) []byte {
		w := codec.NewWriter()
		f(w)
		b, _ := w.Bytes()
		return b
	}
	state := func(id uint32, typ uint8, body func(w *codec.Writer)) func(w *codec.Writer) {
		return func(w *codec.Writer) { w.U32(id); w.U8(typ); body(w) }
	}
	irr := func(w *codec.Writer) { w.Opaque(nil) }
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"unknown state type", enc(func(w *codec.Writer) { w.Vector(state(1, 4, irr)) }), ErrUnknownStateType},
		{"duplicate app id", enc(func(w *codec.Writer) { w.Vector(func(w *codec.Writer) { state(1, 0, irr)(w); state(1, 0, irr)(w) }) }), ErrDuplicateState},
		{"unsorted app ids", enc(func(w *codec.Writer) { w.Vector(func(w *codec.Writer) { state(2, 0, irr)(w); state(1, 0, irr)(w) }) }), ErrStatesNotCanonical},
		{"unsorted map", enc(func(w *codec.Writer) {
			w.Vector(state(1, 1, func(w *codec.Writer) {
				w.Vector(func(w *codec.Writer) { w.Opaque([]byte("b")); w.Opaque(nil); w.Opaque([]byte("a")); w.Opaque(nil) })
			}))
		}), ErrMapNotCanonical},
		{"trailing bytes", append(enc(func(w *codec.Writer) { w.Vector(state(1, 0, irr)) }), 0), codec.ErrTrailingData},
		{"truncated", enc(func(w *codec.Writer) { w.Vector(state(1, 0, irr)) })[:3], codec.ErrTruncated},
	}
	for _, tc := range tests {
		if _, err := ParseStates(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
}

func FuzzAppSync(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 3, 0, 0, 0, 1, 1})
	f.Add([]byte{0, 0, 0, 1, 1, 2, 1, 'a', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p AppSync
		if err := codec.Unmarshal(b, "AppSync", &p); err != nil {
			return
		}
		b2, err := codec.Marshal(&p)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("round trip: %v", err)
		}
		// Applying to an empty state of the right type never panics.
		s := &ApplicationState{ApplicationID: p.ApplicationID, Type: p.Type}
		_ = s.Apply(&p)
	})
}

func FuzzStates(f *testing.F) {
	f.Add([]byte{10, 0, 0, 0, 1, 0, 1, 'x', 0, 0, 0, 2, 2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStates(b)
		if err != nil {
			return
		}
		b2, err := st.Bytes()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
