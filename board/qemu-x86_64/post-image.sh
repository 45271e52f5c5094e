#!/bin/sh
# Buildroot post-image script for the QEMU x86_64 board (BR2_ROOTFS_POST_IMAGE_SCRIPT).
# $1 = BINARIES_DIR, holding bzImage and rootfs.squashfs (and initrd.gz if board.conf wants one).
#
# Makes the FAT boot partition by hand because syslinux has to be installed into it (genimage
# cannot do that), then lets genimage make the ext4 data partition from board/.../data and
# assemble disk.img: syslinux's MBR, boot (active), data, system (rootfs.squashfs).
set -eu
BIN=$1
BOARD_DIR=$(cd "$(dirname "$0")" && pwd)
# The MBR code must come with the `syslinux` installer that writes ldlinux.sys below (the
# build host's: Debian packages syslinux + syslinux-common; Buildroot has no host syslinux).
SYSLINUX_MBR=${SYSLINUX_MBR:-/usr/lib/syslinux/mbr/mbr.bin}
[ -f "$SYSLINUX_MBR" ] || { echo "post-image.sh: $SYSLINUX_MBR missing (Debian package syslinux-common)" >&2; exit 1; }
command -v syslinux >/dev/null || { echo "post-image.sh: no syslinux installer (Debian package syslinux)" >&2; exit 1; }

# 64 MB of FAT: room for the kernel (and an initrd) and the next update's copy
rm -f "$BIN/boot.vfat"
mkfs.vfat -n HANODE-BOOT -C "$BIN/boot.vfat" 65536 >/dev/null
initrd=; [ -f "$BIN/initrd.gz" ] && initrd=$BIN/initrd.gz
mcopy -i "$BIN/boot.vfat" "$BIN/bzImage" $initrd "$BOARD_DIR/syslinux.cfg" ::/
syslinux --install "$BIN/boot.vfat"
cp "$SYSLINUX_MBR" "$BIN/mbr.bin"

"$BOARD_DIR/../common/genimage-with-data.sh" "$BIN" "$BOARD_DIR"
