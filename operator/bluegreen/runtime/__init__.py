"""The running operator: reconciler, work queue and kopf handlers (the only package importing kopf)."""
