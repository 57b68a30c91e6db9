"""sfumato's backend plugins: presets that choose exporters, endpoints and headers per signal."""
