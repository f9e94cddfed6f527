"""segsync service."""
