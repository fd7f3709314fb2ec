package keyschedule

import (
	"fmt"

	"github.com/openmimi/mimi/mls/cipher"
)

// Labels of the secrets derived from epoch_secret (RFC 9420, Section 8,
// Table 4 "Epoch-Derived Secrets"), and of the other key schedule steps.
const (
	labelJoiner         = "joiner"
	labelWelcome        = "welcome"
	labelEpoch          = "epoch"
	labelInit           = "init"
	labelSenderData     = "sender data"
	labelEncryption     = "encryption"
	labelExporter       = "exporter"
	labelExternal       = "external"
	labelConfirm        = "confirm"
	labelMembership     = "membership"
	labelResumption     = "resumption"
	labelAuthentication = "authentication"
	labelExported       = "exported"
	labelKey            = "key"
	labelNonce          = "nonce"
)

// EpochSecrets holds the secrets of one epoch (RFC 9420, Section 8).
//
// InitSecret is init_secret_[n], the value carried into the NEXT epoch's
// key schedule. EpochSecret is kept so that callers can follow the deletion
// schedule themselves (Section 9.2); Erase zeroes every field.
type EpochSecrets struct {
	JoinerSecret       []byte // joiner_secret (Section 8)
	WelcomeSecret      []byte // welcome_secret = DeriveSecret(member, "welcome")
	EpochSecret        []byte // epoch_secret
	SenderDataSecret   []byte // "sender data"
	EncryptionSecret   []byte // "encryption" (root of the secret tree, Section 9)
	ExporterSecret     []byte // "exporter" (Section 8.5)
	ExternalSecret     []byte // "external" (Section 8.3)
	ConfirmationKey    []byte // "confirm"
	MembershipKey      []byte // "membership"
	ResumptionPSK      []byte // "resumption" (Section 8.6)
	EpochAuthenticator []byte // "authentication" (Section 8.7)
	InitSecret         []byte // "init": init_secret for the next epoch
}

// Derive runs the key schedule of RFC 9420, Section 8, for a new epoch:
//
//	joiner_secret = ExpandWithLabel(Extract(init_secret_[n-1], commit_secret),
//	                                "joiner", GroupContext_[n], Nh)
//
// followed by FromJoiner. groupContext is the encoded GroupContext of the
// new epoch. A nil (or empty) commitSecret or pskSecret stands for the
// all-zero string of length Nh; initSecret must not be empty.
func Derive(s *cipher.Suite, initSecret, commitSecret, pskSecret, groupContext []byte) (*EpochSecrets, error) {
	if s == nil {
		return nil, fmt.Errorf("keyschedule: derive: nil cipher suite: %w", ErrInvalidInput)
	}
	if len(initSecret) == 0 {
		return nil, fmt.Errorf("keyschedule: derive: empty init_secret: %w", ErrInvalidInput)
	}
	nh := s.HashSize()
	if len(commitSecret) == 0 {
		commitSecret = make([]byte, nh)
	}
	pre := s.Extract(initSecret, commitSecret)
	joiner, err := s.ExpandWithLabel(pre, labelJoiner, groupContext, nh)
	zero(pre)
	if err != nil {
		return nil, fmt.Errorf("keyschedule: deriving joiner_secret: %w", err)
	}
	return FromJoiner(s, joiner, pskSecret, groupContext)
}

