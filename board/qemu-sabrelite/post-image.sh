#!/bin/sh
# Buildroot post-image script for the SABRE Lite board (BR2_ROOTFS_POST_IMAGE_SCRIPT).
# $1 = BINARIES_DIR, holding zImage, imx6q-sabrelite.dtb and rootfs.cpio.gz.
#
# The board's flashable format is an SD card image: the SABRE Lite's U-Boot lives in its SPI
# flash and boots from the SD card's FAT partition through extlinux/extlinux.conf (U-Boot's
# distro boot), so the card carries no bootloader of its own.  genimage assembles sdcard.img:
# the FAT boot partition made here, then the ext4 data partition from board/.../data.
set -eu
BIN=$1
BOARD_DIR=$(cd "$(dirname "$0")" && pwd)

# 64 MB of FAT: room for the kernel, the device tree, the initramfs and the next update's copies
rm -f "$BIN/boot.vfat"
mkfs.vfat -n HANODE-BOOT -C "$BIN/boot.vfat" 65536 >/dev/null
mcopy -i "$BIN/boot.vfat" "$BIN/zImage" "$BIN/imx6q-sabrelite.dtb" "$BIN/rootfs.cpio.gz" ::/
mmd -i "$BIN/boot.vfat" ::/extlinux
mcopy -i "$BIN/boot.vfat" "$BOARD_DIR/extlinux.conf" ::/extlinux/extlinux.conf

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -a "$BOARD_DIR/data" "$tmp/root"
chmod 600 "$tmp/root/etc/ha.d/authkeys"
genimage --config "$BOARD_DIR/genimage.cfg" --rootpath "$tmp/root" --tmppath "$tmp/genimage" \
	--inputpath "$BIN" --outputpath "$BIN" >"$tmp/genimage.log" 2>&1 ||
	{ cat "$tmp/genimage.log" >&2; exit 1; }
# a real card is bigger anyway; QEMU's SD model refuses a size that is not a power of two
truncate -s 128M "$BIN/sdcard.img"
