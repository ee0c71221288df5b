#!/usr/bin/env bash
# rcopy VM test suite runner.
#
#   scripts/vmtests/run.sh [PATTERN]
#
# Runs the test_* functions of every scripts/vmtests/tests/*.sh (in file order, then in
# definition order). PATTERN (or $VMTEST_FILTER) is an extended regex matched against
# "<file>:<function>", e.g. "harness", "00-harness.sh:test_ping$".
# Each test runs in its own bash process (with `set -eEu`: a failing command or assertion
# ends it, an unset variable is an error) under a timeout: $VMTEST_TIMEOUT (default 600 s), a file's TEST_TIMEOUT, or
# TIMEOUT_<function>. VMs a test starts are destroyed when it ends, after their consoles
# are checked with vm_check_dmesg (a kernel WARNING/Oops fails the test; a test may set
# VMTEST_NO_DMESG_CHECK=1 in its file to opt out). A file may define setup_file and
# teardown_file (run once, each in its own process); VMs started by setup_file live
# until the file is done. Only state on disk (the VMs) passes between processes.
#
# Output: "ok <file>:<func> (<secs>s)" or "not ok ..." plus the tail of the test's log
# and console excerpts, and always, as the last line, "N passed, N failed" (", N
# skipped" only if a test called vmtest_skip). Exit status 0 iff nothing failed and at
# least one test ran. Logs: $VM_RUN_DIR/logs, kept (without disk images) on failure or
# entirely with KEEP_VMS=1.
set -u

SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
HERE=$(dirname "$SELF")
TESTS_DIR=${VMTEST_DIR:-$HERE/tests}
# shellcheck source=../vm/lib.sh
. "$(cd "$HERE/../vm" && pwd)/lib.sh"

# ERR trap of a test process: name the failing line of the test file (not of lib.sh).
_vmtest_on_err() {
	[[ $BASHPID == "${_VMTEST_PID:-}" ]] || return 0
	local rc=$1 cmd=$2 i=1
	while [[ ${BASH_SOURCE[$i]:-} == */vm/lib.sh ]]; do i=$((i + 1)); done
	if ((i > 1)); then cmd="${FUNCNAME[$((i - 1))]} ..."; fi
	printf 'FAILED: exit %s at %s:%s: %s\n' "$rc" "$(basename "${BASH_SOURCE[$i]:-?}")" "${BASH_LINENO[$((i - 1))]:-?}" "$cmd" >&2
}

case ${1:-} in
--run-fn) # internal: run one function of one test file
	_VMTEST_PID=$BASHPID
	file=$2 fn=$3
	# end this test's process group if the runner disappears (SIGKILL)
	if [[ ${VM_OWNER_PID:-} =~ ^[0-9]+$ ]]; then
		read -r -a _st </proc/$$/stat
		(
			exec </dev/null >/dev/null 2>&1
			while kill -0 "$VM_OWNER_PID"; do sleep 2; done
			kill -TERM -- "-${_st[4]}"
		) &
	fi
	# shellcheck disable=SC1090
	. "$file" || { echo "cannot source $file" >&2; exit 1; }
	set -eEu
	trap '_vmtest_on_err $? "$BASH_COMMAND"' ERR
	"$fn"
	exit 0
	;;
--list) # internal: "function timeout" per test, in definition order
	# shellcheck disable=SC1090
	. "$2" >&2 || exit 1
	shopt -s extdebug
	default=${TEST_TIMEOUT:-${VMTEST_TIMEOUT:-600}}
	echo ".nodmesg ${VMTEST_NO_DMESG_CHECK:-0}"
	echo ".dmesg_ignore ${VM_DMESG_IGNORE:-}"
	for f in $(compgen -A function); do
		[[ $f == test_* || $f == setup_file || $f == teardown_file ]] || continue
		read -r _ line src < <(declare -F "$f")
		[[ $src == "$2" ]] || continue
		v=TIMEOUT_$f
		printf '%s %s %s\n' "$line" "$f" "${!v:-$default}"
	done | sort -n | cut -d' ' -f2-
	exit 0
	;;
esac

pattern=${1:-${VMTEST_FILTER:-}}
TAIL=${VMTEST_TAIL:-40}
passed=0 failed=0 skipped=0 ran=0

summary() {
	local s="$passed passed, $failed failed"
	((skipped == 0)) || s+=", $skipped skipped"
	printf '%s\n' "$s"
}