// FromJoiner runs the part of the key schedule (RFC 9420, Section 8) that
// starts at joiner_secret, as a new member does when processing a Welcome
// (Section 12.4.3.1):
//
//	member        = Extract(joiner_secret, psk_secret)
//	welcome_secret = DeriveSecret(member, "welcome")
//	epoch_secret  = ExpandWithLabel(member, "epoch", GroupContext_[n], Nh)
//
// and derives every epoch secret from epoch_secret. A nil (or empty)
// pskSecret stands for the all-zero string of length Nh. The returned
// JoinerSecret is a copy of joinerSecret.
func FromJoiner(s *cipher.Suite, joinerSecret, pskSecret, groupContext []byte) (*EpochSecrets, error) {
	if s == nil {
		return nil, fmt.Errorf("keyschedule: from joiner: nil cipher suite: %w", ErrInvalidInput)
	}
	if len(joinerSecret) == 0 {
		return nil, fmt.Errorf("keyschedule: from joiner: empty joiner_secret: %w", ErrInvalidInput)
	}
	nh := s.HashSize()
	if len(pskSecret) == 0 {
		pskSecret = make([]byte, nh)
	}
	e := &EpochSecrets{JoinerSecret: append([]byte(nil), joinerSecret...)}
	member := s.Extract(e.JoinerSecret, pskSecret)
	defer zero(member)

	var err error
	if e.WelcomeSecret, err = s.DeriveSecret(member, labelWelcome); err != nil {
		return nil, fmt.Errorf("keyschedule: deriving welcome_secret: %w", err)
	}
	if e.EpochSecret, err = s.ExpandWithLabel(member, labelEpoch, groupContext, nh); err != nil {
		return nil, fmt.Errorf("keyschedule: deriving epoch_secret: %w", err)
	}
	for _, d := range []struct {
		label string
		dst   *[]byte
	}{
		{labelSenderData, &e.SenderDataSecret},
		{labelEncryption, &e.EncryptionSecret},
		{labelExporter, &e.ExporterSecret},
		{labelExternal, &e.ExternalSecret},
		{labelConfirm, &e.ConfirmationKey},
		{labelMembership, &e.MembershipKey},
		{labelResumption, &e.ResumptionPSK},
		{labelAuthentication, &e.EpochAuthenticator},
		{labelInit, &e.InitSecret},
	} {
		if *d.dst, err = s.DeriveSecret(e.EpochSecret, d.label); err != nil {
			return nil, fmt.Errorf("keyschedule: deriving %q secret: %w", d.label, err)
		}
	}
	return e, nil
}

// Export is the MLS-Exporter of RFC 9420, Section 8.5:
//
//	ExpandWithLabel(DeriveSecret(exporter_secret, label), "exported",
//	                Hash(context), length)
//
// length must be between 1 and 65535 (the KDFLabel length field is a
// uint16) and within the KDF's output limit.
func (e *EpochSecrets) Export(s *cipher.Suite, label string, context []byte, length int) ([]byte, error) {
	if e == nil || len(e.ExporterSecret) == 0 {
		return nil, fmt.Errorf("keyschedule: export: no exporter_secret: %w", ErrInvalidInput)
	}
	return Export(s, e.ExporterSecret, label, context, length)
}

// Export is the MLS-Exporter of RFC 9420, Section 8.5, computed from an
// exporter_secret directly; see EpochSecrets.Export.
func Export(s *cipher.Suite, exporterSecret []byte, label string, context []byte, length int) ([]byte, error) {
	if s == nil {
		return nil, fmt.Errorf("keyschedule: export: nil cipher suite: %w", ErrInvalidInput)
	}
	if length <= 0 || length > 0xffff || length > 255*s.HashSize() {
		return nil, fmt.Errorf("keyschedule: export: length %d out of range: %w", length, ErrInvalidInput)
	}
	derived, err := s.DeriveSecret(exporterSecret, label)
	if err != nil {
		return nil, fmt.Errorf("keyschedule: export: deriving label secret: %w", err)
	}
	defer zero(derived)
	out, err := s.ExpandWithLabel(derived, labelExported, s.Hash(context), length)
	if err != nil {
		return nil, fmt.Errorf("keyschedule: export: %w", err)
	}
	return out, nil
}

// ExternalKeyPair derives the group's external HPKE key pair from
// external_secret (RFC 9420, Section 8.3):
//
//	external_priv, external_pub = KEM.DeriveKeyPair(external_secret)
func ExternalKeyPair(s *cipher.Suite, externalSecret []byte) (priv, pub []byte, err error) {
	if s == nil {
		return nil, nil, fmt.Errorf("keyschedule: external key pair: nil cipher suite: %w", ErrInvalidInput)
	}
	if len(externalSecret) == 0 {
		return nil, nil, fmt.Errorf("keyschedule: external key pair: empty external_secret: %w", ErrInvalidInput)
	}
	priv, pub, err = s.DeriveHPKEKey(externalSecret)
	if err != nil {
		return nil, nil, fmt.Errorf("keyschedule: external key pair: %w", err)
	}
	return priv, pub, nil
}

