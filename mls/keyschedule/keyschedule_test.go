package keyschedule_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/keyschedule"
)

var allSuites = []cipher.SuiteID{
	cipher.X25519_AES128GCM_SHA256_Ed25519,
	cipher.P256_AES128GCM_SHA256_P256,
	cipher.X25519_CHACHA20POLY1305_SHA256_Ed25519,
	cipher.X448_AES256GCM_SHA512_Ed448,
	cipher.P521_AES256GCM_SHA512_P521,
	cipher.X448_CHACHA20POLY1305_SHA512_Ed448,
	cipher.P384_AES256GCM_SHA384_P384,
}

func TestDeriveConsistency(t *testing.T) {
	gc := []byte("group context")
	for _, id := range allSuites {
		s := lookup(t, uint16(id))
		nh := s.HashSize()
		init := bytes.Repeat([]byte{1}, nh)
		zeros := make([]byte, nh)

		a, err := keyschedule.Derive(s, init, nil, nil, gc)
		if err != nil {
			t.Fatal(err)
		}
		b, err := keyschedule.Derive(s, init, zeros, zeros, gc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.EpochSecret, b.EpochSecret) || !bytes.Equal(a.InitSecret, b.InitSecret) {
			t.Errorf("suite %d: nil commit/psk secret differs from the all-zero string", id)
		}
		for name, v := range map[string][]byte{
			"joiner": a.JoinerSecret, "welcome": a.WelcomeSecret, "epoch": a.EpochSecret,
			"sender data": a.SenderDataSecret, "encryption": a.EncryptionSecret, "exporter": a.ExporterSecret,
			"external": a.ExternalSecret, "confirm": a.ConfirmationKey, "membership": a.MembershipKey,
			"resumption": a.ResumptionPSK, "authentication": a.EpochAuthenticator, "init": a.InitSecret,
		} {
			if len(v) != nh {
				t.Errorf("suite %d: %s secret has %d bytes, want %d", id, name, len(v), nh)
			}
		}
		j, err := keyschedule.FromJoiner(s, a.JoinerSecret, nil, gc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(j.ConfirmationKey, a.ConfirmationKey) {
			t.Errorf("suite %d: FromJoiner differs from Derive", id)
		}
		// The group context and the PSK secret both matter.
		c, _ := keyschedule.Derive(s, init, nil, nil, []byte("other context"))
		d, _ := keyschedule.Derive(s, init, nil, bytes.Repeat([]byte{9}, nh), gc)
		if bytes.Equal(c.EpochSecret, a.EpochSecret) || bytes.Equal(d.EpochSecret, a.EpochSecret) {
			t.Errorf("suite %d: epoch secret ignores an input", id)
		}
		if !bytes.Equal(d.JoinerSecret, a.JoinerSecret) {
			t.Errorf("suite %d: psk_secret must not affect joiner_secret", id)
		}

		key, nonce, err := keyschedule.WelcomeKeyNonce(s, a.WelcomeSecret)
		if err != nil || len(key) != s.AEADKeySize() || len(nonce) != s.AEADNonceSize() {
			t.Errorf("suite %d: WelcomeKeyNonce: %d, %d, %v", id, len(key), len(nonce), err)
		}
		priv, pub, err := keyschedule.ExternalKeyPair(s, a.ExternalSecret)
		if err != nil || len(priv) == 0 || len(pub) == 0 {
			t.Errorf("suite %d: ExternalKeyPair: %v", id, err)
		}

		a.Erase()
		if a.EpochSecret != nil || a.InitSecret != nil {
			t.Error("Erase left secrets")
		}
	}
}

func TestKeyScheduleInvalidInput(t *testing.T) {
	s := testSuite(t)
	e, err := keyschedule.Derive(s, testSecret, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Derive nil suite":          second(keyschedule.Derive(nil, testSecret, nil, nil, nil)),
		"Derive empty init":         second(keyschedule.Derive(s, nil, nil, nil, nil)),
		"FromJoiner nil suite":      second(keyschedule.FromJoiner(nil, testSecret, nil, nil)),
		"FromJoiner empty joiner":   second(keyschedule.FromJoiner(s, []byte{}, nil, nil)),
		"Export zero length":        second(e.Export(s, "l", nil, 0)),
		"Export negative length":    second(e.Export(s, "l", nil, -1)),
		"Export 65536":              second(e.Export(s, "l", nil, 65536)),
		"Export beyond HKDF":        second(e.Export(s, "l", nil, 255*32+1)),
		"Export nil suite":          second(e.Export(nil, "l", nil, 32)),
		"Export no secret":          second((&keyschedule.EpochSecrets{}).Export(s, "l", nil, 32)),
		"PSKSecret nil suite":       second(keyschedule.PSKSecret(nil, nil)),
		"PSKSecret empty id":        second(keyschedule.PSKSecret(s, []keyschedule.PSKInput{{Secret: testSecret}})),
		"PSKSecret too many":        second(keyschedule.PSKSecret(s, make([]keyschedule.PSKInput, keyschedule.MaxPSKs+1))),
		"WelcomeKeyNonce empty":     third(keyschedule.WelcomeKeyNonce(s, nil)),
		"WelcomeKeyNonce nil suite": third(keyschedule.WelcomeKeyNonce(nil, testSecret)),
		"SenderData empty":          third(keyschedule.SenderDataKeyNonce(s, nil, []byte("ct"))),
		"SenderData nil suite":      third(keyschedule.SenderDataKeyNonce(nil, testSecret, []byte("ct"))),
		"External empty":            third(keyschedule.ExternalKeyPair(s, nil)),
		"External nil suite":        third(keyschedule.ExternalKeyPair(nil, testSecret)),
	} {
		if !errors.Is(err, keyschedule.ErrInvalidInput) {
			t.Errorf("%s: error %v, want ErrInvalidInput", name, err)
		}
	}
	// Export's length limits are inclusive.
	if out, err := e.Export(s, "l", []byte("ctx"), 255*32); err != nil || len(out) != 255*32 {
		t.Errorf("Export of the maximum length: %d, %v", len(out), err)
	}
}

func second[T any](_ T, err error) error        { return err }
func third[T, U any](_ T, _ U, err error) error { return err }

func TestPSKSecretEmpty(t *testing.T) {
	for _, id := range allSuites {
		s := lookup(t, uint16(id))
		got, err := keyschedule.PSKSecret(s, nil)
		if err != nil || !bytes.Equal(got, make([]byte, s.HashSize())) {
			t.Errorf("suite %d: PSKSecret(nil) = %x, %v; want the zero vector", id, got, err)
		}
	}
	// Order matters (index/count are bound into PSKLabel).
	s := testSuite(t)
	a := keyschedule.PSKInput{ID: []byte{1, 1, 'a', 0}, Secret: []byte("A")}
	b := keyschedule.PSKInput{ID: []byte{1, 1, 'b', 0}, Secret: []byte("B")}
	ab, _ := keyschedule.PSKSecret(s, []keyschedule.PSKInput{a, b})
	ba, _ := keyschedule.PSKSecret(s, []keyschedule.PSKInput{b, a})
	if bytes.Equal(ab, ba) {
		t.Error("PSK order does not matter")
	}
	if got := keyschedule.PSKLabel([]byte{9, 8}, 1, 2); !bytes.Equal(got, []byte{9, 8, 0, 1, 0, 2}) {
		t.Errorf("PSKLabel = %x", got)
	}
}

func TestSenderDataSample(t *testing.T) {
	s := testSuite(t)
	long := bytes.Repeat([]byte{5}, 100)
	k1, n1, err := keyschedule.SenderDataKeyNonce(s, testSecret, long)
	if err != nil {
		t.Fatal(err)
	}
	// Only the first Nh bytes are sampled.
	k2, n2, _ := keyschedule.SenderDataKeyNonce(s, testSecret, append(long[:s.HashSize():s.HashSize()], 1, 2, 3))
	if !bytes.Equal(k1, k2) || !bytes.Equal(n1, n2) {
		t.Error("bytes beyond Nh affect the sender data key")
	}
	// A short ciphertext is used whole (including the empty one).
	for _, ct := range [][]byte{nil, {1}, long[:s.HashSize()-1]} {
		k, n, err := keyschedule.SenderDataKeyNonce(s, testSecret, ct)
		if err != nil || len(k) != s.AEADKeySize() || len(n) != s.AEADNonceSize() {
			t.Errorf("short ciphertext (%d bytes): %v", len(ct), err)
		}
	}
}
