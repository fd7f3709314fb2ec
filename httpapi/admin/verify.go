package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"connectrpc.com/connect"

	"github.com/openmimi/mimi/eventlog"
	adminv1 "github.com/openmimi/mimi/gen/mimi/admin/v1"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/publicgroup"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
)

// maxReportedCorruptions bounds the corruptions a response lists (the
// distinct sequence numbers are always all listed).
const maxReportedCorruptions = 1000

// Errors of the room re-verification, wrapped in VerificationFailure.error
// text.
var (
	// ErrNotCreated: an MLS event of a room precedes its RoomCreated.
	ErrNotCreated = errors.New("admin: MLS event before RoomCreated")
	// ErrRecreated: a room has a second RoomCreated.
	ErrRecreated = errors.New("admin: second RoomCreated")
	// ErrEpochMismatch: an event's recorded epoch is not the one the
	// re-run reaches.
	ErrEpochMismatch = errors.New("admin: recorded epoch differs from the re-run")
	// ErrRefMismatch: a ProposalAccepted records another ProposalRef than
	// its message has (RFC 9420, Section 5.2).
	ErrRefMismatch = errors.New("admin: recorded ProposalRef differs from the message's")
	// ErrTreeMismatch: a CommitAccepted records another ratchet tree than
	// the commit produces.
	ErrTreeMismatch = errors.New("admin: recorded ratchet tree differs from the re-run")
)

// ReplayVerify implements AdminService.ReplayVerify: the log integrity
// walk, the projection rebuild with digest comparison (both through the
// Auditor), and the MLS signature re-verification of every room (through
// State). Only one runs at a time; a concurrent call fails with
// connect.CodeResourceExhausted.
func (s *Service) ReplayVerify(ctx context.Context, req *connect.Request[adminv1.ReplayVerifyRequest]) (*connect.Response[adminv1.ReplayVerifyResponse], error) {
	if !s.verifyMu.TryLock() {
		return nil, connect.NewError(connect.CodeResourceExhausted, errors.New("another ReplayVerify is running"))
	}
	defer s.verifyMu.Unlock()
	start := time.Now()
	m := req.Msg
	out := &adminv1.ReplayVerifyResponse{Ok: true}

	var headSeq uint64
	if h, err := s.b.State.LogHead(); err == nil {
		headSeq = h.Seq
	}
	if s.b.Auditor != nil {
		var logRep *eventlog.Report
		if !m.GetSkipReplay() {
			rep, err := s.audit()
			if err != nil {
				return nil, internalError("audit", err)
			}
			logRep = rep.Log
			rr := &adminv1.ReplayResult{
				Ran: true, Events: rep.Replay.Events, Duration: durationOf(rep.Replay.Duration),
				LiveDigest: rep.LiveDigest, ReplayDigest: rep.ReplayDigest,
			}
			rr.Ok = rep.ReplayErr == nil && rep.LiveDigest != nil && bytes.Equal(rep.LiveDigest, rep.ReplayDigest)
			switch {
			case rep.ReplayErr != nil:
				rr.Error = rep.ReplayErr.Error()
			case !rr.Ok:
				rr.Error = "the projections rebuilt from the log differ from the live projections"
			}
			out.Replay = rr
			out.Ok = out.Ok && rr.Ok
		} else {
			rep, err := s.b.Auditor.VerifyLog()
			if err != nil {
				return nil, internalError("verify log", err)
			}
			logRep = rep
		}
		out.Log = logIntegrity(logRep)
		out.Ok = out.Ok && out.Log.Ok
		headSeq = max(headSeq, logRep.Head.Seq, logRep.Last.Seq)
	}
	out.HeadSeq = headSeq

	if !m.GetSkipSignatures() {
		rooms := m.GetRooms()
		if len(rooms) == 0 {
			var err error
			if rooms, err = s.b.State.Rooms(); err != nil {
				return nil, internalError("list rooms", err)
			}
		}
		for _, room := range rooms {
			if err := ctx.Err(); err != nil {
				return nil, connect.NewError(connect.CodeCanceled, err)
			}
			rv := verifyRoom(ctx, s.b.State, room, headSeq)
			out.Rooms = append(out.Rooms, rv)
			out.Ok = out.Ok && rv.Ok
		}
	}
	out.Duration = durationOf(time.Since(start))
	return connect.NewResponse(out), nil
}