// WelcomeKeyNonce derives the AEAD key and nonce that protect a Welcome's
// encrypted GroupInfo (RFC 9420, Section 12.4.3.1):
//
//	welcome_nonce = ExpandWithLabel(welcome_secret, "nonce", "", AEAD.Nn)
//	welcome_key   = ExpandWithLabel(welcome_secret, "key", "", AEAD.Nk)
func WelcomeKeyNonce(s *cipher.Suite, welcomeSecret []byte) (key, nonce []byte, err error) {
	if s == nil {
		return nil, nil, fmt.Errorf("keyschedule: welcome key: nil cipher suite: %w", ErrInvalidInput)
	}
	if len(welcomeSecret) == 0 {
		return nil, nil, fmt.Errorf("keyschedule: welcome key: empty welcome_secret: %w", ErrInvalidInput)
	}
	return deriveKeyNonce(s, welcomeSecret, nil, "welcome")
}

// SenderDataKeyNonce derives the AEAD key and nonce that protect a
// PrivateMessage's encrypted sender data (RFC 9420, Section 6.3.2):
//
//	ciphertext_sample = ciphertext[0..KDF.Nh-1]
//	sender_data_key   = ExpandWithLabel(sender_data_secret, "key", ciphertext_sample, AEAD.Nk)
//	sender_data_nonce = ExpandWithLabel(sender_data_secret, "nonce", ciphertext_sample, AEAD.Nn)
//
// ciphertext is the PrivateMessage's content ciphertext; if it is shorter
// than Nh bytes the whole ciphertext is the sample.
func SenderDataKeyNonce(s *cipher.Suite, senderDataSecret, ciphertext []byte) (key, nonce []byte, err error) {
	if s == nil {
		return nil, nil, fmt.Errorf("keyschedule: sender data key: nil cipher suite: %w", ErrInvalidInput)
	}
	if len(senderDataSecret) == 0 {
		return nil, nil, fmt.Errorf("keyschedule: sender data key: empty sender_data_secret: %w", ErrInvalidInput)
	}
	sample := ciphertext
	if nh := s.HashSize(); len(sample) > nh {
		sample = sample[:nh]
	}
	return deriveKeyNonce(s, senderDataSecret, sample, "sender data")
}

// deriveKeyNonce derives ExpandWithLabel(secret, "key", context, Nk) and
// ExpandWithLabel(secret, "nonce", context, Nn).
func deriveKeyNonce(s *cipher.Suite, secret, context []byte, what string) (key, nonce []byte, err error) {
	key, err = s.ExpandWithLabel(secret, labelKey, context, s.AEADKeySize())
	if err != nil {
		return nil, nil, fmt.Errorf("keyschedule: deriving %s key: %w", what, err)
	}
	nonce, err = s.ExpandWithLabel(secret, labelNonce, context, s.AEADNonceSize())
	if err != nil {
		zero(key)
		return nil, nil, fmt.Errorf("keyschedule: deriving %s nonce: %w", what, err)
	}
	return key, nonce, nil
}

// Erase overwrites every secret with zeros and drops it, for the deletion
// schedule of RFC 9420, Section 9.2. It is safe on a nil receiver.
func (e *EpochSecrets) Erase() {
	if e == nil {
		return
	}
	for _, p := range []*[]byte{
		&e.JoinerSecret, &e.WelcomeSecret, &e.EpochSecret, &e.SenderDataSecret,
		&e.EncryptionSecret, &e.ExporterSecret, &e.ExternalSecret, &e.ConfirmationKey,
		&e.MembershipKey, &e.ResumptionPSK, &e.EpochAuthenticator, &e.InitSecret,
	} {
		zero(*p)
		*p = nil
	}
}

// zero overwrites b with zeros.
func zero(b []byte) { clear(b) }
