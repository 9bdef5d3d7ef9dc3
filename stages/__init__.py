"""One thin entry point per DVC stage: read params and inputs, call the core, write outputs."""
