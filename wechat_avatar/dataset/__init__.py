"""Dataset stage: chat.db -> training samples (see build.py), cleaned and pseudonymised."""
