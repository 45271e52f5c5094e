include $(sort $(wildcard $(BR2_EXTERNAL_HANODE_PATH)/package/*/*.mk))
