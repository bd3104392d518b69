"""Files copied into every device_check/ bundle; they run on the device without edgezoo."""
