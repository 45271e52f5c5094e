#!/bin/sh
# Buildroot post-build script for the SABRE Lite board.  $1 = TARGET_DIR.
# The factory configuration and the module load order (board/common/install-board-files.sh),
# and the service shell on the i.MX6's console UART (UART2, ttymxc1) instead of the PC's ttyS0.
set -eu
BOARD_DIR=$(cd "$(dirname "$0")" && pwd)
"$BOARD_DIR/../common/install-board-files.sh" "$1" "$BOARD_DIR"
sed -i 's/^ttyS0::respawn:/ttymxc1::respawn:/' "$1/etc/inittab"
grep -q '^ttymxc1::respawn:' "$1/etc/inittab" || { echo "post-build.sh: no console line in /etc/inittab" >&2; exit 1; }
