package mls_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openmimi/mimi/internal/vectors"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/wire"
)

// passiveVector is one case of the passive client test vectors
// (mlswg/mls-implementations, "Passive Client Scenarios").
type passiveVector struct {
	CipherSuite  uint16 `json:"cipher_suite"`
	ExternalPSKs []struct {
		PSKID vectors.Hex `json:"psk_id"`
		PSK   vectors.Hex `json:"psk"`
	} `json:"external_psks"`
	KeyPackage                vectors.Hex `json:"key_package"`
	SignaturePriv             vectors.Hex `json:"signature_priv"`
	EncryptionPriv            vectors.Hex `json:"encryption_priv"`
	InitPriv                  vectors.Hex `json:"init_priv"`
	Welcome                   vectors.Hex `json:"welcome"`
	RatchetTree               vectors.Hex `json:"ratchet_tree"`
	InitialEpochAuthenticator vectors.Hex `json:"initial_epoch_authenticator"`
	Epochs                    []struct {
		Proposals          []vectors.Hex `json:"proposals"`
		Commit             vectors.Hex   `json:"commit"`
		EpochAuthenticator vectors.Hex   `json:"epoch_authenticator"`
	} `json:"epochs"`
}

// EnvPassiveVectors overrides the glob of passive client vector files.
const EnvPassiveVectors = "MLS_PASSIVE_VECTORS"

// TestPassiveClient runs every case of every passive client vector file
// (RFC 9420 interop vectors): join by Welcome, then follow every commit and
// compare every epoch authenticator.
func TestPassiveClient(t *testing.T) {
	pattern := os.Getenv(EnvPassiveVectors)
	if pattern == "" {
		pattern = filepath.Join(vectors.Dir(t), "passive-client-*.json")
	}
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no passive client vector files match %q", pattern)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var cases []passiveVector
			if err := json.Unmarshal(b, &cases); err != nil {
				t.Fatalf("decoding %s: %v", f, err)
			}
			tally := vectors.NewTally("passive", name)
			for i := range cases {
				tc := &cases[i]
				tally.Run(t, fmt.Sprintf("case%d/suite%d", i, tc.CipherSuite), func(t *testing.T) {
					runPassive(t, tc)
				})
			}
			tally.Report(t)
		})
	}
}

func decodeMessage(t *testing.T, b []byte) *wire.MLSMessage {
	t.Helper()
	m, err := wire.UnmarshalMLSMessage(b)
	if err != nil {
		t.Fatalf("decoding MLSMessage: %v", err)
	}
	return m
}

func runPassive(t *testing.T, tc *passiveVector) {
	var kp *wire.KeyPackage
	if m, err := wire.UnmarshalMLSMessage(tc.KeyPackage); err == nil && m.KeyPackage != nil {
		kp = m.KeyPackage
	} else if kp, err = wire.UnmarshalKeyPackage(tc.KeyPackage); err != nil {
		t.Fatalf("decoding key package: %v", err)
	}
	bundle := &mls.KeyPackageBundle{KeyPackage: kp, InitPriv: tc.InitPriv, EncryptionPriv: tc.EncryptionPriv, SignaturePriv: tc.SignaturePriv}
	if err := bundle.Check(); err != nil {
		t.Fatalf("key package bundle: %v", err)
	}
	psks := map[string][]byte{}
	for _, p := range tc.ExternalPSKs {
		psks[string(p.PSKID)] = p.PSK
	}
	cfg := mls.Config{
		Clock:       func() time.Time { return time.Time{} }, // vectors' lifetimes have expired
		ExternalPSK: mls.StaticPSKs(psks),
	}
	opts := &mls.JoinOptions{Config: cfg}
	if tc.RatchetTree != nil {
		rt, err := wire.UnmarshalRatchetTree(tc.RatchetTree)
		if err != nil {
			t.Fatalf("decoding ratchet tree: %v", err)
		}
		opts.RatchetTree = rt
	}
	g, err := mls.JoinFromWelcome(decodeMessage(t, tc.Welcome), bundle, opts)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	if got := g.EpochAuthenticator(); !bytes.Equal(got, tc.InitialEpochAuthenticator) {
		t.Fatalf("initial epoch authenticator %x, want %x", got, tc.InitialEpochAuthenticator)
	}
	for i, ep := range tc.Epochs {
		for j, p := range ep.Proposals {
			if _, err := g.Process(decodeMessage(t, p)); err != nil {
				t.Fatalf("epoch %d: proposal %d: %v", i, j, err)
			}
		}
		res, err := g.Process(decodeMessage(t, ep.Commit))
		if err != nil {
			t.Fatalf("epoch %d: commit: %v", i, err)
		}
		if res.Commit == nil {
			t.Fatalf("epoch %d: commit message processed as %d", i, res.ContentType)
		}
		if got := g.EpochAuthenticator(); !bytes.Equal(got, ep.EpochAuthenticator) {
			t.Fatalf("epoch %d: epoch authenticator %x, want %x", i, got, ep.EpochAuthenticator)
		}
	}
}
