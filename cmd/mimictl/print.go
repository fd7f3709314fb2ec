package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/openmimi/mimi/gen/mimi/admin/v1"
)

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func fmtTime(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format("2006-01-02T15:04:05.000Z")
}

func fmtDuration(d *durationpb.Duration) string {
	if d == nil {
		return "-"
	}
	return d.AsDuration().Round(time.Millisecond).String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func hexShort(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	if len(b) > 8 {
		return fmt.Sprintf("%x…", b[:8])
	}
	return fmt.Sprintf("%x", b)
}

func printRooms(w io.Writer, r *adminv1.ListRoomsResponse) error {
	tw := table(w)
	fmt.Fprintln(tw, "ROOM\tHUB\tEPOCH\tMEMBERS\tPROPOSALS\tCLOSED\tCREATED\tLAST COMMIT")
	for _, rm := range r.GetRooms() {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", rm.GetId(), rm.GetHub(), rm.GetEpoch(), rm.GetMemberClients(),
			rm.GetCachedProposals(), yesNo(rm.GetClosed()), fmtTime(rm.GetCreatedAt()), fmtTime(rm.GetLastCommitAt()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d room(s)\n", len(r.GetRooms()))
	return err
}

func printRoom(w io.Writer, r *adminv1.Room) error {
	tw := table(w)
	gi := r.GetGroupInfo()
	fmt.Fprintf(tw, "room:\t%s\n", r.GetId())
	fmt.Fprintf(tw, "hub:\t%s\n", r.GetHub())
	fmt.Fprintf(tw, "creator:\t%s\n", dash(r.GetCreator()))
	fmt.Fprintf(tw, "epoch:\t%d\n", r.GetEpoch())
	fmt.Fprintf(tw, "closed:\t%s\n", yesNo(r.GetClosed()))
	fmt.Fprintf(tw, "created:\t%s (seq %d)\n", fmtTime(r.GetCreatedAt()), r.GetCreatedSeq())
	if r.GetLastCommitSeq() != 0 {
		fmt.Fprintf(tw, "last commit:\t%s (seq %d)\n", fmtTime(r.GetLastCommitAt()), r.GetLastCommitSeq())
	} else {
		fmt.Fprintf(tw, "last commit:\t-\n")
	}
	fmt.Fprintf(tw, "group info:\t%d bytes, set at seq %d (%s), age %s\n", gi.GetSize(), gi.GetSetSeq(), fmtTime(gi.GetSetAt()), fmtDuration(gi.GetAge()))
	if gi.GetDecodeError() != "" {
		fmt.Fprintf(tw, "\tundecodable: %s\n", gi.GetDecodeError())
	} else {
		fmt.Fprintf(tw, "\tepoch %d, cipher suite %d, signer leaf %d, group id %s\n", gi.GetEpoch(), gi.GetCipherSuite(), gi.GetSigner(), hexShort(gi.GetGroupId()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if p := r.GetPolicy(); p != nil {
		fmt.Fprintf(w, "\npolicy (from %s):\n", r.GetPolicySource())
		tw = table(w)
		fmt.Fprintln(tw, "  ROLE\tPERMISSIONS")
		for _, role := range p.GetRoles() {
			fmt.Fprintf(tw, "  %s\t%s\n", role.GetName(), dash(strings.Join(role.GetPermissions(), ", ")))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "\npolicy: %d bytes (not decodable)\n", len(r.GetPolicyRaw()))
	}

	if r.GetParticipantsSource() != "" {
		fmt.Fprintf(w, "\nparticipants (from %s):\n", r.GetParticipantsSource())
		tw = table(w)
		fmt.Fprintln(tw, "  USER\tROLE")
		for _, p := range r.GetParticipants() {
			fmt.Fprintf(tw, "  %s\t%s\n", p.GetUser(), p.GetRole())
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "\nparticipants: %d bytes (not decodable)\n", len(r.GetParticipantsRaw()))
	}

	fmt.Fprintf(w, "\nmember clients (%d):\n", len(r.GetMemberClients()))
	for _, m := range r.GetMemberClients() {
		fmt.Fprintf(w, "  %s\n", m)
	}

	fmt.Fprintf(w, "\nratchet tree leaves (%d):\n", len(r.GetLeaves()))
	tw = table(w)
	fmt.Fprintln(tw, "  LEAF\tIDENTITY\tCREDENTIAL\tSIGNATURE KEY")
	for _, l := range r.GetLeaves() {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", l.GetIndex(), l.GetIdentity(), l.GetCredentialType(), hexShort(l.GetSignatureKey()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\ncached proposals (%d):\n", len(r.GetProposals()))
	if len(r.GetProposals()) > 0 {
		tw = table(w)
		fmt.Fprintln(tw, "  SEQ\tACCEPTED\tEPOCH\tTYPE\tSENDER\tREF\tSIZE")
		for _, p := range r.GetProposals() {
			fmt.Fprintf(tw, "  %d\t%s\t%d\t%s\t%s\t%s\t%d\n", p.GetSeq(), fmtTime(p.GetAcceptedAt()), p.GetEpoch(), dash(p.GetProposalType()),
				dash(p.GetSender()), hexShort(p.GetRef()), p.GetMessageSize())
		}
		return tw.Flush()
	}
	return nil
}

func printFanout(w io.Writer, r *adminv1.FanoutStatusResponse) error {
	tw := table(w)
	fmt.Fprintln(tw, "DESTINATION\tENQUEUED\tACKED\tBACKLOG\tFAILURES\tLAST ATTEMPT\tNEXT RETRY\tLAST ERROR")
	for _, d := range r.GetDestinations() {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", d.GetDestination(), d.GetEnqueued(), d.GetAcked(), d.GetBacklog(),
			d.GetConsecutiveFailures(), fmtTime(d.GetLastAttempt()), fmtTime(d.GetNextRetry()), dash(d.GetLastError()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !r.GetWorkerAttached() {
		_, err := fmt.Fprintln(w, "(no fanout worker attached: delivery attempts unknown)")
		return err
	}
	return nil
}

func okWord(ok bool) string {
	if ok {
		return "OK"
	}
	return "FAILED"
}

func printVerify(w io.Writer, r *adminv1.ReplayVerifyResponse) error {
	fmt.Fprintf(w, "audited log up to seq %d in %s\n", r.GetHeadSeq(), fmtDuration(r.GetDuration()))
	if l := r.GetLog(); l != nil {
		fmt.Fprintf(w, "log integrity: %s (%d records, %d room events)\n", okWord(l.GetOk()), l.GetRecords(), l.GetRoomEvents())
		if len(l.GetCorruptSeqs()) > 0 {
			seqs := make([]string, len(l.GetCorruptSeqs()))
			for i, s := range l.GetCorruptSeqs() {
				seqs[i] = fmt.Sprint(s)
			}
			fmt.Fprintf(w, "  corrupt seqs: %s\n", strings.Join(seqs, ", "))
		}
		for _, c := range l.GetCorruptions() {
			fmt.Fprintf(w, "  seq %d: %s: %s\n", c.GetSeq(), c.GetKind(), c.GetDetail())
		}
		if l.GetTruncated() {
			fmt.Fprintln(w, "  (more corruptions not listed)")
		}
	} else {
		fmt.Fprintln(w, "log integrity: not checked (no auditor)")
	}
	if rp := r.GetReplay(); rp.GetRan() {
		fmt.Fprintf(w, "projection replay: %s (%d events in %s; live digest %s, replayed %s)\n", okWord(rp.GetOk()), rp.GetEvents(),
			fmtDuration(rp.GetDuration()), hexShort(rp.GetLiveDigest()), hexShort(rp.GetReplayDigest()))
		if rp.GetError() != "" {
			fmt.Fprintf(w, "  %s\n", rp.GetError())
		}
	} else {
		fmt.Fprintln(w, "projection replay: skipped")
	}
	if len(r.GetRooms()) > 0 {
		fmt.Fprintln(w, "room signatures:")
		tw := table(w)
		fmt.Fprintln(tw, "  ROOM\tRESULT\tEVENTS\tSIGNATURES\tUNVERIFIABLE\tEPOCH\tFIRST FAILURE")
		for _, rv := range r.GetRooms() {
			ff := "-"
			if f := rv.GetFirstFailure(); f != nil {
				ff = fmt.Sprintf("seq %d (room seq %d, %s): %s", f.GetSeq(), f.GetRoomSeq(), dash(f.GetEventType()), f.GetError())
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%s\n", rv.GetRoom(), okWord(rv.GetOk()), rv.GetEventsChecked(), rv.GetSignaturesVerified(),
				rv.GetUnverifiable(), rv.GetEpoch(), ff)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "verify: %s\n", okWord(r.GetOk()))
	return err
}

func printCluster(w io.Writer, s *adminv1.ClusterStatus) error {
	tw := table(w)
	fmt.Fprintf(tw, "node:\t%s (%s)\n", s.GetId(), dash(s.GetAddr()))
	fmt.Fprintf(tw, "state:\t%s\n", s.GetState())
	fmt.Fprintf(tw, "term:\t%d\n", s.GetTerm())
	fmt.Fprintf(tw, "leader:\t%s (%s)\n", dash(s.GetLeaderId()), dash(s.GetLeaderAddr()))
	fmt.Fprintf(tw, "commit index:\t%d\n", s.GetCommitIndex())
	fmt.Fprintf(tw, "applied index:\t%d (state machine %d)\n", s.GetAppliedIndex(), s.GetStateMachineIndex())
	fmt.Fprintf(tw, "last log index:\t%d\n", s.GetLastLogIndex())
	fmt.Fprintf(tw, "last snapshot index:\t%d\n", s.GetLastSnapshotIndex())
	fmt.Fprintf(tw, "last contact:\t%s\n", fmtTime(s.GetLastContact()))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nnodes:")
	tw = table(w)
	fmt.Fprintln(tw, "  ID\tADDRESS\tSUFFRAGE\tLEADER")
	for _, n := range s.GetNodes() {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", n.GetId(), n.GetAddr(), n.GetSuffrage(), yesNo(n.GetLeader()))
	}
	return tw.Flush()
}
