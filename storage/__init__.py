"""Persistence: SQLModel tables, encryption of stored secrets, the audit chain, identity."""
