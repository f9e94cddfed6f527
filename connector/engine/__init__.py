"""segsync engine."""
