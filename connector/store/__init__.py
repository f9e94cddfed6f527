"""segsync store."""
