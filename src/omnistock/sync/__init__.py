"""The Redis <-> Postgres bridge: persister, rebuild, reconcile, trimming, the write gate and the
watchdog. The only package that uses both redis/ and postgres/."""
