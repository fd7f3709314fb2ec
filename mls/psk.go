package mls

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/openmimi/mimi/mls/framing"
	"github.com/openmimi/mimi/mls/wire"
)

// pskSecret resolves the PSKs of a commit and chains them into psk_secret
// (RFC 9420, Section 8.4). Missing PSKs fail with ErrMissingPSK.
func (g *Group) pskSecret(s *groupState, ids []wire.PreSharedKeyID) ([]byte, error) {
	ps, err := framing.PSKSecret(g.suite, ids, func(id *wire.PreSharedKeyID) ([]byte, error) {
		return lookupPSK(&g.cfg, s, id)
	})
	if err != nil {
		if errors.Is(err, framing.ErrMissingPSK) && !errors.Is(err, ErrMissingPSK) {
			return nil, fmt.Errorf("%w: %w", ErrMissingPSK, err)
		}
		return nil, err
	}
	return ps, nil
}

// lookupPSK returns the secret of one PreSharedKeyID (RFC 9420, Sections
// 8.4 and 8.6): external PSKs from cfg.ExternalPSK, resumption PSKs of this
// group from its history (s may be nil) and of other groups from
// cfg.ResumptionPSK. psk_nonce must be Nh bytes long (Section 8.4).
func lookupPSK(cfg *Config, s *groupState, id *wire.PreSharedKeyID) ([]byte, error) {
	switch id.Type {
	case wire.PSKExternal:
		if cfg.ExternalPSK == nil {
			return nil, fmt.Errorf("%w: external PSK %x and no ExternalPSK callback", ErrMissingPSK, id.PSKID)
		}
		sec, err := cfg.ExternalPSK(id.PSKID)
		if err != nil {
			return nil, fmt.Errorf("%w: external PSK %x: %w", ErrMissingPSK, id.PSKID, err)
		}
		return sec, nil
	case wire.PSKResumption:
		if s != nil && bytes.Equal(id.PSKGroupID, s.ctx.GroupID) {
			for _, r := range s.resumption {
				if r.epoch == id.PSKEpoch {
					return r.psk, nil
				}
			}
		}
		if cfg.ResumptionPSK == nil {
			return nil, fmt.Errorf("%w: resumption PSK of group %x and no ResumptionPSK callback", ErrMissingPSK, id.PSKGroupID)
		}
		sec, err := cfg.ResumptionPSK(id.PSKGroupID, id.PSKEpoch)
		if err != nil {
			return nil, fmt.Errorf("%w: resumption PSK of group %x epoch %d: %w", ErrMissingPSK, id.PSKGroupID, id.PSKEpoch, err)
		}
		return sec, nil
	}
	return nil, fmt.Errorf("%w: PSK type %d", ErrMissingPSK, id.Type)
}
