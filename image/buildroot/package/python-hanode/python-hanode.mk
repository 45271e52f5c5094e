################################################################################
#
# python-hanode
#
################################################################################

# Built from this source tree (the BR2_EXTERNAL lives in image/buildroot of the hanode repo).
PYTHON_HANODE_VERSION = 0.1.0
PYTHON_HANODE_SITE = $(realpath $(BR2_EXTERNAL_HANODE_PATH)/../..)
PYTHON_HANODE_SITE_METHOD = local
PYTHON_HANODE_SETUP_TYPE = setuptools
PYTHON_HANODE_LICENSE = MIT

# Buildroot installs console scripts in /usr/bin, pip in /usr/local/bin: point the init
# script and the unit at Buildroot's.
define PYTHON_HANODE_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(@D)/packaging/S45hanode $(TARGET_DIR)/etc/init.d/S45hanode
	if [ ! -e $(TARGET_DIR)/etc/default/hanode ]; then \
		$(INSTALL) -d $(TARGET_DIR)/etc/default; \
		echo 'HANODE_BIN=/usr/bin/hanode' > $(TARGET_DIR)/etc/default/hanode; \
	fi
endef

define PYTHON_HANODE_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/packaging/hanode.service \
		$(TARGET_DIR)/usr/lib/systemd/system/hanode.service
	$(INSTALL) -d $(TARGET_DIR)/usr/lib/systemd/system/hanode.service.d
	printf '[Service]\nExecStart=\nExecStart=/usr/bin/hanode run $$HANODE_ARGS\n' \
		> $(TARGET_DIR)/usr/lib/systemd/system/hanode.service.d/buildroot.conf
endef

$(eval $(python-package))
