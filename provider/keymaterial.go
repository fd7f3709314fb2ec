package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
)

// KeyMaterial serves POST /keyMaterial/{targetUser} from peer
// (draft-ralston-mimi-protocol-02, Section 5.2). When the target user is
// ours, it claims key material (see claim). Otherwise, when the room is
// hosted here, it relays the request to the target's provider as the
// room's hub, remembering which provider each returned KeyPackageRef came
// from so that the Welcome can be routed there (Sections 4.3.1 and 5.5).
// Anything else is ErrForbidden.
func (p *Provider) KeyMaterial(ctx context.Context, peer string, req *mimi.KeyMaterialRequest) (*mimi.KeyMaterialResponse, error) {
	target, room, err := parseKeyMaterial(req)
	if err != nil {
		return nil, err
	}
	if target.Provider == p.domain {
		if room.Provider == p.domain {
			if err := p.checkRequester(peer, req); err != nil {
				return nil, err
			}
		} else if peer != room.Provider {
			// Key material MUST be requested through the room's hub
			// (Section 5.2), or the hub could not route the Welcome.
			return nil, fmt.Errorf("%w: key material for room %s must be requested by its hub, not %s", ErrForbidden, req.RoomID, peer)
		}
		return p.claim(ctx, peer, req)
	}
	if room.Provider != p.domain {
		return nil, fmt.Errorf("%w: neither %s nor room %s is at %s", ErrForbidden, req.TargetUser, req.RoomID, p.domain)
	}
	if err := p.checkRequester(peer, req); err != nil {
		return nil, err
	}
	return p.relay(ctx, req, target.Provider)
}

// RecordClientCall records a signed call of the provider's client API in
// the replicated log until expiry (ms since the Unix epoch; see
// eventlog.ClientCallAccepted): the call is taken once by the whole
// cluster. A digest recorded already is an error wrapping
// projections.ErrReplayedCall.
func (p *Provider) RecordClientCall(ctx context.Context, digest []byte, expiry uint64) error {
	now := p.nowMillis()
	_, err := p.applyOK(ctx, &projections.Command{Ops: []projections.Op{
		projections.EventOp("", now, &eventlog.ClientCallAccepted{Digest: digest, Expiry: expiry, Now: now}),
	}})
	if err != nil {
		return fmt.Errorf("provider: record client call: %w", err)
	}
	return nil
}

// LocalKeyMaterial claims key material for a local client's user
// (draft-ralston-mimi-protocol-02, Sections 3.2 and 3.3): the requesting
// user is the client's. KeyPackages MUST be obtained through the room's
// hub (Section 5.2): if the room is hosted elsewhere the request goes to
// its hub; if it is hosted here, key material of local users is claimed
// directly and that of other providers' users fetched from them.
func (p *Provider) LocalKeyMaterial(ctx context.Context, client string, req *mimi.KeyMaterialRequest) (*mimi.KeyMaterialResponse, error) {
	c, err := p.localClient(client)
	if err != nil {
		return nil, err
	}
	r := *req
	r.RequestingUser = c.User
	if r.Protocol == 0 {
		r.Protocol = mimi.ProtocolMLS10
	}
	target, room, err := parseKeyMaterial(&r)
	if err != nil {
		return nil, err
	}
	if room.Provider != p.domain {
		rem, err := p.remoteOrErr()
		if err != nil {
			return nil, err
		}
		resp, err := rem.KeyMaterial(ctx, room.Provider, &r)
		if err != nil {
			return nil, fmt.Errorf("provider: key material via hub %s: %w", room.Provider, err)
		}
		return resp, nil
	}
	if err := p.checkRequester(p.domain, &r); err != nil {
		return nil, err
	}
	if target.Provider == p.domain {
		return p.claim(ctx, p.domain, &r)
	}
	return p.relay(ctx, &r, target.Provider)
}

