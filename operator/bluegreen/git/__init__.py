"""Git through pygit2: credentials on the wire, transports, mirrors with their cache and compaction, lookups,
and the ``GitSource`` facade (``bluegreen.git.source``)."""
