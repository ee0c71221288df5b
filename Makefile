# rcopy: top-level build. `make check` runs every test; `make demo` shows rcopy working.
# Kernel module builds go through kbuild (see Kbuild); set KDIR=<built kernel tree> to
# use your own kernel instead of the cached test kernel.

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
CARGO ?= cargo
TOOLS := $(ROOT)/userspace-tools
RCOPYCTL := $(TOOLS)/target/x86_64-unknown-linux-gnu/release/rcopyctl

.PHONY: all module kernel toolchain tools check test-cargo lint lint-module vmtest demo bench torture clean

all: module tools

toolchain:
	$(ROOT)/scripts/setup-toolchain.sh

kernel:
	$(ROOT)/scripts/build-kernel.sh

module:
	$(ROOT)/scripts/build-module.sh

tools:
	cd $(TOOLS) && $(CARGO) build --release --locked

test-cargo:
	cd $(TOOLS) && $(CARGO) test --locked

lint:
	cd $(TOOLS) && $(CARGO) fmt --check && $(CARGO) clippy --locked --all-targets -- -D warnings
	rustfmt --check $(ROOT)/rust/dm_rcopy.rs

# Kernel-side clippy, with the kernel's own lint set.
lint-module:
	$(ROOT)/scripts/build-module.sh CLIPPY=1

vmtest: module tools
	$(ROOT)/scripts/vmtest.sh $(T)

check: test-cargo lint module lint-module tools
	$(ROOT)/scripts/vmtest.sh $(T)

demo: module tools
	$(ROOT)/scripts/demo.sh

# Many-round crash tests (not in CI): ROUNDS=100 by default; ends with "N passed, N failed".
torture: module tools
	$(ROOT)/scripts/torture.sh

# Side-by-side figures: raw disk, rcopy sync/async, in-tree DRBD 8.4. Fails nothing on speed.
bench: module tools
	$(ROOT)/scripts/bench.sh

clean:
	-[ -n "$(KDIR)" ] && $(MAKE) -C $(KDIR) M=$(ROOT) clean
	rm -f rust/*.o rust/*.ko rust/*.mod rust/*.mod.c rust/.*.cmd rust/modules.order \
		modules.order Module.symvers .*.cmd rust/dm_bindings_generated.rs rust/.dm_bindings.kdir
	cd $(TOOLS) && $(CARGO) clean
