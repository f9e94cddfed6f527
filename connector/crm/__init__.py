"""segsync crm."""
