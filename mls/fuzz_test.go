package mls

import (
	"bytes"
	"testing"

	"github.com/openmimi/mimi/internal/vectors"
	"github.com/openmimi/mimi/mls/wire"
)

// fuzzSeeds builds a 3-member group and returns member 1's state with a few
// messages addressed to it (commit, proposal, application).
func fuzzSeeds(f *testing.F) (state []byte, msgs [][]byte) {
	gs := iGroup(f, 3, Config{})
	st, err := gs[1].MarshalState()
	if err != nil {
		f.Fatal(err)
	}
	add := func(m *wire.MLSMessage) {
		b, err := m.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	sp, err := gs[2].ProposeRemove(0, nil)
	if err != nil {
		f.Fatal(err)
	}
	add(sp.Message)
	pc, err := gs[0].Commit(&CommitOptions{SkipPending: true})
	if err != nil {
		f.Fatal(err)
	}
	add(pc.Message)
	pc2, err := gs[0].Commit(&CommitOptions{SkipPending: true, Send: SendOptions{Private: true}})
	if err != nil {
		f.Fatal(err)
	}
	add(pc2.Message)
	gs[0].SetConfig(Config{AllowAppDataWithPendingProposals: true})
	app, err := gs[0].ProtectApplication([]byte("hello"), nil)
	if err != nil {
		f.Fatal(err)
	}
	add(app)
	return st, msgs
}

// FuzzProcess feeds arbitrary messages to a member: Process must return an
// error or a result, never panic, and a rejected message must leave the
// state unchanged.
func FuzzProcess(f *testing.F) {
	st, msgs := fuzzSeeds(f)
	for _, m := range msgs {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := wire.UnmarshalMLSMessage(data)
		if err != nil {
			return
		}
		g, err := UnmarshalState(st, Config{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Process(m); err != nil {
			after, err2 := g.MarshalState()
			if err2 != nil {
				t.Fatal(err2)
			}
			if string(after) != string(st) {
				t.Fatalf("rejected message changed the state: %v", err)
			}
		}
	})
}

// FuzzUnmarshalState: corrupt state is rejected without panicking.
func FuzzUnmarshalState(f *testing.F) {
	st, _ := fuzzSeeds(f)
	f.Add(st)
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := UnmarshalState(data, Config{})
		if err != nil {
			return
		}
		if _, err := g.MarshalState(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzUnmarshalKeyPackageBundle: a stored KeyPackage bundle (the client's
// saved state, possibly corrupt) is decoded and checked without
// panicking, and what is accepted re-encodes to exactly the input. Seeds
// are the KeyPackages and private keys of the passive client vectors, one
// per cipher suite, and truncations.
func FuzzUnmarshalKeyPackageBundle(f *testing.F) {
	var cases []struct {
		CipherSuite    uint16      `json:"cipher_suite"`
		KeyPackage     vectors.Hex `json:"key_package"`
		SignaturePriv  vectors.Hex `json:"signature_priv"`
		EncryptionPriv vectors.Hex `json:"encryption_priv"`
		InitPriv       vectors.Hex `json:"init_priv"`
	}
	vectors.Load(f, "passive-client-welcome.json", &cases)
	seen := map[uint16]bool{}
	for _, c := range cases {
		if seen[c.CipherSuite] {
			continue
		}
		seen[c.CipherSuite] = true
		m, err := wire.UnmarshalMLSMessage(c.KeyPackage)
		if err != nil || m.KeyPackage == nil {
			f.Fatalf("suite %d: key package: %v", c.CipherSuite, err)
		}
		b, err := (&KeyPackageBundle{KeyPackage: m.KeyPackage, InitPriv: c.InitPriv, EncryptionPriv: c.EncryptionPriv, SignaturePriv: c.SignaturePriv}).MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		if _, err := UnmarshalKeyPackageBundle(b); err != nil {
			f.Fatalf("suite %d: vector bundle rejected: %v", c.CipherSuite, err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
		f.Add(b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := UnmarshalKeyPackageBundle(data)
		if err != nil {
			return
		}
		out, err := b.MarshalBinary()
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("re-encoding differs (%v):\n in %x\nout %x", err, data, out)
		}
	})
}

// FuzzRestorePendingCommit: a saved pending commit (possibly corrupt) is
// decoded and checked without panicking; a refused one leaves the group
// unchanged, an accepted one serializes again. Seeds: a real pending
// commit of the group and truncations.
func FuzzRestorePendingCommit(f *testing.F) {
	gs := iGroup(f, 3, Config{})
	st, err := gs[0].MarshalState()
	if err != nil {
		f.Fatal(err)
	}
	pc, err := gs[0].Commit(nil)
	if err != nil {
		f.Fatal(err)
	}
	seed, err := pc.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-1])
	f.Add(seed[:len(seed)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := UnmarshalState(st, Config{})
		if err != nil {
			t.Fatal(err)
		}
		rpc, err := g.RestorePendingCommit(data)
		if err != nil {
			after, err2 := g.MarshalState()
			if err2 != nil {
				t.Fatal(err2)
			}
			if !bytes.Equal(after, st) {
				t.Fatalf("refused pending commit changed the group: %v", err)
			}
			return
		}
		if _, err := rpc.MarshalBinary(); err != nil {
			t.Fatalf("restored commit does not serialize: %v", err)
		}
	})
}
