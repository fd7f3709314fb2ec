package clientapi

import (
	"container/heap"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/openmimi/mimi/client/remote/clientauth"
	"github.com/openmimi/mimi/gen/mimi/client/v1/clientv1connect"
	"github.com/openmimi/mimi/projections"
)

// Authentication failures of the client API (draft-ralston-mimi-protocol-02,
// Section 3 leaves client authentication to providers; the scheme is
// package clientauth's, RFC 9420 Section 5.1.2 signatures). They are
// wrapped in connect.CodeUnauthenticated errors (ErrReplayCacheFull in
// CodeUnavailable) and logged; match them with errors.Is.
var (
	// ErrStale: the call's timestamp is outside the clock skew window.
	ErrStale = errors.New("clientapi: timestamp outside the clock skew window")
	// ErrReplay: the same signed call was already accepted within the
	// window.
	ErrReplay = errors.New("clientapi: replayed call")
	// ErrReplayCacheFull: the replay cache holds Config.ReplayCacheSize
	// live entries; the call is refused (Unavailable) rather than risking
	// a replay.
	ErrReplayCacheFull = errors.New("clientapi: replay cache full")
	// ErrUnregistered: the client named in the header is not registered
	// here.
	ErrUnregistered = errors.New("clientapi: client not registered")
	// ErrNoTLS: the request did not arrive over TLS.
	ErrNoTLS = errors.New("clientapi: the client API requires TLS")
)

