"""What administrators do to a tenant's users (above ``identity``, beside ``authz``)."""
