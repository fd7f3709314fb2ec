package daemon

import (
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/openmimi/mimi/mls/cipher"
)

// HubKeyPEMType is the PEM label of the hub signing key file. The block
// holds the raw private key in the encoding of RFC 9420, Section 5.1.1
// (an Ed25519/Ed448 seed or a raw ECDSA scalar) and a "Cipher-Suite"
// header with the suite's decimal codepoint (Section 17.1).
const HubKeyPEMType = "MIMI HUB SIGNATURE KEY"

// ErrHubKey is returned (wrapped) when the hub key file is unusable.
var ErrHubKey = errors.New("daemon: unusable hub signing key")

// hubKey is the hub's signature key pair (RFC 9420, Section 12.1.8.1).
type hubKey struct {
	suite     cipher.SuiteID
	priv, pub []byte
}

// loadOrCreateHubKey loads the key at path, or generates one for suite
// (DefaultHubSuite if 0) and writes it there (mode 0600, created
// exclusively so two starts cannot write different keys).
func loadOrCreateHubKey(path string, suite uint16) (k *hubKey, created bool, err error) {
	k, err = loadHubKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		if suite == 0 {
			suite = DefaultHubSuite
		}
		if err := createHubKey(path, cipher.SuiteID(suite)); err != nil {
			return nil, false, err
		}
		created = true
		k, err = loadHubKey(path)
	}
	if err != nil {
		return nil, false, err
	}
	if suite != 0 && k.suite != cipher.SuiteID(suite) {
		return nil, false, fmt.Errorf("%w: %s holds a key for cipher suite %d, configured %d", ErrHubKey, path, k.suite, suite)
	}
	return k, created, nil
}

func loadHubKey(path string) (*hubKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != HubKeyPEMType {
		return nil, fmt.Errorf("%w: %s: no %q PEM block", ErrHubKey, path, HubKeyPEMType)
	}
	n, err := strconv.ParseUint(blk.Headers["Cipher-Suite"], 10, 16)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: Cipher-Suite header: %w", ErrHubKey, path, err)
	}
	s, err := cipher.Lookup(cipher.SuiteID(n))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrHubKey, path, err)
	}
	pub, err := s.SignaturePublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrHubKey, path, err)
	}
	return &hubKey{suite: s.ID(), priv: blk.Bytes, pub: pub}, nil
}

func createHubKey(path string, id cipher.SuiteID) error {
	s, err := cipher.Lookup(id)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHubKey, err)
	}
	priv, _, err := s.GenerateSignatureKey()
	if err != nil {
		return fmt.Errorf("daemon: generate hub key: %w", err)
	}
	b := pem.EncodeToMemory(&pem.Block{
		Type:    HubKeyPEMType,
		Headers: map[string]string{"Cipher-Suite": strconv.Itoa(int(id))},
		Bytes:   priv,
	})
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	return createExclusive(path, b, 0o600)
}

// createExclusive writes b to path only if path does not exist, never
// leaving a partial file there: a complete temporary file is synced and
// hard-linked into place. A concurrent creator's file wins silently.
func createExclusive(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("daemon: write %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("daemon: install %s: %w", path, err)
	}
	return nil
}
