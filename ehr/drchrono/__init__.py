"""ehr/drchrono."""