// audit runs the Auditor in a fresh scratch directory, removed afterwards.
func (s *Service) audit() (rep *projections.AuditReport, err error) {
	dir, err := os.MkdirTemp(s.scratch, "mimi-admin-audit-")
	if err != nil {
		return nil, fmt.Errorf("scratch directory: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("remove scratch directory: %w", rerr)
		}
	}()
	r, err := s.b.Auditor.Audit(filepath.Join(dir, "replay"))
	if err != nil {
		return nil, err
	}
	if r.Log == nil {
		return nil, errors.New("audit returned no log report")
	}
	return r, nil
}

// logIntegrity converts an eventlog.Verify report.
func logIntegrity(r *eventlog.Report) *adminv1.LogIntegrity {
	out := &adminv1.LogIntegrity{Ok: r.OK(), Records: r.Records, RoomEvents: r.RoomEvents, CorruptSeqs: r.CorruptSeqs(), Truncated: r.Truncated}
	for i, c := range r.Corruptions {
		if i == maxReportedCorruptions {
			out.Truncated = true
			break
		}
		out.Corruptions = append(out.Corruptions, &adminv1.Corruption{Seq: c.Seq, Kind: c.Kind.String(), Detail: c.Detail})
	}
	return out
}

// verifyRoom re-runs a room's MLS history up to log position maxSeq.
func verifyRoom(ctx context.Context, st State, room string, maxSeq uint64) *adminv1.RoomVerification {
	c := &roomChecker{rv: &adminv1.RoomVerification{Room: room}}
	next := uint64(1)
	for c.rv.FirstFailure == nil && ctx.Err() == nil {
		evs, err := st.RoomEvents(room, next, eventsPage)
		if err != nil {
			c.rv.FirstFailure = &adminv1.VerificationFailure{RoomSeq: next, Error: fmt.Sprintf("read room event %d: %v", next, err)}
			break
		}
		done := len(evs) < eventsPage
		for i := range evs {
			ev := &evs[i]
			if ev.Seq > maxSeq {
				done = true
				break
			}
			next = ev.RoomSeq + 1
			c.rv.EventsChecked++
			if err := c.safeCheck(ev); err != nil {
				c.rv.FirstFailure = &adminv1.VerificationFailure{Seq: ev.Seq, RoomSeq: ev.RoomSeq, EventType: ev.Type().String(), Error: err.Error()}
				break
			}
		}
		if done {
			break
		}
	}
	if c.rv.FirstFailure == nil && ctx.Err() != nil {
		c.rv.FirstFailure = &adminv1.VerificationFailure{RoomSeq: next, Error: ctx.Err().Error()}
	}
	if c.rv.FirstFailure == nil && c.view == nil {
		c.rv.FirstFailure = &adminv1.VerificationFailure{Error: "no RoomCreated event"}
	}
	c.rv.Ok = c.rv.FirstFailure == nil
	return c.rv
}

// roomChecker follows one room's group with the server's public view
// (mls/publicgroup), which verifies every signature it is given.
type roomChecker struct {
	view *publicgroup.View
	rv   *adminv1.RoomVerification
}

func (c *roomChecker) needView() error {
	if c.view == nil {
		return ErrNotCreated
	}
	return nil
}

// safeCheck is check turning a panic (a bug met on corrupted input) into
// a failure of this event.
func (c *roomChecker) safeCheck(ev *eventlog.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("admin: internal error verifying this event: %v", p)
		}
	}()
	return c.check(ev)
}

