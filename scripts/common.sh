# Shared settings for rcopy scripts. Source it; it sets no shell options.
RCOPY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=versions.env
. "$RCOPY_ROOT/scripts/versions.env"
# Everything fetched or built outside the clone lives here.
RCOPY_CACHE=${RCOPY_CACHE:-/var/cache/rcopy}
TOOLS_DIR=$RCOPY_CACHE/tools
DEB_DIR=$RCOPY_CACHE/debs
RUST_LIB_SRC=$TOOLS_DIR/rust-src-$RUST_SRC_PKG_VERSION/usr/src/rustc-$RUST_VERSION/library
LIBCLANG_PATH=$TOOLS_DIR/libclang-$LIBCLANG_PYPI_VERSION/libclang-$LIBCLANG_PYPI_VERSION.data/platlib/clang/native
BINDGEN_DIR=$TOOLS_DIR/bindgen-$BINDGEN_VERSION
export RCOPY_CACHE RUST_LIB_SRC LIBCLANG_PATH
export PATH=$BINDGEN_DIR/bin:$PATH

log() { printf '[rcopy] %s\n' "$*" >&2; }
die() { printf '[rcopy] error: %s\n' "$*" >&2; exit 1; }
