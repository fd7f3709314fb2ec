package treemath

import (
	"fmt"
	"testing"

	"github.com/openmimi/mimi/internal/vectors"
)

type treeMathCase struct {
	NLeaves uint32    `json:"n_leaves"`
	NNodes  uint32    `json:"n_nodes"`
	Root    uint32    `json:"root"`
	Left    []*uint32 `json:"left"`
	Right   []*uint32 `json:"right"`
	Parent  []*uint32 `json:"parent"`
	Sibling []*uint32 `json:"sibling"`
}

func opt(x NodeIndex) *uint32 {
	if x == None {
		return nil
	}
	v := uint32(x)
	return &v
}

func eq(a, b *uint32) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// TestVectorsTreeMath runs tree-math.json (RFC 9420, Appendix C).
func TestVectorsTreeMath(t *testing.T) {
	var cases []treeMathCase
	vectors.Load(t, "tree-math.json", &cases)
	tally := vectors.NewTally("vectors", "tree-math.json")
	for i, c := range cases {
		tally.Run(t, fmt.Sprintf("n%d_%d", c.NLeaves, i), func(t *testing.T) {
			if got := Width(c.NLeaves); got != c.NNodes {
				t.Fatalf("width = %d, want %d", got, c.NNodes)
			}
			if got := Root(c.NLeaves); uint32(got) != c.Root {
				t.Fatalf("root = %d, want %d", got, c.Root)
			}
			for x := NodeIndex(0); uint32(x) < c.NNodes; x++ {
				checks := []struct {
					name string
					got  NodeIndex
					want *uint32
				}{
					{"left", Left(x), c.Left[x]},
					{"right", Right(x), c.Right[x]},
					{"parent", Parent(x, c.NLeaves), c.Parent[x]},
					{"sibling", Sibling(x, c.NLeaves), c.Sibling[x]},
				}
				for _, ch := range checks {
					if !eq(opt(ch.got), ch.want) {
						t.Fatalf("%s(%d) = %v, want %v", ch.name, x, opt(ch.got), ch.want)
					}
				}
			}
		})
	}
	tally.Report(t)
}

func TestDirectPathCopath(t *testing.T) {
	// 8 leaves: leaf 0 (node 0) has direct path 1,3,7 and copath 2,5,11.
	dp := DirectPath(0, 8)
	cp := Copath(0, 8)
	if fmt.Sprint(dp) != "[1 3 7]" || fmt.Sprint(cp) != "[2 5 11]" {
		t.Fatalf("direct path %v copath %v", dp, cp)
	}
	if DirectPath(Root(8), 8) != nil {
		t.Fatal("root has a direct path")
	}
}

func TestCommonAncestor(t *testing.T) {
	tests := []struct{ x, y, want NodeIndex }{
		{0, 2, 1}, {0, 4, 3}, {0, 14, 7}, {4, 6, 5}, {2, 2, 2}, {1, 3, 3}, {8, 12, 11}, {3, 11, 7},
	}
	for _, tc := range tests {
		if got := CommonAncestor(tc.x, tc.y); got != tc.want {
			t.Errorf("CommonAncestor(%d,%d) = %d, want %d", tc.x, tc.y, got, tc.want)
		}
		if got := CommonAncestor(tc.y, tc.x); got != tc.want {
			t.Errorf("CommonAncestor(%d,%d) = %d, want %d", tc.y, tc.x, got, tc.want)
		}
	}
}
