#!/usr/bin/env bash
# Run the VM test suite against the built module and tools.
# Usage: scripts/vmtest.sh [PATTERN]   (KDIR=<tree> to use your own kernel)
set -euo pipefail
. "$(dirname "$0")/common.sh"
KTREE=${KDIR:-$("$RCOPY_ROOT/scripts/build-kernel.sh")}
export RCOPY_KERNEL=${RCOPY_KERNEL:-$KTREE/arch/x86/boot/bzImage}
export RCOPY_MODULE=$RCOPY_ROOT/rust/dm_rcopy.ko
export RCOPYCTL=$RCOPY_ROOT/userspace-tools/target/x86_64-unknown-linux-gnu/release/rcopyctl
[ -f "$RCOPY_KERNEL" ] || die "no kernel image at $RCOPY_KERNEL"
[ -f "$RCOPY_MODULE" ] || die "no module at $RCOPY_MODULE: run 'make module'"
[ -x "$RCOPYCTL" ] || die "no rcopyctl at $RCOPYCTL: run 'make tools'"
exec "$RCOPY_ROOT/scripts/vmtests/run.sh" "$@"
