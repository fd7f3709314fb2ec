#!/usr/bin/env bash
# The long reliability run (issue #8) in one command:
#
#   bash tools/reliability/long.sh
#
# 1. the fault scenarios with real daemons, long sizes (follower outages,
#    5xx/429/slow/lost answers, hub restarts, follower storage failure,
#    KeyPackage expiry);
# 2. the crash run: SIGKILL of hub nodes of a three-node mimid cluster
#    under load, every client's inbox checked against the hub log;
# 3. the hostile-input tables at every federation endpoint;
# 4. every fuzz target for FUZZTIME.
#
# DURATION (default 10m) is the chaos load time, FUZZTIME (default 60s) the
# time per fuzz target. Each step prints its FIGURES lines; the script
# stops at the first failure. docs/reliability.md explains the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
export MLS_TEST_VECTORS="${MLS_TEST_VECTORS:-$(cd .. && pwd)/shared/mls-test-vectors}"
DURATION="${DURATION:-10m}"
FUZZTIME="${FUZZTIME:-60s}"

echo "== fault scenarios (MIMI_RELIABILITY_LONG=1)"
MIMI_RELIABILITY_LONG=1 go test ./internal/daemon/ -run 'TestFault' -count=1 -v -timeout 60m |
  grep -E '^(--- |FAIL|ok|PASS)|FIGURES'

echo "== crash run: SIGKILL of hub nodes for $DURATION"
go run ./tools/chaos -duration "$DURATION"

echo "== hostile input"
go test ./httpapi/federation/ -run 'TestHostile' -count=1 -v | grep -E '^(--- |FAIL|ok|PASS)'

echo "== fuzz targets, $FUZZTIME each"
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "-- $pkg $target"
    dir="$(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$target"
    before=$(ls "$dir" 2>/dev/null | wc -l)
    if ! out=$(go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" 2>&1); then
      after=$(ls "$dir" 2>/dev/null | wc -l)
      # Go 1.26's fuzz coordinator can report "context deadline exceeded"
      # when -fuzztime ends under CPU load (golang/go#75804, fixed in Go
      # 1.27); that is not a crash: no reproducer is written.
      if [ "$after" = "$before" ] && echo "$out" | grep -q 'context deadline exceeded'; then
        echo "$out" | grep 'elapsed' | tail -1
        echo "   (ignored: fuzztime deadline race of the Go toolchain, golang/go#75804; no reproducer written)"
        continue
      fi
      echo "$out"
      exit 1
    fi
    echo "$out" | grep 'elapsed' | tail -1
  done
done
echo "== all reliability runs passed"
