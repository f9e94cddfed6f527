"""segsync sync."""
