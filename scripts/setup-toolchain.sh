#!/usr/bin/env bash
# Install or fetch everything needed to build the test kernel and dm_rcopy.ko.
# Idempotent: every step checks for its result first. Results live in $RCOPY_CACHE.
set -euo pipefail
. "$(dirname "$0")/common.sh"

HOST_PKGS=(flex bison bc libelf-dev libssl-dev cpio xz-utils kmod qemu-system-x86
	busybox-static fio dmsetup drbd-utils iproute2 e2fsprogs util-linux procps
	iputils-ping iperf3 netcat-openbsd python3 coreutils)

mkdir -p "$TOOLS_DIR" "$DEB_DIR"

install_host_packages() {
	local missing=()
	for p in "${HOST_PKGS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing host packages: ${missing[*]}"
	local sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A private apt configuration for $BACKPORTS_SUITE, derived from the machine's own
# Debian mirror: it changes nothing system-wide.
APT_DIR=$RCOPY_CACHE/apt
apt_private() {
	apt-get -o Dir::Etc::SourceList="$APT_DIR/sources.list" -o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$APT_DIR/lists" -o Dir::Cache::archives="$DEB_DIR" \
		-o Debug::NoLocking=1 -o APT::Sandbox::User=root "$@"
}
setup_private_apt() {
	[ -s "$APT_DIR/sources.list" ] && [ -d "$APT_DIR/lists" ] && ls "$APT_DIR/lists" | grep -q Packages && return 0
	local uri
	uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
	[ -n "$uri" ] || uri=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
	[ -n "$uri" ] || die "cannot find a Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
	mkdir -p "$APT_DIR/lists/partial"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $BACKPORTS_SUITE main" >"$APT_DIR/sources.list"
	log "updating private package list for $BACKPORTS_SUITE"
	apt_private update -qq
}

# fetch_deb PKG VERSION DESTDIR: download the pinned .deb (cached) and unpack it.
fetch_deb() {
	local pkg=$1 ver=$2 dest=$3
	[ -f "$dest/.done" ] && return 0
	local file
	file=$(ls "$DEB_DIR"/"${pkg}"_*.deb 2>/dev/null | grep -F "$(echo "$ver" | sed 's/:/%3a/')" | head -1 || true)
	if [ -z "$file" ]; then
		setup_private_apt
		(cd "$DEB_DIR" && apt_private download -qq "$pkg=$ver") ||
			die "package $pkg version $ver is no longer in $BACKPORTS_SUITE: update the pin in scripts/versions.env"
		file=$(ls "$DEB_DIR"/"${pkg}"_*.deb | head -1)
	fi
	rm -rf "$dest"; mkdir -p "$dest"
	dpkg -x "$file" "$dest"
	touch "$dest/.done"
}

setup_rust_src() {
	local have
	have=$(rustc --version | awk '{print $2}')
	[ "$have" = "$RUST_VERSION" ] || die "rustc is $have but scripts/versions.env pins $RUST_VERSION (rust-src must match rustc)"
	fetch_deb "$RUST_SRC_PKG" "$RUST_SRC_PKG_VERSION" "$TOOLS_DIR/rust-src-$RUST_SRC_PKG_VERSION"
	[ -d "$RUST_LIB_SRC/core" ] || die "rust-src unpacked but $RUST_LIB_SRC/core is missing"
}

setup_bindgen() {
	[ -x "$BINDGEN_DIR/bin/bindgen" ] && return 0
	log "building bindgen-cli $BINDGEN_VERSION"
	cargo install -q bindgen-cli --version "$BINDGEN_VERSION" --locked --root "$BINDGEN_DIR"
}

setup_libclang() {
	[ -f "$LIBCLANG_PATH/libclang.so" ] && return 0
	log "fetching libclang $LIBCLANG_PYPI_VERSION wheel"
	local tmp; tmp=$(mktemp -d)
	python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "libclang==$LIBCLANG_PYPI_VERSION" ||
		die "cannot download libclang==$LIBCLANG_PYPI_VERSION from PyPI: update LIBCLANG_PYPI_VERSION in scripts/versions.env"
	local dest=$TOOLS_DIR/libclang-$LIBCLANG_PYPI_VERSION
	rm -rf "$dest"; mkdir -p "$dest"
	python3 -c 'import sys,zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$tmp"/libclang-*.whl "$dest"
	rm -rf "$tmp"
	[ -f "$LIBCLANG_PATH/libclang.so" ] || die "libclang wheel has no clang/native/libclang.so"
}

setup_kernel_source() {
	fetch_deb "$KERNEL_PKG" "$KERNEL_PKG_VERSION" "$TOOLS_DIR/$KERNEL_PKG-$KERNEL_PKG_VERSION"
}

install_host_packages
setup_rust_src
setup_libclang
setup_bindgen
setup_kernel_source
log "toolchain ready in $TOOLS_DIR"
