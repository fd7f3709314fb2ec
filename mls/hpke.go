package mls

import "github.com/openmimi/mimi/mls/cipher"

// labelExternalInit is the HPKE exporter context of RFC 9420, Section 8.3.
const labelExternalInit = "MLS 1.0 external init secret"

// externalInitSend runs SetupBaseS(external_pub, "") and exports
// init_secret (RFC 9420, Section 8.3).
func externalInitSend(s *cipher.Suite, externalPub []byte) (kemOutput, initSecret []byte, err error) {
	return s.HPKEExportSend(externalPub, nil, labelExternalInit, s.HashSize())
}

// externalInitReceive runs SetupBaseR(kem_output, external_priv, "") and
// exports init_secret (RFC 9420, Section 8.3).
func externalInitReceive(s *cipher.Suite, externalPriv, kemOutput []byte) ([]byte, error) {
	return s.HPKEExportReceive(externalPriv, kemOutput, nil, labelExternalInit, s.HashSize())
}
