"""segsync mapping."""
