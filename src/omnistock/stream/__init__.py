"""The change stream: cursors, the per-process reader and fan-out to WebSocket clients."""
