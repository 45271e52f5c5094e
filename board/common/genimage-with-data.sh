#!/bin/sh
# Post-image step shared by the boards (called from board/<board>/post-image.sh):
#   genimage-with-data.sh BINARIES_DIR BOARD_DIR
# Runs genimage with BOARD_DIR/genimage.cfg, its data.ext4 made from the board's data/ tree (the
# factory /etc/ha.d and /var/lib/hanode) with the pair's authkeys from image/build (HANODE_AUTHKEYS:
# the board's is a template without a key), mode 600 there too (git keeps no modes).
set -eu
BIN=$1
BOARD_DIR=$2
: "${HANODE_AUTHKEYS:?set by image/build: the pair's authkeys (the board's holds no key)}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -a "$BOARD_DIR/data" "$tmp/root"
install -m 600 "$HANODE_AUTHKEYS" "$tmp/root/etc/ha.d/authkeys"
genimage --config "$BOARD_DIR/genimage.cfg" --rootpath "$tmp/root" --tmppath "$tmp/genimage" \
	--inputpath "$BIN" --outputpath "$BIN" >"$tmp/genimage.log" 2>&1 ||
	{ cat "$tmp/genimage.log" >&2; exit 1; }
