"""Video-FocalNet experiment configs (``get_config()`` per file; shared values in ``common``)."""
