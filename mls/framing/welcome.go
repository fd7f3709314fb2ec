package framing

import (
	"bytes"
	"fmt"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/wire"
)

// welcomeLabel is the EncryptWithLabel label of GroupSecrets (RFC 9420,
// Section 12.4.3.1).
const welcomeLabel = "Welcome"

// WelcomeRecipient is one new member a Welcome is encrypted to (RFC 9420,
// Section 12.4.3.1).
type WelcomeRecipient struct {
	// KeyPackage is the new member's KeyPackage: its reference names the
	// entry and its init_key receives the GroupSecrets.
	KeyPackage *wire.KeyPackage
	// PathSecret is the path secret of the lowest common ancestor of the
	// committer and the new member, or nil when the Commit has no path.
	PathSecret []byte
}

// WelcomeSecret derives welcome_secret = DeriveSecret(KDF.Extract(
// joiner_secret, psk_secret), "welcome") (RFC 9420, Section 8). A nil
// pskSecret means the all-zero Nh-byte string (no PSKs).
func WelcomeSecret(s *cipher.Suite, joinerSecret, pskSecret []byte) ([]byte, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil suite", ErrMissingState)
	}
	if pskSecret == nil {
		pskSecret = make([]byte, s.HashSize())
	}
	member := s.Extract(joinerSecret, pskSecret)
	ws, err := s.DeriveSecret(member, "welcome")
	if err != nil {
		return nil, fmt.Errorf("mls framing: deriving welcome_secret: %w", err)
	}
	return ws, nil
}

// SealWelcome builds a Welcome (RFC 9420, Section 12.4.3.1): groupInfo (an
// encoded, signed GroupInfo) is encrypted with the welcome_key and
// welcome_nonce derived from welcomeSecret (the new epoch's
// welcome_secret, see WelcomeSecret or keyschedule.EpochSecrets), and
// GroupSecrets{joinerSecret, path_secret, psks} is encrypted to each
// recipient's init_key with EncryptWithLabel(init_key, "Welcome",
// encrypted_group_info, group_secrets). psks are the PreSharedKeyIDs that
// went into the psk_secret behind welcomeSecret. Every KeyPackage must use
// suite s.
func SealWelcome(s *cipher.Suite, groupInfo, joinerSecret, welcomeSecret []byte, psks []wire.PreSharedKeyID, recipients []WelcomeRecipient) (*wire.Welcome, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil suite", ErrMissingState)
	}
	key, nonce, err := keyschedule.WelcomeKeyNonce(s, welcomeSecret)
	if err != nil {
		return nil, fmt.Errorf("mls framing: welcome key: %w", err)
	}
	egi, err := s.Seal(key, nonce, nil, groupInfo)
	if err != nil {
		return nil, fmt.Errorf("mls framing: encrypting GroupInfo: %w", err)
	}
	w := &wire.Welcome{CipherSuite: s.ID(), EncryptedGroupInfo: egi}
	for i, rcp := range recipients {
		kp := rcp.KeyPackage
		if kp == nil {
			return nil, fmt.Errorf("%w: recipient %d has no KeyPackage", ErrMissingState, i)
		}
		if kp.CipherSuite != s.ID() {
			return nil, fmt.Errorf("%w: recipient %d KeyPackage suite %d, group suite %d", ErrSuiteMismatch, i, kp.CipherSuite, s.ID())
		}
		ref, err := kp.Ref(s)
		if err != nil {
			return nil, fmt.Errorf("mls framing: recipient %d KeyPackageRef: %w", i, err)
		}
		gs := wire.GroupSecrets{JoinerSecret: joinerSecret, PathSecret: rcp.PathSecret, PSKs: psks}
		gsb, err := codec.Marshal(&gs)
		if err != nil {
			return nil, fmt.Errorf("mls framing: encoding GroupSecrets: %w", err)
		}
		kem, ct, err := s.EncryptWithLabel(kp.InitKey, welcomeLabel, egi, gsb)
		if err != nil {
			return nil, fmt.Errorf("mls framing: encrypting GroupSecrets to recipient %d: %w", i, err)
		}
		w.Secrets = append(w.Secrets, wire.EncryptedGroupSecrets{
			NewMember:             ref,
			EncryptedGroupSecrets: wire.HPKECiphertext{KEMOutput: kem, Ciphertext: ct},
		})
	}
	return w, nil
}

