"""ehr/sandbox."""
