#!/usr/bin/env bash
# Build rust/dm_rcopy.ko. Uses KDIR if set (a built kernel tree with CONFIG_RUST=y),
# otherwise the cached test kernel (built on first use by scripts/build-kernel.sh).
# Extra arguments go to kbuild (e.g. CLIPPY=1).
set -euo pipefail
. "$(dirname "$0")/common.sh"
if [ -z "${KDIR:-}" ]; then
	KDIR=$("$RCOPY_ROOT/scripts/build-kernel.sh")
else
	[ -f "$KDIR/rust/bindings/.bindings_generated.rs.cmd" ] ||
		die "KDIR=$KDIR is not a built kernel tree with CONFIG_RUST=y (no rust/bindings/.bindings_generated.rs.cmd)"
	# Own kernel: use its bindgen if on PATH, else ours.
	command -v bindgen >/dev/null 2>&1 || "$RCOPY_ROOT/scripts/setup-toolchain.sh" >&2
fi
out=$RCOPY_ROOT/rust/dm_bindings_generated.rs
stamp=$RCOPY_ROOT/rust/.dm_bindings.kdir
if [ ! -f "$out" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$KDIR" ] ||
	[ "$RCOPY_ROOT/rust/dm_bindings.h" -nt "$out" ] ||
	[ "$KDIR/rust/bindings/bindings_generated.rs" -nt "$out" ]; then
	log "generating device-mapper bindings against $KDIR"
	"$RCOPY_ROOT/scripts/gen-dm-bindings.sh" "$KDIR" "$RCOPY_ROOT/rust/dm_bindings.h" "$out"
	echo "$KDIR" >"$stamp"
fi
make -s -C "$KDIR" M="$RCOPY_ROOT" "$@" modules >&2
echo "$RCOPY_ROOT/rust/dm_rcopy.ko"
