"""Partners (direct-bill, indirect provider, indirect reseller), their customers, users, roles and API tokens."""
