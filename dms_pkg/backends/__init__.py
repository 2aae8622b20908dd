"""Source databases, one module each, behind one protocol (``base.SourceBackend``)."""
