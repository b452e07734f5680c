"""The local node's kubelet, in parts (``tests/cluster/simnode.py`` is the entry point; see
``tests/cluster/README.md``).

Pure rules, unit-tested: ``expansion`` ($(VAR)), ``envvars`` (a container's environment), ``podstatus``
(phase, conditions, minimal patches), ``backoff`` (crash-loop back-off), ``probes.Thresholds``, ``images``
(what a ``local/`` image contains). The node: ``registration`` (Node and Lease), ``ipam`` (loopback pod
IPs), ``simulated`` (pods that run nothing). Process-backed pods: ``podworker`` (one supervising thread per
pod), ``containers`` (one run of a container: process, probes, stop), ``launchspec`` (environment, command,
mounts for a run), ``volumes`` and ``mountpoints`` (files a pod sees), ``launcher`` (the exec'd helper that
builds a container's namespaces), ``processes`` (spawn, signal, reap by marker), ``nodeapi`` (what a pod
worker asks the API server), ``logserver`` (``kubectl logs``), ``cleanup`` (leave nothing behind).
"""
