"""ehr/services."""
