#!/bin/sh
# Post-build step shared by the boards (called from board/<board>/post-build.sh):
#   install-board-files.sh TARGET_DIR BOARD_DIR
# The board's factory configuration (BOARD_DIR/data: /etc/ha.d and an empty /var/lib/hanode) goes
# into the system part too, so S10data can initialise a blank or missing data partition from it;
# and /etc/modules.order for S05modules: the board's module list (BOARD_DIR/modules, if any) with each
# module's dependencies first, as modprobe resolves them against the target's own modules.dep.
# Modules built into the kernel (Buildroot's kernel config may do that) are simply skipped.
set -eu
TARGET=$1
BOARD_DIR=$2
rm -rf "$TARGET/usr/share/hanode/factory"
mkdir -p "$TARGET/usr/share/hanode"
cp -a "$BOARD_DIR/data" "$TARGET/usr/share/hanode/factory"
# the board's authkeys is a template without a key: the pair's file comes from image/build
: "${HANODE_AUTHKEYS:?set by image/build: the pair's authkeys (the board's holds no key)}"
# Heartbeat (and hanode) refuse an authkeys readable by others: git does not keep modes
install -m 600 "$HANODE_AUTHKEYS" "$TARGET/usr/share/hanode/factory/etc/ha.d/authkeys"

# "name param=value ..." lines of the list become /etc/modules.options (S05modules passes them).
# A board whose kernel has every driver built in has no list (and no /lib/modules): both files
# stay empty and S05modules loads nothing.
: >"$TARGET/etc/modules.options"
: >"$TARGET/etc/modules.order"
[ -f "$BOARD_DIR/modules" ] || exit 0
sed 's/#.*//' "$BOARD_DIR/modules" | awk 'NF > 1 { print }' >"$TARGET/etc/modules.options"
KVER=$(ls "$TARGET/lib/modules" 2>/dev/null | head -n 1)
if [ -n "$KVER" ]; then
	depmod -b "$TARGET" "$KVER"
	for m in $(sed 's/#.*//' "$BOARD_DIR/modules" | awk 'NF { print $1 }'); do
		modprobe -d "$TARGET" -S "$KVER" --show-depends "$m" ||
			{ echo "install-board-files.sh: kernel $KVER has no module $m (board/$(basename "$BOARD_DIR")/modules)" >&2; exit 1; }
	done | awk '$1 == "insmod" { print $2 }' | sed "s|^$TARGET||; s|^/usr/lib/|/lib/|" | awk '!seen[$0]++' \
		>"$TARGET/etc/modules.order"
fi