// check verifies one event of the room.
func (c *roomChecker) check(ev *eventlog.Event) error {
	switch b := ev.Body.(type) {
	case *eventlog.RoomCreated:
		if c.view != nil {
			return ErrRecreated
		}
		gi, err := DecodeGroupInfo(b.GroupInfo)
		if err != nil {
			return fmt.Errorf("GroupInfo: %w", err)
		}
		rt, err := DecodeRatchetTree(b.RatchetTree)
		if err != nil {
			return fmt.Errorf("ratchet tree: %w", err)
		}
		suite, err := cipher.Lookup(gi.GroupContext.CipherSuite)
		if err != nil {
			return fmt.Errorf("GroupInfo: %w", err)
		}
		// New validates the tree against the GroupContext and verifies
		// the GroupInfo signature under the signer leaf's key (RFC 9420,
		// Sections 12.4.3 and 12.4.3.1).
		v, err := publicgroup.New(suite, gi, rt)
		if err != nil {
			return err
		}
		c.rv.SignaturesVerified++
		if v.Epoch() != b.Epoch {
			return fmt.Errorf("%w: RoomCreated records epoch %d, GroupInfo has %d", ErrEpochMismatch, b.Epoch, v.Epoch())
		}
		c.view = v
		c.rv.Epoch = v.Epoch()
	case *eventlog.ProposalAccepted:
		if err := c.needView(); err != nil {
			return err
		}
		if b.Epoch != c.view.Epoch() {
			return fmt.Errorf("%w: proposal recorded for epoch %d, group at %d", ErrEpochMismatch, b.Epoch, c.view.Epoch())
		}
		pm, err := DecodePublicMessage(b.Message)
		if err != nil {
			return err
		}
		ref, err := c.view.HandleProposal(pm) // verifies the signature (RFC 9420, Section 6.1)
		if err != nil {
			return err
		}
		c.rv.SignaturesVerified++
		if !bytes.Equal(ref, b.ProposalRef) {
			return fmt.Errorf("%w: recorded %x, message %x", ErrRefMismatch, b.ProposalRef, ref)
		}
	case *eventlog.CommitAccepted:
		if err := c.needView(); err != nil {
			return err
		}
		pm, err := DecodePublicMessage(b.Commit)
		if err != nil {
			return err
		}
		res, err := c.view.HandleCommit(pm) // verifies signature, proposals, UpdatePath
		if err != nil {
			return err
		}
		c.rv.SignaturesVerified++
		if res.Epoch != b.Epoch {
			return fmt.Errorf("%w: commit recorded for epoch %d, re-run reaches %d", ErrEpochMismatch, b.Epoch, res.Epoch)
		}
		gi, err := DecodeGroupInfo(b.GroupInfo)
		if err != nil {
			return fmt.Errorf("GroupInfo: %w", err)
		}
		if err := res.CheckGroupInfo(gi); err != nil { // RFC 9420, Section 12.4.3
			return err
		}
		c.rv.SignaturesVerified++
		if len(b.RatchetTree) > 0 {
			if err := sameTree(b.RatchetTree, res.View().RatchetTree()); err != nil {
				return err
			}
		}
		if err := c.view.Accept(res); err != nil {
			return err
		}
		c.rv.Epoch = c.view.Epoch()
	case *eventlog.ApplicationMessageAccepted:
		// A PrivateMessage: its signature is encrypted (RFC 9420, Section
		// 6.3) and only members can check it.
		if err := c.needView(); err != nil {
			return err
		}
		if b.Epoch > c.view.Epoch() {
			return fmt.Errorf("%w: message for future epoch %d, group at %d", ErrEpochMismatch, b.Epoch, c.view.Epoch())
		}
		c.rv.Unverifiable++
	}
	return nil
}

// sameTree compares a recorded ratchet tree with the re-run's by encoding.
func sameTree(recorded []byte, want wire.RatchetTree) error {
	rt, err := DecodeRatchetTree(recorded)
	if err != nil {
		return fmt.Errorf("ratchet tree: %w", err)
	}
	a, err := codec.Marshal(&rt)
	if err != nil {
		return fmt.Errorf("ratchet tree: %w", err)
	}
	b, err := codec.Marshal(&want)
	if err != nil {
		return fmt.Errorf("ratchet tree: %w", err)
	}
	if !bytes.Equal(a, b) {
		return ErrTreeMismatch
	}
	return nil
}
