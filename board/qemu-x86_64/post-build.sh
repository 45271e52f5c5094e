#!/bin/sh
# Buildroot post-build script for the QEMU x86_64 board.  $1 = TARGET_DIR.
# The board's factory configuration (data/: /etc/ha.d and an empty /var/lib/hanode) goes into
# the system part too, so S10data can initialise a blank or missing data partition from it.
set -eu
TARGET=$1
BOARD_DIR=$(dirname "$0")
rm -rf "$TARGET/usr/share/hanode/factory"
mkdir -p "$TARGET/usr/share/hanode"
cp -a "$BOARD_DIR/data" "$TARGET/usr/share/hanode/factory"
# Heartbeat (and hanode) refuse an authkeys readable by others: git does not keep modes
chmod 600 "$TARGET/usr/share/hanode/factory/etc/ha.d/authkeys"
