package main

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// TestSpan parses the -up and -down ranges.
func TestSpan(t *testing.T) {
	for _, tc := range []struct {
		in     string
		lo, hi time.Duration
		ok     bool
	}{
		{"1s-4s", time.Second, 4 * time.Second, true},
		{"200ms-2s", 200 * time.Millisecond, 2 * time.Second, true},
		{"3s", 3 * time.Second, 3 * time.Second, true},
		{"4s-1s", 0, 0, false},
		{"x-1s", 0, 0, false},
		{"1s-", 0, 0, false},
	} {
		lo, hi, err := span(tc.in)
		if (err == nil) != tc.ok || lo != tc.lo || hi != tc.hi {
			t.Errorf("span(%q) = %v, %v, %v", tc.in, lo, hi, err)
		}
	}
}

// TestUsage: bad flags are a usage error (2) and start nothing.
func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"-nope"}, {"-up", "5s-1s"}, {"-down", "zz"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &out, &errb); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
}