func parseKeyMaterial(req *mimi.KeyMaterialRequest) (target, room mimi.URI, err error) {
	if target, err = mimi.ParseURIKind(req.TargetUser, mimi.KindUser); err != nil {
		return target, room, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if room, err = mimi.ParseURIKind(req.RoomID, mimi.KindRoom); err != nil {
		return target, room, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, err = mimi.ParseURIKind(req.RequestingUser, mimi.KindUser); err != nil {
		return target, room, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(req.AcceptableCiphersuites) == 0 {
		return target, room, fmt.Errorf("%w: no acceptable cipher suites", ErrInvalid)
	}
	return target, room, nil
}

// checkRequester applies the hub's policy to a key material request for a
// room hosted here: the requesting user belongs to the provider asking
// (a provider speaks only for its own users) and is a participant of the
// room (draft-ralston-mimi-protocol-02, Section 3.3: "Verify that Bob is
// authorized to fetch KeyPackages").
func (p *Provider) checkRequester(peer string, req *mimi.KeyMaterialRequest) error {
	if providerOf(req.RequestingUser) != peer {
		return fmt.Errorf("%w: %s may not request key material on behalf of %s", ErrForbidden, peer, req.RequestingUser)
	}
	rec, err := p.hostedRoom(req.RoomID)
	if err != nil {
		return err
	}
	rm, err := effectiveRoom(rec)
	if err != nil {
		return err
	}
	if rec.Closed || !isParticipant(rm, req.RequestingUser) {
		return fmt.Errorf("%w: %s is not a participant of %s", ErrForbidden, req.RequestingUser, req.RoomID)
	}
	return nil
}

// claimPlan is the outcome chosen for one client before the claim is
// committed.
type claimPlan struct {
	entry mimi.ClientKeyMaterial
	ref   []byte
}

// claim answers a key material request for a local target user
// (draft-ralston-mimi-protocol-02, Section 5.2). After the consent hook,
// for each registered client of the user it picks one unclaimed,
// unexpired KeyPackage whose cipher suite is acceptable (in the
// requester's order of preference) and whose capabilities satisfy the
// required capabilities; the chosen KeyPackages are claimed in one Raft
// command conditioned on each being still unclaimed and unexpired, so a
// KeyPackage is never returned twice, not even to concurrent requests (a
// lost race re-plans). The claim records KeyPackageRef -> client for
// routing the Welcome (the target route).
//
// User codes: success when every client got a KeyPackage, partialSuccess
// when some did, userUnknown when the user has no registered client, the
// consent hook's code when it refuses, and noCompatibleMaterial when no
// client got one; in that case the clients are listed with
// keyMaterialExhausted (no claimable KeyPackage at all) or
// nothingCompatible (with the capabilities of one of its KeyPackages).
func (p *Provider) claim(ctx context.Context, peer string, req *mimi.KeyMaterialRequest) (*mimi.KeyMaterialResponse, error) {
	resp := &mimi.KeyMaterialResponse{Protocol: mimi.ProtocolMLS10, UserURI: req.TargetUser}
	if p.consent != nil {
		if code := p.consent(ctx, peer, req); code != mimi.UserSuccess {
			resp.UserStatus = code
			return resp, nil
		}
	}
	clients, err := p.m.UserClients(req.TargetUser)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if len(clients) == 0 {
		resp.UserStatus = mimi.UserUnknown
		return resp, nil
	}
	for attempt := 0; attempt < p.attempts; attempt++ {
		now := p.nowMillis()
		plans, err := p.planClaims(clients, req, now)
		if err != nil {
			return nil, err
		}
		cmd := &projections.Command{}
		for _, pl := range plans {
			if pl.ref == nil {
				continue
			}
			cmd.Conditions = append(cmd.Conditions, projections.KeyPackageUnclaimed(pl.ref, now))
			cmd.Ops = append(cmd.Ops, projections.EventOp(req.RoomID, now, &eventlog.KeyPackageClaimed{
				Ref: pl.ref, Client: pl.entry.ClientURI, Claimer: req.RequestingUser,
			}))
		}
		if len(cmd.Ops) > 0 {
			res, err := p.apply(ctx, cmd)
			if err != nil {
				return nil, err
			}
			if res.Err != nil {
				if errors.Is(res.Err, projections.ErrKeyPackageClaimed) || errors.Is(res.Err, projections.ErrKeyPackageExpired) ||
					errors.Is(res.Err, projections.ErrKeyPackageUnknown) {
					continue // lost a race: plan again
				}
				return nil, fmt.Errorf("provider: claim for %s: %w", req.TargetUser, res.Err)
			}
		}
		ok := 0
		for _, pl := range plans {
			resp.Clients = append(resp.Clients, pl.entry)
			if pl.entry.Status == mimi.ClientSuccess {
				ok++
			}
		}
		switch {
		case ok == len(plans):
			resp.UserStatus = mimi.UserSuccess
		case ok > 0:
			resp.UserStatus = mimi.UserPartialSuccess
		default:
			resp.UserStatus = mimi.UserNoCompatibleMaterial
		}
		return resp, nil
	}
	return nil, fmt.Errorf("%w: key material of %s is contended", ErrUnavailable, req.TargetUser)
}

// planClaims chooses a KeyPackage for each client.
func (p *Provider) planClaims(clients []string, req *mimi.KeyMaterialRequest, now uint64) ([]claimPlan, error) {
	plans := make([]claimPlan, 0, len(clients))
	for _, c := range clients {
		avail, err := p.m.ClaimableKeyPackages(c, 0, now)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		pl := claimPlan{entry: mimi.ClientKeyMaterial{ClientURI: c, Status: mimi.ClientKeyMaterialExhausted}}
		if len(avail) > 0 {
			pl.entry.Status = mimi.ClientNothingCompatible
		}
		var firstDecoded *wire.KeyPackage
	choose:
		for _, suite := range req.AcceptableCiphersuites {
			for i := range avail {
				if avail[i].CipherSuite != uint16(suite) {
					continue
				}
				var kp wire.KeyPackage
				if err := codec.Unmarshal(avail[i].Data, "KeyPackage", &kp); err != nil {
					p.log.Warn("stored KeyPackage does not decode", "client", c, "err", err)
					continue
				}
				if compatible(&kp, &req.RequiredCapabilities) {
					pl.ref = bytes.Clone(avail[i].Ref)
					pl.entry = mimi.ClientKeyMaterial{Status: mimi.ClientSuccess, ClientURI: c, KeyPackage: &kp}
					break choose
				}
			}
		}
		if pl.ref == nil && len(avail) > 0 {
			var kp wire.KeyPackage
			if err := codec.Unmarshal(avail[0].Data, "KeyPackage", &kp); err == nil {
				firstDecoded = &kp
			}
			if firstDecoded != nil {
				caps := firstDecoded.LeafNode.Capabilities
				pl.entry.Capabilities = &caps
			}
		}
		plans = append(plans, pl)
	}
	return plans, nil
}

// relay forwards a key material request for a user of another provider,
// as the room's hub (draft-ralston-mimi-protocol-02, Sections 3.3 and
// 5.2), checks the answer and records KeyPackageRef -> provider for every
// returned KeyPackage (KeyPackageRouted, the hub route used to send the
// Welcome only where it belongs).
func (p *Provider) relay(ctx context.Context, req *mimi.KeyMaterialRequest, target string) (*mimi.KeyMaterialResponse, error) {
	rem, err := p.remoteOrErr()
	if err != nil {
		return nil, err
	}
	resp, err := rem.KeyMaterial(ctx, target, req)
	if err != nil {
		return nil, fmt.Errorf("%w: key material from %s: %w", ErrPeer, target, err)
	}
	routes, err := checkKeyMaterialResponse(req, target, resp)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrPeer, target, err)
	}
	if len(routes) > 0 {
		now := p.nowMillis()
		cmd := &projections.Command{}
		for _, ref := range routes {
			cmd.Ops = append(cmd.Ops, projections.EventOp(req.RoomID, now, &eventlog.KeyPackageRouted{Ref: ref, Provider: target, User: req.TargetUser}))
		}
		if _, err := p.applyOK(ctx, cmd); err != nil {
			return nil, fmt.Errorf("provider: recording Welcome routes: %w", err)
		}
	}
	return resp, nil
}

// checkKeyMaterialResponse validates a target provider's answer and
// returns the KeyPackageRefs it carries: the user is the one asked for,
// every KeyPackage verifies, has an acceptable suite, and belongs to the
// client it is listed under, a client of the target user at the target
// provider.
func checkKeyMaterialResponse(req *mimi.KeyMaterialRequest, target string, resp *mimi.KeyMaterialResponse) ([][]byte, error) {
	if resp.UserURI != req.TargetUser {
		return nil, fmt.Errorf("answer is about %s, not %s", resp.UserURI, req.TargetUser)
	}
	var refs [][]byte
	seen := map[string]bool{}
	for i := range resp.Clients {
		c := &resp.Clients[i]
		if providerOf(c.ClientURI) != target {
			return nil, fmt.Errorf("client %s is not at %s", c.ClientURI, target)
		}
		if c.Status != mimi.ClientSuccess {
			continue
		}
		kp := c.KeyPackage
		if !slices.Contains(req.AcceptableCiphersuites, kp.CipherSuite) {
			return nil, fmt.Errorf("client %s: unacceptable cipher suite %v", c.ClientURI, kp.CipherSuite)
		}
		s, err := cipher.Lookup(kp.CipherSuite)
		if err != nil {
			return nil, fmt.Errorf("client %s: %w", c.ClientURI, err)
		}
		if err := kp.Verify(s); err != nil {
			return nil, fmt.Errorf("client %s: %w", c.ClientURI, err)
		}
		id, err := identityOf(&kp.LeafNode.Credential)
		if err != nil {
			return nil, fmt.Errorf("client %s: %w", c.ClientURI, err)
		}
		if id.Client != c.ClientURI || id.User != req.TargetUser {
			return nil, fmt.Errorf("KeyPackage listed for %s belongs to %s (%s)", c.ClientURI, id.Client, id.User)
		}
		ref, err := kp.Ref(s)
		if err != nil {
			return nil, err
		}
		if seen[string(ref)] {
			return nil, fmt.Errorf("KeyPackage %x listed twice", ref)
		}
		seen[string(ref)] = true
		refs = append(refs, ref)
	}
	return refs, nil
}
