#!/bin/sh
# Buildroot post-build script shared by every board (BR2_ROOTFS_POST_BUILD_SCRIPT).
# $1 = TARGET_DIR.  Runs after the overlays, before the filesystem images are made.
#
# /etc/ha.d and /var/lib/hanode point into the persistent data partition (mounted on /data by
# S10data) so that configuration and the boot generation survive reflashing the system part.
set -eu
TARGET=$1
rm -rf "$TARGET/etc/ha.d" "$TARGET/var/lib/hanode"
ln -s /data/etc/ha.d "$TARGET/etc/ha.d"
ln -s /data/var/lib/hanode "$TARGET/var/lib/hanode"
# /var/log is RAM; what must explain a reset afterwards (ha.cf's logfile, hanode's stderr) is
# written to /data/var/log instead - a few lines per event, so no flash wear to speak of.
mkdir -p "$TARGET/var/log"
# The web service is a resource that hanode starts: make sure no S-link starts it at boot too.
rm -f "$TARGET"/etc/init.d/S*webdemo*
chmod 755 "$TARGET"/etc/init.d/*
# The appliance carries no simulator: hanode/lab (the null-modem cable, the namespace test bed,
# `hanode demo`) is for development machines.  Wherever the Python package landed (image/build:
# dist-packages; Buildroot's python-package: python3.X/site-packages), drop it and its lines in
# the wheel's RECORD, so the installed file list stays true.
for site in "$TARGET"/usr/lib/python3*/dist-packages "$TARGET"/usr/lib/python3*/site-packages; do
	[ -d "$site/hanode" ] || continue
	rm -rf "$site/hanode/lab"
	for record in "$site"/hanode-*.dist-info/RECORD; do
		if [ -f "$record" ]; then sed -i '\|^hanode/lab/|d' "$record"; fi
	done
done
# FHS's /var/run is /run (S45hanode keeps its pid file there)
rm -rf "$TARGET/var/run"
ln -s /run "$TARGET/var/run"
