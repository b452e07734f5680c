"""The pure core: spec types and parsing, manifest -> desired template, planner, conditions, history, semver,
repository identity, git ref rules, the Source/Cluster Protocols, the shared error and outcome types. No I/O."""
