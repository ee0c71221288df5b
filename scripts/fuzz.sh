#!/usr/bin/env bash
# `make fuzz`: coverage-guided fuzzing (libFuzzer) of rcopy's pure core, with the
# machine's stable toolchain: the frame decoder, the handshake decision and the
# on-disk decoders (superblock, activity log, snapshot store, split copy). See Documentation/rcopy-fuzzing.rst.
#
#   scripts/fuzz.sh            # full: FUZZ_RUNS executions per target (>= 10^7 in all),
#                              # then the new inputs are merged into the committed
#                              # corpus and the corpus is minimised
#   scripts/fuzz.sh --short    # the CI pass in `make check`: FUZZ_SECONDS per target,
#                              # the committed corpus read only
#   scripts/fuzz.sh --short frame    # only the named targets
#
# Settings: FUZZ_RUNS ("frame=N handshake=N ..." overrides the full run's counts),
# FUZZ_SECONDS (short pass, per target, default 15), FUZZ_JOBS (targets run at once,
# default: the number of cores), FUZZ_OUT (logs and crash inputs; default a new
# directory under /tmp). The fuzz crate (userspace-tools/fuzz) is built with the
# sanitizer-coverage passes that cargo fuzz uses, through stable -C flags: no
# nightly, no cargo-fuzz. Exit status non-zero on any crash (a panic, an assertion
# of the harness, a timeout or an out-of-memory); the crash input is printed in hex
# and kept under FUZZ_OUT.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CRATE=$ROOT/userspace-tools/fuzz
CORPUS=$CRATE/corpus
TARGET=x86_64-unknown-linux-gnu
BIN=$CRATE/target/$TARGET/release
ALL_TARGETS=(frame handshake superblock activity snapstore split)
# Full-run executions per target (30 million in all): the fast decoders get more (300k
# to 580k execs/s each here), the 4 KiB-block ones fewer (10k to 40k execs/s).
declare -A RUNS=([frame]=10000000 [handshake]=10000000 [superblock]=3000000 [activity]=3000000 [snapstore]=2000000 [split]=2000000)
declare -A MAXLEN=([frame]=8192 [handshake]=512 [superblock]=4096 [activity]=8192 [snapstore]=8192 [split]=8192)
MIN_TOTAL=10000000

mode=full
if [[ ${1:-} == --short ]]; then
	mode=short
	shift
