"""The HTTP and WebSocket API (Litestar): one controller module per resource."""
