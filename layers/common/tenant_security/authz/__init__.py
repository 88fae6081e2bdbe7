"""Authorization: the route table, roles and permissions, the authorizer's decision."""