VM_TRACE=0 # the runner's own VM housekeeping stays quiet
VM_RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/rcopy-vmtest.XXXXXX") || { echo "cannot make a run dir"; echo "0 passed, 1 failed"; exit 1; }
export VM_RUN_DIR
# VMs die with this process even if it is killed with SIGKILL (lib.sh's watchdog)
export VM_OWNER_PID=$$
vm_setup_run_dir "$VM_RUN_DIR"
LOGS=$VM_RUN_DIR/logs
mkdir -p "$LOGS"

finish() {
	vm_cleanup_all >/dev/null 2>&1
	if [[ ${KEEP_VMS:-0} == 1 ]]; then
		echo "# run dir kept: $VM_RUN_DIR"
	elif ((failed > 0)); then
		find "$VM_RUN_DIR" -name '*.raw' -delete 2>/dev/null
		echo "# logs kept: $LOGS"
	else
		rm -rf "$VM_RUN_DIR"
	fi
}
TEST_PID=
interrupted() {
	trap - INT TERM
	# the running test's timeout(1) forwards this to the test's process group
	[[ -z $TEST_PID ]] || kill -TERM "$TEST_PID" 2>/dev/null
	echo "not ok interrupted"
	failed=$((failed + 1))
	finish
	summary
	exit 130
}
trap interrupted INT TERM

# ---------------------------------------------------------------- prerequisites
prereq_fail() {
	echo "not ok prerequisites: $*"
	failed=1
	finish
	summary
	exit 1
}
command -v "$VM_QEMU" >/dev/null || prereq_fail "$VM_QEMU not found"
command -v python3 >/dev/null || prereq_fail "python3 not found"
_vm_kernel >&2 || prereq_fail "no test kernel (see the message above)"
echo "# kernel: $RCOPY_KERNEL"
echo "# run dir: $VM_RUN_DIR"

# ---------------------------------------------------------------- running
# console_excerpts LOGPREFIX: for each saved console of a test: bad lines, then the tail
console_excerpts() {
	local c
	for c in "$1".*.console*.log; do
		[[ -f $c ]] || continue
		echo "    --- ${c##*/}: kernel problems ---"
		grep -naE -- "$VM_DMESG_BAD" "$c" | head -n 20 | sed 's/^/    /'
		echo "    --- ${c##*/}: last 15 lines ---"
		tail -n 15 "$c" | sed 's/^/    /'
	done
}

# run_fn FILE FUNC TIMEOUT [KEEP]: run one function in its own process; sets RESULT
# (ok/fail/skip/timeout), SECS; destroys the VMs it started, saving their consoles
# (with KEEP=1, only if it failed: setup_file).
run_fn() {
	local file=$1 fn=$2 t=$3 keep=${4:-0} base
	base=$(basename "$file")
	local log=$LOGS/$base/$fn.log
	mkdir -p "$LOGS/$base"
	local -A before=()
	local v
	for v in $(vm_list); do before[$v]=1; done
	local t0=$EPOCHREALTIME rc=0
	# in the background: `wait` lets the INT/TERM trap run at once
	VM_TRACE=1 timeout -k 15 "$t" bash "$SELF" --run-fn "$file" "$fn" </dev/null >"$log" 2>&1 &
	TEST_PID=$!
	wait "$TEST_PID" || rc=$?
	TEST_PID=
	SECS=$(((${EPOCHREALTIME/./} - ${t0/./} + 500000) / 1000000))
	local elapsed_us=$((${EPOCHREALTIME/./} - ${t0/./}))
	if ((rc == 124 || rc == 137)) && ((elapsed_us >= t * 1000000)); then
		RESULT=timeout
		echo "TIMEOUT: $fn did not finish within ${t}s" >>"$log"
	elif ((rc == 77)); then
		RESULT=skip
	elif ((rc == 0)); then
		RESULT=ok
	else
		RESULT=fail
	fi
	for v in $(vm_list); do
		[[ -z ${before[$v]:-} ]] || continue
		if [[ $keep == 1 && $RESULT == ok ]]; then continue; fi
		if [[ $nodmesg != 1 && $RESULT != skip ]]; then
			if ! vm_check_dmesg "$v" >>"$log" 2>&1; then
				[[ $RESULT != ok ]] || RESULT=fail
				echo "FAILED: kernel problems in the console of VM $v (see above)" >>"$log"
			fi
		fi
		save_consoles "$v" "$LOGS/$base/$fn"
		vm_destroy "$v" >>"$log" 2>&1
	done
}

