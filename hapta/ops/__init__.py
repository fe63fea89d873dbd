"""The op handlers: one class per op family, each built on the services it uses (the gateway builds them and
collects their ops with base.table). Nothing registers by being imported."""
