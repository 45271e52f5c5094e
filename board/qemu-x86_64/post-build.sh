#!/bin/sh
# Buildroot post-build script for the QEMU x86_64 board.  $1 = TARGET_DIR.
# The factory configuration and the module load order (board/common/install-board-files.sh).
set -eu
BOARD_DIR=$(cd "$(dirname "$0")" && pwd)
"$BOARD_DIR/../common/install-board-files.sh" "$1" "$BOARD_DIR"
