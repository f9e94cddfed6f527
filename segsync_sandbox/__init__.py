"""segsync sandbox."""
