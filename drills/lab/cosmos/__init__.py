"""Cosmos DB in the lab: one account (:mod:`.account`) replicating between its regions, served over
the REST surface the ``azure-cosmos`` client uses (:mod:`.server`), authorised by master-key HMAC
(:mod:`.auth`)."""
