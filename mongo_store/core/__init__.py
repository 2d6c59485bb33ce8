"""The store: MongoTokenStore and what it is made of (documents, matching, leases, failover,
encryption, indexes, the token history)."""
