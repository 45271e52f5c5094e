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

# The heartbeat UART (UART1) without DMA: the i.MX UART driver hands a non-console port's
# transfers to the SoC's SDMA engine when the device tree names its channels, and QEMU models no
# SDMA (nothing ever moves: the cable stays silent).  Interrupt-driven I/O costs nothing at 19200
# baud, so the board's device tree drops them - on silicon too, which keeps the two alike.
command -v fdtput >/dev/null || { echo "post-image.sh: no fdtput (Debian package device-tree-compiler)" >&2; exit 1; }
fdtput -d "$BIN/imx6q-sabrelite.dtb" /soc/bus@2000000/spba-bus@2000000/serial@2020000 dmas
fdtput -d "$BIN/imx6q-sabrelite.dtb" /soc/bus@2000000/spba-bus@2000000/serial@2020000 dma-names

# 64 MB of FAT: room for the kernel, the device tree, the initramfs and the next update's copies
rm -f "$BIN/boot.vfat"
mkfs.vfat -n HANODE-BOOT -C "$BIN/boot.vfat" 65536 >/dev/null
mcopy -i "$BIN/boot.vfat" "$BIN/zImage" "$BIN/imx6q-sabrelite.dtb" "$BIN/rootfs.cpio.gz" ::/
mmd -i "$BIN/boot.vfat" ::/extlinux
mcopy -i "$BIN/boot.vfat" "$BOARD_DIR/extlinux.conf" ::/extlinux/extlinux.conf

"$BOARD_DIR/../common/genimage-with-data.sh" "$BIN" "$BOARD_DIR"
# a real card is bigger anyway; QEMU's SD model refuses a size that is not a power of two
truncate -s 128M "$BIN/sdcard.img"
