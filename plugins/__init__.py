"""sfumato's exporter plugins, the embedded local store, and the Botticelli instrumentation."""
