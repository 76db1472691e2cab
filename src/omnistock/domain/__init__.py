"""Pure rules and types of omnistock: no IO, no framework, no driver imports."""
