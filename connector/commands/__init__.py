"""segsync commands."""
