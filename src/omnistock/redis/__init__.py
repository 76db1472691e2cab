"""Redis/Valkey: the live state. Key names, Lua scripts and typed operations on them."""
