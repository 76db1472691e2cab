"""omnistock: real-time inventory visibility server."""

__version__ = "0.1.0"
