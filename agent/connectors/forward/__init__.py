"""The ``forward`` connector: passes data unchanged from one pipeline to others of the same signal."""