// DecryptGroupSecrets finds the entry of w for keyPackageRef
// (ErrNoMatchingSecrets if none) and decrypts its GroupSecrets with
// DecryptWithLabel(init_priv, "Welcome", encrypted_group_info, ...) (RFC
// 9420, Section 12.4.3.1). It rejects a Welcome whose cipher suite is not
// s (ErrSuiteMismatch), and more than one resumption PSK of usage reinit or
// branch (ErrMalformed).
func DecryptGroupSecrets(s *cipher.Suite, w *wire.Welcome, keyPackageRef, initPriv []byte) (*wire.GroupSecrets, error) {
	if s == nil || w == nil {
		return nil, fmt.Errorf("%w: nil suite or welcome", ErrMissingState)
	}
	if w.CipherSuite != s.ID() {
		return nil, fmt.Errorf("%w: welcome suite %d, expected %d", ErrSuiteMismatch, w.CipherSuite, s.ID())
	}
	var egs *wire.EncryptedGroupSecrets
	for i := range w.Secrets {
		if bytes.Equal(w.Secrets[i].NewMember, keyPackageRef) {
			egs = &w.Secrets[i]
			break
		}
	}
	if egs == nil {
		return nil, ErrNoMatchingSecrets
	}
	pt, err := s.DecryptWithLabel(initPriv, welcomeLabel, w.EncryptedGroupInfo,
		egs.EncryptedGroupSecrets.KEMOutput, egs.EncryptedGroupSecrets.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: GroupSecrets: %w", ErrDecrypt, err)
	}
	gs := new(wire.GroupSecrets)
	if err := codec.Unmarshal(pt, "GroupSecrets", gs); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	special := 0
	for _, p := range gs.PSKs {
		if p.Type == wire.PSKResumption && (p.Usage == wire.ResumptionReInit || p.Usage == wire.ResumptionBranch) {
			special++
		}
	}
	if special > 1 {
		return nil, fmt.Errorf("%w: more than one reinit/branch resumption PSK", ErrMalformed)
	}
	return gs, nil
}

// DecryptGroupInfo decrypts and decodes the GroupInfo of w with the
// welcome_key and welcome_nonce derived from joinerSecret and pskSecret
// (nil for no PSKs) (RFC 9420, Sections 8 and 12.4.3.1). It checks that the
// GroupInfo's cipher suite is w's, but not its signature (VerifyGroupInfo).
func DecryptGroupInfo(s *cipher.Suite, w *wire.Welcome, joinerSecret, pskSecret []byte) (*wire.GroupInfo, error) {
	if s == nil || w == nil {
		return nil, fmt.Errorf("%w: nil suite or welcome", ErrMissingState)
	}
	ws, err := WelcomeSecret(s, joinerSecret, pskSecret)
	if err != nil {
		return nil, err
	}
	key, nonce, err := keyschedule.WelcomeKeyNonce(s, ws)
	if err != nil {
		return nil, fmt.Errorf("mls framing: welcome key: %w", err)
	}
	pt, err := s.Open(key, nonce, nil, w.EncryptedGroupInfo)
	if err != nil {
		return nil, fmt.Errorf("%w: GroupInfo: %w", ErrDecrypt, err)
	}
	gi := new(wire.GroupInfo)
	if err := codec.Unmarshal(pt, "GroupInfo", gi); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if gi.GroupContext.CipherSuite != w.CipherSuite {
		return nil, fmt.Errorf("%w: GroupInfo suite %d, welcome suite %d", ErrSuiteMismatch, gi.GroupContext.CipherSuite, w.CipherSuite)
	}
	return gi, nil
}

// PSKFunc returns the secret of a pre-shared key named in GroupSecrets, or
// an error if the client does not hold it (RFC 9420, Sections 8.4 and
// 12.4.3.1).
type PSKFunc func(id *wire.PreSharedKeyID) ([]byte, error)

// PSKSecret resolves ids with lookup and chains them into psk_secret (RFC
// 9420, Section 8.4). No ids give nil (the all-zero psk_secret); ids
// without a lookup, or a failing lookup, give ErrMissingPSK.
func PSKSecret(s *cipher.Suite, ids []wire.PreSharedKeyID, lookup PSKFunc) ([]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if lookup == nil {
		return nil, fmt.Errorf("%w: %d PSKs required and no lookup", ErrMissingPSK, len(ids))
	}
	in := make([]keyschedule.PSKInput, len(ids))
	for i := range ids {
		sec, err := lookup(&ids[i])
		if err != nil {
			return nil, fmt.Errorf("%w: PSK %d: %w", ErrMissingPSK, i, err)
		}
		id, err := codec.Marshal(&ids[i])
		if err != nil {
			return nil, fmt.Errorf("mls framing: encoding PreSharedKeyID: %w", err)
		}
		in[i] = keyschedule.PSKInput{ID: id, Secret: sec}
	}
	ps, err := keyschedule.PSKSecret(s, in)
	if err != nil {
		return nil, fmt.Errorf("mls framing: psk_secret: %w", err)
	}
	return ps, nil
}