fi
targets=("$@")
((${#targets[@]})) || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
	[[ -v "MAXLEN[$t]" ]] || { echo "fuzz: unknown target '$t' (${ALL_TARGETS[*]})" >&2; exit 2; }
done
for kv in ${FUZZ_RUNS:-}; do
	RUNS[${kv%%=*}]=${kv#*=}
done
SECONDS_PER=${FUZZ_SECONDS:-15}
JOBS=${FUZZ_JOBS:-$(nproc)}
OUT=${FUZZ_OUT:-$(mktemp -d /tmp/rcopy-fuzz.XXXXXX)}
mkdir -p "$OUT"

log() { printf '[fuzz] %s\n' "$*" >&2; }

# The same instrumentation as cargo fuzz (minus AddressSanitizer, which needs a
# nightly -Z flag; the core is #![forbid(unsafe_code)]), with overflow checks and
# debug assertions from the crate's release profile.
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cllvm-args=-sanitizer-coverage-stack-depth \
 --cfg fuzzing"
unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS

start=$(date +%s)
# libfuzzer-sys compiles libFuzzer (C++) with the cc crate.
if ! command -v c++ >/dev/null; then
	log "installing g++ (libFuzzer is C++)"
	sudo=
	[[ $(id -u) -eq 0 ]] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends g++ >/dev/null
fi
log "building the fuzz targets (userspace-tools/fuzz)"
# --target keeps the instrumentation off build scripts and the C++ of libFuzzer.
cargo build --manifest-path "$CRATE/Cargo.toml" --locked --release --features libfuzzer \
	--target "$TARGET" --target-dir "$CRATE/target" --bins
log "replaying the corpus and the regression inputs (cargo test)"
RUSTFLAGS='' cargo test --manifest-path "$CRATE/Cargo.toml" --locked --target-dir "$CRATE/target" -q
log "built and replayed in $(($(date +%s) - start)) s"

# Runs one target; its libFuzzer output goes to $OUT/<target>.log.
run_one() {
	local t=$1 work=$OUT/work/$1 budget
	rm -rf "$work"
	mkdir -p "$work" "$OUT/crashes/$t"
	if [[ $mode == short ]]; then
		budget=(-max_total_time="$SECONDS_PER")
	else
		budget=(-runs="${RUNS[$t]}")
	fi
	# The first directory receives new inputs; the committed corpus is only read.
	"$BIN/$t" "$work" "$CORPUS/$t" "${budget[@]}" -max_len="${MAXLEN[$t]}" \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$OUT/crashes/$t/" >"$OUT/$t.log" 2>&1
}

# The figures of a finished run, from libFuzzer's final stats.
summary() {
	local t=$1 f=$OUT/$1.log execs rate secs last
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$f")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$f")
	last=$(grep -E '^#[0-9]+' "$f" | tail -n 1)
	secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$f")
	printf '%-10s %10s execs %5ss %8s execs/s  %s\n' "$t" "${execs:-?}" "${secs:-?}" "${rate:-?}" \
		"$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' <<<"$last")"
}

log "fuzzing (${mode}: ${targets[*]}; $JOBS at a time; logs in $OUT)"
# Each target writes its exit status to $OUT/<target>.rc when it ends.
declare -A status
pending=("${targets[@]}")
running=0
rm -f "$OUT"/*.rc
while ((${#pending[@]} || running)); do
	while ((${#pending[@]})) && ((running < JOBS)); do
		t=${pending[0]}
		pending=("${pending[@]:1}")
		{ run_one "$t" && rc=0 || rc=$?; echo "$rc" >"$OUT/$t.rc"; } &
		running=$((running + 1))
	done
	wait -n || true
	running=0
	for t in "${targets[@]}"; do
		[[ -v "status[$t]" ]] && continue
		if [[ -s $OUT/$t.rc ]]; then
			status[$t]=$(<"$OUT/$t.rc")
		elif ! [[ " ${pending[*]} " == *" $t "* ]]; then
			running=$((running + 1))
		fi
	done
done
wait

failed=0 total=0
for t in "${targets[@]}"; do
	summary "$t"
	n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$t.log")
	total=$((total + ${n:-0}))
	if ((status[$t] != 0)); then
		failed=1
		echo "FUZZ CRASH in target '$t' (libFuzzer exit ${status[$t]}); end of its log:"
		{
			grep -A 3 -m 1 'panicked at' "$OUT/$t.log" || true
			sed -n '/ERROR: libFuzzer/,$p' "$OUT/$t.log" | grep -v '^stat::'
		} | sed 's/^/    /'
		for c in "$OUT/crashes/$t"/*; do
			[[ -f $c ]] || continue
			echo "  input $c ($(stat -c %s "$c") bytes), hex:"
			od -An -tx1 -v "$c" | tr -d ' \n' | fold -w 128 | sed 's/^/    /'
			echo
		done
		echo "  reproduce: $BIN/$t <input>; keep it as userspace-tools/fuzz/regressions/$t/<name>"
	fi
done
echo "fuzz: $total executions in all, $(($(date +%s) - start)) s (build included)"
((failed == 0)) || { echo "fuzz: FAILED" >&2; exit 1; }

if [[ $mode == full ]]; then
	if ((${#targets[@]} == ${#ALL_TARGETS[@]} && total < MIN_TOTAL)); then
		echo "fuzz: only $total executions, fewer than $MIN_TOTAL" >&2
		exit 1
	fi
	# Keep the corpus minimal: the seeds stay by name; of everything else (the
	# committed inputs and this run's), libFuzzer's merge keeps the smallest set
	# that covers the same features, beyond what the seeds already cover.
	rm -rf "$OUT/corpus.before"
	cp -a "$CORPUS" "$OUT/corpus.before"
	for t in "${targets[@]}"; do
		m=$OUT/merge/$t
		rm -rf "$m"
		mkdir -p "$m/seeds" "$m/min"
		cp "$CORPUS/$t"/seed-* "$m/seeds/" 2>/dev/null || true
		"$BIN/$t" -merge=1 -max_len="${MAXLEN[$t]}" "$m/seeds" "$CORPUS/$t" "$OUT/work/$t" \
			>"$OUT/$t.merge.log" 2>&1
		# $m/seeds now also holds the inputs that add features; move those aside.
		for f in "$m/seeds"/*; do
			[[ $(basename "$f") == seed-* ]] || mv "$f" "$m/min/"
		done
		find "$CORPUS/$t" -type f ! -name 'seed-*' -delete
		cp "$m/min"/* "$CORPUS/$t/" 2>/dev/null || true
	done
	# Some outcomes (an error value, not a branch) are no feature of libFuzzer's:
	# if the minimised corpus lost one (tests/reach.rs), keep the old corpus and
	# only add this run's new inputs to it.
	if ! RUSTFLAGS='' cargo test --manifest-path "$CRATE/Cargo.toml" --locked \
		--target-dir "$CRATE/target" -q --test reach >"$OUT/reach.log" 2>&1; then
		log "the minimised corpus lost an outcome (see $OUT/reach.log): adding to the old one instead"
		rm -rf "$CORPUS"
		cp -a "$OUT/corpus.before" "$CORPUS"
		for t in "${targets[@]}"; do
			"$BIN/$t" -merge=1 -max_len="${MAXLEN[$t]}" "$CORPUS/$t" "$OUT/work/$t" \
				>"$OUT/$t.merge.log" 2>&1
		done
	fi
	for t in "${targets[@]}"; do
		log "$t: corpus $(find "$CORPUS/$t" -type f | wc -l) files, $(cat "$CORPUS/$t"/* | wc -c) bytes"
	done
	size=$(find "$CORPUS" -type f -exec cat {} + | wc -c)
	((size < 2 << 20)) || log "warning: the corpus is $size bytes, over the 2 MiB it should stay under"
	log "corpus updated in userspace-tools/fuzz/corpus; commit it if it changed"
fi
