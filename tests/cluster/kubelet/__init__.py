"""The parts of the local node's kubelet (``tests/cluster/simnode.py`` is its entry point).

Pure pieces (``expansion``, ``envvars``, ``podstatus``, ``backoff``, the probe thresholds) are unit-tested;
the rest runs real processes: ``launcher`` (the exec'd helper that builds a container's mount namespace),
``processes`` (spawning, signalling and reaping), ``volumes``/``mountpoints`` (files a pod sees),
``probes``, ``containers`` and ``podworker`` (one supervising thread per process-backed pod).
"""
