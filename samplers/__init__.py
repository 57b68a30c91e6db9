"""tempera's sampler plugins and the tail-decision processor."""
