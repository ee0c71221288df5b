#!/usr/bin/env bash
# Repeats the crash tests of scripts/vmtests/tests/40-safety.sh (a SIGKILL of the
# primary while connected, sync and async, and during a resync, and a power loss of the
# secondary's disk),
# of 70-snapshots.sh (a secondary frozen and killed in consistency-point mode) and of
# 75-split.sh (a standalone device frozen and killed while its split copy splits)
# ROUNDS times (default 100), each round with fresh VMs, and ends with the line
# "N passed, N failed" (one count per test run). Not part of `make check`.
#
#   scripts/torture.sh                   # needs `make module tools` done
#   ROUNDS=10 scripts/torture.sh
#
# Settings: ROUNDS; TORTURE_KILLS, the kill moments per crash-test run (the tests'
# own ROUNDS, default 1); TORTURE_TESTS, the regex of tests to repeat; TORTURE_LOGS,
# where each round's full output goes (default: a new directory under /tmp); KDIR,
# KEEP_VMS as for scripts/vmtest.sh. Exit status 0 iff nothing failed.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-100}
KILLS=${TORTURE_KILLS:-1}
TESTS=${TORTURE_TESTS:-'(40-safety\.sh:test_(primary_crash_while_connected_(sync|async)|primary_crash_during_resync|secondary_power_loss)|70-snapshots\.sh:test_consistency_points_survive_a_frozen_killed_secondary|75-split\.sh:test_crash_during_splitting)$'}
LOGS=${TORTURE_LOGS:-$(mktemp -d /tmp/rcopy-torture.XXXXXX)}
mkdir -p "$LOGS"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive number" >&2; exit 2; }

passed=0 failed=0
summary() { echo "$passed passed, $failed failed"; }
trap 'echo "interrupted"; summary; exit 130' INT TERM

echo "# torture: $ROUNDS rounds of '$TESTS' ($KILLS kill moment(s) each); logs in $LOGS"
for ((i = 1; i <= ROUNDS; i++)); do
	log=$LOGS/round-$i.log
	ROUNDS=$KILLS "$ROOT/scripts/vmtest.sh" "$TESTS" >"$log" 2>&1
	p=$(grep -c '^ok ' "$log")
	f=$(grep -c '^not ok ' "$log")
	if ((p + f == 0)); then
		# the runner itself failed (no kernel, no module, ...): count it, show why
		f=1
		tail -n 20 "$log" | sed 's/^/    /'
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	grep -E '^(ok|not ok) ' "$log" | sed "s/^/round $i: /"
	if ((f > 0)); then
		# the evidence of each failure: assertion lines and checksums
		grep -E 'ASSERTION FAILED|CHECK FAILED|FAILED CHECK|FAIL:|sha256 a=|blocks of 4 KiB differ' "$log" | sed 's/^/    /' | head -n 20
	fi
	echo "# after round $i: $passed passed, $failed failed"
done
((failed == 0)) && rm -rf "$LOGS"
summary
((failed == 0))
