"""HTTP adapters: the tracking server and, later, the control-plane API and gateway."""
