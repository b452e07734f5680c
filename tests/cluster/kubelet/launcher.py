"""The helper a container process starts as (run by ``processes.spawn``; standard library only).

It reads a JSON spec from the pipe whose fd is its first argument, then, in this order: asks the kernel
to SIGKILL it when the simnode thread that forked it dies (``PR_SET_PDEATHSIG``); either enters a new
private mount namespace and UTS namespace (bind-mounting the pod's volumes at their ``mountPath``,
read-only where asked, and setting the pod's hostname) or, for exec probes and hooks, joins the
namespaces of a running container; changes to the working directory; and ``exec``s the command with
exactly the container's environment. Nothing it mounts is visible outside the namespace, and the
namespace ends with its last process. If anything fails before the ``exec`` succeeds, a JSON error goes
to the pipe named by its second argument (close-on-exec, so simnode reads EOF on success) and the helper
exits 127 (command not found), 126 (not executable) or 128 (set-up failed).
"""

import ctypes
import errno
import json
import os
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1

libc = ctypes.CDLL(None, use_errno=True)


def check(result, what):
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def mount(source, target, flags):
    src = source.encode() if source else None
    check(libc.mount(src, target.encode(), None, flags, None), f"mount {source or ''} on {target}")


def enter_new_namespaces(spec):
    check(libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    mount(None, "/", MS_REC | MS_PRIVATE)
    for m in spec.get("mounts", []):
        mount(m["source"], m["target"], MS_BIND | MS_REC)
        if m.get("readOnly"):
            mount(None, m["target"], MS_BIND | MS_REMOUNT | MS_RDONLY)
    name = spec.get("hostname", "").encode()
    if name:
        check(libc.sethostname(name, len(name)), "sethostname")


def join_namespaces(pid):
    for kind, flag in (("mnt", CLONE_NEWNS), ("uts", CLONE_NEWUTS)):
        fd = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY)
        try:
            check(libc.setns(fd, flag), f"setns {kind} of pid {pid}")
        finally:
            os.close(fd)


def main():
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    spec_fd, report_fd = int(sys.argv[1]), int(sys.argv[2])
    with os.fdopen(spec_fd, "rb") as spec_file:
        spec = json.loads(spec_file.read())
    if os.getppid() != spec["parent"]:  # simnode died before PDEATHSIG was armed
        os._exit(128)
    os.set_inheritable(report_fd, False)
    argv = spec["argv"]
    stage = "setup"
    try:
        if spec.get("join"):
            join_namespaces(spec["join"])
        else:
            enter_new_namespaces(spec)
        os.chdir(spec.get("cwd") or "/")
        stage = "exec"
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as exc:
        code = 128
        if stage == "exec":
            code = 127 if exc.errno in (errno.ENOENT, errno.ENOTDIR) else 126
        message = f"{exc.strerror}: {os.fsdecode(exc.filename)}" if exc.filename else str(exc)
        if stage == "exec":
            message = f"exec {argv[0]!r}: {message}"
        os.write(report_fd, json.dumps({"error": message, "code": code}).encode())
        os._exit(code)

if __name__ == "__main__":
    sys.exit(main())
