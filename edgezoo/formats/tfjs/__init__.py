"""TF.js: convert.py (tensorflowjs' graph model, uint8/uint16 weights, shards), metadata.py, inspect.py, the runners
run_node.py (Node 20, @tensorflow/tfjs) and run_browser.py (headless Chromium), placement.py, and the JS harness they
share (js/, its npm packages installed by `make install`)."""

from edgezoo.formats import public_names

# What other folders use: the JS harness (device bundles, latency) and the browser session (the CLI stops it on Ctrl-C).
PUBLIC = {"JS_DIR": "run_node", "node_modules": "run_node", "run_browser": "run_browser"}
__getattr__ = public_names(__name__, PUBLIC)