// OpenedWelcome is the content of a Welcome for one new member (RFC 9420,
// Section 12.4.3.1).
type OpenedWelcome struct {
	// GroupSecrets holds the joiner secret, optional path secret and PSK
	// ids.
	GroupSecrets *wire.GroupSecrets
	// GroupInfo is the decrypted GroupInfo; its signature is not yet
	// verified (VerifyGroupInfo, once the signer's key is known from the
	// ratchet tree).
	GroupInfo *wire.GroupInfo
	// PSKSecret is the psk_secret of the new epoch (nil: no PSKs).
	PSKSecret []byte
}

// OpenWelcome decrypts a Welcome for the KeyPackage with reference
// keyPackageRef and HPKE init private key initPriv (RFC 9420, Section
// 12.4.3.1): the GroupSecrets (DecryptGroupSecrets), the psk_secret of the
// PSKs it names (PSKSecret with lookup, which may be nil when no PSKs are
// expected), and the GroupInfo (DecryptGroupInfo). The caller then verifies
// the GroupInfo signature (VerifyGroupInfo) and derives the epoch
// (JoinEpoch).
func OpenWelcome(s *cipher.Suite, w *wire.Welcome, keyPackageRef, initPriv []byte, lookup PSKFunc) (*OpenedWelcome, error) {
	gs, err := DecryptGroupSecrets(s, w, keyPackageRef, initPriv)
	if err != nil {
		return nil, err
	}
	ps, err := PSKSecret(s, gs.PSKs, lookup)
	if err != nil {
		return nil, err
	}
	gi, err := DecryptGroupInfo(s, w, gs.JoinerSecret, ps)
	if err != nil {
		return nil, err
	}
	return &OpenedWelcome{GroupSecrets: gs, GroupInfo: gi, PSKSecret: ps}, nil
}

// VerifyGroupInfo checks the GroupInfo signature with the signer's
// signature public key (RFC 9420, Sections 12.4.3 and 12.4.3.1) and that
// its cipher suite is s. Failures wrap ErrBadSignature or ErrSuiteMismatch.
func VerifyGroupInfo(s *cipher.Suite, gi *wire.GroupInfo, signerPub []byte) error {
	if s == nil || gi == nil {
		return fmt.Errorf("%w: nil suite or GroupInfo", ErrMissingState)
	}
	if gi.GroupContext.CipherSuite != s.ID() {
		return fmt.Errorf("%w: GroupInfo suite %d, expected %d", ErrSuiteMismatch, gi.GroupContext.CipherSuite, s.ID())
	}
	if err := gi.VerifySignature(s, signerPub); err != nil {
		return fmt.Errorf("%w: GroupInfo: %w", ErrBadSignature, err)
	}
	return nil
}

// JoinEpoch derives the key schedule of the epoch a Welcome joins, from the
// joiner secret, the psk_secret and the GroupInfo's GroupContext, verifies
// the GroupInfo confirmation_tag against MAC(confirmation_key,
// confirmed_transcript_hash) (ErrBadConfirmationTag), and returns the epoch
// secrets with the interim transcript hash (RFC 9420, Sections 8, 8.2 and
// 12.4.3.1).
func JoinEpoch(s *cipher.Suite, gi *wire.GroupInfo, joinerSecret, pskSecret []byte) (secrets *keyschedule.EpochSecrets, interim []byte, err error) {
	if s == nil || gi == nil {
		return nil, nil, fmt.Errorf("%w: nil suite or GroupInfo", ErrMissingState)
	}
	gc, err := codec.Marshal(&gi.GroupContext)
	if err != nil {
		return nil, nil, fmt.Errorf("mls framing: encoding GroupContext: %w", err)
	}
	es, err := keyschedule.FromJoiner(s, joinerSecret, pskSecret, gc)
	if err != nil {
		return nil, nil, fmt.Errorf("mls framing: key schedule: %w", err)
	}
	if err := VerifyConfirmationTag(s, es.ConfirmationKey, gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag); err != nil {
		return nil, nil, err
	}
	interim, err = InterimTranscriptHash(s, gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag)
	if err != nil {
		return nil, nil, err
	}
	return es, interim, nil
}
