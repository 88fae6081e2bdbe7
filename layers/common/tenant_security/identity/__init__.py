"""Identity: passwords, MFA, sessions, tokens."""
