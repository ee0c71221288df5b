#!/usr/bin/env bash
# Build (or reuse) the rcopy test kernel. Prints the kernel tree's path on stdout.
# The tree is cached in $RCOPY_CACHE/kernel/<version>-<key>, where the key hashes the
# pinned versions, the config fragment and this script, so a warm run rebuilds nothing.
set -euo pipefail
. "$(dirname "$0")/common.sh"

FRAGMENT=$RCOPY_ROOT/scripts/kernel.config
key=$( (cat "$RCOPY_ROOT/scripts/versions.env" "$FRAGMENT" "$0") | sha256sum | cut -c1-12)
KTREE=$RCOPY_CACHE/kernel/linux-$KERNEL_PKG_VERSION-$key
if [ -f "$KTREE/.rcopy-built" ]; then
	echo "$KTREE"
	exit 0
fi

"$RCOPY_ROOT/scripts/setup-toolchain.sh" >&2
src_tar=$TOOLS_DIR/$KERNEL_PKG-$KERNEL_PKG_VERSION/usr/src/$KERNEL_PKG.tar.xz
[ -f "$src_tar" ] || die "kernel source tarball $src_tar missing"

log "building test kernel in $KTREE (first run only; ~10-15 min on 2 cores)"
rm -rf "$KTREE.tmp"
mkdir -p "$KTREE.tmp"
tar -xf "$src_tar" -C "$KTREE.tmp" --strip-components=1
cd "$KTREE.tmp"
jobs=$(( $(nproc) + 1 ))
make -s rustavailable >&2 || die "Rust is not available to the kernel build (see output above)"
make -s tinyconfig >&2
scripts/kconfig/merge_config.sh -m .config "$FRAGMENT" >/dev/null
make -s olddefconfig >&2
# Kconfig drops options silently when a dependency is missing: insist on what we need.
missing=$(grep -E '^CONFIG_[A-Z0-9_]+=[ym]' "$FRAGMENT" | while read -r line; do
	grep -qx "$line" .config || echo "$line"; done)
[ -z "$missing" ] || die "kernel config lost: $(echo "$missing" | tr '\n' ' ')"
make -s -j"$jobs" bzImage modules >&2
cd /
rm -rf "$KTREE"
mv "$KTREE.tmp" "$KTREE"
touch "$KTREE/.rcopy-built"
log "kernel ready: $KTREE"
echo "$KTREE"