// precheck runs before the request body is read: TLS, a well-formed
// Mimi-Client-Auth header with a fresh timestamp, and (except for
// RegisterClient) a registered client.
func (s *Service) precheck(next http.Handler) http.Handler {
	ew := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := s.precheckRequest(r)
		if err != nil {
			s.log.Debug("clientapi: refused before reading the request", "peer", r.RemoteAddr, "path", r.URL.Path, "err", err)
			_ = ew.Write(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Service) precheckRequest(r *http.Request) error {
	if r.TLS == nil && !s.cfg.AllowPlaintext {
		return connect.NewError(connect.CodeUnauthenticated, ErrNoTLS)
	}
	vals := r.Header.Values(clientauth.HeaderName)
	if len(vals) != 1 {
		return connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: want exactly one header field, got %d", clientauth.ErrMalformed, len(vals)))
	}
	a, err := clientauth.Parse(vals[0])
	if err != nil {
		return connect.NewError(connect.CodeUnauthenticated, err)
	}
	if err := s.fresh(a.Timestamp); err != nil {
		return err
	}
	if strings.HasSuffix(r.URL.Path, clientv1connect.ClientServiceRegisterClientProcedure) {
		return nil
	}
	_, err = s.registered(a.Client)
	return err
}

// fresh checks a timestamp against the clock skew window.
func (s *Service) fresh(ts uint64) error {
	now := s.cfg.Clock()
	t := time.UnixMilli(int64(min(ts, 1<<62)))
	if d := now.Sub(t); d > s.cfg.MaxClockSkew || d < -s.cfg.MaxClockSkew {
		return connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: %s off the provider's clock (window ±%s)", ErrStale, d.Round(time.Millisecond), s.cfg.MaxClockSkew))
	}
	return nil
}

// registered returns the registration record of a client.
func (s *Service) registered(clientURI string) (*projections.Client, error) {
	rec, err := s.p.Machine().Client(clientURI)
	switch {
	case errors.Is(err, projections.ErrUnknownClient):
		return nil, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: %s", ErrUnregistered, clientURI))
	case err != nil:
		s.log.Error("clientapi: reading a client record", "client", clientURI, "err", err)
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("client records unavailable"))
	}
	return rec, nil
}

// verify checks the header of a call against the signature key pub
// (RFC 9420, Section 5.1.2, VerifyWithLabel), the timestamp window and the
// replay cache. It is the complete check; precheck only avoids reading
// bodies of hopeless calls.
func (s *Service) verify(procedure string, h http.Header, msg proto.Message, pub func(a *clientauth.Auth) ([]byte, error)) (*clientauth.Auth, acceptedCall, error) {
	vals := h.Values(clientauth.HeaderName)
	if len(vals) != 1 {
		return nil, acceptedCall{}, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: want exactly one header field, got %d", clientauth.ErrMalformed, len(vals)))
	}
	a, err := clientauth.Parse(vals[0])
	if err != nil {
		return nil, acceptedCall{}, connect.NewError(connect.CodeUnauthenticated, err)
	}
	if err := s.fresh(a.Timestamp); err != nil {
		return nil, acceptedCall{}, err
	}
	if len(msg.ProtoReflect().GetUnknown()) > 0 {
		return nil, acceptedCall{}, connect.NewError(connect.CodeInvalidArgument, errors.New("the request has unknown fields"))
	}
	key, err := pub(a)
	if err != nil {
		return nil, acceptedCall{}, err
	}
	reqBytes, err := clientauth.RequestBytes(msg)
	if err != nil {
		return nil, acceptedCall{}, connect.NewError(connect.CodeInvalidArgument, err)
	}
	d, err := a.Verify(key, procedure, reqBytes)
	if err != nil {
		return nil, acceptedCall{}, connect.NewError(connect.CodeUnauthenticated, err)
	}
	expiry := a.Timestamp + uint64(s.cfg.MaxClockSkew.Milliseconds()) + 1
	switch err := s.replay.add(d, expiry, uint64(s.cfg.Clock().UnixMilli())); {
	case errors.Is(err, ErrReplayCacheFull):
		s.log.Warn("clientapi: replay cache full", "size", s.cfg.ReplayCacheSize)
		return nil, acceptedCall{}, connect.NewError(connect.CodeUnavailable, err)
	case err != nil:
		return nil, acceptedCall{}, connect.NewError(connect.CodeUnauthenticated, err)
	}
	return a, acceptedCall{digest: d, expiry: expiry}, nil
}

// acceptedCall is a verified call: the digest of its signed content and
// the end of its validity window (ms since the Unix epoch).
type acceptedCall struct {
	digest []byte
	expiry uint64
}

// authenticate authenticates a call of a registered client and returns its
// registration record.
func (s *Service) authenticate(spec connect.Spec, h http.Header, msg proto.Message) (*projections.Client, error) {
	rec, _, err := s.authenticateCall(spec, h, msg)
	return rec, err
}

// authenticateCall is authenticate that also returns the accepted call.
func (s *Service) authenticateCall(spec connect.Spec, h http.Header, msg proto.Message) (*projections.Client, acceptedCall, error) {
	var rec *projections.Client
	_, call, err := s.verify(spec.Procedure, h, msg, func(a *clientauth.Auth) ([]byte, error) {
		r, err := s.registered(a.Client)
		if err != nil {
			return nil, err
		}
		rec = r
		return r.SignatureKey, nil
	})
	if err != nil {
		s.log.Debug("clientapi: unauthenticated call", "procedure", spec.Procedure, "err", err)
		return nil, acceptedCall{}, err
	}
	return rec, call, nil
}

// replayCache remembers the digests of accepted calls until their
// timestamps leave the skew window.
type replayCache struct {
	mu   sync.Mutex
	max  int
	seen map[string]uint64 // digest -> expiry (ms)
	exp  expiryHeap
}

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, seen: map[string]uint64{}}
}

// add records digest until expiry, failing with ErrReplay if it is known
// and with ErrReplayCacheFull if the cache is full of live entries.
func (c *replayCache) add(digest []byte, expiry, now uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.exp) > 0 && c.exp[0].expiry <= now {
		e := heap.Pop(&c.exp).(expiryEntry)
		if c.seen[e.key] == e.expiry {
			delete(c.seen, e.key)
		}
	}
	k := string(digest)
	if _, ok := c.seen[k]; ok {
		return ErrReplay
	}
	if len(c.seen) >= c.max {
		return ErrReplayCacheFull
	}
	c.seen[k] = expiry
	heap.Push(&c.exp, expiryEntry{key: k, expiry: expiry})
	return nil
}

// len returns the number of remembered digests.
func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

type expiryEntry struct {
	key    string
	expiry uint64
}

// expiryHeap is a min-heap by expiry (container/heap).
type expiryHeap []expiryEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expiry < h[j].expiry }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