save_consoles() {
	local c
	while read -r c; do
		cp "$c" "$2.$1.${c##*/}"
	done < <(_vm_consoles "$1")
}

report() { # report ID LOGPREFIX
	local id=$1 prefix=$2
	case $RESULT in
	ok)
		passed=$((passed + 1))
		echo "ok $id (${SECS}s)"
		;;
	skip)
		skipped=$((skipped + 1))
		echo "skip $id (${SECS}s): $(grep -m1 '^SKIP: ' "$prefix.log" | cut -c7-)"
		;;
	*)
		failed=$((failed + 1))
		if [[ $RESULT == timeout ]]; then
			echo "not ok $id (${SECS}s) - timed out"
		else
			echo "not ok $id (${SECS}s)"
		fi
		echo "    --- log: $prefix.log (last $TAIL lines) ---"
		tail -n "$TAIL" "$prefix.log" | sed 's/^/    /'
		console_excerpts "$prefix"
		;;
	esac
}

_VM_DMESG_IGNORE0=$VM_DMESG_IGNORE
shopt -s nullglob
files=("$TESTS_DIR"/*.sh)
((${#files[@]})) || echo "# no test files in $TESTS_DIR"
for file in "${files[@]}"; do
	base=$(basename "$file")
	mkdir -p "$LOGS/$base"
	if ! listing=$(bash "$SELF" --list "$file" 2>"$LOGS/$base/load.log"); then
		# with a PATTERN, report only files whose name it matches
		[[ -z $pattern || $base =~ $pattern ]] || continue
		ran=$((ran + 1))
		failed=$((failed + 1))
		echo "not ok $base:load - cannot source the file"
		sed 's/^/    /' "$LOGS/$base/load.log" | tail -n "$TAIL"
		continue
	fi
	has_setup=0 has_teardown=0 nodmesg=0 VM_DMESG_IGNORE=${_VM_DMESG_IGNORE0-}
	tests=()
	while read -r fn t; do
		[[ -n $fn ]] || continue
		case $fn in
		.nodmesg) nodmesg=$t ;;
		.dmesg_ignore) VM_DMESG_IGNORE=$t ;;
		setup_file) has_setup=1 setup_t=$t ;;
		teardown_file) has_teardown=1 teardown_t=$t ;;
		*) if [[ -z $pattern || "$base:$fn" =~ $pattern ]]; then tests+=("$fn $t"); fi ;;
		esac
	done <<<"$listing"
	((${#tests[@]})) || continue

	setup_ok=1
	if ((has_setup)); then
		run_fn "$file" setup_file "$setup_t" 1
		if [[ $RESULT != ok ]]; then
			setup_ok=0
			# its VMs were destroyed by run_fn as "new"; report the failure
			report "$base:setup_file" "$LOGS/$base/setup_file"
		fi
	fi
	# VMs alive now belong to the file (setup_file): keep them across its tests
	for spec in "${tests[@]}"; do
		read -r fn t <<<"$spec"
		ran=$((ran + 1))
		if ((!setup_ok)); then
			failed=$((failed + 1))
			echo "not ok $base:$fn - setup_file failed"
			continue
		fi
		run_fn "$file" "$fn" "$t"
		report "$base:$fn" "$LOGS/$base/$fn"
	done
	if ((setup_ok)); then
		file_vms=$(vm_list)
		RESULT=ok
		if ((has_teardown)); then
			# teardown_file sees the file's VMs; run_fn destroys only VMs it starts itself
			run_fn "$file" teardown_file "$teardown_t"
		fi
		for v in $file_vms; do
			if [[ $nodmesg != 1 ]] && ! vm_check_dmesg "$v" >>"$LOGS/$base/teardown_file.log" 2>&1; then
				RESULT=fail
			fi
			save_consoles "$v" "$LOGS/$base/teardown_file"
			vm_destroy "$v" >/dev/null 2>&1
		done
		if [[ $RESULT != ok ]]; then
			report "$base:teardown_file" "$LOGS/$base/teardown_file"
		fi
	fi
done

((ran > 0)) || echo "# no tests matched${pattern:+ '$pattern'}"
finish
summary
((failed == 0 && ran > 0))
