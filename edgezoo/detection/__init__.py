"""Object detection: Garden RetinaNet detectors, their post-processing per target, and the numpy reference."""
