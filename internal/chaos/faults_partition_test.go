package chaos

import "testing"

// TestPartitionModes: the summary counts the partitions by mode in the
// modes' order, the cuts of a node from its Raft peers by cluster.
func TestPartitionModes(t *testing.T) {
	r := &Result{Partitions: []Partition{
		{Mode: RaftPeers, Domain: BDomain},
		{Mode: LostAnswers, Domain: CDomain},
		{Mode: RaftPeers, Domain: HubDomain},
		{Mode: BothWays, Domain: BDomain},
		{Mode: RaftPeers, Domain: HubDomain},
		{Mode: LostAnswers, Domain: BDomain},
	}}
	const want = "both-ways 1, lost-answers 2, raft-peers-a 2, raft-peers-b 1"
	if got := r.partitionModes(); got != want {
		t.Errorf("partitionModes = %q, want %q", got, want)
	}
	if got := (&Result{}).partitionModes(); got != "" {
		t.Errorf("partitionModes of no partition = %q", got)
	}
}
